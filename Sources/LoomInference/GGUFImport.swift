import Foundation
import LoomNN
import LoomTokenizer

/// Turns a GGUF Llama file into a Loom / Hugging Face model directory: `config.json`,
/// `model.safetensors` (float32, Hugging Face names), `tokenizer.json`,
/// `tokenizer_config.json` and `generation_config.json`.
///
///     let summary = try GGUFImport.importModel(from: URL(fileURLWithPath: "model.gguf"), to: outputDirectory)
///
/// It lives here rather than in LoomNN because it needs both the model (LoomNN) and the
/// tokenizer (LoomTokenizer).
public enum GGUFImport {
    public struct Summary: Sendable {
        public var configuration: LlamaConfiguration
        /// Tensor count per GGUF type name, e.g. ["Q4_1": 210, "F32": 61, "Q8_0": 1].
        public var tensorTypes: [String: Int]
        public var parameterCount: Int
        public var vocabularySize: Int
        public var preTokenizer: String
        /// With `keepQuantized`: tensor count per type as written to model.gguf.
        public var storedTypes: [String: Int]? = nil
    }

    /// The tokenizer metadata of `file`.
    public static func vocabulary(_ file: GGUFFile) throws -> GGUFVocabulary {
        var vocabulary = GGUFVocabulary(
            model: try file.string("tokenizer.ggml.model"),
            preTokenizer: file.contains("tokenizer.ggml.pre") ? try file.string("tokenizer.ggml.pre") : nil,
            tokens: try file.stringArray("tokenizer.ggml.tokens"),
            tokenTypes: file.contains("tokenizer.ggml.token_type") ? try file.integerArray("tokenizer.ggml.token_type") : nil,
            merges: file.contains("tokenizer.ggml.merges") ? try file.stringArray("tokenizer.ggml.merges") : [])
        vocabulary.bosID = file.contains("tokenizer.ggml.bos_token_id") ? try file.integer("tokenizer.ggml.bos_token_id") : nil
        vocabulary.eosID = file.contains("tokenizer.ggml.eos_token_id") ? try file.integer("tokenizer.ggml.eos_token_id") : nil
        vocabulary.unknownID = file.contains("tokenizer.ggml.unknown_token_id") ? try file.integer("tokenizer.ggml.unknown_token_id") : nil
        vocabulary.paddingID = file.contains("tokenizer.ggml.padding_token_id") ? try file.integer("tokenizer.ggml.padding_token_id") : nil
        vocabulary.addBOSToken = file.contains("tokenizer.ggml.add_bos_token") ? try file.bool("tokenizer.ggml.add_bos_token") : nil
        vocabulary.chatTemplate = file.contains("tokenizer.chat_template") ? try file.string("tokenizer.chat_template") : nil
        let architecture = try file.string("general.architecture")
        vocabulary.contextLength = file[architecture + ".context_length"]?.integer
        return vocabulary
    }

    /// Reads `url` and writes the model directory `directory` (created if needed). With
    /// `keepQuantized`, Q8_0, Q4_0 and Q4_1 matrices stay quantized in a quantized model
    /// directory (`model.gguf`, see `QuantizedModelDirectory`) and other types are dequantized to
    /// float32; otherwise every weight is written as float32 to `model.safetensors`.
    @discardableResult
    public static func importModel(from url: URL, to directory: URL, keepQuantized: Bool = false) throws -> Summary {
        let file = try GGUFFile(contentsOf: url)
        let configuration = try GGUFLlama.configuration(file)
        let vocabulary = try vocabulary(file)
        let tokenizer = try ByteLevelBPETokenizer(gguf: vocabulary, file: file.path)
        guard tokenizer.vocabularySize <= configuration.vocabularySize else {
            throw GGUFError(path: file.path, key: "tokenizer.ggml.tokens",
                            "has \(tokenizer.vocabularySize) tokens, more than the model's vocabulary of \(configuration.vocabularySize)")
        }
        var types: [String: Int] = [:]
        for info in file.tensors { types[info.type.name, default: 0] += 1 }
        if keepQuantized {
            let weights = try GGUFLlama.storedWeights(file, configuration: configuration, keepQuantized: true)
            let written = try QuantizedModelDirectory.write(
                weights, configuration: configuration, tokenizer: tokenizer, name: url.deletingPathExtension().lastPathComponent,
                fileType: file["general.file_type"]?.integer.map { UInt32(clamping: $0) } ?? 0, tokenizerPath: file.path, to: directory)
            let parameters = weights.reduce(0) { $0 + $1.weight.shape.reduce(1, *) }
            return Summary(configuration: configuration, tensorTypes: types, parameterCount: parameters,
                           vocabularySize: tokenizer.vocabularySize, preTokenizer: vocabulary.preTokenizer ?? "default",
                           storedTypes: written.tensorTypes)
        }
        let weights = try GGUFLlama.weights(file, configuration: configuration)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try configuration.save(directory.appendingPathComponent("config.json"))
        try SafeTensors.save(weights, metadata: ["format": "pt", "source": url.lastPathComponent],
                             to: directory.appendingPathComponent("model.safetensors"))
        try tokenizer.save(to: directory)
        return Summary(configuration: configuration, tensorTypes: types, parameterCount: weights.reduce(0) { $0 + $1.tensor.count },
                       vocabularySize: tokenizer.vocabularySize, preTokenizer: vocabulary.preTokenizer ?? "default")
    }
}
