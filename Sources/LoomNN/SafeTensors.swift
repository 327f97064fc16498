import Foundation
import LoomSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads and writes the safetensors format, the tensor file of a Hugging Face model
/// directory (`model.safetensors`) and of Loom's resume state (`optimizer.safetensors`).
///
/// The layout: an 8-byte little-endian header length N, N bytes of JSON
/// `{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, …, "__metadata__": {…}}`,
/// then the byte buffer that the offsets index into.
///
///     let weights = try SafeTensors.load(dir.appendingPathComponent("model.safetensors"))
///     let embedding = weights["model.embed_tokens.weight"]   // [vocab, hidden]
///     try SafeTensors.save([(name: "w", tensor: embedding!)], to: out)
///
/// Loading converts F32, F16, BF16 and F64 to `Float`; saving writes F32. Byte order is the
/// host's, which is little-endian on every platform Loom builds for.
public enum SafeTensors {
    /// The dtypes `load` converts to `Float`, with their sizes in bytes.
    public static let supportedDTypes: [String: Int] = ["F32": 4, "F16": 2, "BF16": 2, "F64": 8]

    /// Reads every tensor (F32, F16, BF16 and F64, converted to `Float`) from a .safetensors file.
    public static func load(_ url: URL) throws -> [String: Tensor] {
        let path = url.path
        let file: Data
        do {
            file = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw SafeTensorsError(path: path, "cannot read the file: \(error.localizedDescription)")
        }
        let header = try parseHeader(file.prefix(min(file.count, headerPrefixLimit(file))), fileSize: file.count, path: path)
        var result: [String: Tensor] = [:]
        result.reserveCapacity(header.entries.count)
        try file.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let buffer = UnsafeRawBufferPointer(rebasing: raw[header.bufferStart...])
            for entry in header.entries {
                let tensor = Tensor(uninitialized: entry.shape)
                let source = UnsafeRawBufferPointer(rebasing: buffer[entry.begin..<entry.end])
                try convert(source, dtype: entry.dtype, into: tensor.data, count: tensor.count, path: path, name: entry.name)
                tensor.name = entry.name
                result[entry.name] = tensor
            }
        }
        return result
    }

    /// Reads the header only: names → (dtype string, shape), and `__metadata__`.
    /// Reads just the first 8 + N bytes, so it is cheap on large files.
    public static func header(_ url: URL) throws -> (tensors: [String: (dtype: String, shape: [Int])], metadata: [String: String]) {
        let path = url.path
        let handle: FileHandle
        do {
            handle = try FileHandle(forReadingFrom: url)
        } catch {
            throw SafeTensorsError(path: path, "cannot open the file: \(error.localizedDescription)")
        }
        defer { try? handle.close() }
        let fileSize: Int
        let prefix: Data
        do {
            fileSize = Int(try handle.seekToEnd())
            try handle.seek(toOffset: 0)
            let lengthBytes = try handle.read(upToCount: 8) ?? Data()
            var headerBytes = Data()
            if lengthBytes.count == 8 {
                let n = readHeaderLength(lengthBytes)
                if n <= UInt64(fileSize - 8) {
                    headerBytes = try handle.read(upToCount: Int(n)) ?? Data()
                }
            }
            prefix = lengthBytes + headerBytes
        } catch {
            throw SafeTensorsError(path: path, "cannot read the file: \(error.localizedDescription)")
        }
        let header = try parseHeader(prefix, fileSize: fileSize, path: path)
        var tensors: [String: (dtype: String, shape: [Int])] = [:]
        for entry in header.entries { tensors[entry.name] = (entry.dtype, entry.shape) }
        return (tensors, header.metadata)
    }

    /// Writes F32 tensors, names sorted, with the header padded to a multiple of 8 bytes as the
    /// format requires. The write is atomic: a temporary file in the same directory, then a rename.
    public static func save(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = [:], to url: URL) throws {
        let path = url.path
        let sorted = tensors.sorted { $0.name < $1.name }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.name == b.name {
            throw SafeTensorsError(path: path, tensor: a.name, "appears twice in the tensors to save")
        }
        if sorted.contains(where: { $0.name == "__metadata__" }) {
            throw SafeTensorsError(path: path, tensor: "__metadata__", "is reserved for the metadata and cannot name a tensor")
        }

        var json = "{"
        var fields: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted().map { "\(JSONString.quoted($0)):\(JSONString.quoted(metadata[$0]!))" }
            fields.append("\"__metadata__\":{\(pairs.joined(separator: ","))}")
        }
        var offset = 0
        for (name, tensor) in sorted {
            let bytes = tensor.count * MemoryLayout<Float>.size
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            fields.append("\(JSONString.quoted(name)):{\"dtype\":\"F32\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + bytes)]}")
            offset += bytes
        }
        json += fields.joined(separator: ",") + "}"
        var headerBytes = Array(json.utf8)
        // The buffer must start 8-byte aligned; the format pads the header with spaces.
        while (8 + headerBytes.count) % 8 != 0 { headerBytes.append(0x20) }

        do {
            // Durable: checkpoints sync every file they write (the directory is synced too).
            try AtomicFile.write(to: url, durable: true) { handle in
                var length = UInt64(headerBytes.count).littleEndian
                try handle.write(contentsOf: Data(bytes: &length, count: 8))
                try handle.write(contentsOf: Data(headerBytes))
                for (_, tensor) in sorted where tensor.count > 0 {
                    // Written straight from the tensor's storage, without a copy.
                    let bytes = Data(bytesNoCopy: UnsafeMutableRawPointer(tensor.data),
                                     count: tensor.count * MemoryLayout<Float>.size, deallocator: .none)
                    try handle.write(contentsOf: bytes)
                }
            }
        } catch let error as AtomicFileError {
            throw SafeTensorsError(path: path, error.reason)
        }
    }

    /// Convenience: writes a name → tensor dictionary (saved in name order either way).
    public static func save(_ tensors: [String: Tensor], metadata: [String: String] = [:], to url: URL) throws {
        try save(tensors.map { (name: $0.key, tensor: $0.value) }, metadata: metadata, to: url)
    }

    // MARK: - Header parsing

    struct Entry {
        let name: String
        let dtype: String
        let shape: [Int]
        /// Byte range within the buffer that follows the header.
        let begin: Int
        let end: Int
    }

    struct Header {
        var entries: [Entry]
        var metadata: [String: String]
        /// Offset of the byte buffer from the start of the file.
        var bufferStart: Int
    }

    /// The header size the format allows at most (the reference implementation's limit), which
    /// keeps a corrupt length from making us parse a whole multi-gigabyte file as JSON.
    static let maximumHeaderLength: UInt64 = 100_000_000

    private static func headerPrefixLimit(_ file: Data) -> Int {
        guard file.count >= 8 else { return file.count }
        let n = readHeaderLength(file.prefix(8))
        return n > UInt64(file.count - 8) ? 8 : 8 + Int(n)
    }

    private static func readHeaderLength(_ bytes: Data) -> UInt64 {
        var n: UInt64 = 0
        for (i, byte) in bytes.prefix(8).enumerated() { n |= UInt64(byte) << (8 * UInt64(i)) }
        return n
    }

    /// Parses and validates the header. `prefix` holds at least the first 8 bytes of the file and,
    /// when the length is valid, the whole header; `fileSize` is the size of the whole file.
    static func parseHeader(_ prefix: Data, fileSize: Int, path: String) throws -> Header {
        guard fileSize >= 8, prefix.count >= 8 else {
            throw SafeTensorsError(path: path, "the file has \(fileSize) bytes, fewer than the 8-byte header length")
        }
        let n = readHeaderLength(prefix)
        guard n <= UInt64(fileSize - 8) else {
            throw SafeTensorsError(path: path, "the header length \(n) runs past the end of the file (\(fileSize) bytes)")
        }
        guard n <= maximumHeaderLength else {
            throw SafeTensorsError(path: path, "the header length \(n) exceeds the format's limit of \(maximumHeaderLength) bytes")
        }
        let start = prefix.startIndex + 8
        guard prefix.count >= 8 + Int(n) else {
            throw SafeTensorsError(path: path, "the file ends inside the \(n)-byte header")
        }
        let json = prefix[start ..< start + Int(n)]
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: json, options: [])
        } catch {
            throw SafeTensorsError(path: path, "the header is not valid JSON (\(n) bytes starting \(preview(json)))")
        }
        guard let dictionary = object as? [String: Any] else {
            throw SafeTensorsError(path: path, "the header is JSON but not an object")
        }
        let bufferStart = 8 + Int(n)
        let bufferSize = fileSize - bufferStart

        var metadata: [String: String] = [:]
        if let raw = dictionary["__metadata__"] {
            guard let pairs = raw as? [String: Any] else {
                throw SafeTensorsError(path: path, tensor: "__metadata__", "is not an object of strings")
            }
            for (key, value) in pairs {
                guard let string = value as? String else {
                    throw SafeTensorsError(path: path, tensor: "__metadata__", "the value of \"\(key)\" is not a string")
                }
                metadata[key] = string
            }
        }

        var entries: [Entry] = []
        entries.reserveCapacity(dictionary.count)
        for name in dictionary.keys.sorted() where name != "__metadata__" {
            guard let info = dictionary[name] as? [String: Any] else {
                throw SafeTensorsError(path: path, tensor: name, "the entry is not an object")
            }
            guard let dtype = info["dtype"] as? String else {
                throw SafeTensorsError(path: path, tensor: name, "missing or non-string \"dtype\"")
            }
            guard let elementSize = supportedDTypes[dtype] else {
                throw SafeTensorsError(path: path, tensor: name,
                                       "unsupported dtype \(dtype) (supported: \(supportedDTypes.keys.sorted().joined(separator: ", ")))")
            }
            guard let shapeValues = info["shape"] as? [Any], let shape = integers(shapeValues) else {
                throw SafeTensorsError(path: path, tensor: name, "missing \"shape\" or it is not a list of non-negative integers")
            }
            guard let offsetValues = info["data_offsets"] as? [Any], let offsets = integers(offsetValues), offsets.count == 2 else {
                throw SafeTensorsError(path: path, tensor: name, "missing \"data_offsets\" or it is not two non-negative integers")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin <= end, end <= bufferSize else {
                throw SafeTensorsError(path: path, tensor: name,
                                       "data_offsets [\(begin), \(end)] lie outside the \(bufferSize)-byte data buffer")
            }
            var elements = 1
            for dimension in shape {
                let (product, overflow) = elements.multipliedReportingOverflow(by: dimension)
                guard !overflow else { throw SafeTensorsError(path: path, tensor: name, "shape \(shape) overflows") }
                elements = product
            }
            let (expected, overflow) = elements.multipliedReportingOverflow(by: elementSize)
            guard !overflow, end - begin == expected else {
                throw SafeTensorsError(path: path, tensor: name,
                                       "data_offsets [\(begin), \(end)] span \(end - begin) bytes, but shape \(shape) of \(dtype) needs \(expected)")
            }
            entries.append(Entry(name: name, dtype: dtype, shape: shape, begin: begin, end: end))
        }
        return Header(entries: entries, metadata: metadata, bufferStart: bufferStart)
    }

    /// JSON numbers as non-negative `Int`s, or nil if any is not one. (An `is Bool` test cannot
    /// reject booleans here: on Linux every NSNumber holding 0 or 1 casts to Bool.)
    private static func integers(_ values: [Any]) -> [Int]? {
        var result: [Int] = []
        result.reserveCapacity(values.count)
        for value in values {
            if value is String { return nil }
            if let integer = value as? Int {
                guard integer >= 0 else { return nil }
                result.append(integer)
            } else if let double = value as? Double, double >= 0, double < 0x1p53, double == double.rounded(.towardZero) {
                result.append(Int(double))
            } else {
                return nil
            }
        }
        return result
    }

    private static func preview(_ bytes: Data) -> String {
        let text = String(decoding: bytes.prefix(32), as: UTF8.self)
        return "\"" + text.replacingOccurrences(of: "\n", with: "\\n") + (bytes.count > 32 ? "…" : "") + "\""
    }

    // MARK: - Conversion

    private static func convert(_ source: UnsafeRawBufferPointer, dtype: String, into destination: UnsafeMutablePointer<Float>,
                                count: Int, path: String, name: String) throws {
        guard count > 0 else { return }
        switch dtype {
        case "F32":
            // The buffer need not be 4-byte aligned (the header length is only padded by convention).
            UnsafeMutableRawPointer(destination).copyMemory(from: source.baseAddress!, byteCount: count * 4)
        case "F16":
            for i in 0 ..< count {
                destination[i] = floatFromHalfBits(source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
            }
        case "BF16":
            for i in 0 ..< count {
                let bits = source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)
                destination[i] = Float(bitPattern: UInt32(bits) << 16)
            }
        case "F64":
            for i in 0 ..< count {
                destination[i] = Float(source.loadUnaligned(fromByteOffset: 8 * i, as: Double.self))
            }
        default:
            throw SafeTensorsError(path: path, tensor: name, "unsupported dtype \(dtype)")
        }
    }

    /// IEEE 754 binary16 → binary32, exact (every half is representable as a float),
    /// including subnormals, infinities and NaN payloads. Written out rather than through
    /// `Float16`, which is unavailable on Intel macOS.
    @inline(__always)
    static func floatFromHalfBits(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = UInt32(h >> 10) & 0x1F
        let mantissa = UInt32(h & 0x03FF)
        if exponent == 0x1F {  // infinity or NaN: keep the payload
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        }
        if exponent == 0 {
            // Zero or subnormal: mantissa × 2^-24, exact in Float.
            let magnitude = Float(mantissa) * 0x1p-24
            return Float(bitPattern: sign | magnitude.bitPattern)
        }
        return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
    }
}

/// A safetensors file that cannot be read or written; the description names the file and,
/// where one is at fault, the tensor.
public struct SafeTensorsError: Error, CustomStringConvertible, LocalizedError {
    public let path: String
    public let tensor: String?
    public let problem: String

    public init(path: String, tensor: String? = nil, _ problem: String) {
        self.path = path
        self.tensor = tensor
        self.problem = problem
    }

    public var description: String {
        if let tensor { return "\(path): tensor \"\(tensor)\": \(problem)" }
        return "\(path): \(problem)"
    }

    public var errorDescription: String? { description }
}
