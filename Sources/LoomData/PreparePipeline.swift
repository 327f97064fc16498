import Foundation

/// What `loom prepare` needs from a tokenizer. `ByteLevelBPETokenizer` conforms; tests may
/// use a stand-in.
public protocol CorpusTokenizer: AnyObject {
    func encode(_ text: String, allowSpecialTokens: Bool) -> [Int]
    var vocabularySize: Int { get }
    var endOfTextID: Int { get }
    /// Writes `tokenizer.json` and `tokenizer_config.json` into `directory`.
    func save(to directory: URL) throws
}

/// Settings of `loom prepare`.
public struct PrepareOptions: Sendable {
    public var inputs: [String]
    public var outputDirectory: URL
    public var vocabSize = 4096
    public var valFraction = 0.05
    /// Load this `tokenizer.json` instead of training one.
    public var tokenizerPath: String?
    public var seed: UInt64 = 1337
    public var maxDocuments: Int?
    public var skipBadLines = false
    public var cleaning = CleaningOptions()
    public var dedup = DedupOptions()
    public var tokensPerShard = 50_000_000
    /// Train the tokenizer on at most this many UTF-8 bytes of the training split (each
    /// document contributes the same leading fraction of itself, so every source is represented).
    /// nil: all of it.
    public var tokenizerTrainingBytes: Int?
    /// Threads that encode documents (the tokenizer must be safe to call concurrently).
    public var encodeThreads = 1
    public var showProgress = true

    public init(inputs: [String], outputDirectory: URL) {
        self.inputs = inputs
        self.outputDirectory = outputDirectory
    }

    public func validate() throws {
        guard !inputs.isEmpty else { throw DataError.invalidOption("give at least one --input file or folder") }
        guard vocabSize >= 256 + 1 else { throw DataError.invalidOption("--vocab-size must be at least 257 (256 bytes + <|endoftext|>), got \(vocabSize)") }
        // ByteLevelBPETokenizer.maxVocabularySize: a tokenizer file may not declare more ids.
        guard vocabSize <= 1 << 24 else { throw DataError.invalidOption("--vocab-size \(vocabSize) exceeds the limit of \(1 << 24) tokens") }
        guard valFraction >= 0 && valFraction < 1 else { throw DataError.invalidOption("--val-fraction must be in [0, 1), got \(valFraction)") }
        guard dedup.threshold > 0 && dedup.threshold <= 1 else { throw DataError.invalidOption("--near-dup-threshold must be in (0, 1], got \(dedup.threshold)") }
        guard dedup.bands > 0 && dedup.rows > 0 else { throw DataError.invalidOption("LSH bands and rows must be positive") }
        guard tokensPerShard > 0 else { throw DataError.invalidOption("--shard-tokens must be positive") }
        if let maxDocuments, maxDocuments <= 0 { throw DataError.invalidOption("--max-docs must be positive, got \(maxDocuments)") }
    }
}

/// The outcome of a `prepare` run.
public struct PrepareResult: Sendable {
    public var manifest: Manifest
    public var outputDirectory: URL
    /// Seconds per step, in order.
    public var timings: [(step: String, seconds: Double)]
}

/// Raw text in, token shards out: read → clean → deduplicate → split → tokenizer → shards +
/// `manifest.json` + `tokenizer.json`.
public enum PreparePipeline {
    public typealias TrainTokenizer = (_ texts: [String], _ vocabSize: Int, _ progress: ((Double) -> Void)?) throws -> any CorpusTokenizer
    public typealias LoadTokenizer = (_ url: URL) throws -> any CorpusTokenizer

    public static func run(
        _ options: PrepareOptions,
        trainTokenizer: TrainTokenizer,
        loadTokenizer: LoadTokenizer,
        log: (String) -> Void = { StandardError.writeLine($0) }
    ) throws -> PrepareResult {
        try options.validate()
        var timings: [(step: String, seconds: Double)] = []
        var clock = Date()
        func lap(_ step: String) {
            let now = Date()
            timings.append((step, now.timeIntervalSince(clock)))
            clock = now
        }
        let progress = options.showProgress

        // 1. Read.
        let corpus = try Corpus.ingest(
            paths: options.inputs,
            options: IngestOptions(skipBadLines: options.skipBadLines, maxDocuments: options.maxDocuments),
            showProgress: progress)
        let skippedLines = corpus.sources.reduce(0) { $0 + $1.skippedLines }
        log("read \(corpus.documents.count) documents from \(corpus.sources.count) files"
            + (skippedLines > 0 ? " (skipped \(skippedLines) malformed lines)" : ""))
        for error in corpus.skippedLineErrors.prefix(5) { log("  skipped: \(error)") }
        lap("read")

        // 2. Clean.
        let cleaner = TextCleaner(options: options.cleaning)
        let (cleaned, cleaningReport) = cleaner.clean(corpus.documents, showProgress: progress)
        log("cleaned: \(cleaningReport.documentsOut) kept; removed \(describe(cleaningReport.removedDocuments)); "
            + "\(cleaningReport.ansiEscapeSequences) ANSI sequences, \(cleaningReport.controlCharacters) control characters, "
            + "\(cleaningReport.boilerplateLinesRemoved) boilerplate lines (\(cleaningReport.boilerplateDistinctLines) distinct, in ≥ \(cleaningReport.boilerplateThreshold) documents)")
        lap("clean")

        // 3. Deduplicate.
        let deduplicator = Deduplicator(options: options.dedup)
        let (unique, dedupReport) = deduplicator.deduplicate(cleaned, origin: { corpus.origin(of: $0) }, showProgress: progress)
        log("deduplicated: \(dedupReport.exactDuplicates) exact and \(dedupReport.nearDuplicates) near duplicates removed "
            + "(Jaccard ≥ \(options.dedup.threshold), \(dedupReport.candidatePairs) candidate pairs checked)")
        lap("dedup")
        guard !unique.isEmpty else {
            throw DataError.invalidOption("no documents left after cleaning and deduplication (read \(corpus.documents.count))")
        }

        // 4. Split.
        // Stratified by source file; files that are one document each (a folder of plays) are
        // stratified by their folder instead.
        var groupIDs: [String: Int] = [:]
        let groups = unique.map { document -> Int in
            let source = corpus.sources[document.sourceIndex]
            let key = source.documents == 1 ? URL(fileURLWithPath: source.path).deletingLastPathComponent().path + "/" : source.path
            if let id = groupIDs[key] { return id }
            groupIDs[key] = groupIDs.count
            return groupIDs.count - 1
        }
        let (trainIndices, valIndices) = DatasetSplitter.split(groups: groups, valFraction: options.valFraction, seed: options.seed)
        let train = trainIndices.map { unique[$0] }
        let val = valIndices.map { unique[$0] }
        log("split: \(train.count) train, \(val.count) validation documents (seed \(options.seed), stratified over \(groupIDs.count) sources)")

        // 5. Tokenizer.
        let out = options.outputDirectory
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let tokenizer: any CorpusTokenizer
        var tokenizerSummary: TokenizerSummary
        if let path = options.tokenizerPath {
            let url = URL(fileURLWithPath: path)
            guard FileManager.default.fileExists(atPath: url.path) else { throw DataError.fileNotFound(path: url.path) }
            tokenizer = try loadTokenizer(url)
            tokenizerSummary = TokenizerSummary(path: "tokenizer.json", vocabSize: tokenizer.vocabularySize, endOfTextID: tokenizer.endOfTextID,
                                                trainedHere: false, loadedFrom: url.path, trainingBytes: 0)
            log("tokenizer: loaded \(url.path) (vocabulary \(tokenizer.vocabularySize))")
        } else {
            let texts = trainingSample(train.map(\.text), budget: options.tokenizerTrainingBytes)
            let bytes = texts.reduce(0) { $0 + $1.utf8.count }
            let bar = progress ? ProgressBar(label: "train tokenizer", total: 1000) : nil
            tokenizer = try trainTokenizer(texts, options.vocabSize, bar.map { bar in { bar.update(done: Int($0 * 1000)) } })
            bar?.finish()
            tokenizerSummary = TokenizerSummary(path: "tokenizer.json", vocabSize: tokenizer.vocabularySize, endOfTextID: tokenizer.endOfTextID,
                                                trainedHere: true, loadedFrom: nil, trainingBytes: bytes)
            log("tokenizer: trained on \(ProgressBar.formatBytes(bytes)) of text, vocabulary \(tokenizer.vocabularySize)")
        }
        try tokenizer.save(to: out)
        lap("tokenizer")

        // 6. Encode and write shards.
        let dtype = TokenDType.forVocabulary(size: tokenizer.vocabularySize)
        var splits: [String: SplitSummary] = [:]
        for (name, documents) in [("train", train), ("val", val)] {
            splits[name] = try writeSplit(name, documents: documents, tokenizer: tokenizer, dtype: dtype, options: options)
        }
        lap("encode")
        log("shards: train \(splits["train"]!.tokens) tokens in \(splits["train"]!.shards.count) shard(s), "
            + "val \(splits["val"]!.tokens) tokens; \(dtype)")

        // 7. Manifest.
        var removed = cleaningReport.removedDocuments
        if dedupReport.exactDuplicates > 0 { removed["exactDuplicate"] = dedupReport.exactDuplicates }
        if dedupReport.nearDuplicates > 0 { removed["nearDuplicate"] = dedupReport.nearDuplicates }
        if skippedLines > 0 { removed["malformedLine"] = skippedLines }
        let manifest = Manifest(
            sources: corpus.sources, ignoredFiles: corpus.ignoredFiles,
            documentsRead: corpus.documents.count, documentsKept: unique.count,
            removed: removed, cleaning: cleaningReport, dedup: dedupReport, splits: splits,
            tokenizer: tokenizerSummary, vocabSize: tokenizer.vocabularySize, dtype: dtype.description,
            seed: options.seed, valFraction: options.valFraction, tokensPerShard: options.tokensPerShard,
            cleaningOptions: options.cleaning, dedupOptions: options.dedup)
        try manifest.write(to: out)
        lap("manifest")
        return PrepareResult(manifest: manifest, outputDirectory: out, timings: timings)
    }

    static func describe(_ counts: [String: Int]) -> String {
        counts.isEmpty ? "none" : counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
    }

    /// The tokenizer's training text: all of it, or the same leading fraction of every
    /// document (cut at a line break where there is one) when over `budget` bytes.
    public static func trainingSample(_ texts: [String], budget: Int?) -> [String] {
        let total = texts.reduce(0) { $0 + $1.utf8.count }
        guard let budget, budget > 0, total > budget else { return texts }
        let fraction = Double(budget) / Double(total)
        return texts.compactMap { text in
            let keep = Int(Double(text.utf8.count) * fraction)
            guard keep > 0 else { return nil }
            var end = text.utf8.index(text.utf8.startIndex, offsetBy: keep)
            // Back up to a scalar boundary so the cut never splits a character's bytes.
            while end > text.startIndex && String.Index(end, within: text.unicodeScalars) == nil {
                end = text.utf8.index(before: end)
            }
            let prefix = text[..<end]
            if let lastBreak = prefix.lastIndex(of: "\n"),
               text.utf8.distance(from: text.startIndex, to: lastBreak) > keep / 2 {
                return String(prefix[..<lastBreak])
            }
            return String(prefix)
        }
    }

    /// Encodes documents in blocks (in parallel when allowed) and writes them in order, each
    /// followed by `<|endoftext|>`.
    static func writeSplit(_ name: String, documents: [Document], tokenizer: any CorpusTokenizer,
                           dtype: TokenDType, options: PrepareOptions) throws -> SplitSummary {
        let writer = try ShardWriter(directory: options.outputDirectory, split: name, dtype: dtype, tokensPerShard: options.tokensPerShard)
        let totalBytes = documents.reduce(0) { $0 + $1.text.utf8.count }
        let bar = options.showProgress ? ProgressBar(label: "encode \(name)", total: totalBytes, unit: .bytes) : nil
        let endOfText = tokenizer.endOfTextID
        let blockSize = 64
        let threads = max(1, options.encodeThreads)
        var start = 0
        while start < documents.count {
            let block = Array(documents[start..<min(start + blockSize, documents.count)])
            var encoded = [[Int]](repeating: [], count: block.count)
            if threads > 1 {
                let box = UnsafeSendableTokenizer(tokenizer)
                encoded.withUnsafeMutableBufferPointer { slots in
                    let base = slots.baseAddress!
                    DispatchQueue.concurrentPerform(iterations: min(threads, block.count)) { worker in
                        var k = worker
                        while k < block.count {
                            base[k] = box.tokenizer.encode(block[k].text, allowSpecialTokens: false)
                            bar?.advance(by: block[k].text.utf8.count)
                            k += threads
                        }
                    }
                }
            } else {
                for (k, document) in block.enumerated() {
                    encoded[k] = tokenizer.encode(document.text, allowSpecialTokens: false)
                    bar?.advance(by: document.text.utf8.count)
                }
            }
            for tokens in encoded {
                try writer.append(tokens)
                try writer.append(CollectionOfOne(endOfText))
            }
            start += blockSize
        }
        bar?.finish()
        let shards = try writer.finish()
        return SplitSummary(documents: documents.count, tokens: writer.totalTokens, bytes: totalBytes, shards: shards)
    }
}

/// Lets worker threads share a tokenizer whose `encode` is documented as thread-safe.
private struct UnsafeSendableTokenizer: @unchecked Sendable {
    let tokenizer: any CorpusTokenizer
    init(_ tokenizer: any CorpusTokenizer) { self.tokenizer = tokenizer }
}
