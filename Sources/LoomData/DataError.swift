import Foundation

/// Every error LoomData raises names the file (and line or byte offset where there is one),
/// so a bad input can be found and fixed without a debugger.
public enum DataError: Error, Equatable, CustomStringConvertible, LocalizedError {
    case fileNotFound(path: String)
    case unreadable(path: String, reason: String)
    case unsupportedFile(path: String)
    case invalidUTF8(path: String, byteOffset: Int)
    case malformedJSONL(path: String, line: Int, reason: String)
    case badGzip(path: String, reason: String)
    case badShard(path: String, reason: String)
    case badManifest(path: String, reason: String)
    case invalidOption(String)

    public var description: String {
        switch self {
        case .fileNotFound(let path):
            return "\(path): no such file or directory"
        case .unreadable(let path, let reason):
            return "\(path): cannot read: \(reason)"
        case .unsupportedFile(let path):
            return "\(path): unsupported file type (expected .txt, .md, .jsonl, or one of those with .gz)"
        case .invalidUTF8(let path, let offset):
            return "\(path): invalid UTF-8 at byte offset \(offset)"
        case .malformedJSONL(let path, let line, let reason):
            return "\(path):\(line): \(reason)"
        case .badGzip(let path, let reason):
            return "\(path): bad gzip data: \(reason)"
        case .badShard(let path, let reason):
            return "\(path): bad token shard: \(reason)"
        case .badManifest(let path, let reason):
            return "\(path): bad manifest: \(reason)"
        case .invalidOption(let message):
            return message
        }
    }

    public var errorDescription: String? { description }
}
