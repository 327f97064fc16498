/// Model FLOPs per trained token (forward + backward), counting the work Loom's kernels do:
/// 6·N for the N parameters of the matrix products (2 FLOPs per multiply-add; forward,
/// input gradient and weight gradient), plus for attention 2·d·K FLOPs in each of its six
/// products (QKᵀ and PV forward; dP, dV, dQ and dK backward) per layer: 12·L·d·K, where d is
/// heads·headDim and K the keys the causal kernel multiplies each query row with
/// (`causalAttentionKeysPerRow`: whole 64-row blocks up to the diagonal, 160 of 256 keys at
/// T = 256). Elementwise work (norms, softmax, SwiGLU, AdamW) is not counted.
public func trainingFLOPsPerToken(_ c: LlamaConfiguration, contextLength: Int) -> Double {
    6 * Double(c.matmulParameterCount)
        + 12 * Double(c.layerCount) * Double(c.hiddenSize) * causalAttentionKeysPerRow(sequence: contextLength)
}

/// The same count with attention over the full T×T square (PaLM's and nanoGPT's convention,
/// 6·N + 12·L·d·T), for comparison with figures quoted that way.
public func trainingFLOPsPerTokenFullAttention(_ c: LlamaConfiguration, contextLength: Int) -> Double {
    6 * Double(c.matmulParameterCount) + 12 * Double(c.layerCount) * Double(c.hiddenSize) * Double(contextLength)
}

/// How `trainingFLOPsPerToken` counts, for reports.
public let trainingFLOPsConvention =
    "6·N + 12·L·d·K: N matmul parameters, L layers, d = heads·headDim, K = keys per query row the causal kernel computes (64-row blocks up to the diagonal); elementwise ops not counted"
