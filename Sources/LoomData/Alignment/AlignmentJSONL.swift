import Foundation
import LoomSupport
import LoomTokenizer

/// One parsed line of an alignment JSONL file, with accessors whose errors name the file, the
/// line and the field (`sft.jsonl:12: "messages[1].role" must be …`).
public struct JSONLine {
    public let path: String
    public let lineNumber: Int
    public let object: [String: Any]

    /// An error about this line.
    public func error(_ reason: String) -> DataError {
        .malformedJSONL(path: path, line: lineNumber, reason: reason)
    }

    public func has(_ key: String) -> Bool {
        object[key] != nil
    }

    /// A required string field.
    public func string(_ key: String) throws -> String {
        try Self.string(object[key], field: key, in: self)
    }

    /// An optional string field: absent or null gives nil.
    public func optionalString(_ key: String) throws -> String? {
        guard let value = object[key], !(value is NSNull) else { return nil }
        return try Self.string(value, field: key, in: self)
    }

    /// A required array field.
    public func array(_ key: String) throws -> [Any] {
        guard let value = object[key] else { throw error("missing \"\(key)\" field") }
        guard let array = value as? [Any] else {
            throw error("\"\(key)\" must be an array, found \(JSONLReader.describeJSONType(value))")
        }
        return array
    }

    static func string(_ value: Any?, field: String, in line: JSONLine) throws -> String {
        guard let value else { throw line.error("missing \"\(field)\" field") }
        guard let string = value as? String else {
            throw line.error("\"\(field)\" must be a string, found \(JSONLReader.describeJSONType(value))")
        }
        return string
    }

    /// An integer (JSON numbers such as 2 or 2.0; booleans are not integers).
    static func integer(_ value: Any, field: String, in line: JSONLine) throws -> Int {
        // `is Bool` is true for any NSNumber 0 or 1 on Linux; the type code tells booleans apart.
        if let number = value as? NSNumber, String(cString: number.objCType) != "c",
           let exact = Int(exactly: number.doubleValue) {
            return exact
        }
        throw line.error("\"\(field)\" must be an integer, found \(JSONLReader.describeJSONType(value))")
    }
}

/// Reading and writing the JSONL files of SFT, preference and prompt datasets.
public enum AlignmentJSONL {
    /// Parses every non-blank line of `url` with `parse`. A bad line throws a `DataError` naming
    /// the file, line and field; with `skipBadLines` it is passed to `onSkip` and counted instead.
    /// Files that cannot be read, or are not UTF-8, always throw.
    public static func load<Element>(
        _ url: URL,
        skipBadLines: Bool,
        onSkip: ((DataError) -> Void)? = nil,
        parse: (JSONLine) throws -> Element
    ) throws -> (items: [Element], skipped: Int) {
        let reader = JSONLReader(url: url)
        var items: [Element] = []
        var skipped = 0
        try reader.forEachLine { lineNumber, bytes in
            do {
                let object = try reader.parseObject(bytes, lineNumber: lineNumber)
                items.append(try parse(JSONLine(path: url.path, lineNumber: lineNumber, object: object)))
            } catch let error as DataError where skipBadLines {
                guard case .malformedJSONL = error else { throw error }
                skipped += 1
                onSkip?(error)
            }
        }
        return (items, skipped)
    }

    /// Writes one JSON object per line to a temporary file next to `url`, then renames it into
    /// place, so a reader never sees a half-written file.
    public static func write(lines: [String], to url: URL) throws {
        var text = ""
        text.reserveCapacity(lines.reduce(0) { $0 + $1.utf8.count + 1 })
        for line in lines {
            text += line
            text += "\n"
        }
        do { try AtomicFile.write(Data(text.utf8), to: url) } catch let error as AtomicFileError {
            throw DataError.unreadable(path: url.path, reason: error.reason)
        }
    }
}

/// A JSON object written with its keys in the order given (readable files: `prompt` first),
/// strings escaped per RFC 8259, non-ASCII kept as UTF-8.
struct JSONObjectWriter {
    private var text = "{"
    private var first = true

    mutating func add(_ key: String, _ value: String) {
        addKey(key)
        Self.appendString(value, to: &text)
    }

    mutating func add(_ key: String, _ value: String?) {
        if let value { add(key, value) }
    }

    mutating func add(_ key: String, strings: [String]) {
        addKey(key)
        text += "["
        for (index, value) in strings.enumerated() {
            if index > 0 { text += "," }
            Self.appendString(value, to: &text)
        }
        text += "]"
    }

    mutating func add(_ key: String, integers: [Int]) {
        addKey(key)
        text += "[" + integers.map(String.init).joined(separator: ",") + "]"
    }

    mutating func add(_ key: String, messages: [ChatMessage]) {
        addKey(key)
        text += "["
        for (index, message) in messages.enumerated() {
            if index > 0 { text += "," }
            var object = JSONObjectWriter()
            object.add("role", message.role)
            object.add("content", message.content)
            text += object.finish()
        }
        text += "]"
    }

    private mutating func addKey(_ key: String) {
        if !first { text += "," }
        first = false
        Self.appendString(key, to: &text)
        text += ":"
    }

    func finish() -> String {
        text + "}"
    }

    static func appendString(_ value: String, to text: inout String) {
        JSONString.append(value, to: &text, alsoEscaping: .lineSeparators)
    }
}
