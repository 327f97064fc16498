import Foundation

/// A GGUF Llama model as Hugging Face sees it: `config.json` fields from the `llama.*`
/// metadata and float32 weights under Hugging Face names.
///
/// llama.cpp's converter interleaves the rows of the query and key projections: within each
/// head, Hugging Face's rows (first half of the rotary pairs, then second half) become
/// alternating pairs, because ggml's RoPE rotates adjacent elements while Hugging Face's
/// rotates the two halves. Reading undoes that permutation, so the weights multiply exactly
/// as in the original checkpoint.
public enum GGUFLlama {
    /// The architectures this reader converts.
    public static let supportedArchitectures = ["llama"]

    /// The configuration from the metadata, checked against the tensor shapes.
    public static func configuration(_ file: GGUFFile) throws -> LlamaConfiguration {
        let architecture = try file.string("general.architecture")
        guard supportedArchitectures.contains(architecture) else {
            throw GGUFError(path: file.path, key: "general.architecture",
                            "architecture \"\(architecture)\" is not supported (Loom imports \(supportedArchitectures.joined(separator: ", ")))")
        }
        let p = architecture + "."
        func positive(_ key: String) throws -> Int {
            let value = try file.integer(p + key)
            guard value > 0 && value <= Int(Int32.max) else { throw GGUFError(path: file.path, key: p + key, "must be positive, found \(value)") }
            return value
        }
        let hidden = try positive("embedding_length")
        let heads = try positive("attention.head_count")
        let kvHeads = file.contains(p + "attention.head_count_kv") ? try positive("attention.head_count_kv") : heads
        guard let embedding = file.info(named: "token_embd.weight") else {
            throw GGUFError(path: file.path, tensor: "token_embd.weight", "missing tensor (the token embedding)")
        }
        let vocabulary = file.contains(p + "vocab_size") ? try positive("vocab_size") : embedding.shape[0]
        var configuration = LlamaConfiguration(
            vocabularySize: vocabulary, hiddenSize: hidden,
            intermediateSize: try positive("feed_forward_length"), layerCount: try positive("block_count"),
            headCount: heads, kvHeadCount: kvHeads,
            maxPositionEmbeddings: file.contains(p + "context_length") ? try positive("context_length") : 2048,
            rmsNormEps: Float(try file.number(p + "attention.layer_norm_rms_epsilon")),
            ropeTheta: file.contains(p + "rope.freq_base") ? try file.number(p + "rope.freq_base") : 10000,
            tieWordEmbeddings: file.info(named: "output.weight") == nil)
        do { try configuration.validate() } catch let error as ConfigurationError {
            throw GGUFError(path: file.path, "the llama.* metadata describe an invalid model: \(error.message)")
        }
        let headDim = configuration.headDim
        for key in ["rope.dimension_count", "attention.key_length", "attention.value_length"] where file.contains(p + key) {
            let value = try file.integer(p + key)
            guard value == headDim else {
                throw GGUFError(path: file.path, key: p + key, "is \(value), but Loom's Llama needs the head dimension \(headDim) (embedding_length / head_count)")
            }
        }
        configuration.ropeScaling = try ropeScaling(file, prefix: p, configuration: configuration)
        if file.contains(p + "expert_count"), try file.integer(p + "expert_count") > 0 {
            throw GGUFError(path: file.path, key: p + "expert_count", "mixture-of-experts Llama models are not supported")
        }
        if let bos = file["tokenizer.ggml.bos_token_id"]?.integer { configuration.bosTokenID = bos }
        if let eos = file["tokenizer.ggml.eos_token_id"]?.integer { configuration.eosTokenID = eos }
        if let pad = file["tokenizer.ggml.padding_token_id"]?.integer { configuration.padTokenID = pad }
        return configuration
    }

    /// The name of the tensor in which llama.cpp keeps Llama 3.1's RoPE scaling: one factor per
    /// rotary pair, by which ggml divides the pair's plain frequency.
    public static let ropeFactorsTensor = "rope_freqs.weight"
    /// The original context length Llama 3 models were trained with, for `rope_freqs.weight` in
    /// files that do not record it (any value describes the same frequencies; see `fitLlama3`).
    static let llama3OriginalContext = 8192

    /// The RoPE scaling of the file: `rope.scaling.type` "linear" (with `rope.scaling.factor`),
    /// or Llama 3.1's scaling stored as `rope_freqs.weight`; nil for plain RoPE.
    static func ropeScaling(_ file: GGUFFile, prefix p: String, configuration: LlamaConfiguration) throws -> RopeScaling? {
        var scaling: RopeScaling?
        if let type = file[p + "rope.scaling.type"], type != .string("none") {
            guard type == .string("linear") else {
                throw GGUFError(path: file.path, key: p + "rope.scaling.type", "RoPE scaling \(type) is not supported (Loom reads none, linear, and Llama 3.1's rope_freqs.weight)")
            }
            let factor = try file.number(p + "rope.scaling.factor")
            guard factor.isFinite && factor > 0 else {
                throw GGUFError(path: file.path, key: p + "rope.scaling.factor", "must be a positive number, found \(factor)")
            }
            scaling = .linear(factor: factor)
        }
        guard let info = file.info(named: ropeFactorsTensor) else { return scaling }
        let half = configuration.headDim / 2
        guard scaling == nil else {
            throw GGUFError(path: file.path, tensor: ropeFactorsTensor, "comes with rope.scaling.type linear: two RoPE scalings at once are not supported")
        }
        guard info.shape == [half], info.type == .f32 else {
            throw GGUFError(path: file.path, tensor: ropeFactorsTensor, "must be \(half) float32 factors (one per rotary pair), found \(info.type.name) \(info.shape)")
        }
        let stored = file.tensor(info)
        let factors = (0..<half).map { Double(stored.data[$0]) }
        if let bad = factors.firstIndex(where: { !($0.isFinite && $0 > 0) }) {
            throw GGUFError(path: file.path, tensor: ropeFactorsTensor, "factor \(bad) is \(factors[bad]); RoPE factors must be positive")
        }
        let original = file.contains(p + "rope.scaling.original_context_length")
            ? try file.integer(p + "rope.scaling.original_context_length") : llama3OriginalContext
        guard original > 0 && original <= LlamaConfiguration.Limits.maxPositionEmbeddings else {
            throw GGUFError(path: file.path, key: p + "rope.scaling.original_context_length", "must be a positive context length, found \(original)")
        }
        guard let fitted = fitLlama3(factors: factors, plainFrequencies: configuration.plainRotaryFrequencies, originalContext: original) else {
            throw GGUFError(path: file.path, tensor: ropeFactorsTensor, "holds factors that follow neither Llama 3.1's RoPE scaling nor a uniform (linear) one, the two that Hugging Face's config.json can describe")
        }
        return fitted
    }

    /// The Llama 3.1 (or, when every factor is the same, linear) scaling that divides the plain
    /// frequencies by `factors`, or nil if none does (to 1e-5).
    ///
    /// With x = L / wavelength, Llama 3.1 keeps pairs with x > high, divides those with x < low
    /// by `factor`, and blends between with weight s = (x − low) / (high − low), so a factor f
    /// in the band gives s = (1/f − 1/factor) / (1 − 1/factor). Only (x − low)/(high − low) can
    /// be read back, not L, low and high separately: every choice with that ratio gives the same
    /// frequencies, so L is taken as given and low and high solved from the band's pairs (or,
    /// with fewer than two pairs in the band, placed between the kept and the divided pairs).
    public static func fitLlama3(factors: [Double], plainFrequencies: [Double], originalContext: Int) -> RopeScaling? {
        let tolerance = 1e-5
        guard factors.count == plainFrequencies.count, !factors.isEmpty else { return nil }
        if factors.allSatisfy({ abs($0 - 1) <= tolerance }) { return nil }
        let factor = factors.max()!
        if factors.allSatisfy({ abs($0 - factor) <= tolerance * factor }) { return .linear(factor: factor) }
        guard factor > 1 else { return nil }
        let length = Double(originalContext)
        let x = plainFrequencies.map { length * $0 / (2 * Double.pi) }
        enum Kind { case kept, band, divided }
        let kinds: [Kind] = factors.map { abs($0 - 1) <= tolerance ? .kept : abs($0 - factor) <= tolerance * factor ? .divided : .band }
        let kept = kinds.indices.filter { kinds[$0] == .kept }, divided = kinds.indices.filter { kinds[$0] == .divided }
        let band = kinds.indices.filter { kinds[$0] == .band }
        let s = { (i: Int) in (1 / factors[i] - 1 / factor) / (1 - 1 / factor) }
        let keptFloor = kept.map { x[$0] }.min() ?? .infinity, dividedCeiling = divided.map { x[$0] }.max() ?? 0
        var low: Double, width: Double
        if band.count >= 2, let a = band.first, let b = band.last, s(a) != s(b) {
            width = (x[a] - x[b]) / (s(a) - s(b))
            low = x[a] - s(a) * width
        } else if band.count == 1, let m = band.first {
            let limit = min((x[m] - dividedCeiling) / max(s(m), 1e-12), keptFloor.isFinite ? (keptFloor - x[m]) / max(1 - s(m), 1e-12) : .infinity)
            guard limit.isFinite && limit > 0 else { return nil }
            width = limit / 2
            low = x[m] - s(m) * width
        } else if band.isEmpty {
            let top = keptFloor.isFinite ? keptFloor : dividedCeiling * 4
            low = dividedCeiling + (top - dividedCeiling) / 3
            width = (top - dividedCeiling) / 3
        } else {
            return nil
        }
        func reproduces(_ scaling: RopeScaling, within tolerance: Double) -> Bool {
            guard (try? scaling.validate()) != nil else { return false }
            return zip(plainFrequencies, factors).allSatisfy { abs($0 / scaling.scale($0) - $1) <= tolerance * $1 }
        }
        let high = low + width
        // Solved values carry float32 rounding (0.99999964 for Meta's 1): the same rounded to
        // four decimals are written when they give the factors as closely (1e-6); the solved
        // values themselves may differ by 1e-5, room for a converter that computed the plain
        // frequencies in float32.
        let rounded = { (v: Double) in (v * 1e4).rounded() / 1e4 }
        for (l, h, tolerance) in [(rounded(low), rounded(high), 1e-6), (low, high, 1e-5)] {
            let scaling = RopeScaling.llama3(factor: factor, lowFrequencyFactor: l, highFrequencyFactor: h, originalMaxPositions: originalContext)
            if reproduces(scaling, within: tolerance) { return scaling }
        }
        return nil
    }

    /// The per-pair factors llama.cpp's `rope_freqs.weight` holds for `configuration`'s scaling
    /// (each plain frequency divided by the scaled one).
    public static func ropeFactors(_ configuration: LlamaConfiguration) -> [Float] {
        configuration.plainRotaryFrequencies.map { Float($0 / (configuration.ropeScaling?.scale($0) ?? $0)) }
    }

    /// The Hugging Face name of a GGUF tensor, or nil if it is not one of Llama's.
    static func huggingFaceName(_ name: String) -> String? {
        switch name {
        case "token_embd.weight": return "model.embed_tokens.weight"
        case "output_norm.weight": return "model.norm.weight"
        case "output.weight": return "lm_head.weight"
        default: break
        }
        let parts = name.split(separator: ".", maxSplits: 2)
        guard parts.count == 3, parts[0] == "blk", let layer = Int(parts[1]) else { return nil }
        let suffixes = [
            "attn_norm.weight": "input_layernorm.weight", "attn_q.weight": "self_attn.q_proj.weight",
            "attn_k.weight": "self_attn.k_proj.weight", "attn_v.weight": "self_attn.v_proj.weight",
            "attn_output.weight": "self_attn.o_proj.weight", "ffn_norm.weight": "post_attention_layernorm.weight",
            "ffn_gate.weight": "mlp.gate_proj.weight", "ffn_up.weight": "mlp.up_proj.weight",
            "ffn_down.weight": "mlp.down_proj.weight",
        ]
        return suffixes[String(parts[2])].map { "model.layers.\(layer).\($0)" }
    }

    /// Every weight, dequantised to float32, under its Hugging Face name, with the query and
    /// key rows put back in Hugging Face order. Each tensor's shape is checked against what
    /// `configuration` implies, and every tensor of the file must be used.
    public static func weights(_ file: GGUFFile, configuration: LlamaConfiguration) throws -> [(name: String, tensor: Tensor)] {
        try storedWeights(file, configuration: configuration, keepQuantized: false).map { entry in
            guard case .dense(let tensor) = entry.weight else { preconditionFailure("unreachable: nothing kept quantized") }
            return (entry.name, tensor)
        }
    }

    /// Every weight under its Hugging Face name, in Hugging Face row order, checked as
    /// `weights` checks them. With `keepQuantized`, matrices stored as Q8_0, Q4_0 or Q4_1 stay
    /// in their blocks; every other tensor (and every tensor without `keepQuantized`) is
    /// dequantised to float32.
    public static func storedWeights(_ file: GGUFFile, configuration: LlamaConfiguration, keepQuantized: Bool) throws -> [(name: String, weight: StoredWeight)] {
        var expected: [String: [Int]] = [:]
        for (name, shape) in LlamaModel.parameterLayout(configuration, heads: .languageModel) { expected[name] = shape }
        var result: [(name: String, weight: StoredWeight)] = []
        for info in file.tensors where info.name != ropeFactorsTensor {   // read by `configuration`
            guard let name = huggingFaceName(info.name) else {
                throw GGUFError(path: file.path, tensor: info.name, "is not a Llama weight Loom knows (such as blk.N.attn_q.weight)")
            }
            guard let shape = expected.removeValue(forKey: name) else {
                throw GGUFError(path: file.path, tensor: info.name, "does not belong to a model with \(configuration.layerCount) blocks (llama.block_count)")
            }
            guard info.shape == shape else {
                throw GGUFError(path: file.path, tensor: info.name,
                                "has shape \(info.shape), but the llama.* metadata imply \(shape)")
            }
            let rotaryHeads = name.hasSuffix("q_proj.weight") ? configuration.headCount
                : name.hasSuffix("k_proj.weight") ? configuration.kvHeadCount : nil
            if keepQuantized, shape.count == 2, let blocks = info.type.blockQuantization {
                let stored = QuantizedMatrix(type: blocks, rows: shape[0], columns: shape[1]) { plain in
                    let rowBytes = plain.count / shape[0]
                    file.withRawBytes(of: info) { raw in
                        let order = rotaryHeads.map { huggingFaceRowSources(rows: shape[0], heads: $0) } ?? Array(0 ..< shape[0])
                        for (row, source) in order.enumerated() {
                            (plain.baseAddress! + row * rowBytes).copyMemory(from: raw.baseAddress! + source * rowBytes, byteCount: rowBytes)
                        }
                    }
                }
                if let block = stored.firstNonFiniteBlock() {
                    throw GGUFError(path: file.path, tensor: info.name, "block \(block) has a non-finite scale: a model with non-finite weights cannot be used")
                }
                result.append((name, .quantized(stored)))
                continue
            }
            var tensor = file.tensor(info)
            if let heads = rotaryHeads { tensor = unpermuteRotaryRows(tensor, heads: heads) }
            tensor.name = name
            result.append((name, .dense(tensor)))
        }
        if let missing = expected.keys.sorted().first {
            throw GGUFError(path: file.path, "missing the tensor for \(missing) (\(expected.count) weights missing)")
        }
        return result
    }

    /// For each row in Hugging Face order, the GGUF row it comes from: within each head of
    /// `dim` rows, GGUF row 2j + s holds Hugging Face row s·dim/2 + j (s = 0, 1).
    public static func huggingFaceRowSources(rows: Int, heads: Int) -> [Int] {
        let dim = rows / heads, half = dim / 2
        var sources = [Int](repeating: 0, count: rows)
        for head in 0 ..< heads {
            for j in 0 ..< half {
                for s in 0 ..< 2 { sources[head * dim + s * half + j] = head * dim + 2 * j + s }
            }
        }
        return sources
    }

    /// Undoes llama.cpp's interleaving of rotary pairs: within each head of `dim` rows, GGUF
    /// row 2j + s holds Hugging Face row s·dim/2 + j (s = 0, 1).
    public static func unpermuteRotaryRows(_ weight: Tensor, heads: Int) -> Tensor {
        let rows = weight.shape[0], columns = weight.count / rows
        let dim = rows / heads, half = dim / 2
        let result = Tensor(uninitialized: weight.shape)
        for head in 0 ..< heads {
            for j in 0 ..< half {
                for s in 0 ..< 2 {
                    let source = weight.data + (head * dim + 2 * j + s) * columns
                    let destination = result.data + (head * dim + s * half + j) * columns
                    destination.update(from: source, count: columns)
                }
            }
        }
        return result
    }

    /// The inverse of `unpermuteRotaryRows`: Hugging Face row order to GGUF's.
    public static func permuteRotaryRows(_ weight: Tensor, heads: Int) -> Tensor {
        let rows = weight.shape[0], columns = weight.count / rows
        let dim = rows / heads, half = dim / 2
        let result = Tensor(uninitialized: weight.shape)
        for head in 0 ..< heads {
            for j in 0 ..< half {
                for s in 0 ..< 2 {
                    let source = weight.data + (head * dim + s * half + j) * columns
                    let destination = result.data + (head * dim + 2 * j + s) * columns
                    destination.update(from: source, count: columns)
                }
            }
        }
        return result
    }
}
