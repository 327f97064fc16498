import ArgumentParser
import Foundation
import LoomSupport
import LoomData

/// `loom prepare`: raw text in, token shards + manifest + tokenizer out.
struct PrepareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prepare",
        abstract: "Clean, deduplicate, split and tokenize a text corpus into token shards.",
        discussion: """
        Reads .txt, .md and .jsonl files (field "text"), and .gz of those, from files or folders \
        (recursively, in sorted order). Writes train_NNN.bin / val_NNN.bin token shards, \
        manifest.json, tokenizer.json and tokenizer_config.json into --out.

        Example: loom prepare --input data/pretrain --out runs/data
        """
    )

    @Option(name: .long, parsing: .upToNextOption, help: ArgumentHelp("Input files or folders.", valueName: "path"))
    var input: [String]

    @Option(name: .long, help: ArgumentHelp("Output folder.", valueName: "dir"))
    var out: String

    @Option(name: .long, help: "Vocabulary size of the tokenizer to train.")
    var vocabSize = 4096

    @Option(name: .long, help: "Fraction of documents held out for validation.")
    var valFraction = 0.05

    @Option(name: .long, help: ArgumentHelp("Use this tokenizer.json instead of training one.", valueName: "tokenizer.json"))
    var tokenizer: String?

    @Option(name: .long, help: "Seed of the train/validation split.")
    var seed: UInt64 = 1337

    @Option(name: .long, help: "Estimated Jaccard similarity at which documents count as near-duplicates.")
    var nearDupThreshold = 0.8

    @Option(name: .long, help: "Read at most this many documents.")
    var maxDocs: Int?

    @Flag(name: .long, help: "Count and skip malformed JSONL lines instead of stopping.")
    var skipBadLines = false

    @Option(name: .long, help: "Drop documents shorter than this many characters after cleaning.")
    var minChars = 6

    @Option(name: .long, help: "A line in at least this many documents is boilerplate…")
    var boilerplateMinDocs = 50

    @Option(name: .long, help: "…or in at least this fraction of documents (whichever is fewer).")
    var boilerplateFraction = 0.05

    @Flag(name: .long, help: "Keep repeated lines.")
    var noBoilerplate = false

    @Option(name: .long, help: "LSH bands (bands × rows = MinHash permutations).")
    var lshBands = 16

    @Option(name: .long, help: "LSH rows per band.")
    var lshRows = 8

    @Option(name: .long, help: "Tokens per shard file.")
    var shardTokens = 50_000_000

    @Option(name: .long, help: ArgumentHelp("Train the tokenizer on at most this many bytes of the training split (0: all).", valueName: "bytes"))
    var tokenizerTrainBytes = 0

    @Option(name: .long, help: "Threads that encode documents (default: all cores).")
    var threads: Int?

    @Flag(name: .long, help: "No progress bars.")
    var quiet = false

    func run() throws {
        var options = PrepareOptions(inputs: input, outputDirectory: URL(fileURLWithPath: out))
        options.vocabSize = vocabSize
        options.valFraction = valFraction
        options.tokenizerPath = tokenizer
        options.seed = seed
        options.maxDocuments = maxDocs
        options.skipBadLines = skipBadLines
        options.cleaning.minCharacters = minChars
        options.cleaning.boilerplateMinDocuments = boilerplateMinDocs
        options.cleaning.boilerplateMinFraction = boilerplateFraction
        options.cleaning.removeBoilerplate = !noBoilerplate
        options.dedup.threshold = nearDupThreshold
        options.dedup.bands = lshBands
        options.dedup.rows = lshRows
        options.tokensPerShard = shardTokens
        options.tokenizerTrainingBytes = tokenizerTrainBytes > 0 ? tokenizerTrainBytes : nil
        options.encodeThreads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        options.showProgress = !quiet
        ProgressBar.isEnabled = !quiet

        let start = Date()
        let result: PrepareResult
        do {
            result = try PreparePipeline.run(options)
        } catch let error as DataError {
            // A data problem is not a usage problem: say what and where, without the usage text.
            StandardError.writeLine("error: \(error.description)")
            throw ExitCode.failure
        }
        try StandardOutput.writeLine(Self.summary(result, seconds: Date().timeIntervalSince(start)))
    }

    static func summary(_ result: PrepareResult, seconds: Double) -> String {
        let m = result.manifest
        var lines: [String] = []
        lines.append("prepared \(result.outputDirectory.path) in \(DurationText.format(seconds))")
        lines.append("  sources:")
        for source in m.sources {
            lines.append("    \(source.path): \(source.documents) documents, \(ProgressBar.formatBytes(source.textBytes))"
                + (source.skippedLines > 0 ? ", \(source.skippedLines) bad lines skipped" : ""))
        }
        lines.append("  documents: \(m.documentsRead) read, \(m.documentsKept) kept")
        let removed = m.removed.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        lines.append("  removed documents: \(removed.isEmpty ? "none" : removed)")
        let c = m.cleaning
        lines.append("  cleaning: \(c.ansiEscapeSequences) ANSI escape sequences, \(c.controlCharacters) control characters, "
            + "\(c.documentsNormalizedNFC) documents changed by NFC, \(c.documentsWithCRLineEndings) with CR line endings")
        lines.append("  boilerplate: \(c.boilerplateLinesRemoved) lines removed from \(c.boilerplateDocumentsAffected) documents "
            + "(\(c.boilerplateDistinctLines) distinct lines occurring in ≥ \(c.boilerplateThreshold) documents)")
        for example in c.boilerplateExamples.prefix(5) {
            lines.append("    \(example.documents)× \"\(example.line)\"")
        }
        let d = m.dedup
        lines.append("  dedup: \(d.exactDuplicates) exact, \(d.nearDuplicates) near (Jaccard ≥ \(d.threshold), \(d.bands)×\(d.rows) LSH, "
            + "\(d.candidatePairs) candidate pairs)")
        for example in d.nearDuplicateExamples.prefix(3) {
            lines.append("    \(example.removed) ≈ \(example.kept) (J ≈ \(example.estimatedJaccard))")
        }
        for name in ["train", "val"] {
            guard let s = m.splits[name] else { continue }
            lines.append("  \(name): \(s.documents) documents, \(s.tokens) tokens, \(ProgressBar.formatBytes(s.bytes)) of text "
                + "(\(s.tokens > 0 ? String(format: "%.2f", Double(s.bytes) / Double(s.tokens)) : "–") bytes/token), \(s.shards.count) shard(s)")
        }
        lines.append("  tokenizer: vocabulary \(m.vocabSize), \(m.tokenizer.trainedHere ? "trained on \(ProgressBar.formatBytes(m.tokenizer.trainingBytes))" : "loaded from \(m.tokenizer.loadedFrom ?? "?")"), dtype \(m.dtype)")
        lines.append("  time: " + result.timings.map { "\($0.step) \(String(format: "%.1f", $0.seconds))s" }.joined(separator: ", "))
        return lines.joined(separator: "\n")
    }
}
