import Foundation

/// Settings for `TextCleaner`.
public struct CleaningOptions: Sendable, Codable, Equatable {
    /// Documents with fewer characters than this (after cleaning) are dropped as near-empty.
    /// Low on purpose: a Chinese proverb of five characters ("过犹不及。") is a real document.
    public var minCharacters = 6
    /// Remove lines that repeat across many documents (navigation, licence lines, signatures).
    public var removeBoilerplate = true
    /// A line is boilerplate when it occurs in at least this many documents…
    public var boilerplateMinDocuments = 50
    /// …or in at least this fraction of the documents, whichever is fewer…
    public var boilerplateMinFraction = 0.05
    /// …but never fewer documents than this, so a small corpus keeps its ordinary lines.
    public var boilerplateFloor = 4
    /// Lines shorter than this many UTF-8 bytes (after trimming) are never boilerplate: short
    /// lines such as "Exeunt.", "}" or "Amen." repeat because they are ordinary text. Lines
    /// without a letter or digit are never boilerplate either.
    public var boilerplateMinLineBytes = 12

    public init() {}

    /// The number of documents a line must occur in to count as boilerplate.
    public func boilerplateThreshold(documentCount: Int) -> Int {
        let byFraction = Int((boilerplateMinFraction * Double(documentCount)).rounded(.up))
        return max(boilerplateFloor, min(boilerplateMinDocuments, byFraction))
    }
}

/// A line removed as boilerplate, and in how many documents it occurred.
public struct BoilerplateLine: Codable, Sendable, Equatable {
    public var line: String
    public var documents: Int
}

/// What cleaning changed and removed, and why.
public struct CleaningReport: Codable, Sendable, Equatable {
    public var documentsIn = 0
    public var documentsOut = 0
    /// Dropped documents by reason: "empty", "tooShort".
    public var removedDocuments: [String: Int] = [:]
    public var ansiEscapeSequences = 0
    public var controlCharacters = 0
    /// Documents whose text changed under Unicode NFC normalisation.
    public var documentsNormalizedNFC = 0
    /// Documents whose line endings were converted to "\n".
    public var documentsWithCRLineEndings = 0
    public var boilerplateThreshold = 0
    public var boilerplateDistinctLines = 0
    public var boilerplateLinesRemoved = 0
    public var boilerplateDocumentsAffected = 0
    /// The most frequent boilerplate lines (at most 10).
    public var boilerplateExamples: [BoilerplateLine] = []

    public init() {}
}

/// Cleans documents: Unicode NFC, no ANSI escape sequences or control characters (tab and
/// newline stay), "\n" line endings, no trailing spaces, no boilerplate lines, no empty or
/// near-empty documents.
public struct TextCleaner: Sendable {
    public var options: CleaningOptions

    public init(options: CleaningOptions = CleaningOptions()) {
        self.options = options
    }

    /// The result of normalising one text.
    public struct Normalized: Sendable {
        public var text: String
        public var ansiEscapeSequences = 0
        public var controlCharacters = 0
        public var changedByNFC = false
        public var hadCarriageReturns = false
    }

    /// Normalises one text (everything except the cross-document boilerplate pass).
    public static func normalize(_ input: String) -> Normalized {
        var result = Normalized(text: "")
        var output = String.UnicodeScalarView()
        var pendingSpaces = String.UnicodeScalarView()  // held back until we know the line goes on
        let scalars = Array(input.unicodeScalars)
        var sawNonASCII = false
        var i = 0
        let n = scalars.count
        func emitNewline() {
            pendingSpaces.removeAll(keepingCapacity: true)
            output.append("\n")
        }
        while i < n {
            let c = scalars[i]
            let v = c.value
            if v == 0x1B {  // ESC: an ANSI escape sequence, or a stray ESC
                result.ansiEscapeSequences += 1
                i = Self.endOfEscapeSequence(scalars, from: i)
                continue
            }
            if v == 0x0D {  // CR or CRLF
                result.hadCarriageReturns = true
                if i + 1 < n && scalars[i + 1].value == 0x0A { i += 1 }
                emitNewline()
                i += 1
                continue
            }
            if v == 0x0A { emitNewline(); i += 1; continue }
            if v == 0x20 || v == 0x09 { pendingSpaces.append(c); i += 1; continue }
            if v < 0x20 || (v >= 0x7F && v <= 0x9F) || v == 0xFEFF {
                result.controlCharacters += 1
                i += 1
                continue
            }
            if v >= 0x80 { sawNonASCII = true }
            if !pendingSpaces.isEmpty {
                output.append(contentsOf: pendingSpaces)
                pendingSpaces.removeAll(keepingCapacity: true)
            }
            output.append(c)
            i += 1
        }
        // Drop leading and trailing blank lines (leading spaces of the first line stay: code).
        var text = String(output)
        while text.hasPrefix("\n") { text.removeFirst() }
        while text.hasSuffix("\n") { text.removeLast() }
        if sawNonASCII {
            let composed = text.precomposedStringWithCanonicalMapping
            if !composed.unicodeScalars.elementsEqual(text.unicodeScalars) {
                result.changedByNFC = true
                text = composed
            }
        }
        result.text = text
        return result
    }

    /// The index after an escape sequence that starts at `start` (an ESC): CSI (`ESC [ … final`),
    /// OSC (`ESC ] … BEL` or `ESC ] … ESC \`), or a two-character escape.
    static func endOfEscapeSequence(_ s: [Unicode.Scalar], from start: Int) -> Int {
        let n = s.count
        var i = start + 1
        guard i < n else { return i }
        switch s[i].value {
        case 0x5B:  // '[': parameters 0x30–0x3F, intermediates 0x20–0x2F, one final byte 0x40–0x7E
            i += 1
            while i < n, (0x20...0x3F).contains(s[i].value) { i += 1 }
            if i < n, (0x40...0x7E).contains(s[i].value) { i += 1 }
            return i
        case 0x5D:  // ']': operating system command
            i += 1
            while i < n {
                if s[i].value == 0x07 { return i + 1 }
                if s[i].value == 0x1B && i + 1 < n && s[i + 1].value == 0x5C { return i + 2 }
                i += 1
            }
            return i
        case 0x40...0x5F:  // two-character escapes such as ESC c, ESC M
            return i + 1
        default:
            return i  // a lone ESC: drop only it
        }
    }

    /// Cleans all documents; returns the survivors (in input order) and the report.
    public func clean(_ documents: [Document], showProgress: Bool = false) -> (documents: [Document], report: CleaningReport) {
        var report = CleaningReport()
        report.documentsIn = documents.count

        // 1. Per-document normalisation, in parallel.
        var normalized = [Normalized?](repeating: nil, count: documents.count)
        let progress = showProgress ? ProgressBar(label: "clean", total: documents.count, unit: .items("docs")) : nil
        normalized.withUnsafeMutableBufferPointer { slots in
            let base = slots.baseAddress!
            let workers = min(documents.count, ProcessInfo.processInfo.activeProcessorCount * 4)
            if workers > 0 {
                DispatchQueue.concurrentPerform(iterations: workers) { worker in
                    var k = worker
                    while k < documents.count {
                        base[k] = Self.normalize(documents[k].text)
                        progress?.advance()
                        k += workers
                    }
                }
            }
        }
        progress?.finish()

        var kept: [Document] = []
        kept.reserveCapacity(documents.count)
        for (document, result) in zip(documents, normalized) {
            let result = result!
            report.ansiEscapeSequences += result.ansiEscapeSequences
            report.controlCharacters += result.controlCharacters
            if result.changedByNFC { report.documentsNormalizedNFC += 1 }
            if result.hadCarriageReturns { report.documentsWithCRLineEndings += 1 }
            if !result.text.contains(where: { !$0.isWhitespace }) {
                report.removedDocuments["empty", default: 0] += 1
                continue
            }
            var cleaned = document
            cleaned.text = result.text
            kept.append(cleaned)
        }

        // 2. Boilerplate lines, counted once per document.
        if options.removeBoilerplate && !kept.isEmpty {
            removeBoilerplate(from: &kept, report: &report)
        }

        // 3. Near-empty documents.
        var survivors: [Document] = []
        survivors.reserveCapacity(kept.count)
        for document in kept {
            if document.text.count < options.minCharacters || !document.text.contains(where: { !$0.isWhitespace }) {
                report.removedDocuments["tooShort", default: 0] += 1
            } else {
                survivors.append(document)
            }
        }
        report.documentsOut = survivors.count
        return (survivors, report)
    }

    private func removeBoilerplate(from documents: inout [Document], report: inout CleaningReport) {
        let threshold = options.boilerplateThreshold(documentCount: documents.count)
        report.boilerplateThreshold = threshold
        var documentFrequency: [Substring: Int] = [:]
        for document in documents {
            var seen = Set<Substring>()
            for line in document.text.split(separator: "\n") {
                let key = Self.boilerplateKey(line)
                if isBoilerplateCandidate(key) && seen.insert(key).inserted {
                    documentFrequency[key, default: 0] += 1
                }
            }
        }
        let boilerplate = documentFrequency.filter { $0.value >= threshold }
        report.boilerplateDistinctLines = boilerplate.count
        guard !boilerplate.isEmpty else { return }
        report.boilerplateExamples = boilerplate
            .sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            .prefix(10)
            .map { BoilerplateLine(line: String($0.key.prefix(100)), documents: $0.value) }
        for index in documents.indices {
            var removed = 0
            let lines = documents[index].text.split(separator: "\n", omittingEmptySubsequences: false)
            let keptLines = lines.filter { line in
                let key = Self.boilerplateKey(line)
                if isBoilerplateCandidate(key) && boilerplate[key] != nil {
                    removed += 1
                    return false
                }
                return true
            }
            if removed > 0 {
                report.boilerplateLinesRemoved += removed
                report.boilerplateDocumentsAffected += 1
                var text = keptLines.joined(separator: "\n")
                while text.hasPrefix("\n") { text.removeFirst() }
                while text.hasSuffix("\n") { text.removeLast() }
                documents[index].text = text
            }
        }
    }

    /// Long enough, and with a letter or digit: lines of only punctuation ("-------", box
    /// drawing, "}));") are structure such as underlines and rules, however often they repeat.
    private func isBoilerplateCandidate(_ key: Substring) -> Bool {
        key.utf8.count >= options.boilerplateMinLineBytes
            && key.unicodeScalars.contains { $0.properties.isAlphabetic || $0.properties.numericType != nil }
    }

    /// Lines compare with surrounding spaces trimmed.
    static func boilerplateKey(_ line: Substring) -> Substring {
        var start = line.startIndex, end = line.endIndex
        while start < end && (line[start] == " " || line[start] == "\t") { start = line.index(after: start) }
        while end > start {
            let before = line.index(before: end)
            guard line[before] == " " || line[before] == "\t" else { break }
            end = before
        }
        return line[start..<end]
    }
}
