import Foundation

/// A token that is matched in raw text before pre-tokenisation (Hugging Face `added_tokens`),
/// such as `<|endoftext|>`. Its `content` is the literal text, not the byte-level spelling.
///
/// `singleWord`, `leftStrip`, `rightStrip` and `normalized` are kept so that a loaded file is
/// written back unchanged; Loom's matcher does not implement their effect (none of the
/// byte-level BPE files Loom writes or reads for GPT-2 sets them).
public struct AddedToken: Sendable, Equatable {
    public var id: Int
    public var content: String
    public var special: Bool
    public var singleWord = false
    public var leftStrip = false
    public var rightStrip = false
    public var normalized = false

    public init(id: Int, content: String, special: Bool) {
        self.id = id
        self.content = content
        self.special = special
    }
}

/// Finds added tokens in UTF-8 text, leftmost first and longest at a given position, as
/// `tokenizers` does. Added tokens are few and almost always start with `<`, so a 256-entry
/// first-byte table rejects nearly every position with one load.
struct AddedTokenMatcher {
    private var candidates: [[(bytes: [UInt8], id: Int)]] = Array(repeating: [], count: 256)
    private var isFirstByte = [Bool](repeating: false, count: 256)
    let isEmpty: Bool

    init(_ tokens: [AddedToken]) {
        for token in tokens where !token.content.isEmpty {
            let bytes = Array(token.content.utf8)
            candidates[Int(bytes[0])].append((bytes, token.id))
            isFirstByte[Int(bytes[0])] = true
        }
        for i in 0..<256 { candidates[i].sort { $0.bytes.count > $1.bytes.count } }
        isEmpty = tokens.allSatisfy { $0.content.isEmpty }
    }

    /// Calls `body(start, end, id)` for each match in `text`, in order, without overlaps.
    func forEachMatch(in text: UnsafeBufferPointer<UInt8>, _ body: (Int, Int, Int) -> Void) {
        if isEmpty { return }
        guard let base = text.baseAddress else { return }
        let n = text.count
        var i = 0
        outer: while i < n {
            let byte = Int(base[i])
            if isFirstByte[byte] {
                for candidate in candidates[byte] where i + candidate.bytes.count <= n {
                    let matches = candidate.bytes.withUnsafeBufferPointer { memcmp($0.baseAddress!, base + i, $0.count) == 0 }
                    if matches {
                        body(i, i + candidate.bytes.count, candidate.id)
                        i += candidate.bytes.count
                        continue outer
                    }
                }
            }
            i += 1
        }
    }
}
