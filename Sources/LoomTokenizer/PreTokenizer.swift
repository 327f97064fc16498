// Pre-tokenisation: splitting text into the "words" that BPE merges never cross.

/// Which splitting rule a tokenizer uses. Each is a hand-written matcher over Unicode scalars
/// that reproduces one regular expression exactly (leftmost alternative wins, greedy
/// quantifiers, the backtracking of `\s+(?!\S)` included), so that Loom and Python
/// `tokenizers` (Oniguruma) cut text at the same places and therefore produce the same ids.
/// A regex engine is not used in the hot path: `NSRegularExpression` costs more than the
/// whole BPE encode.
public enum PreTokenizerPattern: Sendable, Equatable {
    /// GPT-2's `ByteLevel` pre-tokenizer, needed to load GPT-2-family tokenizer.json files.
    /// Note that Han and kana are `\p{L}`, so a Chinese sentence without spaces is one word.
    case gpt2
    /// The pattern Loom trains with: GPT-4 (cl100k) style with two changes.
    ///
    /// * **CJK runs are their own words.** Han ideographs and kana (letters in the ranges of
    ///   `cjkRanges`) never share a word with Latin letters, so "Swift语言" splits as
    ///   "Swift" + "语言". A run of CJK is kept whole rather than cut per character, so BPE
    ///   can learn multi-character words such as "我们" — the choice Qwen and cl100k make;
    ///   splitting per character would cap every Han token at one character. Long runs are
    ///   handled by the heap-based merge in `BPEModel`, so they cost O(n log n), not O(n²).
    /// * **Digits are split one by one** (cl100k groups up to three). Small vocabularies
    ///   cannot afford number tokens, and single digits make arithmetic learnable, which
    ///   matters for the verifiable-answer RL stages.
    ///
    /// Contractions are matched ASCII case-insensitively with explicit classes instead of
    /// `(?i:…)`, because Oniguruma's case folding would also match `ſ` (U+017F) and Loom's
    /// matcher would then have to know Unicode case folding to agree.
    case loom
    /// SmolLM's (and StarCoder's): every digit is its own word (`Digits(individual_digits)`),
    /// then GPT-2's pattern within the text between digits. llama.cpp calls it `smollm`.
    case smollm
    /// Llama 3's (cl100k's) pattern, `llama3Regex`: case-insensitive contractions, letters
    /// with one leading non-letter, numbers in groups of up to three. llama.cpp: `llama-bpe`.
    case llama3
    /// Qwen2's pattern, `qwen2Regex`: Llama 3's with single digits. llama.cpp: `qwen2`.
    case qwen2

    /// The pattern llama.cpp names in a GGUF's `tokenizer.ggml.pre`, or nil for one Loom does
    /// not implement. "default" is what llama.cpp assumes for older files: GPT-2's.
    public init?(llamaCppName name: String) {
        switch name {
        case "gpt-2", "gpt2", "default": self = .gpt2
        case "smollm": self = .smollm
        case "llama-bpe", "llama3", "llama-v3": self = .llama3
        case "qwen2": self = .qwen2
        case "loom": self = .loom
        default: return nil
        }
    }

    /// The name written to `tokenizer.ggml.pre` on export, spelled as llama.cpp's converter
    /// writes it (GPT-2's is "gpt-2": llama.cpp refuses "gpt2"). "loom" is Loom's own: llama.cpp
    /// and transformers do not know it (they would refuse it, or split text like GPT-2).
    public var llamaCppName: String {
        switch self {
        case .gpt2: "gpt-2"
        case .smollm: "smollm"
        case .llama3: "llama-bpe"
        case .qwen2: "qwen2"
        case .loom: "loom"
        }
    }

    /// The `tokenizer.ggml.pre` names Loom reads.
    public static let llamaCppNames = ["default", "gpt-2", "gpt2", "llama-bpe", "llama-v3", "llama3", "loom", "qwen2", "smollm"]

    /// Llama 3's pattern as Hugging Face writes it.
    public static let llama3Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    /// Qwen2's pattern as Hugging Face writes it.
    public static let qwen2Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// GPT-2's pattern as Hugging Face writes it.
    public static let gpt2Regex = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    /// Scalar ranges (intersected with `\p{L}`) that count as CJK for `.loom`: kana,
    /// CJK Unified Ideographs and extensions A–H, compatibility ideographs, halfwidth katakana.
    static let cjkRanges: [ClosedRange<UInt32>] = [
        0x3040...0x30FF, 0x31F0...0x31FF, 0x3400...0x4DBF, 0x4E00...0x9FFF,
        0xF900...0xFAFF, 0xFF66...0xFF9F, 0x20000...0x3FFFF,
    ]

    /// The `.loom` pattern in Oniguruma syntax, as recorded in tokenizer.json
    /// (`Split` with behavior `Isolated`, followed by `ByteLevel(use_regex: false)`).
    public static let loomRegex: String = {
        let ranges = cjkRanges.map { r in
            "\\x{" + String(r.lowerBound, radix: 16, uppercase: true) + "}-\\x{"
                + String(r.upperBound, radix: 16, uppercase: true) + "}"
        }.joined()
        return #"'(?:[sSdDmMtT]|[rR][eE]|[vV][eE]|[lL][lL])"#
            + #"|[^\r\n\p{L}\p{N}]?[\p{L}&&["# + ranges + "]]+"
            + #"|[^\r\n\p{L}\p{N}]?[\p{L}&&[^"# + ranges + "]]+"
            + #"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    }()
}

/// Per-scalar classification bits. A scalar is exactly one of letter, number, whitespace or
/// "other" (`[^\s\p{L}\p{N}]`); `cjk` is an extra bit on letters in `cjkRanges`.
enum ScalarClass {
    static let letter: UInt8 = 1
    static let number: UInt8 = 2
    static let space: UInt8 = 4
    static let cjk: UInt8 = 8

    static func compute(_ value: UInt32) -> UInt8 {
        guard let scalar = Unicode.Scalar(value) else { return 0 }
        let properties = scalar.properties
        // Oniguruma's \s is the Unicode White_Space property (checked against `tokenizers`:
        // U+00A0, U+0085, U+2028, U+3000 are spaces; U+200B and U+001C are not).
        if properties.isWhitespace { return space }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            for range in PreTokenizerPattern.cjkRanges where range.contains(value) { return letter | cjk }
            return letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return number
        default:
            return 0
        }
    }

    /// Classes of the Basic Multilingual Plane, computed once (64 KiB); scalars above it are
    /// rare enough to classify on the fly.
    static let bmp: [UInt8] = (0..<0x10000).map { compute(UInt32($0)) }
}

/// Splits UTF-8 text into pre-token byte ranges according to a `PreTokenizerPattern`.
///
/// The text is first decoded into two scratch arrays (class and byte offset per scalar), so
/// the matchers can look ahead and back off by whole scalars; the cut points are then scalar
/// boundaries, and a pre-token's bytes are simply a slice of the input.
struct PreTokenizer {
    let pattern: PreTokenizerPattern

    /// Scratch space reused across calls (owned by one encoder at a time).
    final class Scratch {
        var classes: [UInt8] = []
        var offsets: [Int32] = []
        var ascii: [UInt8] = []
    }

    /// The longest pre-token, in bytes, that BPE sees whole. A longer match of the pattern (a
    /// 50 MB "word" with no space, a run of one character) is cut into pieces of at most this
    /// many bytes, at scalar boundaries, before BPE — in training and in encoding alike — so
    /// its cost is linear in its length and no learned token grows longer than this. (Hugging
    /// Face's trainer offers the same bound as `max_token_length`.) Text the pattern already
    /// cuts finer encodes exactly as in `tokenizers`; only pre-tokens above the cap differ.
    static let maxPreTokenBytes = 1024

    /// Emits scalars `start..<end` as consecutive pieces of at most `maxPreTokenBytes` bytes
    /// (a single scalar is at most 4 bytes, so every piece holds at least one).
    static func cutLongPreToken(from start: Int, to end: Int, offsets: UnsafeBufferPointer<Int32>, _ body: (Int, Int) -> Void) {
        var pieceStart = start
        var scalar = start
        while scalar < end {
            if Int(offsets[scalar + 1] - offsets[pieceStart]) > maxPreTokenBytes {
                body(Int(offsets[pieceStart]), Int(offsets[scalar]))
                pieceStart = scalar
            }
            scalar += 1
        }
        body(Int(offsets[pieceStart]), Int(offsets[end]))
    }

    /// Calls `body(start, end)` with the byte range of each pre-token of `text`, in order;
    /// pre-tokens longer than `maxPreTokenBytes` come in pieces.
    func split(_ text: UnsafeBufferPointer<UInt8>, scratch: Scratch, _ body: (Int, Int) -> Void) {
        let byteCount = text.count
        if byteCount == 0 { return }
        scratch.classes.removeAll(keepingCapacity: true)
        scratch.offsets.removeAll(keepingCapacity: true)
        scratch.ascii.removeAll(keepingCapacity: true)
        scratch.classes.reserveCapacity(byteCount)
        scratch.offsets.reserveCapacity(byteCount + 1)
        scratch.ascii.reserveCapacity(byteCount)
        let bmp = ScalarClass.bmp
        bmp.withUnsafeBufferPointer { bmp in
            var i = 0
            while i < byteCount {
                let lead = text[i]
                scratch.offsets.append(Int32(i))
                if lead < 0x80 {
                    scratch.classes.append(bmp[Int(lead)])
                    scratch.ascii.append(lead)
                    i += 1
                    continue
                }
                // U+017F (ſ) folds to "s" under Oniguruma's case-insensitive contractions.
                if lead == 0xC5 && i + 1 < byteCount && text[i + 1] == 0xBF {
                    scratch.classes.append(bmp[0x17F])
                    scratch.ascii.append(PreTokenizer.longS)
                    i += 2
                    continue
                }
                // The input comes from a Swift String, so it is valid UTF-8.
                var value: UInt32
                var length: Int
                if lead < 0xE0 {
                    value = UInt32(lead & 0x1F); length = 2
                } else if lead < 0xF0 {
                    value = UInt32(lead & 0x0F); length = 3
                } else {
                    value = UInt32(lead & 0x07); length = 4
                }
                for k in 1..<length { value = (value << 6) | UInt32(text[i + k] & 0x3F) }
                scratch.classes.append(value < 0x10000 ? bmp[Int(value)] : ScalarClass.compute(value))
                scratch.ascii.append(0)
                i += length
            }
        }
        scratch.offsets.append(Int32(byteCount))
        let n = scratch.classes.count
        scratch.classes.withUnsafeBufferPointer { classes in
            scratch.ascii.withUnsafeBufferPointer { ascii in
                scratch.offsets.withUnsafeBufferPointer { offsets in
                    var start = 0
                    while start < n {
                        let end: Int
                        switch pattern {
                        case .gpt2: end = Self.matchGPT2(at: start, count: n, classes: classes, ascii: ascii)
                        case .loom: end = Self.matchLoom(at: start, count: n, classes: classes, ascii: ascii)
                        case .llama3: end = Self.matchCL100K(at: start, count: n, classes: classes, ascii: ascii, digitsPerWord: 3)
                        case .qwen2: end = Self.matchCL100K(at: start, count: n, classes: classes, ascii: ascii, digitsPerWord: 1)
                        case .smollm:
                            // Digits are words of their own; GPT-2's pattern runs on the text between them.
                            if classes[start] & ScalarClass.number != 0 {
                                end = start + 1
                            } else {
                                let segmentEnd = Self.run(from: start + 1, count: n, classes: classes) { $0 & ScalarClass.number == 0 }
                                end = Self.matchGPT2(at: start, count: segmentEnd, classes: classes, ascii: ascii)
                            }
                        }
                        if Int(offsets[end] - offsets[start]) <= Self.maxPreTokenBytes {
                            body(Int(offsets[start]), Int(offsets[end]))
                        } else {
                            Self.cutLongPreToken(from: start, to: end, offsets: offsets, body)
                        }
                        start = end
                    }
                }
            }
        }
    }

    /// The `ascii` entry of U+017F (ſ), which case-insensitive patterns read as "s".
    static let longS: UInt8 = 0x80

    @inline(__always) static func isOther(_ c: UInt8) -> Bool { c & (ScalarClass.letter | ScalarClass.number | ScalarClass.space) == 0 }

    /// End of the run of scalars from `i` whose class satisfies `predicate`.
    @inline(__always)
    static func run(from i: Int, count n: Int, classes: UnsafeBufferPointer<UInt8>, _ predicate: (UInt8) -> Bool) -> Int {
        var j = i
        while j < n && predicate(classes[j]) { j += 1 }
        return j
    }

    /// `\s+(?!\S)|\s+` at a whitespace scalar: the whole run if it reaches the end of the
    /// text, otherwise the run minus its last scalar (which then prefixes the next word),
    /// unless that would leave nothing.
    @inline(__always)
    static func matchWhitespace(at i: Int, count n: Int, classes: UnsafeBufferPointer<UInt8>) -> Int {
        let end = run(from: i + 1, count: n, classes: classes) { $0 & ScalarClass.space != 0 }
        if end == n || end - i == 1 { return end }
        return end - 1
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    static func matchGPT2(at i: Int, count n: Int, classes: UnsafeBufferPointer<UInt8>, ascii: UnsafeBufferPointer<UInt8>) -> Int {
        let first = ascii[i]
        if first == UInt8(ascii: "'") && i + 1 < n {
            switch ascii[i + 1] {
            case UInt8(ascii: "s"), UInt8(ascii: "t"), UInt8(ascii: "m"), UInt8(ascii: "d"):
                return i + 2
            case UInt8(ascii: "r"), UInt8(ascii: "v"):
                if i + 2 < n && ascii[i + 2] == UInt8(ascii: "e") { return i + 3 }
            case UInt8(ascii: "l"):
                if i + 2 < n && ascii[i + 2] == UInt8(ascii: "l") { return i + 3 }
            default: break
            }
        }
        // The optional leading space of the three word alternatives.
        var j = i
        if first == UInt8(ascii: " ") && i + 1 < n && classes[i + 1] & ScalarClass.space == 0 { j = i + 1 }
        let c = classes[j]
        if c & ScalarClass.letter != 0 {
            return run(from: j + 1, count: n, classes: classes) { $0 & ScalarClass.letter != 0 }
        }
        if c & ScalarClass.number != 0 {
            return run(from: j + 1, count: n, classes: classes) { $0 & ScalarClass.number != 0 }
        }
        if isOther(c) {
            return run(from: j + 1, count: n, classes: classes) { isOther($0) }
        }
        return matchWhitespace(at: i, count: n, classes: classes)
    }

    /// `PreTokenizerPattern.loomRegex`, alternative by alternative.
    static func matchLoom(at i: Int, count n: Int, classes: UnsafeBufferPointer<UInt8>, ascii: UnsafeBufferPointer<UInt8>) -> Int {
        let first = ascii[i]
        // '(?:[sSdDmMtT]|[rR][eE]|[vV][eE]|[lL][lL])
        if first == UInt8(ascii: "'") && i + 1 < n {
            let second = ascii[i + 1] | 0x20  // ASCII lower-case; non-ASCII is 0 → 0x20, no match
            switch second {
            case UInt8(ascii: "s"), UInt8(ascii: "d"), UInt8(ascii: "m"), UInt8(ascii: "t"):
                return i + 2
            case UInt8(ascii: "r"), UInt8(ascii: "v"):
                if i + 2 < n && ascii[i + 2] | 0x20 == UInt8(ascii: "e") { return i + 3 }
            case UInt8(ascii: "l"):
                if i + 2 < n && ascii[i + 2] | 0x20 == UInt8(ascii: "l") { return i + 3 }
            default: break
            }
        }
        let c = classes[i]
        let cjkLetter = ScalarClass.letter | ScalarClass.cjk
        // [^\r\n\p{L}\p{N}]?[CJK letters]+ and [^\r\n\p{L}\p{N}]?[other letters]+
        if c & ScalarClass.letter != 0 {
            let wantCJK = c & ScalarClass.cjk
            return run(from: i + 1, count: n, classes: classes) { $0 & cjkLetter == ScalarClass.letter | wantCJK }
        }
        let isNewline = first == 0x0A || first == 0x0D
        if c & ScalarClass.number == 0 && !isNewline && i + 1 < n && classes[i + 1] & ScalarClass.letter != 0 {
            let wantCJK = classes[i + 1] & ScalarClass.cjk
            return run(from: i + 2, count: n, classes: classes) { $0 & cjkLetter == ScalarClass.letter | wantCJK }
        }
        // \p{N}
        if c & ScalarClass.number != 0 { return i + 1 }
        return matchPunctuationOrSpace(at: i, count: n, classes: classes, ascii: ascii)
    }

    /// The alternatives both pattern families end with, matched at `i`:
    /// ` ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
    static func matchPunctuationOrSpace(at i: Int, count n: Int, classes: UnsafeBufferPointer<UInt8>, ascii: UnsafeBufferPointer<UInt8>) -> Int {
        //  ?[^\s\p{L}\p{N}]+[\r\n]*
        var j = i
        if ascii[i] == UInt8(ascii: " ") && i + 1 < n && isOther(classes[i + 1]) { j = i + 1 }
        if isOther(classes[j]) {
            var end = run(from: j + 1, count: n, classes: classes) { isOther($0) }
            while end < n && (ascii[end] == 0x0A || ascii[end] == 0x0D) { end += 1 }
            return end
        }
        // \s*[\r\n]+ : the whitespace run up to and including its last line break.
        let runEnd = run(from: i + 1, count: n, classes: classes) { $0 & ScalarClass.space != 0 }
        var k = runEnd - 1
        while k >= i {
            if ascii[k] == 0x0A || ascii[k] == 0x0D { return k + 1 }
            k -= 1
        }
        // \s+(?!\S)|\s+
        if runEnd == n || runEnd - i == 1 { return runEnd }
        return runEnd - 1
    }

    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,k}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
    /// alternative by alternative: Llama 3's with k = 3, Qwen2's with k = 1.
    static func matchCL100K(at i: Int, count n: Int, classes: UnsafeBufferPointer<UInt8>, ascii: UnsafeBufferPointer<UInt8>,
                            digitsPerWord: Int) -> Int {
        let first = ascii[i]
        if first == UInt8(ascii: "'") && i + 1 < n {
            // ASCII lower-case; ſ counts as s (Oniguruma's case folding); other non-ASCII never matches.
            let second = ascii[i + 1] == longS ? UInt8(ascii: "s") : ascii[i + 1] | 0x20
            switch second {
            case UInt8(ascii: "s"), UInt8(ascii: "d"), UInt8(ascii: "m"), UInt8(ascii: "t"):
                return i + 2
            case UInt8(ascii: "r"), UInt8(ascii: "v"):
                if i + 2 < n && ascii[i + 2] | 0x20 == UInt8(ascii: "e") { return i + 3 }
            case UInt8(ascii: "l"):
                if i + 2 < n && ascii[i + 2] | 0x20 == UInt8(ascii: "l") { return i + 3 }
            default: break
            }
        }
        let c = classes[i]
        let isLetter: (UInt8) -> Bool = { $0 & ScalarClass.letter != 0 }
        if isLetter(c) { return run(from: i + 1, count: n, classes: classes, isLetter) }
        let isNewline = first == 0x0A || first == 0x0D
        if c & ScalarClass.number == 0 && !isNewline && i + 1 < n && isLetter(classes[i + 1]) {
            return run(from: i + 2, count: n, classes: classes, isLetter)
        }
        if c & ScalarClass.number != 0 {
            let end = run(from: i + 1, count: n, classes: classes) { $0 & ScalarClass.number != 0 }
            return min(end, i + digitsPerWord)
        }
        return matchPunctuationOrSpace(at: i, count: n, classes: classes, ascii: ascii)
    }
}
