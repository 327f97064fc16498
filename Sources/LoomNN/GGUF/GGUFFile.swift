import Foundation

/// A GGUF file (llama.cpp's model format, versions 2 and 3), memory-mapped: its metadata,
/// its tensor table, and each tensor dequantised to `Float` on request.
///
/// The layout: magic `GGUF`, a `UInt32` version, `UInt64` tensor and key–value counts, the
/// key–value pairs (`UInt64`-length strings, a `UInt32` value type, the value), the tensor
/// infos (name, dimension count, dimensions innermost first, type, offset), padding to
/// `general.alignment` (32 by default), then the tensor data. Everything is little-endian.
///
///     let file = try GGUFFile(contentsOf: url)
///     let heads = try file.integer("llama.attention.head_count")
///     let embedding = try file.tensor(named: "token_embd.weight")   // [vocab, hidden], Float
///
/// Every count and size read from the file is checked against the bytes that remain before
/// anything is allocated from it, so a corrupt or hostile file fails with an error naming the
/// file and the key or tensor, never with a crash or a huge allocation.
public final class GGUFFile {
    public let path: String
    public let version: UInt32
    /// Key–value metadata in file order.
    public let metadata: [(key: String, value: GGUFValue)]
    public let tensors: [GGUFTensorInfo]
    /// `general.alignment`, or 32.
    public let alignment: Int
    /// Offset of the tensor data section from the start of the file.
    public let dataOffset: Int

    private let bytes: Data
    private let metadataIndex: [String: Int]
    private let tensorIndex: [String: Int]

    /// The largest number of dimensions ggml gives a tensor.
    public static let maximumDimensions = 4

    public convenience init(contentsOf url: URL) throws {
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw GGUFError(path: url.path, "cannot read the file: \(error.localizedDescription)")
        }
        try self.init(data: data, path: url.path)
    }

    /// Parses a GGUF image held in memory; `path` names it in errors.
    public init(data: Data, path: String) throws {
        self.path = path
        self.bytes = data
        var reader = ByteReader(data: data, path: path)
        let magic = try reader.bytes(4, what: "the magic number")
        guard magic.elementsEqual(Array("GGUF".utf8)) else {
            throw GGUFError(path: path, "not a GGUF file (the first bytes are \(magic.map { String(format: "%02x", $0) }.joined(separator: " ")), not \"GGUF\")")
        }
        version = try reader.uint32(what: "the version")
        guard version == 2 || version == 3 else {
            throw GGUFError(path: path, "GGUF version \(version) is not supported (Loom reads versions 2 and 3)")
        }
        let tensorCount = try reader.uint64(what: "the tensor count")
        let keyValueCount = try reader.uint64(what: "the metadata count")
        // The smallest key-value pair is an empty key (8 bytes), a type (4) and a one-byte value.
        guard keyValueCount <= UInt64(reader.remaining / 13) else {
            throw GGUFError(path: path, "the header claims \(keyValueCount) metadata entries, more than the \(data.count)-byte file can hold")
        }
        var metadata: [(key: String, value: GGUFValue)] = []
        var metadataIndex: [String: Int] = [:]
        metadata.reserveCapacity(Int(keyValueCount))
        for index in 0 ..< Int(keyValueCount) {
            let key = try reader.string(what: "the key of metadata entry \(index)")
            let rawType = try reader.uint32(what: "the type of \(key)")
            guard let type = GGUFValueType(rawValue: rawType) else {
                throw GGUFError(path: path, key: key, "unknown value type \(rawType)")
            }
            let value = try reader.value(of: type, key: key, depth: 0)
            guard metadataIndex[key] == nil else { throw GGUFError(path: path, key: key, "appears twice in the metadata") }
            metadataIndex[key] = metadata.count
            metadata.append((key, value))
        }
        self.metadata = metadata
        self.metadataIndex = metadataIndex

        var alignment = 32
        if let index = metadataIndex["general.alignment"] {
            guard case .uint32(let value) = metadata[index].value, value > 0, value & (value - 1) == 0 else {
                throw GGUFError(path: path, key: "general.alignment", "must be a UInt32 power of two, found \(metadata[index].value)")
            }
            alignment = Int(value)
        }
        self.alignment = alignment

        // The smallest tensor info: an empty name (8), a dimension count (4), a type (4), an offset (8).
        guard tensorCount <= UInt64(reader.remaining / 24) else {
            throw GGUFError(path: path, "the header claims \(tensorCount) tensors, more than the \(data.count)-byte file can hold")
        }
        var infos: [(name: String, dimensions: [Int], rawType: UInt32, offset: UInt64)] = []
        infos.reserveCapacity(Int(tensorCount))
        for index in 0 ..< Int(tensorCount) {
            let name = try reader.string(what: "the name of tensor \(index)")
            let dimensionCount = try reader.uint32(what: "the dimension count of tensor \(name)")
            guard dimensionCount >= 1 && dimensionCount <= UInt32(Self.maximumDimensions) else {
                throw GGUFError(path: path, tensor: name, "has \(dimensionCount) dimensions (ggml allows 1 to \(Self.maximumDimensions))")
            }
            var dimensions: [Int] = []
            for _ in 0 ..< Int(dimensionCount) {
                let dimension = try reader.uint64(what: "a dimension of tensor \(name)")
                guard dimension <= UInt64(Int32.max) else {
                    throw GGUFError(path: path, tensor: name, "has an absurd dimension \(dimension)")
                }
                dimensions.append(Int(dimension))
            }
            let rawType = try reader.uint32(what: "the type of tensor \(name)")
            let offset = try reader.uint64(what: "the data offset of tensor \(name)")
            infos.append((name, dimensions, rawType, offset))
        }
        let headerEnd = reader.position
        let dataOffset = (headerEnd + alignment - 1) / alignment * alignment
        guard dataOffset <= data.count else {
            throw GGUFError(path: path, "the file ends (\(data.count) bytes) before the tensor data section (offset \(dataOffset))")
        }
        self.dataOffset = dataOffset
        let dataSize = data.count - dataOffset

        var tensors: [GGUFTensorInfo] = []
        var tensorIndex: [String: Int] = [:]
        tensors.reserveCapacity(infos.count)
        for info in infos {
            guard let type = GGMLType(rawValue: info.rawType) else {
                let known = GGMLType.unsupportedNames[info.rawType].map { " (\($0))" } ?? ""
                throw GGUFError(path: path, tensor: info.name,
                                "has tensor type \(info.rawType)\(known), which Loom does not read (supported: \(GGMLType.allCases.map(\.name).joined(separator: ", ")))")
            }
            guard info.dimensions[0] % type.blockSize == 0 else {
                throw GGUFError(path: path, tensor: info.name,
                                "has rows of \(info.dimensions[0]) elements, not a multiple of the \(type.name) block size \(type.blockSize)")
            }
            var elements = 1
            for dimension in info.dimensions {
                let (product, overflow) = elements.multipliedReportingOverflow(by: dimension)
                guard !overflow, product <= data.count * 8 else {
                    throw GGUFError(path: path, tensor: info.name, "shape \(info.dimensions) is larger than the file could hold")
                }
                elements = product
            }
            let byteCount = elements / type.blockSize * type.bytesPerBlock
            guard info.offset % UInt64(alignment) == 0 else {
                throw GGUFError(path: path, tensor: info.name, "data offset \(info.offset) is not a multiple of the alignment \(alignment)")
            }
            guard info.offset <= UInt64(dataSize), byteCount <= dataSize - Int(info.offset) else {
                throw GGUFError(path: path, tensor: info.name,
                                "data [\(info.offset), \(info.offset + UInt64(byteCount))) runs past the end of the \(dataSize)-byte data section (truncated file?)")
            }
            guard tensorIndex[info.name] == nil else { throw GGUFError(path: path, tensor: info.name, "appears twice in the tensor table") }
            tensorIndex[info.name] = tensors.count
            tensors.append(GGUFTensorInfo(name: info.name, dimensions: info.dimensions, type: type,
                                          offset: Int(info.offset), byteCount: byteCount))
        }
        self.tensors = tensors
        self.tensorIndex = tensorIndex
    }

    // MARK: - Metadata

    /// The value of `key`, or nil when absent.
    public subscript(key: String) -> GGUFValue? {
        metadataIndex[key].map { metadata[$0].value }
    }

    public func contains(_ key: String) -> Bool { metadataIndex[key] != nil }

    private func required(_ key: String) throws -> GGUFValue {
        guard let value = self[key] else { throw GGUFError(path: path, key: key, "missing metadata key") }
        return value
    }

    /// An integer-typed value (any width) as `Int`.
    public func integer(_ key: String) throws -> Int {
        let value = try required(key)
        guard let integer = value.integer else { throw GGUFError(path: path, key: key, "expected an integer, found \(value.typeName)") }
        return integer
    }

    /// A float or integer value as `Double`.
    public func number(_ key: String) throws -> Double {
        let value = try required(key)
        guard let number = value.number else { throw GGUFError(path: path, key: key, "expected a number, found \(value.typeName)") }
        return number
    }

    public func string(_ key: String) throws -> String {
        let value = try required(key)
        guard case .string(let string) = value else { throw GGUFError(path: path, key: key, "expected a string, found \(value.typeName)") }
        return string
    }

    public func bool(_ key: String) throws -> Bool {
        let value = try required(key)
        guard case .bool(let flag) = value else { throw GGUFError(path: path, key: key, "expected a bool, found \(value.typeName)") }
        return flag
    }

    public func stringArray(_ key: String) throws -> [String] {
        let value = try required(key)
        guard case .array(_, let items) = value else { throw GGUFError(path: path, key: key, "expected an array of strings, found \(value.typeName)") }
        return try items.map {
            guard case .string(let string) = $0 else { throw GGUFError(path: path, key: key, "expected an array of strings, found \(value.typeName)") }
            return string
        }
    }

    public func integerArray(_ key: String) throws -> [Int] {
        let value = try required(key)
        guard case .array(_, let items) = value else { throw GGUFError(path: path, key: key, "expected an array of integers, found \(value.typeName)") }
        return try items.map {
            guard let integer = $0.integer else { throw GGUFError(path: path, key: key, "expected an array of integers, found \(value.typeName)") }
            return integer
        }
    }

    // MARK: - Tensors

    public func info(named name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// The raw bytes of a tensor, as stored (blocks for quantised types).
    public func withRawBytes<Result>(of info: GGUFTensorInfo, _ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        try bytes.withUnsafeBytes { raw in
            let start = dataOffset + info.offset
            return try body(UnsafeRawBufferPointer(rebasing: raw[start ..< start + info.byteCount]))
        }
    }

    /// The tensor dequantised to `Float`, in row-major shape (`info.shape`, outermost first).
    public func tensor(named name: String) throws -> Tensor {
        guard let info = info(named: name) else { throw GGUFError(path: path, tensor: name, "missing tensor") }
        return tensor(info)
    }

    public func tensor(_ info: GGUFTensorInfo) -> Tensor {
        let result = Tensor(uninitialized: info.shape)
        result.name = info.name
        withRawBytes(of: info) { GGUFQuants.dequantize(info.type, blocks: $0, into: result.data, count: result.count) }
        return result
    }
}

/// One entry of a GGUF tensor table.
public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    /// ggml's order: innermost (row length) first.
    public let dimensions: [Int]
    public let type: GGMLType
    /// Offset within the data section.
    public let offset: Int
    public let byteCount: Int

    /// Row-major shape, outermost first (the order of PyTorch and safetensors).
    public var shape: [Int] { dimensions.reversed() }
    public var elementCount: Int { dimensions.reduce(1, *) }
}

/// The tensor types Loom reads, with ggml's numbering.
public enum GGMLType: UInt32, CaseIterable, Sendable {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8
    case q4_K = 12, q5_K = 13, q6_K = 14, bf16 = 30

    /// The name llama.cpp and the gguf package use.
    /// The in-memory block format Loom multiplies directly, for Q8_0, Q4_0 and Q4_1.
    public var blockQuantization: BlockQuantization? {
        switch self {
        case .q8_0: .q8_0
        case .q4_0: .q4_0
        case .q4_1: .q4_1
        default: nil
        }
    }

    /// The GGUF type of a block format.
    public init(_ blocks: BlockQuantization) {
        switch blocks {
        case .q8_0: self = .q8_0
        case .q4_0: self = .q4_0
        case .q4_1: self = .q4_1
        }
    }

    public var name: String {
        switch self {
        case .f32: "F32"
        case .f16: "F16"
        case .bf16: "BF16"
        case .q4_0: "Q4_0"
        case .q4_1: "Q4_1"
        case .q5_0: "Q5_0"
        case .q5_1: "Q5_1"
        case .q8_0: "Q8_0"
        case .q4_K: "Q4_K"
        case .q5_K: "Q5_K"
        case .q6_K: "Q6_K"
        }
    }

    /// Elements per block.
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16: 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0: 32
        case .q4_K, .q5_K, .q6_K: 256
        }
    }

    /// Bytes per block.
    public var bytesPerBlock: Int {
        switch self {
        case .f32: 4
        case .f16, .bf16: 2
        case .q4_0: 18
        case .q4_1: 20
        case .q5_0: 22
        case .q5_1: 24
        case .q8_0: 34
        case .q4_K: 144
        case .q5_K: 176
        case .q6_K: 210
        }
    }

    /// Other ggml types, named in the error when a file uses one.
    static let unsupportedNames: [UInt32: String] = [
        9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S",
        20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64",
        29: "IQ1_M", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
    ]
}

/// The metadata value types of GGUF.
public enum GGUFValueType: UInt32, Sendable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7
    case string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// Bytes of one value, or nil for strings and arrays (variable length).
    var fixedSize: Int? {
        switch self {
        case .uint8, .int8, .bool: 1
        case .uint16, .int16: 2
        case .uint32, .int32, .float32: 4
        case .uint64, .int64, .float64: 8
        case .string, .array: nil
        }
    }
}

/// A GGUF metadata value.
public enum GGUFValue: Equatable, Sendable, CustomStringConvertible {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case uint64(UInt64), int64(Int64), float32(Float), float64(Double), bool(Bool), string(String)
    /// The element type and the elements.
    case array(GGUFValueType, [GGUFValue])

    /// Integer values of every width, when they fit in `Int`.
    public var integer: Int? {
        switch self {
        case .uint8(let v): Int(v)
        case .int8(let v): Int(v)
        case .uint16(let v): Int(v)
        case .int16(let v): Int(v)
        case .uint32(let v): Int(v)
        case .int32(let v): Int(v)
        case .uint64(let v): Int(exactly: v)
        case .int64(let v): Int(v)
        default: nil
        }
    }

    /// Floats and integers as `Double`.
    public var number: Double? {
        switch self {
        case .float32(let v): Double(v)
        case .float64(let v): v
        default: integer.map(Double.init)
        }
    }

    public var typeName: String {
        switch self {
        case .uint8: "UINT8"
        case .int8: "INT8"
        case .uint16: "UINT16"
        case .int16: "INT16"
        case .uint32: "UINT32"
        case .int32: "INT32"
        case .uint64: "UINT64"
        case .int64: "INT64"
        case .float32: "FLOAT32"
        case .float64: "FLOAT64"
        case .bool: "BOOL"
        case .string: "STRING"
        case .array(let type, _): "ARRAY of \(type)"
        }
    }

    public var description: String {
        switch self {
        case .string(let s): s.debugDescription
        case .array(_, let items): "[" + items.prefix(8).map(\.description).joined(separator: ", ") + (items.count > 8 ? ", … (\(items.count))" : "") + "]"
        case .bool(let b): "\(b)"
        case .float32(let v): "\(v)"
        case .float64(let v): "\(v)"
        default: integer.map(String.init) ?? "?"
        }
    }
}

/// A GGUF file that cannot be read; the description names the file and the key or tensor at fault.
public struct GGUFError: Error, CustomStringConvertible, LocalizedError {
    public let path: String
    public let key: String?
    public let tensor: String?
    public let problem: String

    public init(path: String, key: String? = nil, tensor: String? = nil, _ problem: String) {
        self.path = path; self.key = key; self.tensor = tensor; self.problem = problem
    }

    public var description: String {
        if let tensor { return "\(path): tensor \"\(tensor)\": \(problem)" }
        if let key { return "\(path): metadata \"\(key)\": \(problem)" }
        return "\(path): \(problem)"
    }

    public var errorDescription: String? { description }
}

/// A bounds-checked little-endian cursor over the file.
private struct ByteReader {
    let data: Data
    let path: String
    var position = 0

    init(data: Data, path: String) { self.data = data; self.path = path }

    var remaining: Int { data.count - position }

    /// Nested arrays deeper than this are rejected (ggml writes none; the limit keeps recursion bounded).
    static let maximumArrayDepth = 8

    mutating func bytes(_ count: Int, what: String) throws -> [UInt8] {
        guard count <= remaining else {
            throw GGUFError(path: path, "the file ends at byte \(data.count) while reading \(what) (truncated file?)")
        }
        let start = data.startIndex + position
        position += count
        return Array(data[start ..< start + count])
    }

    mutating func load<T: FixedWidthInteger>(_ type: T.Type, what: String) throws -> T {
        let size = MemoryLayout<T>.size
        guard size <= remaining else {
            throw GGUFError(path: path, "the file ends at byte \(data.count) while reading \(what) (truncated file?)")
        }
        let value = data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: position, as: T.self) }
        position += size
        return T(littleEndian: value)
    }

    mutating func uint32(what: String) throws -> UInt32 { try load(UInt32.self, what: what) }
    mutating func uint64(what: String) throws -> UInt64 { try load(UInt64.self, what: what) }

    mutating func string(what: String) throws -> String {
        let length = try uint64(what: what)
        guard length <= UInt64(remaining) else {
            throw GGUFError(path: path, "\(what): a string of \(length) bytes runs past the end of the file (\(data.count) bytes)")
        }
        let raw = try bytes(Int(length), what: what)
        guard let string = String(validating: raw, as: UTF8.self) else {
            throw GGUFError(path: path, "\(what): the string is not valid UTF-8")
        }
        return string
    }

    mutating func value(of type: GGUFValueType, key: String, depth: Int) throws -> GGUFValue {
        let what = "the value of \(key)"
        switch type {
        case .uint8: return .uint8(try load(UInt8.self, what: what))
        case .int8: return .int8(try load(Int8.self, what: what))
        case .uint16: return .uint16(try load(UInt16.self, what: what))
        case .int16: return .int16(try load(Int16.self, what: what))
        case .uint32: return .uint32(try load(UInt32.self, what: what))
        case .int32: return .int32(try load(Int32.self, what: what))
        case .uint64: return .uint64(try load(UInt64.self, what: what))
        case .int64: return .int64(try load(Int64.self, what: what))
        case .float32: return .float32(Float(bitPattern: try load(UInt32.self, what: what)))
        case .float64: return .float64(Double(bitPattern: try load(UInt64.self, what: what)))
        case .bool:
            let byte = try load(UInt8.self, what: what)
            guard byte <= 1 else { throw GGUFError(path: path, key: key, "a bool holds \(byte), not 0 or 1") }
            return .bool(byte == 1)
        case .string:
            return .string(try string(what: what))
        case .array:
            guard depth < Self.maximumArrayDepth else { throw GGUFError(path: path, key: key, "arrays nested deeper than \(Self.maximumArrayDepth)") }
            let rawType = try uint32(what: "the element type of \(key)")
            guard let elementType = GGUFValueType(rawValue: rawType) else {
                throw GGUFError(path: path, key: key, "unknown array element type \(rawType)")
            }
            let count = try uint64(what: "the length of \(key)")
            // Strings take at least 8 bytes, nested arrays at least 12.
            let minimumSize = elementType.fixedSize ?? (elementType == .string ? 8 : 12)
            guard count <= UInt64(remaining / minimumSize) else {
                throw GGUFError(path: path, key: key, "an array of \(count) elements runs past the end of the file (\(data.count) bytes)")
            }
            var items: [GGUFValue] = []
            items.reserveCapacity(Int(count))
            for _ in 0 ..< Int(count) { items.append(try value(of: elementType, key: key, depth: depth + 1)) }
            return .array(elementType, items)
        }
    }
}
