import Foundation

/// Reading files as bytes or UTF-8 text, transparently un-gzipping `.gz` files.
public enum TextFiles {
    /// The bytes of a file; a `.gz` file (or any file starting with the gzip magic number
    /// whose name ends in `.gz`) is decompressed.
    public static func readBytes(_ url: URL) throws -> [UInt8] {
        let path = url.relativePath
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DataError.fileNotFound(path: path)
        }
        guard !isDirectory.boolValue else { throw DataError.unreadable(path: path, reason: "is a directory") }
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw DataError.unreadable(path: path, reason: (error as NSError).localizedDescription)
        }
        let bytes = [UInt8](data)
        if url.pathExtension.lowercased() == "gz" {
            return try Gzip.decompress(bytes, path: path)
        }
        return bytes
    }

    /// The text of a file, which must be valid UTF-8 (a leading byte-order mark is dropped).
    /// Errors give the byte offset of the first bad byte (in the decompressed stream for `.gz`).
    public static func readText(_ url: URL) throws -> String {
        try decodeUTF8(readBytes(url), path: url.relativePath)
    }

    public static func decodeUTF8(_ bytes: [UInt8], path: String) throws -> String {
        if let offset = firstInvalidUTF8Offset(bytes) {
            throw DataError.invalidUTF8(path: path, byteOffset: offset)
        }
        var start = 0
        if bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF { start = 3 }
        return bytes[start...].withUnsafeBufferPointer { String(decoding: $0, as: UTF8.self) }
    }

    /// The offset of the first byte that does not belong to a well-formed UTF-8 sequence
    /// (overlong forms, surrogates and code points past U+10FFFF are ill-formed), or nil.
    public static func firstInvalidUTF8Offset(_ bytes: [UInt8]) -> Int? {
        bytes.withUnsafeBufferPointer { b -> Int? in
            let n = b.count
            var i = 0
            while i < n {
                let c = b[i]
                if c < 0x80 { i += 1; continue }
                let length: Int
                var low: UInt8 = 0x80, high: UInt8 = 0xBF  // allowed range of the second byte
                switch c {
                case 0xC2...0xDF: length = 2
                case 0xE0: length = 3; low = 0xA0
                case 0xE1...0xEC, 0xEE...0xEF: length = 3
                case 0xED: length = 3; high = 0x9F
                case 0xF0: length = 4; low = 0x90
                case 0xF1...0xF3: length = 4
                case 0xF4: length = 4; high = 0x8F
                default: return i
                }
                guard i + length <= n else { return i }
                guard b[i + 1] >= low && b[i + 1] <= high else { return i }
                for k in 2..<length where b[i + k] & 0xC0 != 0x80 { return i }
                i += length
            }
            return nil
        }
    }
}
