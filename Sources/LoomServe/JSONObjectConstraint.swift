import Foundation

/// `response_format: {"type": "json_object"}`: constrained decoding that only lets the model
/// produce bytes that keep its output a prefix of one JSON object.
///
/// A pushdown automaton over bytes (objects and arrays on a stack; strings with escapes,
/// `\u` with four hex digits and multi-byte UTF-8; numbers; `true`/`false`/`null`). Before each token the
/// server asks which tokens are allowed (`allows`), masks the rest, and after sampling feeds
/// the chosen token's bytes (`advance`). Whitespace between tokens of the JSON text is allowed
/// (models write indented JSON), at most `maximumWhitespaceRun` bytes in a row, so the model
/// cannot pad forever. Once the object is complete, generation ends. When the token budget runs
/// low, `closingBytes` gives the shortest text that completes the object, and the server
/// emits it, so the output parses even when it hits `max_tokens`.
struct JSONObjectConstraint: Equatable {
    enum Container: UInt8 { case object, array }

    enum State: Equatable {
        case start                    // nothing yet: only `{`
        case value                    // a value must come (after `:` or `,` in an array)
        case arrayFirst               // just after `[`: a value or `]`
        case objectFirst              // just after `{`: a key or `}`
        case key                      // after `,` in an object: a key
        case colon                    // after a key: `:`
        case afterValue               // `,` or the container's closer
        case string(key: Bool, escape: Escape, continuation: Int)
        case number(Number)
        /// Inside `true`, `false` or `null` (`Self.literals[word]`), `next` bytes read.
        case literal(word: Int, next: Int)
        case complete
    }

    enum Escape: Equatable { case none, backslash, unicode(Int) }

    enum Number: Equatable {
        /// `exponentLast`: the second exponent digit, the last one allowed (1e99 at most: larger
        /// exponents are valid JSON, but many parsers cannot represent them).
        case sign, zero, integer, point, fraction, exponent, exponentSign, exponentDigits, exponentLast
        /// Whether the number may end here.
        var canEnd: Bool { self == .zero || self == .integer || self == .fraction || self == .exponentDigits || self == .exponentLast }
    }

    private(set) var state: State = .start
    private(set) var stack: [Container] = []
    /// Whitespace bytes in a row outside strings.
    private(set) var whitespaceRun = 0
    static let maximumWhitespaceRun = 48

    var isComplete: Bool { state == .complete }

    /// Whether `bytes` may come next.
    func allows<S: Sequence>(_ bytes: S) -> Bool where S.Element == UInt8 {
        var copy = self
        for byte in bytes where !copy.step(byte) { return false }
        return true
    }

    /// Consumes `bytes`; false (and the state unspecified) when they are not allowed.
    @discardableResult
    mutating func advance<S: Sequence>(_ bytes: S) -> Bool where S.Element == UInt8 {
        for byte in bytes where !step(byte) { return false }
        return true
    }

    /// The shortest bytes that complete the object from here.
    var closingBytes: [UInt8] {
        var copy = self
        var out: [UInt8] = []
        func feed(_ text: String) { for b in text.utf8 { out.append(b); _ = copy.step(b) } }
        var guardCount = 0
        while !copy.isComplete && guardCount < 10_000 {
            guardCount += 1
            switch copy.state {
            case .start: feed("{")
            case .value: feed("0")
            case .arrayFirst: feed("]")
            case .objectFirst: feed("}")
            case .key: feed("\"\"")
            case .colon: feed(":")
            case .afterValue: feed(copy.stack.last == .array ? "]" : "}")
            case .string(_, let escape, let continuation):
                if continuation > 0 { out.append(0x80); _ = copy.step(0x80); continue }
                switch escape {
                case .none: feed("\"")
                case .backslash: feed("n")
                case .unicode: feed("0")
                }
            case .number(let n):
                if n.canEnd { feed(copy.stack.last == .array ? "]" : "}") } else { feed("0") }
            case .literal(let word, let next):
                let rest = Self.literals[word][next...]
                out += rest; for b in rest { _ = copy.step(b) }
            case .complete: break
            }
        }
        return out
    }

    private mutating func startValue(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "{"): stack.append(.object); state = .objectFirst
        case UInt8(ascii: "["): stack.append(.array); state = .arrayFirst
        case UInt8(ascii: "\""): state = .string(key: false, escape: .none, continuation: 0)
        case UInt8(ascii: "-"): state = .number(.sign)
        case UInt8(ascii: "0"): state = .number(.zero)
        case UInt8(ascii: "1")...UInt8(ascii: "9"): state = .number(.integer)
        case UInt8(ascii: "t"): state = .literal(word: 0, next: 1)
        case UInt8(ascii: "f"): state = .literal(word: 1, next: 1)
        case UInt8(ascii: "n"): state = .literal(word: 2, next: 1)
        default: return false
        }
        return true
    }

    /// A value just ended: back to the container, or complete at the top level.
    private mutating func endValue() {
        state = stack.isEmpty ? .complete : .afterValue
    }

    private mutating func afterValueByte(_ byte: UInt8) -> Bool {
        guard let top = stack.last else { return false }
        switch (byte, top) {
        case (UInt8(ascii: ","), .object): state = .key
        case (UInt8(ascii: ","), .array): state = .value
        case (UInt8(ascii: "}"), .object), (UInt8(ascii: "]"), .array):
            stack.removeLast()
            endValue()
        default: return false
        }
        return true
    }

    private static func isHex(_ b: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(b)
            || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(b)
    }

    private static func isDigit(_ b: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) }

    /// The literal words, so that reading one allocates nothing (`allows` runs for every
    /// vocabulary entry at every step).
    static let literals: [[UInt8]] = [Array("true".utf8), Array("false".utf8), Array("null".utf8)]

    static func isWhitespace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x0A || b == 0x09 || b == 0x0D }

    /// One byte; false when it cannot come next.
    mutating func step(_ byte: UInt8) -> Bool {
        // Whitespace between the tokens of the JSON text (never before the object or after it).
        if Self.isWhitespace(byte) {
            switch state {
            case .value, .arrayFirst, .objectFirst, .key, .colon, .afterValue:
                guard whitespaceRun < Self.maximumWhitespaceRun else { return false }
                whitespaceRun += 1
                return true
            case .number(let phase) where phase.canEnd:
                endValue()
                if state == .complete { return false }
                whitespaceRun = 1
                return true
            default: break
            }
        } else if case .string = state {} else {
            whitespaceRun = 0
        }
        switch state {
        case .complete:
            return false
        case .start:
            guard byte == UInt8(ascii: "{") else { return false }
            stack.append(.object); state = .objectFirst
        case .value:
            return startValue(byte)
        case .arrayFirst:
            if byte == UInt8(ascii: "]") { stack.removeLast(); endValue(); return true }
            return startValue(byte)
        case .objectFirst:
            if byte == UInt8(ascii: "}") { stack.removeLast(); endValue(); return true }
            guard byte == UInt8(ascii: "\"") else { return false }
            state = .string(key: true, escape: .none, continuation: 0)
        case .key:
            guard byte == UInt8(ascii: "\"") else { return false }
            state = .string(key: true, escape: .none, continuation: 0)
        case .colon:
            guard byte == UInt8(ascii: ":") else { return false }
            state = .value
        case .afterValue:
            return afterValueByte(byte)
        case .string(let isKey, let escape, let continuation):
            if continuation > 0 {
                guard byte & 0xC0 == 0x80 else { return false }
                state = .string(key: isKey, escape: .none, continuation: continuation - 1)
                return true
            }
            switch escape {
            case .backslash:
                guard "\"\\/bfnrtu".utf8.contains(byte) else { return false }
                state = .string(key: isKey, escape: byte == UInt8(ascii: "u") ? .unicode(4) : .none, continuation: 0)
            case .unicode(let left):
                guard Self.isHex(byte) else { return false }
                state = .string(key: isKey, escape: left > 1 ? .unicode(left - 1) : .none, continuation: 0)
            case .none:
                switch byte {
                case UInt8(ascii: "\""):
                    if isKey { state = .colon } else { endValue() }
                case UInt8(ascii: "\\"):
                    state = .string(key: isKey, escape: .backslash, continuation: 0)
                case 0..<0x20, 0x7F:
                    return false   // control characters must be escaped
                case 0x80..<0xC2, 0xF5...0xFF:
                    return false   // not a UTF-8 lead byte
                case 0xC2...0xDF: state = .string(key: isKey, escape: .none, continuation: 1)
                case 0xE0...0xEF: state = .string(key: isKey, escape: .none, continuation: 2)
                case 0xF0...0xF4: state = .string(key: isKey, escape: .none, continuation: 3)
                default: break
                }
            }
        case .number(let phase):
            let digit = Self.isDigit(byte)
            switch phase {
            case .sign:
                guard digit else { return false }
                state = .number(byte == UInt8(ascii: "0") ? .zero : .integer)
            case .zero, .integer:
                if digit && phase == .integer { return true }
                if byte == UInt8(ascii: ".") { state = .number(.point); return true }
                if byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") { state = .number(.exponent); return true }
                if digit { return false }   // no leading zeros
                endValue()
                return state == .complete ? false : afterValueByte(byte)
            case .point:
                guard digit else { return false }
                state = .number(.fraction)
            case .fraction:
                if digit { return true }
                if byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") { state = .number(.exponent); return true }
                endValue()
                return state == .complete ? false : afterValueByte(byte)
            case .exponent:
                if byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-") { state = .number(.exponentSign); return true }
                guard digit else { return false }
                state = .number(.exponentDigits)
            case .exponentSign:
                guard digit else { return false }
                state = .number(.exponentDigits)
            case .exponentDigits, .exponentLast:
                if digit {
                    guard phase == .exponentDigits else { return false }
                    state = .number(.exponentLast)
                    return true
                }
                endValue()
                return state == .complete ? false : afterValueByte(byte)
            }
        case .literal(let word, let next):
            let letters = Self.literals[word]
            guard byte == letters[next] else { return false }
            if next + 1 == letters.count { endValue() } else { state = .literal(word: word, next: next + 1) }
        }
        return true
    }
}
