/// A small DEFLATE (RFC 1951) decoder and gzip (RFC 1952) reader.
///
/// Foundation on Linux has no gzip API, and the corpus ships `.jsonl.gz` files, so LoomData
/// decodes them itself. Huffman codes are decoded canonically, one code length at a time:
/// a few instructions per bit, which is fast enough for corpus files of tens of megabytes.
public enum Inflate {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case truncated
        case invalid(String)

        public var description: String {
            switch self {
            case .truncated: return "truncated (unexpected end of data)"
            case .invalid(let why): return why
            }
        }
    }

    /// Decodes a raw DEFLATE stream starting at `start`; returns the output and the index of
    /// the first byte after the stream (the stream ends on a byte boundary for this purpose).
    public static func inflate(_ input: [UInt8], from start: Int = 0) throws(Failure) -> (output: [UInt8], end: Int) {
        var output: [UInt8] = []
        output.reserveCapacity(input.count * 3)
        var reader = BitReader(bytes: input, position: start)
        var isFinal = false
        while !isFinal {
            isFinal = try reader.bits(1) == 1
            switch try reader.bits(2) {
            case 0: try copyStoredBlock(&reader, into: &output)
            case 1: try decodeBlock(&reader, literals: HuffmanTable.fixedLiterals, distances: HuffmanTable.fixedDistances, into: &output)
            case 2:
                let (literals, distances) = try readDynamicTables(&reader)
                try decodeBlock(&reader, literals: literals, distances: distances, into: &output)
            default: throw .invalid("reserved block type 3")
            }
        }
        reader.alignToByte()
        return (output, reader.position)
    }

    // MARK: - Blocks

    private static func copyStoredBlock(_ reader: inout BitReader, into output: inout [UInt8]) throws(Failure) {
        reader.alignToByte()
        guard reader.position + 4 <= reader.bytes.count else { throw .truncated }
        let b = reader.bytes, p = reader.position
        let length = Int(b[p]) | Int(b[p + 1]) << 8
        let complement = Int(b[p + 2]) | Int(b[p + 3]) << 8
        guard length == (~complement & 0xFFFF) else { throw .invalid("stored block length does not match its complement") }
        guard p + 4 + length <= b.count else { throw .truncated }
        output.append(contentsOf: b[(p + 4)..<(p + 4 + length)])
        reader.position = p + 4 + length
    }

    private static let lengthBase: [Int] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
    private static let lengthExtra: [Int] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    private static let distanceBase: [Int] = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
    private static let distanceExtra: [Int] = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]

    private static func decodeBlock(_ reader: inout BitReader, literals: HuffmanTable, distances: HuffmanTable, into output: inout [UInt8]) throws(Failure) {
        while true {
            let symbol = try literals.decode(&reader)
            if symbol < 256 {
                output.append(UInt8(symbol))
            } else if symbol == 256 {
                return
            } else {
                let lengthIndex = symbol - 257
                guard lengthIndex < lengthBase.count else { throw .invalid("bad length symbol \(symbol)") }
                let length = lengthBase[lengthIndex] + (try reader.bits(lengthExtra[lengthIndex]))
                let distanceSymbol = try distances.decode(&reader)
                guard distanceSymbol < distanceBase.count else { throw .invalid("bad distance symbol \(distanceSymbol)") }
                let distance = distanceBase[distanceSymbol] + (try reader.bits(distanceExtra[distanceSymbol]))
                guard distance <= output.count else { throw .invalid("distance \(distance) reaches before the start of the output") }
                // Byte by byte on purpose: a match may overlap the bytes it produces.
                var from = output.count - distance
                for _ in 0..<length {
                    output.append(output[from])
                    from += 1
                }
            }
        }
    }

    private static let codeLengthOrder: [Int] = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]

    private static func readDynamicTables(_ reader: inout BitReader) throws(Failure) -> (HuffmanTable, HuffmanTable) {
        let literalCount = try reader.bits(5) + 257
        let distanceCount = try reader.bits(5) + 1
        let codeLengthCount = try reader.bits(4) + 4
        guard literalCount <= 286, distanceCount <= 30 else { throw .invalid("too many literal or distance codes") }
        var codeLengthLengths = [Int](repeating: 0, count: 19)
        for i in 0..<codeLengthCount {
            codeLengthLengths[codeLengthOrder[i]] = try reader.bits(3)
        }
        let codeLengthTable = try HuffmanTable(lengths: codeLengthLengths)
        var lengths: [Int] = []
        lengths.reserveCapacity(literalCount + distanceCount)
        while lengths.count < literalCount + distanceCount {
            let symbol = try codeLengthTable.decode(&reader)
            switch symbol {
            case 0...15:
                lengths.append(symbol)
            case 16:
                guard let previous = lengths.last else { throw .invalid("repeat code with no previous length") }
                lengths.append(contentsOf: repeatElement(previous, count: 3 + (try reader.bits(2))))
            case 17:
                lengths.append(contentsOf: repeatElement(0, count: 3 + (try reader.bits(3))))
            default:
                lengths.append(contentsOf: repeatElement(0, count: 11 + (try reader.bits(7))))
            }
        }
        guard lengths.count == literalCount + distanceCount else { throw .invalid("code lengths overrun the table") }
        guard lengths[256] != 0 else { throw .invalid("no end-of-block code") }
        let literals = try HuffmanTable(lengths: Array(lengths[0..<literalCount]))
        let distances = try HuffmanTable(lengths: Array(lengths[literalCount...]))
        return (literals, distances)
    }
}

/// Reads bits least-significant first, as DEFLATE packs them.
struct BitReader {
    let bytes: [UInt8]
    var position: Int
    private var buffer: UInt64 = 0
    private var available: Int = 0

    init(bytes: [UInt8], position: Int) {
        self.bytes = bytes
        self.position = position
    }

    @inline(__always)
    mutating func bits(_ count: Int) throws(Inflate.Failure) -> Int {
        if count == 0 { return 0 }
        while available < count {
            guard position < bytes.count else { throw .truncated }
            buffer |= UInt64(bytes[position]) << UInt64(available)
            position += 1
            available += 8
        }
        let value = Int(buffer & ((1 << UInt64(count)) - 1))
        buffer >>= UInt64(count)
        available -= count
        return value
    }

    /// Drops the bits left in the current byte; bytes read ahead are given back.
    mutating func alignToByte() {
        position -= available / 8
        buffer = 0
        available = 0
    }
}

/// A canonical Huffman code: how many codes have each length, and the symbols in code order.
struct HuffmanTable {
    private var countPerLength = [Int](repeating: 0, count: 16)
    private var symbolsInCodeOrder: [Int] = []

    init(lengths: [Int]) throws(Inflate.Failure) {
        for length in lengths { countPerLength[length] += 1 }
        countPerLength[0] = 0
        var left = 1
        for length in 1...15 {
            left = left * 2 - countPerLength[length]
            if left < 0 { throw .invalid("over-subscribed Huffman code") }
        }
        var offsets = [Int](repeating: 0, count: 16)
        for length in 1..<15 { offsets[length + 1] = offsets[length] + countPerLength[length] }
        symbolsInCodeOrder = [Int](repeating: 0, count: lengths.count)
        for (symbol, length) in lengths.enumerated() where length != 0 {
            symbolsInCodeOrder[offsets[length]] = symbol
            offsets[length] += 1
        }
    }

    @inline(__always)
    func decode(_ reader: inout BitReader) throws(Inflate.Failure) -> Int {
        var code = 0, first = 0, index = 0
        for length in 1...15 {
            code |= try reader.bits(1)
            let count = countPerLength[length]
            if code - first < count { return symbolsInCodeOrder[index + code - first] }
            index += count
            first = (first + count) << 1
            code <<= 1
        }
        throw .invalid("invalid Huffman code")
    }

    static let fixedLiterals: HuffmanTable = {
        var lengths = [Int](repeating: 8, count: 288)
        for i in 144..<256 { lengths[i] = 9 }
        for i in 256..<280 { lengths[i] = 7 }
        return try! HuffmanTable(lengths: lengths)
    }()

    static let fixedDistances: HuffmanTable = try! HuffmanTable(lengths: [Int](repeating: 5, count: 30))
}

/// gzip framing around DEFLATE, with the CRC-32 and length checks of RFC 1952.
public enum Gzip {
    /// True when the bytes start with the gzip magic number.
    public static func isGzip(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B
    }

    /// Decompresses every member of a gzip file (`cat a.gz b.gz` is a valid gzip file).
    /// `path` only names the file in errors.
    public static func decompress(_ bytes: [UInt8], path: String = "<data>") throws -> [UInt8] {
        var output: [UInt8] = []
        var position = 0
        repeat {
            position = try decompressMember(bytes, at: position, into: &output, path: path)
            // Some writers pad the end with zeros; anything else must be another member.
            while position < bytes.count && bytes[position] == 0 { position += 1 }
        } while position < bytes.count
        return output
    }

    private static func decompressMember(_ bytes: [UInt8], at start: Int, into output: inout [UInt8], path: String) throws -> Int {
        func fail(_ reason: String) -> DataError { .badGzip(path: path, reason: reason) }
        guard bytes.count - start >= 18 else { throw fail("file too short for a gzip member at byte \(start)") }
        guard bytes[start] == 0x1F, bytes[start + 1] == 0x8B else { throw fail("bad magic number at byte \(start)") }
        guard bytes[start + 2] == 8 else { throw fail("unknown compression method \(bytes[start + 2])") }
        let flags = bytes[start + 3]
        var p = start + 10
        if flags & 0x04 != 0 {  // FEXTRA
            guard p + 2 <= bytes.count else { throw fail("truncated header") }
            p += 2 + (Int(bytes[p]) | Int(bytes[p + 1]) << 8)
        }
        for flag in [UInt8(0x08), 0x10] where flags & flag != 0 {  // FNAME, FCOMMENT: zero-terminated
            while p < bytes.count && bytes[p] != 0 { p += 1 }
            p += 1
        }
        if flags & 0x02 != 0 { p += 2 }  // FHCRC
        guard p < bytes.count else { throw fail("truncated header") }
        let member: (output: [UInt8], end: Int)
        do {
            member = try Inflate.inflate(bytes, from: p)
        } catch {
            throw fail(error.description)
        }
        let end = member.end
        guard end + 8 <= bytes.count else { throw fail("truncated trailer") }
        let storedCRC = UInt32(bytes[end]) | UInt32(bytes[end + 1]) << 8 | UInt32(bytes[end + 2]) << 16 | UInt32(bytes[end + 3]) << 24
        let storedSize = UInt32(bytes[end + 4]) | UInt32(bytes[end + 5]) << 8 | UInt32(bytes[end + 6]) << 16 | UInt32(bytes[end + 7]) << 24
        guard CRC32.checksum(member.output) == storedCRC else { throw fail("CRC-32 mismatch (corrupt data)") }
        guard UInt32(truncatingIfNeeded: member.output.count) == storedSize else { throw fail("length mismatch") }
        output.append(contentsOf: member.output)
        return end + 8
    }
}

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), as gzip uses it.
public enum CRC32 {
    private static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { t in
            for b in bytes { crc = t[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
        }
        return crc ^ 0xFFFF_FFFF
    }
}
