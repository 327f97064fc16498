import Foundation
import LoomTokenizer

/// The real tokenizer satisfies `CorpusTokenizer` as it is; its `encode` is thread-safe.
extension ByteLevelBPETokenizer: CorpusTokenizer {}

extension PreparePipeline {
    /// Runs `prepare` with the byte-level BPE tokenizer: trained on the training split, or
    /// loaded from `options.tokenizerPath`.
    public static func run(
        _ options: PrepareOptions,
        log: (String) -> Void = { StandardError.writeLine($0) }
    ) throws -> PrepareResult {
        try run(
            options,
            trainTokenizer: { texts, vocabSize, progress in
                ByteLevelBPETokenizer.train(texts: texts, vocabSize: vocabSize, progress: progress)
            },
            loadTokenizer: { url in try ByteLevelBPETokenizer(contentsOf: url) },
            log: log)
    }
}
