import Foundation
import LoomSupport

/// One split of a prepared dataset.
public struct SplitSummary: Codable, Sendable, Equatable {
    public var documents: Int
    /// Tokens in the shards, including one `<|endoftext|>` after each document.
    public var tokens: Int
    /// UTF-8 bytes of the document texts behind these tokens (separators not counted): the
    /// denominator of bits per byte.
    public var bytes: Int
    public var shards: [ShardInfo]
}

/// The tokenizer a dataset was encoded with.
public struct TokenizerSummary: Codable, Sendable, Equatable {
    /// `tokenizer.json`, relative to the dataset folder.
    public var path: String
    public var vocabSize: Int
    public var endOfTextID: Int
    /// True when `loom prepare` trained it; false when it was loaded from `loadedFrom`.
    public var trainedHere: Bool
    public var loadedFrom: String?
    /// UTF-8 bytes of training text the tokenizer was trained on (0 when loaded).
    public var trainingBytes: Int
}

/// `manifest.json`: everything `loom prepare` read, removed, kept and wrote.
public struct Manifest: Codable, Sendable, Equatable {
    public static let fileName = "manifest.json"

    public var format = "loom-token-shards"
    public var version = 1
    public var sources: [SourceSummary]
    /// Files in input folders that were not read because of their extension.
    public var ignoredFiles: [String]
    public var documentsRead: Int
    public var documentsKept: Int
    /// Every removed document by reason: empty, tooShort, exactDuplicate, nearDuplicate,
    /// malformedLine (skipped JSONL lines).
    public var removed: [String: Int]
    public var cleaning: CleaningReport
    public var dedup: DedupReport
    public var splits: [String: SplitSummary]
    public var tokenizer: TokenizerSummary
    public var vocabSize: Int
    /// "uint16" or "uint32".
    public var dtype: String
    public var seed: UInt64
    public var valFraction: Double
    public var tokensPerShard: Int
    public var cleaningOptions: CleaningOptions
    public var dedupOptions: DedupOptions

    /// Reads `manifest.json` from a dataset folder.
    public static func load(from directory: URL) throws -> Manifest {
        let url = directory.appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: url.path) else { throw DataError.fileNotFound(path: url.path) }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw DataError.unreadable(path: url.path, reason: (error as NSError).localizedDescription)
        }
        do {
            return try JSONDecoder().decode(Manifest.self, from: data)
        } catch let error as DecodingError {
            throw DataError.badManifest(path: url.path, reason: JSONLReader.explain(error))
        }
    }

    /// Writes `manifest.json` atomically (sorted keys, indented).
    public func write(to directory: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(self)
        data.append(0x0A)
        try AtomicFile.write(data, to: directory.appendingPathComponent(Self.fileName))
    }
}
