import Foundation

/// Reads JSON Lines files (one JSON object per line; `.jsonl.gz` too). Blank lines are skipped.
/// Errors name the file and the 1-based line number.
///
///     let reader = JSONLReader(url: URL(fileURLWithPath: "sft.jsonl"))
///     for record in try reader.decode(Conversation.self) {
///         print(record.lineNumber, record.value.messages.count)
///     }
public struct JSONLReader {
    public let url: URL

    public init(url: URL) {
        self.url = url
    }

    public init(path: String) {
        self.url = URL(fileURLWithPath: path)
    }

    /// Calls `body` with each non-blank line's number and bytes (without the line break).
    public func forEachLine(_ body: (_ lineNumber: Int, _ line: ArraySlice<UInt8>) throws -> Void) throws {
        let bytes = try TextFiles.readBytes(url)
        if let offset = TextFiles.firstInvalidUTF8Offset(bytes) {
            throw DataError.invalidUTF8(path: url.relativePath, byteOffset: offset)
        }
        var lineNumber = 0
        var start = 0
        while start < bytes.count {
            lineNumber += 1
            var end = start
            while end < bytes.count && bytes[end] != UInt8(ascii: "\n") { end += 1 }
            var contentEnd = end
            if contentEnd > start && bytes[contentEnd - 1] == UInt8(ascii: "\r") { contentEnd -= 1 }
            let line = bytes[start..<contentEnd]
            if line.contains(where: { $0 != 0x20 && $0 != 0x09 }) {
                try body(lineNumber, line)
            }
            start = end + 1
        }
    }

    /// Each line parsed as a JSON object. With `skipMalformed`, lines that are not JSON objects
    /// are passed to `onSkip` instead of stopping the read.
    public func forEachObject(
        skipMalformed: Bool = false,
        onSkip: ((DataError) -> Void)? = nil,
        _ body: (_ lineNumber: Int, _ object: [String: Any]) throws -> Void
    ) throws {
        try forEachLine { lineNumber, line in
            do {
                try body(lineNumber, try parseObject(line, lineNumber: lineNumber))
            } catch let error as DataError where skipMalformed {
                guard case .malformedJSONL = error else { throw error }
                onSkip?(error)
            }
        }
    }

    /// All objects with their line numbers.
    public func objects() throws -> [(lineNumber: Int, object: [String: Any])] {
        var result: [(lineNumber: Int, object: [String: Any])] = []
        try forEachObject { result.append(($0, $1)) }
        return result
    }

    /// Each line decoded as `T`; a decoding failure says which field is missing or wrong.
    public func decode<T: Decodable>(_ type: T.Type) throws -> [(lineNumber: Int, value: T)] {
        let decoder = JSONDecoder()
        var result: [(lineNumber: Int, value: T)] = []
        try forEachLine { lineNumber, line in
            do {
                result.append((lineNumber, try decoder.decode(T.self, from: Data(line))))
            } catch let error as DecodingError {
                throw DataError.malformedJSONL(path: url.relativePath, line: lineNumber, reason: Self.explain(error))
            }
        }
        return result
    }

    /// Parses one line as a JSON object, with an error naming this file and line.
    public func parseObject(_ line: ArraySlice<UInt8>, lineNumber: Int) throws -> [String: Any] {
        let value: Any
        do {
            value = try JSONSerialization.jsonObject(with: Data(line), options: [.fragmentsAllowed])
        } catch {
            let preview = String(decoding: line.prefix(60), as: UTF8.self)
            throw DataError.malformedJSONL(path: url.relativePath, line: lineNumber, reason: "invalid JSON: \(preview)\(line.count > 60 ? "…" : "")")
        }
        guard let object = value as? [String: Any] else {
            throw DataError.malformedJSONL(path: url.relativePath, line: lineNumber, reason: "expected a JSON object, found \(Self.describeJSONType(value))")
        }
        return object
    }

    /// A required string field of a parsed line.
    public func string(_ key: String, in object: [String: Any], lineNumber: Int) throws -> String {
        guard let value = object[key] else {
            throw DataError.malformedJSONL(path: url.relativePath, line: lineNumber, reason: "missing \"\(key)\" field")
        }
        guard let string = value as? String else {
            throw DataError.malformedJSONL(path: url.relativePath, line: lineNumber, reason: "\"\(key)\" must be a string, found \(Self.describeJSONType(value))")
        }
        return string
    }

    static func describeJSONType(_ value: Any) -> String {
        switch value {
        case is String: return "a string"
        case is NSNull: return "null"
        case is [Any]: return "an array"
        case is [String: Any]: return "an object"
        case let number as NSNumber:
            return String(cString: number.objCType) == "c" ? "a boolean" : "a number"
        default: return "\(type(of: value))"
        }
    }

    static func explain(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context, _ last: CodingKey? = nil) -> String {
            let keys = context.codingPath + (last.map { [$0] } ?? [])
            return keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            return "missing \"\(path(context, key))\" field"
        case .typeMismatch(let type, let context):
            return "\"\(path(context))\" must be \(type): \(context.debugDescription)"
        case .valueNotFound(let type, let context):
            return "\"\(path(context))\" is null, expected \(type)"
        case .dataCorrupted(let context):
            let where_ = path(context)
            return where_.isEmpty ? "invalid JSON: \(context.debugDescription)" : "\"\(where_)\": \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}
