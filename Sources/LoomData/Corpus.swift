import Foundation

/// One document of the corpus, with where it came from.
public struct Document: Sendable {
    public var text: String
    /// Index into `Corpus.sources`.
    public var sourceIndex: Int
    /// Where in the source: the 1-based line of a JSONL file, or the 1-based position of the
    /// document within a text file split by form feeds / separator lines.
    public var position: Int

    public init(text: String, sourceIndex: Int = 0, position: Int = 1) {
        self.text = text
        self.sourceIndex = sourceIndex
        self.position = position
    }
}

/// What was read from one input file.
public struct SourceSummary: Codable, Sendable, Equatable {
    public var path: String
    /// Size on disk (compressed size for `.gz`).
    public var bytes: Int
    /// UTF-8 bytes of text after decompression.
    public var textBytes: Int
    public var documents: Int
    /// "text" or "jsonl".
    public var format: String
    /// Malformed JSONL lines skipped with `--skip-bad-lines`.
    public var skippedLines: Int
}

/// Options for reading input files.
public struct IngestOptions: Sendable {
    /// Count and skip malformed JSONL lines instead of stopping at the first one.
    public var skipBadLines = false
    /// The JSONL field that holds the document text.
    public var textField = "text"
    /// Stop after this many documents (in input order).
    public var maxDocuments: Int?

    public init(skipBadLines: Bool = false, textField: String = "text", maxDocuments: Int? = nil) {
        self.skipBadLines = skipBadLines
        self.textField = textField
        self.maxDocuments = maxDocuments
    }
}

/// The raw documents read from a set of files and folders.
///
/// Formats: `.txt` and `.md` (one document per file, unless the file contains form feeds or
/// lines that are exactly `<|endoftext|>`, which separate documents), `.jsonl` (one document
/// per line, in the `text` field), and any of these compressed as `.gz`. Folders are searched
/// recursively; files are read in sorted path order so that runs are deterministic.
public struct Corpus: Sendable {
    public var documents: [Document]
    public var sources: [SourceSummary]
    /// Files inside folders that were passed over because of their extension.
    public var ignoredFiles: [String]
    /// The malformed lines skipped with `skipBadLines` (the first few, for the report).
    public var skippedLineErrors: [String]

    public static let documentSeparatorLine = "<|endoftext|>"
    public static let supportedExtensions: Set<String> = ["txt", "md", "jsonl"]

    public init(documents: [Document], sources: [SourceSummary], ignoredFiles: [String] = [], skippedLineErrors: [String] = []) {
        self.documents = documents
        self.sources = sources
        self.ignoredFiles = ignoredFiles
        self.skippedLineErrors = skippedLineErrors
    }

    /// A short label for a document in reports: `file.jsonl:12` or `book.txt#3`.
    public func origin(of document: Document) -> String {
        let source = sources[document.sourceIndex]
        return source.format == "jsonl" ? "\(source.path):\(document.position)" : "\(source.path)#\(document.position)"
    }

    /// Reads every supported file under `paths`.
    public static func ingest(paths: [String], options: IngestOptions = IngestOptions(), showProgress: Bool = false) throws -> Corpus {
        let (files, ignored) = try listFiles(paths)
        var corpus = Corpus(documents: [], sources: [], ignoredFiles: ignored)
        let totalBytes = files.reduce(0) { $0 + fileSize($1) }
        let progress = showProgress ? ProgressBar(label: "read", total: totalBytes, unit: .bytes) : nil
        for file in files {
            if let limit = options.maxDocuments, corpus.documents.count >= limit { break }
            try corpus.read(file, options: options)
            progress?.advance(by: fileSize(file))
        }
        progress?.finish()
        return corpus
    }

    /// The files to read, sorted, and the files in folders that were passed over.
    public static func listFiles(_ paths: [String]) throws -> (files: [URL], ignored: [String]) {
        var files: [URL] = []
        var ignored: [String] = []
        var seen = Set<String>()
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw DataError.fileNotFound(path: path)
            }
            let url = URL(fileURLWithPath: path)
            if isDirectory.boolValue {
                guard let enumerator = FileManager.default.enumerator(
                    at: url, includingPropertiesForKeys: [.isRegularFileKey], options: [.skipsHiddenFiles]
                ) else { throw DataError.unreadable(path: path, reason: "cannot list folder") }
                var found: [URL] = []
                // Report paths the way the folder was given (relative stays relative), so that
                // manifests do not depend on where the repository is checked out.
                let root = url.standardizedFileURL.path
                let given = path.hasSuffix("/") ? String(path.dropLast()) : path
                for case let child as URL in enumerator {
                    guard (try? child.resourceValues(forKeys: [.isRegularFileKey]))?.isRegularFile == true else { continue }
                    let childPath = child.standardizedFileURL.path
                    let shown = childPath.hasPrefix(root + "/") ? URL(fileURLWithPath: given + String(childPath.dropFirst(root.count))) : child
                    if isSupported(child) { found.append(shown) } else { ignored.append(shown.relativePath) }
                }
                files += found.sorted { $0.path < $1.path }
            } else {
                guard isSupported(url) else { throw DataError.unsupportedFile(path: path) }
                files.append(url)
            }
        }
        files = files.filter { seen.insert($0.standardizedFileURL.path).inserted }
        return (files, ignored.sorted())
    }

    static func isSupported(_ url: URL) -> Bool {
        var name = url
        if name.pathExtension.lowercased() == "gz" { name = name.deletingPathExtension() }
        return supportedExtensions.contains(name.pathExtension.lowercased())
    }

    static func isJSONL(_ url: URL) -> Bool {
        var name = url
        if name.pathExtension.lowercased() == "gz" { name = name.deletingPathExtension() }
        return name.pathExtension.lowercased() == "jsonl"
    }

    static func fileSize(_ url: URL) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? NSNumber)?.intValue ?? 0
    }

    /// Appends the documents of one file.
    public mutating func read(_ url: URL, options: IngestOptions = IngestOptions()) throws {
        let sourceIndex = sources.count
        let limit = options.maxDocuments ?? Int.max
        var summary = SourceSummary(path: url.relativePath, bytes: Self.fileSize(url), textBytes: 0, documents: 0,
                                    format: Self.isJSONL(url) ? "jsonl" : "text", skippedLines: 0)
        if Self.isJSONL(url) {
            let reader = JSONLReader(url: url)
            var skipped: [String] = []
            try reader.forEachObject(skipMalformed: options.skipBadLines, onSkip: { skipped.append($0.description) }) { line, object in
                guard documents.count < limit else { return }
                do {
                    let text = try reader.string(options.textField, in: object, lineNumber: line)
                    documents.append(Document(text: text, sourceIndex: sourceIndex, position: line))
                    summary.documents += 1
                    summary.textBytes += text.utf8.count
                } catch let error as DataError where options.skipBadLines {
                    skipped.append(error.description)
                }
            }
            summary.skippedLines = skipped.count
            skippedLineErrors += skipped.prefix(max(0, 20 - skippedLineErrors.count))
        } else {
            let text = try TextFiles.readText(url)
            summary.textBytes = text.utf8.count
            for (i, part) in Self.splitPlainText(text).enumerated() where documents.count < limit {
                documents.append(Document(text: part, sourceIndex: sourceIndex, position: i + 1))
                summary.documents += 1
            }
        }
        sources.append(summary)
    }

    /// Splits a plain-text file into documents at form feeds and at lines that are exactly
    /// `<|endoftext|>`. Parts that are only whitespace are dropped here (they are separators,
    /// not documents).
    public static func splitPlainText(_ text: String) -> [String] {
        // "\r\n" is one Character in Swift, so split lines only after normalising it.
        let text = text.contains("\r") ? text.replacingOccurrences(of: "\r\n", with: "\n") : text
        guard text.contains("\u{0C}") || text.contains(documentSeparatorLine) else { return [text] }
        var parts: [String] = []
        var current = ""
        func flush() {
            if current.contains(where: { !$0.isWhitespace }) { parts.append(current) }
            current = ""
        }
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.trimmingCharacters(in: .whitespaces) == documentSeparatorLine {
                flush()
                continue
            }
            let pieces = line.split(separator: "\u{0C}", omittingEmptySubsequences: false)
            for (k, piece) in pieces.enumerated() {
                if k > 0 { flush() }
                current += piece
                if k == pieces.count - 1 { current += "\n" }
            }
        }
        flush()
        return parts
    }
}
