/// Model FLOPs per trained token (forward + backward), the convention of the PaLM paper
/// and nanoGPT's `estimate_mfu`: 6·N for the N parameters every token multiplies with,
/// plus 12·L·d·T for attention scores and weighted values (L layers, d = heads·headDim,
/// T the context length, not discounted for the causal mask).
public func trainingFLOPsPerToken(_ c: LlamaConfiguration, contextLength: Int) -> Double {
    6 * Double(c.matmulParameterCount) + 12 * Double(c.layerCount) * Double(c.hiddenSize) * Double(contextLength)
}
