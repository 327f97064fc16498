import Foundation
import LoomNN
import LoomTokenizer

/// Writes quantized model directories: `config.json`, the tokenizer files and `model.gguf`, a
/// complete llama.cpp GGUF file (so llama.cpp runs the very same weights). `LlamaModel.load`
/// and `ModelDirectory.load` read them back, keeping the blocks quantized for inference.
///
///     try QuantizedModelDirectory.quantize(directory: f32Directory, type: .q4_1, to: outputDirectory)
public enum QuantizedModelDirectory {
    /// What a quantization wrote: tensor count per stored type, e.g. ["Q4_1": 210, "Q8_0": 1, "F32": 61].
    public struct Summary: Sendable {
        public var tensorTypes: [String: Int]
        public var bytes: Int
    }

    /// The block format of weight `name` (shape `shape`) when quantizing a model to `type`, or
    /// nil to keep it float32. Norms (vectors) stay float32, as llama.cpp keeps them. The token
    /// embedding (which is also the output projection when tied) and an untied `lm_head` are
    /// stored as Q8_0 when the rest is Q4_0 or Q4_1: llama.cpp's quantizer gives the output
    /// tensor more bits than the 4-bit types (Q6_K, or Q8_0 when, as in SmolLM2, the row
    /// length is not a multiple of 256 — SmolLM2's own Q4_1 file has it as Q8_0), and
    /// Loom has no K-quant kernels.
    public static func storedType(name: String, shape: [Int], quantizingTo type: BlockQuantization) -> BlockQuantization? {
        guard shape.count == 2, shape[1] % BlockQuantization.blockSize == 0 else { return nil }
        if name == "model.embed_tokens.weight" || name == "lm_head.weight" { return .q8_0 }
        return type
    }

    /// Reads the float32 (or quantized: then dequantized first) model directory `directory` and
    /// writes it quantized to `type` into `output`.
    @discardableResult
    public static func quantize(directory: URL, type: BlockQuantization, to output: URL) throws -> Summary {
        let model = try LlamaModel.load(directory: directory, heads: .languageModel)
        let tokenizer = try ModelDirectory.loadTokenizer(directory)
        try ModelDirectory.checkTokenizer(tokenizer, fits: model.configuration, directory: directory)
        let weights: [(name: String, weight: StoredWeight)] = model.parameters.entries.map { entry in
            if let blocks = storedType(name: entry.name, shape: entry.shape, quantizingTo: type) {
                return (entry.name, .quantized(QuantizedMatrix(quantizing: entry.tensor, as: blocks)))
            }
            return (entry.name, .dense(entry.tensor))
        }
        return try write(weights, configuration: model.configuration, tokenizer: tokenizer, name: directory.lastPathComponent,
                         fileType: GGUFExport.fileType(GGMLType(type)), tokenizerPath: directory.appendingPathComponent("tokenizer.json").path,
                         to: output)
    }

    /// Writes `config.json`, the tokenizer files and `model.gguf` holding `weights` into `output`.
    @discardableResult
    public static func write(_ weights: [(name: String, weight: StoredWeight)], configuration: LlamaConfiguration,
                             tokenizer: ByteLevelBPETokenizer, name: String, fileType: UInt32, tokenizerPath: String,
                             to output: URL) throws -> Summary {
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        let stale = output.appendingPathComponent("model.safetensors")
        if FileManager.default.fileExists(atPath: stale.path) {
            throw GGUFError(path: output.path, "already holds model.safetensors: write a quantized model into a new directory")
        }
        let payloads = weights.map { GGUFExport.Payload(name: $0.name, weight: $0.weight) }
        // The GGUF first, so that a failure leaves no config.json describing missing weights.
        try GGUFExport.write(payloads, configuration: configuration, tokenizer: tokenizer, name: name, fileType: fileType,
                             tokenizerPath: tokenizerPath, to: output.appendingPathComponent(LlamaModel.quantizedWeightsFileName))
        try configuration.save(output.appendingPathComponent("config.json"))
        try tokenizer.save(to: output)
        var types: [String: Int] = [:]
        for payload in payloads { types[payload.type.name, default: 0] += 1 }
        return Summary(tensorTypes: types, bytes: payloads.reduce(0) { $0 + $1.bytes.count })
    }
}
