import Foundation
import LoomTokenizer

/// A model directory read as a whole: its model and the tokenizer beside it, checked against
/// each other, so that every id the tokenizer can produce indexes the model's embedding (the
/// kernels are compiled without bounds checks and would read past it).
///
///     let (model, tokenizer) = try ModelDirectory.load(URL(fileURLWithPath: "runs/sft"), heads: .languageModel)
public enum ModelDirectory {
    /// Loads `config.json`, the weights (`model.safetensors`, or `model.gguf` in a quantized
    /// directory) and `tokenizer.json` from `directory` and checks that the tokenizer fits the
    /// model (`checkTokenizer`), before the weights are read.
    ///
    /// A quantized directory's matrices stay quantized (for generation, chat and serving) unless
    /// `keepQuantized` is false: training stages pass false and train the dequantized weights.
    /// A LoRA adapter directory loads as its base model with the adapter merged (the tokenizer
    /// is the adapter directory's own when it has one, else the base's; a quantized base is
    /// dequantized to take the adapter).
    public static func load(_ directory: URL, heads: LlamaModel.Heads? = nil, keepQuantized: Bool = true) throws -> (model: LlamaModel, tokenizer: ByteLevelBPETokenizer) {
        if LoRAAdapters.isAdapterOnlyDirectory(directory) {
            let base = try LoRAAdapters.baseDirectory(of: directory)
            let hasTokenizer = FileManager.default.fileExists(atPath: directory.appendingPathComponent("tokenizer.json").path)
            let (model, baseTokenizer) = try load(base, heads: heads, keepQuantized: false)
            try model.mergeAdapter(from: directory)
            return (model, hasTokenizer ? try loadTokenizer(directory) : baseTokenizer)
        }
        let configuration = try LlamaConfiguration.load(directory.appendingPathComponent("config.json"))
        let tokenizer = try loadTokenizer(directory)
        try checkTokenizer(tokenizer, fits: configuration, directory: directory)
        return (try LlamaModel.load(directory: directory, heads: heads, keepQuantized: keepQuantized), tokenizer)
    }

    /// The model and tokenizer of `directory` with the PEFT LoRA adapter in `adapter` (if any)
    /// merged into the weights: what `generate`, `chat` and `serve` load for `--adapter`.
    /// A mismatched or malformed adapter is an error naming the file and tensor.
    public static func load(_ directory: URL, adapter: URL?, heads: LlamaModel.Heads? = nil) throws -> (model: LlamaModel, tokenizer: ByteLevelBPETokenizer) {
        // An adapter is merged into float weights: a quantized directory is dequantized for it.
        let (model, tokenizer) = try load(directory, heads: heads, keepQuantized: adapter == nil)
        if let adapter { try applyAdapter(adapter, to: model) }
        return (model, tokenizer)
    }

    /// Folds the PEFT LoRA adapter in `adapterDirectory` into `model`'s weights.
    public static func applyAdapter(_ adapterDirectory: URL, to model: LlamaModel) throws {
        try model.mergeAdapter(from: adapterDirectory)
    }

    /// The tokenizer of a model directory.
    public static func loadTokenizer(_ directory: URL) throws -> ByteLevelBPETokenizer {
        try ByteLevelBPETokenizer(contentsOf: directory.appendingPathComponent("tokenizer.json"))
    }

    /// Throws unless every id of `tokenizer` is below the model's `vocab_size` (a model may
    /// have more rows than the tokenizer has tokens, never fewer) and the special-token ids of
    /// `config.json` are tokens of the tokenizer; the message names the directory and values.
    public static func checkTokenizer(_ tokenizer: ByteLevelBPETokenizer, fits configuration: LlamaConfiguration, directory: URL) throws {
        let where_ = directory.path
        guard tokenizer.vocabularySize <= configuration.vocabularySize else {
            throw ConfigurationError("\(where_): tokenizer.json has \(tokenizer.vocabularySize) tokens but config.json's vocab_size is \(configuration.vocabularySize): the tokenizer does not belong to this model")
        }
        let specialIDs = [("bos_token_id", configuration.bosTokenID)] + configuration.endTokenIDs.map { ("eos_token_id", $0) }
            + [("pad_token_id", configuration.padTokenID)]
        for (field, id) in specialIDs {
            guard let id else { continue }
            guard id >= 0 && id < tokenizer.vocabularySize else {
                throw ConfigurationError("\(where_): config.json's \(field) \(id) is not a token of tokenizer.json (\(tokenizer.vocabularySize) tokens)")
            }
        }
    }

    /// Throws unless `a` and `b` give every text the same ids: models that exchange token ids
    /// (a policy and its reward model or critic) must share a tokenizer.
    public static func checkSameTokenizer(_ a: ByteLevelBPETokenizer, of aDirectory: URL, _ b: ByteLevelBPETokenizer, of bDirectory: URL) throws {
        if let difference = a.idDifference(from: b) {
            throw ConfigurationError("the tokenizers of \(aDirectory.path) and \(bDirectory.path) differ (\(difference)); both models must use the same tokenizer")
        }
    }
}
