import Foundation

/// A weight as a model directory stores it: float32, or quantized blocks.
public enum StoredWeight {
    case dense(Tensor)
    case quantized(QuantizedMatrix)

    public var shape: [Int] {
        switch self {
        case .dense(let tensor): tensor.shape
        case .quantized(let matrix): matrix.shape
        }
    }
}

/// The inference pass's products, dispatched on how each weight is held: a matrix that the
/// model keeps quantized goes to the integer kernels (`quantizedLinear`), any other to the
/// float32 `linear`. This is the one place that knows both; `forward(newTokens:cache:)` and
/// `logits(hidden:)` call it for every weight.
extension LlamaModel {
    /// True when some matrices are held as quantized blocks (the model is for inference only).
    public var isQuantized: Bool { !quantizedWeights.isEmpty }

    /// `x · weightᵀ`. With `batchInvariant`, float32 weights use the `RowInvariant` kernels;
    /// the quantized kernels are batch-invariant either way.
    func project(_ x: Tensor, _ weight: Tensor, batchInvariant: Bool = false) -> Tensor {
        if let matrix = quantizedByPlaceholder[ObjectIdentifier(weight)] { return quantizedLinear(x, matrix) }
        return batchInvariant ? rowInvariantLinear(x, weight, streamed: streamsWeightsFromMemory) : linear(x, weight)
    }

    /// `y += x · weightᵀ`, in place (no gradient).
    func projectAccumulate(_ x: Tensor, _ weight: Tensor, into y: Tensor, batchInvariant: Bool = false) {
        if let matrix = quantizedByPlaceholder[ObjectIdentifier(weight)] {
            quantizedLinear(x, matrix, accumulatingInto: y)
        } else if batchInvariant {
            rowInvariantLinearAccumulate(x, weight, into: y, streamed: streamsWeightsFromMemory)
        } else {
            linearAccumulate(x, weight, into: y)
        }
    }

    /// Whether this model's float weights exceed the processor's last-level cache, so that a
    /// decoding step reads them from memory (SmolLM2-135M in F32: 540 MB) rather than from the
    /// cache (the pipeline's tiny model: 16 MB); the row-invariant products pick their loop
    /// order by it.
    var streamsWeightsFromMemory: Bool {
        parameters.count * MemoryLayout<Float>.size > CPUFeatures.lastLevelCacheBytes
    }

    /// The embedding rows of `ids` (a quantized embedding is dequantized row by row).
    func embed(_ ids: [Int32]) -> Tensor {
        guard let matrix = quantizedByPlaceholder[ObjectIdentifier(embedTokens)] else { return embedding(embedTokens, ids: ids) }
        let rows = Tensor(uninitialized: [ids.count, matrix.columns])
        for (row, id) in ids.enumerated() {
            precondition(id >= 0 && Int(id) < matrix.rows, "embed: token id \(id) outside the vocabulary of \(matrix.rows)")
            matrix.dequantizeRow(Int(id), into: rows.data + row * matrix.columns)
        }
        return rows
    }
}

/// Model directories whose weights are quantized: `model.gguf` instead of `model.safetensors`,
/// a complete llama.cpp GGUF file (metadata, tokenizer, tensors under llama.cpp's names with
/// its row order), beside the usual `config.json` and tokenizer files. `config.json` stays the
/// directory's description of the model; the file's tensors are checked against it.
extension LlamaModel {
    /// The weights file of a quantized model directory.
    public static let quantizedWeightsFileName = "model.gguf"

    /// Loads `directory/model.gguf`. With `keepQuantized`, its Q8_0, Q4_0 and Q4_1 matrices stay
    /// quantized (an inference-only model); otherwise every weight is dequantized to float32
    /// (a model that trains like any other).
    static func loadQuantizedDirectory(_ directory: URL, configuration: LlamaConfiguration, heads requested: Heads?,
                                       keepQuantized: Bool) throws -> LlamaModel {
        let url = directory.appendingPathComponent(quantizedWeightsFileName)
        if keepQuantized, let requested, requested.contains(.score) {
            throw GGUFError(path: url.path, "a quantized model directory holds a language model only; a score head (reward model or critic) needs the model loaded dequantized")
        }
        let file = try GGUFFile(contentsOf: url)
        let weights = try GGUFLlama.storedWeights(file, configuration: configuration, keepQuantized: keepQuantized)
        var quantized: [String: QuantizedMatrix] = [:]
        for case let (name, .quantized(matrix)) in weights { quantized[name] = matrix }
        // Dequantized, the model may take a score head (a reward model starting from it), which
        // starts as initializeWeights leaves it.
        let model = LlamaModel(configuration: configuration, heads: keepQuantized ? .languageModel : requested ?? .languageModel,
                               quantized: quantized)
        let stored = Set(weights.map { $0.name })
        if !keepQuantized, model.parameters.names.contains(where: { !stored.contains($0) }) { model.initializeWeights(seed: 0) }
        for case let (name, .dense(tensor)) in weights {
            if let bad = firstNonFinite(tensor.data, count: tensor.count) {
                throw GGUFError(path: url.path, tensor: name, "holds \(tensor.data[bad]) at element \(bad): a model with non-finite weights cannot be used")
            }
            guard model.parameters.contains(name) else { continue }   // lm_head.weight of a model loaded without it
            model.parameters[name].data.update(from: tensor.data, count: tensor.count)
        }
        return model
    }
}
