import CLoomQuant
import Foundation

/// llama.cpp's 32-element block formats that Loom keeps in memory and multiplies directly.
///
/// | type | bytes | layout | value of element i |
/// |---|---|---|---|
/// | Q8_0 | 34 | half d, 32 × Int8 | d·q |
/// | Q4_0 | 18 | half d, 16 bytes of nibbles | d·(q − 8) |
/// | Q4_1 | 20 | half d, half m, 16 bytes of nibbles | d·q + m |
///
/// Byte j of the nibbles holds element j (low nibble) and element j + 16 (high nibble).
public enum BlockQuantization: String, CaseIterable, Sendable {
    case q8_0 = "Q8_0"
    case q4_0 = "Q4_0"
    case q4_1 = "Q4_1"

    public static let blockSize = 32

    /// ggml's type code (the same numbers GGUF files use).
    public var ggmlCode: Int32 {
        switch self {
        case .q8_0: Int32(LOOM_QUANT_Q8_0)
        case .q4_0: Int32(LOOM_QUANT_Q4_0)
        case .q4_1: Int32(LOOM_QUANT_Q4_1)
        }
    }

    public var bytesPerBlock: Int {
        switch self {
        case .q8_0: 34
        case .q4_0: 18
        case .q4_1: 20
        }
    }

    /// The lower-case spelling of the command line (`q8_0`, `q4_0`, `q4_1`).
    public var flagName: String { rawValue.lowercased() }

    /// Quantizes 32 floats into one block, by the rules of the `gguf` package's
    /// `gguf.quants.quantize` (and llama.cpp's reference quantizers), bit for bit:
    /// Q8_0 scales by the largest magnitude / 127 and rounds half away from zero; Q4_0 divides
    /// by the signed value of largest magnitude / −8 and truncates q + 8.5 into 0…15; Q4_1
    /// maps [min, max] onto 0…15 with d = (max − min) / 15 and truncates q + 0.5.
    /// Every product and sum is rounded on its own (no fused multiply-add), as NumPy computes.
    public func quantizeBlock(_ x: UnsafePointer<Float>, into o: UnsafeMutableRawPointer) {
        switch self {
        case .q8_0:
            var largest: Float = 0
            for i in 0 ..< 32 { largest = Swift.max(largest, abs(x[i])) }
            let d = largest / 127, inverse: Float = d == 0 ? 0 : 1 / d
            o.storeBytes(of: HalfPrecision.bits(d), as: UInt16.self)
            for i in 0 ..< 32 {
                let q = (x[i] * inverse).rounded(.toNearestOrAwayFromZero)
                o.storeBytes(of: Int8(Swift.max(-127, Swift.min(127, q))), toByteOffset: 2 + i, as: Int8.self)
            }
        case .q4_0:
            var signedLargest: Float = 0
            for i in 0 ..< 32 where abs(x[i]) > abs(signedLargest) { signedLargest = x[i] }
            let d = signedLargest / -8, inverse: Float = d == 0 ? 0 : 1 / d
            o.storeBytes(of: HalfPrecision.bits(d), as: UInt16.self)
            for j in 0 ..< 16 {
                let low = UInt8(Swift.max(0, Swift.min(15, (x[j] * inverse + 8.5).rounded(.towardZero))))
                let high = UInt8(Swift.max(0, Swift.min(15, (x[j + 16] * inverse + 8.5).rounded(.towardZero))))
                o.storeBytes(of: low | high << 4, toByteOffset: 2 + j, as: UInt8.self)
            }
        case .q4_1:
            var largest = x[0], smallest = x[0]
            for i in 1 ..< 32 { largest = Swift.max(largest, x[i]); smallest = Swift.min(smallest, x[i]) }
            let d = (largest - smallest) / 15, inverse: Float = d == 0 ? 0 : 1 / d
            o.storeBytes(of: HalfPrecision.bits(d), as: UInt16.self)
            o.storeBytes(of: HalfPrecision.bits(smallest), toByteOffset: 2, as: UInt16.self)
            func level(_ value: Float) -> UInt8 {
                let scaled = (value - smallest) * inverse
                return UInt8(Swift.max(0, Swift.min(15, (scaled + 0.5).rounded(.towardZero))))
            }
            for j in 0 ..< 16 {
                o.storeBytes(of: level(x[j]) | level(x[j + 16]) << 4, toByteOffset: 4 + j, as: UInt8.self)
            }
        }
    }

    /// The 32 values of one block, equal bit for bit to `gguf.quants.dequantize` (products and
    /// sums rounded one at a time).
    public func dequantizeBlock(_ source: UnsafeRawPointer, into output: UnsafeMutablePointer<Float>) {
        let d = HalfPrecision.float(source.loadUnaligned(as: UInt16.self))
        switch self {
        case .q8_0:
            for i in 0 ..< 32 { output[i] = Float(source.load(fromByteOffset: 2 + i, as: Int8.self)) * d }
        case .q4_0:
            for j in 0 ..< 16 {
                let byte = source.load(fromByteOffset: 2 + j, as: UInt8.self)
                output[j] = d * Float(Int(byte & 0x0F) - 8)
                output[j + 16] = d * Float(Int(byte >> 4) - 8)
            }
        case .q4_1:
            let m = HalfPrecision.float(source.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
            for j in 0 ..< 16 {
                let byte = source.load(fromByteOffset: 4 + j, as: UInt8.self)
                let low = d * Float(byte & 0x0F), high = d * Float(byte >> 4)
                output[j] = low + m
                output[j + 16] = high + m
            }
        }
    }
}

/// A `[rows, columns]` weight matrix held as quantized blocks, multiplied by `quantizedLinear`
/// without being expanded to floats.
///
///     let w = QuantizedMatrix(quantizing: weight, as: .q4_1)   // weight: [out, in] floats
///     let y = quantizedLinear(x, w)                             // ≈ linear(x, weight)
///
/// In memory the blocks are in the kernels' interleaved layout (four rows' blocks side by side,
/// see `loom_quant_interleave`), which lets a matrix–vector product read one sequential stream;
/// `plainBytes()` gives llama.cpp's row-after-row layout (what GGUF files hold) back.
public final class QuantizedMatrix: @unchecked Sendable {
    public let type: BlockQuantization
    public let rows: Int
    public let columns: Int
    /// Bytes of one row in the plain layout (`blocksPerRow` blocks).
    public let bytesPerRow: Int
    /// The blocks in the interleaved layout (64-byte aligned, on huge pages: `HugePageSlabs`),
    /// `rows × bytesPerRow` bytes.
    public let interleavedBytes: UnsafeMutableRawBufferPointer

    public var blocksPerRow: Int { columns / BlockQuantization.blockSize }
    public var shape: [Int] { [rows, columns] }
    /// Bytes of all blocks (the same in either layout).
    public var byteCount: Int { interleavedBytes.count }

    /// A matrix whose blocks `fill` writes in the plain layout (row after row, `rows × bytesPerRow`
    /// bytes); they are then rearranged in place. `columns` must be a positive multiple of 32.
    public init(type: BlockQuantization, rows: Int, columns: Int,
                fillingPlainRows fill: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows {
        precondition(rows > 0 && columns > 0 && columns % BlockQuantization.blockSize == 0,
                     "QuantizedMatrix: [\(rows), \(columns)] is not whole rows of \(BlockQuantization.blockSize)-element blocks")
        self.type = type
        self.rows = rows
        self.columns = columns
        bytesPerRow = columns / BlockQuantization.blockSize * type.bytesPerBlock
        let storage = UnsafeMutableRawBufferPointer(start: HugePageSlabs.shared.allocate(bytes: rows * bytesPerRow),
                                                    count: rows * bytesPerRow)
        do { try fill(storage) } catch { HugePageSlabs.shared.release(storage.baseAddress!); throw error }
        interleavedBytes = storage
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 4 * bytesPerRow, alignment: 64)
        defer { scratch.deallocate() }
        loom_quant_interleave(type.ggmlCode, storage.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(rows),
                              Int32(columns / BlockQuantization.blockSize), scratch.baseAddress!.assumingMemoryBound(to: UInt8.self))
    }

    /// A copy of `source`, which must hold exactly `rows × bytesPerRow` bytes of `type` blocks in the plain layout.
    public convenience init(type: BlockQuantization, rows: Int, columns: Int, copying source: UnsafeRawBufferPointer) {
        self.init(type: type, rows: rows, columns: columns) { plain in
            precondition(source.count == plain.count, "QuantizedMatrix: \(source.count) bytes for [\(rows), \(columns)] \(type.rawValue)")
            plain.copyMemory(from: source)
        }
    }

    /// `weight` (`[rows, columns]` floats) quantized block by block.
    public convenience init(quantizing weight: Tensor, as type: BlockQuantization) {
        precondition(weight.rank == 2, "QuantizedMatrix: weight must be 2-D, got \(weight.shape)")
        self.init(quantizing: weight.data, rows: weight.shape[0], columns: weight.shape[1], as: type)
    }

    /// `rows × columns` floats (row-major) quantized block by block.
    public convenience init(quantizing source: UnsafePointer<Float>, rows: Int, columns: Int, as type: BlockQuantization) {
        self.init(type: type, rows: rows, columns: columns) { plain in
            let blocks = rows * (columns / BlockQuantization.blockSize), base = plain.baseAddress!
            parallelRanges(blocks, minimumChunk: 4096) { range in
                for block in range {
                    type.quantizeBlock(source + block * BlockQuantization.blockSize, into: base + block * type.bytesPerBlock)
                }
            }
        }
    }

    deinit { HugePageSlabs.shared.release(interleavedBytes.baseAddress!) }

    /// Block `block` of row `row` in the plain block layout, written to `output` (`type.bytesPerBlock` bytes).
    public func copyBlock(row: Int, block: Int, into output: UnsafeMutableRawPointer) {
        loom_quant_copy_block(type.ggmlCode, interleavedBytes.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(rows),
                              Int32(blocksPerRow), Int32(row), Int32(block), output.assumingMemoryBound(to: UInt8.self))
    }

    /// The blocks in llama.cpp's plain layout, row after row (what a GGUF tensor holds).
    public func plainBytes() -> Data {
        var data = Data(count: byteCount)
        data.withUnsafeMutableBytes { raw in
            let base = raw.baseAddress!, blockBytes = type.bytesPerBlock
            for row in 0 ..< rows {
                for block in 0 ..< blocksPerRow { copyBlock(row: row, block: block, into: base + row * bytesPerRow + block * blockBytes) }
            }
        }
        return data
    }

    /// The index (in the plain layout) of the first block whose scale (or Q4_1 minimum) is
    /// infinite or NaN, or nil: such a block, read from a file, would turn every product it enters into NaN.
    public func firstNonFiniteBlock() -> Int? {
        let halves = type == .q4_1 ? [0, 2] : [0]
        var block = [UInt8](repeating: 0, count: type.bytesPerBlock)
        return block.withUnsafeMutableBytes { scratch -> Int? in
            for row in 0 ..< rows {
                for b in 0 ..< blocksPerRow {
                    copyBlock(row: row, block: b, into: scratch.baseAddress!)
                    for offset in halves where scratch.loadUnaligned(fromByteOffset: offset, as: UInt16.self) & 0x7C00 == 0x7C00 {
                        return row * blocksPerRow + b
                    }
                }
            }
            return nil
        }
    }

    /// Row `row` as floats.
    public func dequantizeRow(_ row: Int, into output: UnsafeMutablePointer<Float>) {
        withUnsafeTemporaryAllocation(byteCount: type.bytesPerBlock, alignment: 8) { scratch in
            for block in 0 ..< blocksPerRow {
                copyBlock(row: row, block: block, into: scratch.baseAddress!)
                type.dequantizeBlock(UnsafeRawPointer(scratch.baseAddress!), into: output + block * BlockQuantization.blockSize)
            }
        }
    }

    /// The whole matrix as floats.
    public func dequantized() -> Tensor {
        let result = Tensor(uninitialized: shape)
        parallelRanges(rows, minimumChunk: 64) { range in
            for row in range { self.dequantizeRow(row, into: result.data + row * self.columns) }
        }
        return result
    }
}

/// The implementations of the quantized kernels, all bit-equal: AVX-512 with VNNI (two weight
/// rows per register), AVX2 with FMA and F16C, and the portable C version. `best` is the widest
/// that `KernelLevel.current` allows and the CPU has (AVX-512 without VNNI uses AVX2).
public enum QuantizedKernel: Sendable, CaseIterable {
    case avx512vnni
    case avx2
    case portable

    public static let best: QuantizedKernel = {
        let level = KernelLevel.current
        if level >= .avx512 && QuantizedKernel.avx512vnni.isSupported { return .avx512vnni }
        return level >= .avx2 ? .avx2 : .portable
    }()

    /// Whether this CPU can run it (whatever `LOOM_CPU_KERNELS` says).
    public var isSupported: Bool {
        let cpu = CPUFeatures.current
        switch self {
        case .avx512vnni: return KernelLevel.widest(for: cpu) >= .avx512 && cpu.avx512vnni
        case .avx2: return KernelLevel.widest(for: cpu) >= .avx2
        case .portable: return true
        }
    }
}

/// Each row of `x` (`[..., columns]`, columns a multiple of 32) quantized to 8 bits per block
/// of 32, as the quantized kernels take activations.
public func quantizeActivations(_ x: UnsafePointer<Float>, rows: Int, columns: Int, kernel: QuantizedKernel = .best)
    -> UnsafeMutableBufferPointer<LoomActivationBlock> {
    let blocks = columns / BlockQuantization.blockSize
    let out = UnsafeMutableBufferPointer<LoomActivationBlock>.allocate(capacity: Swift.max(1, rows * blocks))
    let base = out.baseAddress!
    func quantizeRows(_ range: Range<Int>) {
        let start = x + range.lowerBound * columns, destination = base + range.lowerBound * blocks
        switch kernel {
        case .avx512vnni, .avx2: loom_quantize_activations_avx2(start, destination, Int32(range.count * blocks))
        case .portable: loom_quantize_activations_scalar(start, destination, Int32(range.count * blocks))
        }
    }
    if rows == 1 { quantizeRows(0 ..< 1) } else { parallelRanges(rows, minimumChunk: 4) { quantizeRows($0) } }
    return out
}

/// `x · weightᵀ` with a quantized weight: the activations are quantized to 8 bits per block,
/// multiplied in integers and scaled per block. `x` is `[..., in]`, the result `[..., out]`;
/// with `accumulatingInto` the products are added into that tensor instead (and it is returned).
/// Output rows are spread over Loom's threads; each output element is computed by one thread
/// in a fixed order, so the result does not depend on the thread count or on how many rows
/// `x` has. No gradient is recorded: quantized weights are for inference.
@discardableResult
public func quantizedLinear(_ x: Tensor, _ weight: QuantizedMatrix, accumulatingInto y: Tensor? = nil,
                            kernel: QuantizedKernel = .best) -> Tensor {
    precondition(x.lastDimension == weight.columns,
                 "quantizedLinear: input \(x.shape) does not match the quantized weight [\(weight.rows), \(weight.columns)]")
    let rows = x.rows
    let output = y ?? Tensor(uninitialized: Array(x.shape.dropLast()) + [weight.rows])
    precondition(output.lastDimension == weight.rows && output.rows == rows,
                 "quantizedLinear: \(x.shape) · [\(weight.rows), \(weight.columns)]ᵀ does not fit \(output.shape)")
    Profiler.time("linear", phase: .forward) {
        let activations = quantizeActivations(x.data, rows: rows, columns: weight.columns, kernel: kernel)
        defer { activations.deallocate() }
        let w = weight.interleavedBytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let a = UnsafePointer(activations.baseAddress!), out = output.data
        let type = weight.type.ggmlCode, matrixRows = Int32(weight.rows), blocks = Int32(weight.blocksPerRow)
        let ldy = weight.rows, accumulate: Int32 = y == nil ? 0 : 1
        // Threads take whole groups of four rows (the interleaved layout's unit).
        let groups = (weight.rows + 3) / 4
        parallelRanges(groups, minimumChunk: 8) { groupRange in
            let begin = Int32(groupRange.lowerBound * 4), end = Int32(Swift.min(weight.rows, groupRange.upperBound * 4))
            switch kernel {
            case .avx512vnni:
                loom_quant_matmul_avx512vnni(type, w, matrixRows, blocks, begin, end, a, Int32(rows), out, ldy, accumulate)
            case .avx2:
                loom_quant_matmul_avx2(type, w, matrixRows, blocks, begin, end, a, Int32(rows), out, ldy, accumulate)
            case .portable:
                loom_quant_matmul_scalar(type, w, matrixRows, blocks, begin, end, a, Int32(rows), out, ldy, accumulate)
            }
        }
    }
    return output
}
