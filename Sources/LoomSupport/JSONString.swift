/// JSON string literals, written by hand where Loom formats JSON itself (safetensors headers,
/// tokenizer.json, JSONL data files, server responses) so that the bytes are fixed and fast.
public enum JSONString {
    /// Characters escaped beyond what JSON requires. JSON needs only `"`, `\` and U+0000–U+001F
    /// escaped; these exist because some files were written with more escapes before they
    /// shared this code, and their bytes must not change.
    public struct ExtraEscapes: OptionSet, Sendable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        /// U+007F DELETE as `\u007f` (tokenizer.json).
        public static let delete = ExtraEscapes(rawValue: 1)
        /// U+2028 and U+2029 as `\u2028`, `\u2029`: valid raw in JSON but line breaks to
        /// JavaScript and to some line-oriented readers (JSONL files, server responses).
        public static let lineSeparators = ExtraEscapes(rawValue: 2)
    }

    /// `text` as a JSON string literal, quotes included: `"`, `\`, newline, carriage return
    /// and tab as two-character escapes, the other characters below U+0020 (and `extra`) as
    /// `\u00xx` with lower-case hex digits, everything else as itself (UTF-8 on output).
    public static func quoted(_ text: String, alsoEscaping extra: ExtraEscapes = []) -> String {
        var out = ""
        append(text, to: &out, alsoEscaping: extra)
        return out
    }

    /// Appends `text` as a JSON string literal to `out` (see `quoted(_:alsoEscaping:)`).
    public static func append(_ text: String, to out: inout String, alsoEscaping extra: ExtraEscapes = []) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                let value = scalar.value
                if value < 0x20 || (value == 0x7F && extra.contains(.delete))
                    || ((value == 0x2028 || value == 0x2029) && extra.contains(.lineSeparators)) {
                    appendUnicodeEscape(value, to: &out)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }

    private static let hexDigits = Array("0123456789abcdef".unicodeScalars)

    /// `\u` and four hex digits for a scalar in the Basic Multilingual Plane.
    private static func appendUnicodeEscape(_ value: UInt32, to out: inout String) {
        out += "\\u"
        for shift in stride(from: 12, through: 0, by: -4) {
            out.unicodeScalars.append(hexDigits[Int((value >> UInt32(shift)) & 0xF)])
        }
    }
}
