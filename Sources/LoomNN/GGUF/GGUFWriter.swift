import Foundation
import LoomSupport

/// Writes a GGUF file (version 3, little-endian): metadata in the order given, then the tensor
/// table, then each tensor's bytes at an offset aligned to `alignment`.
///
///     var writer = GGUFWriter()
///     writer.metadata.append(("general.architecture", .string("llama")))
///     writer.addTensor(name: "token_embd.weight", dimensions: [hidden, vocab], type: .f32, bytes: data)
///     try writer.write(to: url)
///
/// Tensor bytes are taken as they are: quantise before adding (`GGUFQuants`).
public struct GGUFWriter {
    public var metadata: [(key: String, value: GGUFValue)] = []
    public var alignment = 32
    private(set) var tensors: [(name: String, dimensions: [Int], type: GGMLType, bytes: Data)] = []

    public init() {}

    /// Adds a tensor; `dimensions` are ggml's order (innermost first).
    public mutating func addTensor(name: String, dimensions: [Int], type: GGMLType, bytes: Data) {
        tensors.append((name, dimensions, type, bytes))
    }

    /// The whole file in memory.
    public func encoded() -> Data {
        var out = Data()
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func string(_ s: String) { u64(UInt64(s.utf8.count)); out.append(contentsOf: Array(s.utf8)) }
        func type(of value: GGUFValue) -> GGUFValueType {
            switch value {
            case .uint8: .uint8
            case .int8: .int8
            case .uint16: .uint16
            case .int16: .int16
            case .uint32: .uint32
            case .int32: .int32
            case .uint64: .uint64
            case .int64: .int64
            case .float32: .float32
            case .float64: .float64
            case .bool: .bool
            case .string: .string
            case .array: .array
            }
        }
        func value(_ v: GGUFValue) {
            switch v {
            case .uint8(let x): out.append(x)
            case .int8(let x): out.append(UInt8(bitPattern: x))
            case .uint16(let x): withUnsafeBytes(of: x.littleEndian) { out.append(contentsOf: $0) }
            case .int16(let x): withUnsafeBytes(of: x.littleEndian) { out.append(contentsOf: $0) }
            case .uint32(let x): u32(x)
            case .int32(let x): u32(UInt32(bitPattern: x))
            case .uint64(let x): u64(x)
            case .int64(let x): u64(UInt64(bitPattern: x))
            case .float32(let x): u32(x.bitPattern)
            case .float64(let x): u64(x.bitPattern)
            case .bool(let x): out.append(x ? 1 : 0)
            case .string(let s): string(s)
            case .array(let elementType, let items):
                u32(elementType.rawValue)
                u64(UInt64(items.count))
                for item in items { value(item) }
            }
        }
        out.append(contentsOf: Array("GGUF".utf8))
        u32(3)
        u64(UInt64(tensors.count))
        var entries = metadata.filter { $0.key != "general.alignment" }
        if alignment != 32 { entries.append(("general.alignment", .uint32(UInt32(alignment)))) }
        u64(UInt64(entries.count))
        for (key, v) in entries {
            string(key)
            u32(type(of: v).rawValue)
            value(v)
        }
        var offset = 0
        var offsets: [Int] = []
        for tensor in tensors {
            offsets.append(offset)
            offset = (offset + tensor.bytes.count + alignment - 1) / alignment * alignment
        }
        for (tensor, tensorOffset) in zip(tensors, offsets) {
            string(tensor.name)
            u32(UInt32(tensor.dimensions.count))
            for d in tensor.dimensions { u64(UInt64(d)) }
            u32(tensor.type.rawValue)
            u64(UInt64(tensorOffset))
        }
        func pad() { while out.count % alignment != 0 { out.append(0) } }
        pad()
        for tensor in tensors {
            out.append(tensor.bytes)
            pad()
        }
        return out
    }

    /// Writes the file atomically.
    public func write(to url: URL) throws {
        try AtomicFile.write(encoded(), to: url)
    }
}
