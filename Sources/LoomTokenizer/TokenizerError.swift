/// A tokenizer file could not be read or is not a tokenizer Loom supports. The description
/// names the file and the problem, e.g.
/// `/models/x/tokenizer.json: unsupported model type "WordPiece" (Loom reads byte-level BPE only)`.
public struct TokenizerError: Error, CustomStringConvertible, Sendable {
    /// The file concerned (path), or nil when the problem is not tied to a file.
    public var file: String?
    public var message: String

    public init(file: String?, _ message: String) {
        self.file = file
        self.message = message
    }

    public var description: String {
        if let file { return "\(file): \(message)" }
        return message
    }
}
