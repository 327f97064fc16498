import Foundation

/// A Llama-style decoder: token embedding, `layerCount` blocks of (RMSNorm → grouped-query
/// attention with RoPE → residual, RMSNorm → SwiGLU MLP → residual), a final RMSNorm, and
/// heads: the language-model head (tied to the embedding or not) and/or the scalar `score`
/// head of `LlamaForSequenceClassification` (reward and value models).
///
/// Parameters carry Hugging Face names and live in one `ParameterStore`.
///
///     let model = LlamaModel(configuration: config)
///     model.initializeWeights(seed: 1)
///     let loss = tape.record { model.languageModelLoss(tokens: x, targets: y, batch: 8, sequence: 256) }
public final class LlamaModel {
    public struct Heads: OptionSet, Sendable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        public static let languageModel = Heads(rawValue: 1)
        public static let score = Heads(rawValue: 2)
    }

    public private(set) var configuration: LlamaConfiguration
    public let heads: Heads
    public let parameters: ParameterStore
    public let rotary: RotaryTable

    struct Layer {
        let inputNorm, q, k, v, o, postNorm, gate, up, down: Tensor
    }
    let layers: [Layer]
    public let embedTokens: Tensor
    public let finalNorm: Tensor
    /// The output projection: `lm_head.weight`, or the embedding when tied.
    public let outputProjection: Tensor?
    /// `score.weight`, `[1, hidden]`.
    public let scoreWeight: Tensor?
    /// LoRA adapters added to the targeted linear layers (see `LoRA.swift`), if attached.
    public private(set) var adapters: LoRAAdapters?
    /// Whether attached adapters take part in the forward pass (off: the frozen base model).
    public var adaptersEnabled = true
    /// Matrices held as quantized blocks (inference only; see QuantizedWeights.swift), by name.
    public let quantizedWeights: [String: QuantizedMatrix]
    /// The same matrices keyed by the empty tensors that stand for them in `parameters`.
    let quantizedByPlaceholder: [ObjectIdentifier: QuantizedMatrix]

    /// A model with every parameter in `parameters`, except the matrices of `quantized`, which
    /// keep only an empty stand-in tensor there and are multiplied in their block format.
    public convenience init(configuration c: LlamaConfiguration, heads: Heads = .languageModel, quantized: [String: QuantizedMatrix] = [:]) {
        let layout = LlamaModel.parameterLayout(c, heads: heads).map { quantized[$0.name] == nil ? $0 : ($0.name, [0]) }
        self.init(configuration: c, heads: heads, parameters: ParameterStore(layout), quantized: quantized)
    }

    private init(configuration c: LlamaConfiguration, heads: Heads, parameters: ParameterStore, quantized: [String: QuantizedMatrix]) {
        configuration = c
        self.heads = heads
        self.parameters = parameters
        quantizedWeights = quantized
        rotary = RotaryTable(headDim: c.headDim, maxPositions: c.maxPositionEmbeddings, inverseFrequencies: c.rotaryInverseFrequencies)
        let p = parameters
        layers = (0..<c.layerCount).map { i in
            let prefix = "model.layers.\(i)."
            return Layer(inputNorm: p[prefix + "input_layernorm.weight"],
                         q: p[prefix + "self_attn.q_proj.weight"], k: p[prefix + "self_attn.k_proj.weight"],
                         v: p[prefix + "self_attn.v_proj.weight"], o: p[prefix + "self_attn.o_proj.weight"],
                         postNorm: p[prefix + "post_attention_layernorm.weight"],
                         gate: p[prefix + "mlp.gate_proj.weight"], up: p[prefix + "mlp.up_proj.weight"],
                         down: p[prefix + "mlp.down_proj.weight"])
        }
        embedTokens = p["model.embed_tokens.weight"]
        finalNorm = p["model.norm.weight"]
        if heads.contains(.languageModel) {
            outputProjection = c.tieWordEmbeddings ? embedTokens : p["lm_head.weight"]
        } else {
            outputProjection = nil
        }
        scoreWeight = heads.contains(.score) ? p["score.weight"] : nil
        quantizedByPlaceholder = Dictionary(uniqueKeysWithValues: quantized.map { (ObjectIdentifier(p[$0.key]), $0.value) })
    }

    /// Hugging Face names and shapes, in storage order.
    public static func parameterLayout(_ c: LlamaConfiguration, heads: Heads) -> [(name: String, shape: [Int])] {
        let h = c.hiddenSize, kv = c.kvHeadCount * c.headDim, m = c.intermediateSize
        var layout: [(String, [Int])] = [("model.embed_tokens.weight", [c.vocabularySize, h])]
        for i in 0..<c.layerCount {
            let prefix = "model.layers.\(i)."
            layout += [
                (prefix + "input_layernorm.weight", [h]),
                (prefix + "self_attn.q_proj.weight", [h, h]),
                (prefix + "self_attn.k_proj.weight", [kv, h]),
                (prefix + "self_attn.v_proj.weight", [kv, h]),
                (prefix + "self_attn.o_proj.weight", [h, h]),
                (prefix + "post_attention_layernorm.weight", [h]),
                (prefix + "mlp.gate_proj.weight", [m, h]),
                (prefix + "mlp.up_proj.weight", [m, h]),
                (prefix + "mlp.down_proj.weight", [h, m]),
            ]
        }
        layout.append(("model.norm.weight", [h]))
        if heads.contains(.languageModel) && !c.tieWordEmbeddings { layout.append(("lm_head.weight", [c.vocabularySize, h])) }
        if heads.contains(.score) { layout.append(("score.weight", [1, h])) }
        return layout
    }

    /// Normal(0, std) matrices (the output projections of each block scaled down by
    /// 1/sqrt(2·layers), as GPT-2 does, so the residual stream does not grow with depth),
    /// norms at 1, the score head at zero.
    public func initializeWeights(seed: UInt64, standardDeviation: Float = 0.02) {
        var rng = SeededRandom(seed: seed)
        let residualScale = 1 / Float(2 * configuration.layerCount).squareRoot()
        for entry in parameters.entries {
            let t = entry.tensor
            if entry.shape.count == 1 {
                t.data.update(repeating: 1, count: t.count)
            } else if entry.name == "score.weight" {
                t.storage.zero()
            } else if entry.name.hasSuffix("o_proj.weight") || entry.name.hasSuffix("down_proj.weight") {
                t.fillNormal(std: standardDeviation * residualScale, rng: &rng)
            } else {
                t.fillNormal(std: standardDeviation, rng: &rng)
            }
        }
    }

    /// Attaches LoRA adapters made for this model's configuration (they replace any attached).
    public func attach(_ adapters: LoRAAdapters) {
        precondition(adapters.configuration.layerCount == configuration.layerCount
                     && adapters.configuration.hiddenSize == configuration.hiddenSize
                     && adapters.configuration.intermediateSize == configuration.intermediateSize,
                     "LoRA adapters made for another configuration")
        self.adapters = adapters
    }

    /// Removes the adapters (the model is the base again).
    public func detachAdapters() { adapters = nil }

    /// A second model over the same weights (no copy), without adapters: with LoRA training,
    /// whose base weights are frozen, this is the reference model of DPO, PPO and GRPO.
    public func sharingBaseWeights() -> LlamaModel {
        let view = LlamaModel(configuration: configuration, heads: heads, parameters: parameters, quantized: quantizedWeights)
        return view
    }

    /// Records the tokenizer's special tokens in the configuration (written to config.json).
    public func setSpecialTokens(bos: Int?, eos: Int?, pad: Int?) {
        configuration.bosTokenID = bos
        configuration.eosTokenID = eos
        configuration.padTokenID = pad
    }

    /// Positions 0..<sequence for every sequence of a `[batch, sequence]` batch.
    public static func positions(batch: Int, sequence: Int) -> [Int32] {
        var p = [Int32](repeating: 0, count: batch * sequence)
        for b in 0..<batch { for t in 0..<sequence { p[b * sequence + t] = Int32(t) } }
        return p
    }

    /// Final hidden states `[batch·sequence, hidden]` (after the last RMSNorm) for a
    /// row-major `[batch, sequence]` batch of token ids.
    public func hiddenStates(tokens: [Int32], batch: Int, sequence: Int) -> Tensor {
        precondition(tokens.count == batch * sequence, "\(tokens.count) tokens do not fill [\(batch), \(sequence)]")
        precondition(quantizedWeights.isEmpty, "hiddenStates: this model holds quantized weights (inference only); load it dequantized to train it")
        precondition(sequence <= configuration.maxPositionEmbeddings,
                     "sequence \(sequence) exceeds max_position_embeddings \(configuration.maxPositionEmbeddings)")
        let c = configuration
        let positions = LlamaModel.positions(batch: batch, sequence: sequence)
        let shape = AttentionShape(batch: batch, sequence: sequence, heads: c.headCount, kvHeads: c.kvHeadCount, headDim: c.headDim)
        var x = embedding(embedTokens, ids: tokens)
        for (i, layer) in layers.enumerated() {
            let h = rmsNorm(x, weight: layer.inputNorm, eps: c.rmsNormEps)
            let q = rope(project(h, layer.q, layer: i, target: .q), table: rotary, positions: positions)
            let k = rope(project(h, layer.k, layer: i, target: .k), table: rotary, positions: positions)
            let v = project(h, layer.v, layer: i, target: .v)
            let attended = causalAttention(q: q, k: k, v: v, shape: shape)
            x = x + project(attended, layer.o, layer: i, target: .o)
            let h2 = rmsNorm(x, weight: layer.postNorm, eps: c.rmsNormEps)
            let gated = swiglu(gate: project(h2, layer.gate, layer: i, target: .gate), up: project(h2, layer.up, layer: i, target: .up))
            x = x + project(gated, layer.down, layer: i, target: .down)
        }
        return rmsNorm(x, weight: finalNorm, eps: c.rmsNormEps)
    }

    /// Logits `[rows, vocab]` from final hidden states.
    public func logits(hidden: Tensor) -> Tensor {
        guard let outputProjection else { preconditionFailure("this model has no language-model head") }
        return project(hidden, outputProjection)
    }

    /// Logits `[batch·sequence, vocab]`.
    public func logits(tokens: [Int32], batch: Int, sequence: Int) -> Tensor {
        logits(hidden: hiddenStates(tokens: tokens, batch: batch, sequence: sequence))
    }

    /// Mean next-token cross-entropy; `targets` holds one id per input position
    /// (`ignoredTarget` for positions that do not count).
    public func languageModelLoss(tokens: [Int32], targets: [Int32], batch: Int, sequence: Int) -> Tensor {
        crossEntropy(logits: logits(tokens: tokens, batch: batch, sequence: sequence), targets: targets)
    }

    /// The scalar head on every row: `[rows]` (per-token values for a PPO critic).
    public func scores(hidden: Tensor) -> Tensor {
        guard let scoreWeight = activeScoreWeight else { preconditionFailure("this model has no score head") }
        return linear(hidden, scoreWeight).reshaped([hidden.rows])
    }

    /// The scalar head on chosen rows (each sequence's last real token): `[rows.count]`.
    public func scores(hidden: Tensor, rows: [Int]) -> Tensor {
        scores(hidden: gatherRows(hidden, indices: rows))
    }
}
