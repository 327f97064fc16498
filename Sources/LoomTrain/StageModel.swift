import Foundation
import LoomInference
import LoomTokenizer

/// The model an alignment stage trains, set up the one way every stage does: the thread count
/// configured, the model directory loaded in float32 with the stage's `heads`, `--max-length`
/// checked against the context and the chat template, and the chat encoder and padding id that
/// the stage's batches use.
struct StageModel {
    let model: LlamaModel
    let tokenizer: ByteLevelBPETokenizer
    /// Prompts and responses as token ids, with the tokenizer's chat template.
    let encoder: ChatEncoder
    /// The padding id of batches: the tokenizer's pad token, else end-of-text.
    let padID: Int32
    /// Longest prompt + response in tokens: `--max-length`, at most the model's context.
    let maxLength: Int

    /// Loads `directory` for `stage` (the name errors use); `maxLength` nil means the context.
    init(loading directory: URL, heads: LlamaModel.Heads, settings: StageSettings, maxLength requested: Int?, stage: String) throws {
        Threading.configure(threads: settings.threads)
        (model, tokenizer) = try ModelDirectory.load(directory, heads: heads, keepQuantized: false)
        try tokenizer.chatTemplate.checkRenderable(file: directory.path)
        let context = model.configuration.maxPositionEmbeddings
        try checkMaxLength(requested, contextLength: context, templateTokens: chatTemplateTokens(tokenizer), stage: stage)
        encoder = ChatEncoder(tokenizer: tokenizer)
        padID = Int32(tokenizer.padID ?? tokenizer.endOfTextID)
        maxLength = min(requested ?? context, context)
    }
}
