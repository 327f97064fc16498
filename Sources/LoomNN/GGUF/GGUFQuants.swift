import Foundation
import LoomTensor

/// Dequantisation of ggml's block formats to `Float`, equal bit for bit to the `gguf`
/// Python package's `gguf.quants.dequantize` (tested against it in `GGUFTests`).
///
/// Block layouts (all scales are IEEE half precision unless noted; `q` counts elements):
///
/// | type | elements | bytes | layout | value |
/// |---|---|---|---|---|
/// | Q8_0 | 32 | 34 | d, 32 × Int8 | d·q |
/// | Q4_0 | 32 | 18 | d, 16 bytes of nibbles | d·(q − 8) |
/// | Q4_1 | 32 | 20 | d, m, 16 bytes of nibbles | d·q + m |
/// | Q5_0 | 32 | 22 | d, 32 high bits (UInt32), 16 bytes of nibbles | d·(q − 16) |
/// | Q5_1 | 32 | 24 | d, m, 32 high bits, 16 bytes of nibbles | d·q + m |
/// | Q4_K | 256 | 144 | d, dmin, 12 bytes of 6-bit scales and mins, 128 bytes of nibbles | (d·sc)·q − dmin·mn |
/// | Q5_K | 256 | 176 | as Q4_K, plus 32 bytes of high bits before the nibbles | (d·sc)·q − dmin·mn |
/// | Q6_K | 256 | 210 | 128 bytes low nibbles, 64 bytes high 2-bit pairs, 16 × Int8 scales, d | (d·sc)·(q − 32) |
///
/// In the 32-element formats, byte `j` of the nibbles holds element `j` (low nibble) and
/// element `j + 16` (high nibble); the high bits of Q5 are bit `i` of the UInt32 for element `i`.
/// Products and sums are rounded one at a time (no fused multiply-add), as NumPy does.
public enum GGUFQuants {
    /// Dequantises `count` elements of `type` from `blocks` into `destination`.
    /// `blocks` must hold exactly `count / type.blockSize` blocks (checked by `GGUFFile`).
    public static func dequantize(_ type: GGMLType, blocks: UnsafeRawBufferPointer, into destination: UnsafeMutablePointer<Float>, count: Int) {
        precondition(count % type.blockSize == 0 && blocks.count == count / type.blockSize * type.bytesPerBlock,
                     "GGUFQuants.dequantize: \(blocks.count) bytes do not hold \(count) \(type.name) elements")
        guard count > 0, let base = blocks.baseAddress else { return }
        let blockCount = count / type.blockSize
        // Chunks of blocks spread over Loom's threads; each chunk is independent.
        let blocksPerChunk = max(1, 65536 / type.blockSize)
        let chunkCount = (blockCount + blocksPerChunk - 1) / blocksPerChunk
        parallelFor(chunkCount) { chunk in
            let first = chunk * blocksPerChunk
            let last = min(blockCount, first + blocksPerChunk)
            for block in first ..< last {
                let source = base + block * type.bytesPerBlock
                let output = destination + block * type.blockSize
                switch type {
                case .f32: output.pointee = Float(bitPattern: source.loadUnaligned(as: UInt32.self))
                case .f16: output.pointee = half(source, 0)
                case .bf16: output.pointee = Float(bitPattern: UInt32(source.loadUnaligned(as: UInt16.self)) << 16)
                case .q8_0: q8_0(source, output)
                case .q4_0: q4_0(source, output)
                case .q4_1: q4_1(source, output)
                case .q5_0: q5_0(source, output)
                case .q5_1: q5_1(source, output)
                case .q4_K: q4_K(source, output)
                case .q5_K: q5_K(source, output)
                case .q6_K: q6_K(source, output)
                }
            }
        }
    }

    /// Dequantises a whole tensor's bytes into a new array.
    public static func dequantize(_ type: GGMLType, bytes: [UInt8]) -> [Float] {
        let count = bytes.count / type.bytesPerBlock * type.blockSize
        var result = [Float](repeating: 0, count: count)
        bytes.withUnsafeBytes { raw in
            result.withUnsafeMutableBufferPointer { dequantize(type, blocks: raw, into: $0.baseAddress!, count: count) }
        }
        return result
    }

    @inline(__always) static func half(_ source: UnsafeRawPointer, _ offset: Int) -> Float {
        SafeTensors.floatFromHalfBits(source.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inline(__always) static func byte(_ source: UnsafeRawPointer, _ offset: Int) -> UInt8 {
        source.load(fromByteOffset: offset, as: UInt8.self)
    }

    static func q8_0(_ source: UnsafeRawPointer, _ output: UnsafeMutablePointer<Float>) {
        BlockQuantization.q8_0.dequantizeBlock(source, into: output)
    }

    /// Element `i` of a 32-element block's 16 bytes of nibbles.
    @inline(__always) static func nibble(_ source: UnsafeRawPointer, _ start: Int, _ i: Int) -> UInt8 {
        i < 16 ? byte(source, start + i) & 0x0F : byte(source, start + i - 16) >> 4
    }

    static func q4_0(_ source: UnsafeRawPointer, _ output: UnsafeMutablePointer<Float>) {
        BlockQuantization.q4_0.dequantizeBlock(source, into: output)
    }

    static func q4_1(_ source: UnsafeRawPointer, _ output: UnsafeMutablePointer<Float>) {
        BlockQuantization.q4_1.dequantizeBlock(source, into: output)
    }

    static func q5_0(_ source: UnsafeRawPointer, _ output: UnsafeMutablePointer<Float>) {
        let d = half(source, 0)
        let high = UInt32(littleEndian: source.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
        for i in 0 ..< 32 {
            let q = Int(nibble(source, 6, i)) | Int((high >> UInt32(i)) & 1) << 4
            output[i] = d * Float(q - 16)
        }
    }

    static func q5_1(_ source: UnsafeRawPointer, _ output: UnsafeMutablePointer<Float>) {
        let d = half(source, 0), m = half(source, 2)
        let high = UInt32(littleEndian: source.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        for i in 0 ..< 32 {
            let q = Int(nibble(source, 8, i)) | Int((high >> UInt32(i)) & 1) << 4
            let scaled = d * Float(q)
            output[i] = scaled + m
        }
    }

    /// The 6-bit scale and min of sub-block `j` (0..<8) of a Q4_K / Q5_K block, from the 12
    /// packed bytes at `start`: sub-blocks 0–3 keep theirs in the low 6 bits of bytes j and
    /// j + 4; sub-blocks 4–7 take their low 4 bits from byte j + 4 (nibbles) and their top
    /// 2 bits from the top bits of bytes j − 4 and j.
    @inline(__always) static func scaleAndMin(_ source: UnsafeRawPointer, _ start: Int, _ j: Int) -> (Float, Float) {
        if j < 4 {
            return (Float(byte(source, start + j) & 0x3F), Float(byte(source, start + j + 4) & 0x3F))
        }
        let packed = byte(source, start + j + 4)
        let scale = (packed & 0x0F) | ((byte(source, start + j - 4) >> 2) & 0x30)
        let minimum = (packed >> 4) | ((byte(source, start + j) >> 2) & 0x30)
        return (Float(scale), Float(minimum))
    }

    static func q4_K(_ source: UnsafeRawPointer, _ output: UnsafeMutablePointer<Float>) {
        let d = half(source, 0), dmin = half(source, 2)
        // Sub-block 2g takes the low nibbles of bytes 32g..<32g+32, sub-block 2g+1 the high ones.
        for sub in 0 ..< 8 {
            let (scale, minimum) = scaleAndMin(source, 4, sub)
            let ds = d * scale, dm = dmin * minimum
            let start = 16 + (sub / 2) * 32
            let shift: UInt8 = sub % 2 == 0 ? 0 : 4
            for i in 0 ..< 32 {
                let q = Float((byte(source, start + i) >> shift) & 0x0F)
                let scaled = ds * q
                output[sub * 32 + i] = scaled - dm
            }
        }
    }

    static func q5_K(_ source: UnsafeRawPointer, _ output: UnsafeMutablePointer<Float>) {
        let d = half(source, 0), dmin = half(source, 2)
        // 32 bytes of high bits at 16 (bit `sub` of byte i belongs to element i of sub-block
        // `sub`), then the nibbles at 48 laid out as in Q4_K.
        for sub in 0 ..< 8 {
            let (scale, minimum) = scaleAndMin(source, 4, sub)
            let ds = d * scale, dm = dmin * minimum
            let start = 48 + (sub / 2) * 32
            let shift: UInt8 = sub % 2 == 0 ? 0 : 4
            for i in 0 ..< 32 {
                let low = (byte(source, start + i) >> shift) & 0x0F
                let high = (byte(source, 16 + i) >> UInt8(sub)) & 1
                let scaled = ds * Float(low | high << 4)
                output[sub * 32 + i] = scaled - dm
            }
        }
    }

    static func q6_K(_ source: UnsafeRawPointer, _ output: UnsafeMutablePointer<Float>) {
        let d = half(source, 208)
        // Two halves of 128 elements. In half h, element 64k + j (k 0..<2, j 0..<64) takes its
        // low 4 bits from byte 64h + j of the low part (nibble k), and element 32k + j
        // (k 0..<4, j 0..<32) its high 2 bits from byte 128 + 32h + j (bits 2k, 2k+1).
        for half in 0 ..< 2 {
            for e in 0 ..< 128 {
                let low = (byte(source, 64 * half + e % 64) >> UInt8(4 * (e / 64))) & 0x0F
                let high = (byte(source, 128 + 32 * half + e % 32) >> UInt8(2 * (e / 32))) & 0x03
                let q = Int(low | high << 4) - 32
                let element = 128 * half + e
                let scale = Float(source.load(fromByteOffset: 192 + element / 16, as: Int8.self))
                let ds = d * scale
                output[element] = ds * Float(q)
            }
        }
    }

    // MARK: - Quantisation (for export)

    /// The types `quantize` writes.
    public static let exportTypes: [GGMLType] = [.f32, .f16, .q8_0, .q4_0, .q4_1]

    /// `count` floats as `type` blocks (`count` a multiple of the block size): F16 rounds to
    /// nearest even; the block types follow `BlockQuantization.quantizeBlock` (llama.cpp's
    /// reference quantizers, equal bit for bit to the `gguf` package).
    public static func quantize(_ type: GGMLType, _ source: UnsafePointer<Float>, count: Int) -> Data {
        precondition(exportTypes.contains(type) && count % type.blockSize == 0, "GGUFQuants.quantize: \(type.name) of \(count) elements")
        var out = Data(count: count / type.blockSize * type.bytesPerBlock)
        out.withUnsafeMutableBytes { raw in
            let base = raw.baseAddress!
            if let blocks = type.blockQuantization {
                let blockCount = count / BlockQuantization.blockSize
                parallelRanges(blockCount, minimumChunk: 4096) { range in
                    for block in range {
                        blocks.quantizeBlock(source + block * BlockQuantization.blockSize, into: base + block * blocks.bytesPerBlock)
                    }
                }
                return
            }
            for element in 0 ..< count {
                switch type {
                case .f32: (base + 4 * element).storeBytes(of: source[element].bitPattern, as: UInt32.self)
                case .f16: (base + 2 * element).storeBytes(of: halfBits(source[element]), as: UInt16.self)
                default: fatalError("unreachable: checked above")
                }
            }
        }
        return out
    }

    /// IEEE binary16 bits of `x`, rounded to nearest even (overflow to infinity).
    static func halfBits(_ x: Float) -> UInt16 { HalfPrecision.bits(x) }
}
