// The GPT-2 byte ↔ unicode mapping used by byte-level BPE.

/// GPT-2's reversible mapping between the 256 byte values and 256 printable Unicode scalars.
///
/// Byte-level BPE works on bytes, so every string — emoji, CJK, control characters, invalid
/// UTF-8 — is representable and no `<unk>` token is ever needed. Hugging Face `tokenizer.json`
/// files, however, store the vocabulary and merges as JSON *strings*; raw bytes such as a space
/// or `0x0A` would be unreadable (and ambiguous with the space separating the two sides of a
/// merge in the `"a b"` merge format). GPT-2 therefore maps each byte to a visible scalar:
/// printable Latin-1 bytes map to themselves and the 68 others (controls, space, 0x7F–0xA0,
/// 0xAD) are shifted to U+0100 upward in byte order, which is why a leading space shows up as
/// `Ġ` (U+0120) and a newline as `Ċ` (U+010A).
///
/// Loom keeps tokens as raw bytes internally and uses this mapping only at the JSON boundary.
public enum ByteLevel {
    /// `byteToScalar[b]` is the scalar that stands for byte `b` in tokenizer.json.
    public static let byteToScalar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: "\0", count: 256)
        var shifted: UInt32 = 256
        for byte in 0..<256 {
            let printable = (33...126).contains(byte) || (161...172).contains(byte) || (174...255).contains(byte)
            if printable {
                table[byte] = Unicode.Scalar(UInt32(byte))!
            } else {
                table[byte] = Unicode.Scalar(shifted)!
                shifted += 1
            }
        }
        return table
    }()

    /// Inverse of `byteToScalar`, indexed by scalar value (all mapped scalars are below U+0144).
    /// Entries that are not images of a byte hold -1.
    static let scalarToByte: [Int16] = {
        var table = [Int16](repeating: -1, count: 512)
        for (byte, scalar) in byteToScalar.enumerated() { table[Int(scalar.value)] = Int16(byte) }
        return table
    }()

    /// The tokenizer.json spelling of a byte string, e.g. `[0x20, 0x61]` → `"Ġa"`.
    public static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var scalars = String.UnicodeScalarView()
        for byte in bytes { scalars.append(byteToScalar[Int(byte)]) }
        return String(scalars)
    }

    /// The bytes a tokenizer.json string stands for, or nil if it contains a scalar that is not
    /// the image of any byte (such a string cannot be a byte-level token).
    public static func decode(_ string: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(string.unicodeScalars.count)
        for scalar in string.unicodeScalars {
            let value = Int(scalar.value)
            guard value < scalarToByte.count, scalarToByte[value] >= 0 else { return nil }
            bytes.append(UInt8(scalarToByte[value]))
        }
        return bytes
    }
}
