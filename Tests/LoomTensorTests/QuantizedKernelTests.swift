import XCTest
import Foundation
import CLoomQuant
@testable import LoomTensor

/// The quantized dot-product kernels: the AVX-512 (where the CPU has it), AVX2 and portable
/// versions equal each other and an independent Swift reference bit for bit (integer lane sums, one fused multiply-add per lane
/// and block, a fixed summation tree), and a row's result does not depend on how many rows are
/// multiplied with it or on the thread count.
final class QuantizedKernelTests: XCTestCase {
    override func tearDown() { Threading.configure(threads: 1) }

    func randomTensor(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
        var rng = SeededRandom(seed: seed)
        let t = Tensor(uninitialized: shape)
        t.fillNormal(std: scale, rng: &rng)
        return t
    }

    /// A weight matrix of `type`: quantized random values, and for Q8_0 some raw −128 bytes too
    /// (valid in a file, never written by the quantizer).
    func randomWeights(_ type: BlockQuantization, rows: Int, columns: Int, seed: UInt64) -> QuantizedMatrix {
        let matrix = QuantizedMatrix(quantizing: randomTensor([rows, columns], seed: seed, scale: 0.05), as: type)
        guard type == .q8_0 else { return matrix }
        var plain = matrix.plainBytes()
        for block in stride(from: 0, to: rows * matrix.blocksPerRow, by: 7) { plain[block * 34 + 2 + block % 32] = 0x80 }
        return plain.withUnsafeBytes { QuantizedMatrix(type: type, rows: rows, columns: columns, copying: $0) }
    }

    /// The integer lanes of one block computed here, from the block layout, independently of the C code.
    func lanes(_ type: BlockQuantization, _ block: UnsafeRawPointer, _ q: [Int8]) -> [Int32] {
        var values = [Int32](repeating: 0, count: 32)
        for j in 0 ..< 32 {
            switch type {
            case .q8_0: values[j] = Int32(block.load(fromByteOffset: 2 + j, as: Int8.self))
            case .q4_0:
                let byte = block.load(fromByteOffset: 2 + j % 16, as: UInt8.self)
                values[j] = Int32(j < 16 ? byte & 15 : byte >> 4) - 8
            case .q4_1:
                let byte = block.load(fromByteOffset: 4 + j % 16, as: UInt8.self)
                values[j] = Int32(j < 16 ? byte & 15 : byte >> 4)
            }
        }
        return (0 ..< 8).map { i in (4 * i ..< 4 * i + 4).reduce(Int32(0)) { $0 + values[$1] * Int32(q[$1]) } }
    }

    /// One output element by the documented arithmetic, in Swift.
    func referenceDot(_ w: QuantizedMatrix, plain: UnsafeRawBufferPointer, row: Int, _ x: UnsafePointer<LoomActivationBlock>) -> Float {
        var acc = [Float](repeating: 0, count: 8)
        var minimumTerm: Float = 0
        for b in 0 ..< w.blocksPerRow {
            let block = plain.baseAddress! + row * w.bytesPerRow + b * w.type.bytesPerBlock
            let activation = x[b]
            let q = withUnsafeBytes(of: activation.q) { Array($0.bindMemory(to: Int8.self)) }
            let scale = HalfPrecision.float(block.loadUnaligned(as: UInt16.self)) * activation.d
            for (i, lane) in lanes(w.type, block, q).enumerated() { acc[i] = acc[i].addingProduct(scale, Float(lane)) }
            if w.type == .q4_1 {
                minimumTerm = minimumTerm.addingProduct(HalfPrecision.float(block.loadUnaligned(fromByteOffset: 2, as: UInt16.self)), activation.sum)
            }
        }
        let total = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
        return w.type == .q4_1 ? total + minimumTerm : total
    }

    func bits(_ t: Tensor) -> [UInt32] { t.scalars.map(\.bitPattern) }

    var kernels: [QuantizedKernel] { QuantizedKernel.allCases.filter(\.isSupported) }

    func testActivationQuantizationIsWithinHalfAStepAndEqualAcrossKernels() {
        let x = randomTensor([3, 96], seed: 1, scale: 2)
        x.data[5] = 0; for i in 32 ..< 64 { x.data[i] = 0 }   // a zero block: d = 0
        var results: [[LoomActivationBlock]] = []
        for kernel in kernels {
            let blocks = quantizeActivations(x.data, rows: 3, columns: 96, kernel: kernel)
            defer { blocks.deallocate() }
            results.append(Array(blocks))
            for b in 0 ..< 9 {
                let block = blocks[b]
                let q = withUnsafeBytes(of: block.q) { Array($0.bindMemory(to: Int8.self)) }
                XCTAssertEqual(block.sum, block.d * Float(q.reduce(0) { $0 + Int($1) }))
                for i in 0 ..< 32 {
                    XCTAssertLessThanOrEqual(abs(x.data[b * 32 + i] - block.d * Float(q[i])), block.d * 0.5001 + 1e-12, "block \(b) element \(i)")
                }
            }
            XCTAssertEqual(blocks[1].d, 0)
        }
        for other in results.dropFirst() {
            for (a, b) in zip(results[0], other) {
                XCTAssertEqual(a.d.bitPattern, b.d.bitPattern)
                XCTAssertEqual(a.sum.bitPattern, b.sum.bitPattern)
                XCTAssertTrue(withUnsafeBytes(of: a.q) { qa in withUnsafeBytes(of: b.q) { qb in qa.elementsEqual(qb) } })
            }
        }
    }

    func testKernelsEqualTheSwiftReferenceAndEachOtherBitForBit() throws {
        XCTAssertTrue(QuantizedKernel.portable.isSupported)
        print("QuantizedKernelTests: kernels checked on this CPU: \(kernels); chosen: \(QuantizedKernel.best)")
        for type in BlockQuantization.allCases {
            let w = randomWeights(type, rows: 37, columns: 160, seed: 11)
            let x = randomTensor([6, 160], seed: 12)
            let activations = quantizeActivations(x.data, rows: 6, columns: 160, kernel: .portable)
            defer { activations.deallocate() }
            var outputs: [[UInt32]] = []
            let plain = w.plainBytes()
            for kernel in kernels {
                let y = quantizedLinear(x, w, kernel: kernel)
                for r in 0 ..< 6 {
                    for o in 0 ..< 37 {
                        let expected = plain.withUnsafeBytes { referenceDot(w, plain: $0, row: o, activations.baseAddress! + r * w.blocksPerRow) }
                        XCTAssertEqual(y.data[r * 37 + o].bitPattern, expected.bitPattern, "\(type) \(kernel) row \(r) output \(o)")
                    }
                }
                outputs.append(bits(y))
            }
            for (kernel, output) in zip(kernels, outputs).dropFirst() {
                XCTAssertEqual(output, outputs[0], "\(type): \(kernel) and \(kernels[0]) differ")
            }
            // And the result approximates the float product of the dequantized weights.
            let dense = w.dequantized()
            var worst: Float = 0, largest: Float = 0
            let y = quantizedLinear(x, w)
            for r in 0 ..< 6 {
                for o in 0 ..< 37 {
                    var exact: Float = 0
                    for k in 0 ..< 160 { exact += x.data[r * 160 + k] * dense.data[o * 160 + k] }
                    worst = max(worst, abs(exact - y.data[r * 37 + o])); largest = max(largest, abs(exact))
                }
            }
            XCTAssertLessThan(worst, 0.02 * largest, "\(type): 8-bit activations drift too far from the float product")
        }
    }

    func testIntegerLanesOfTheCReferenceAreExact() {
        for type in BlockQuantization.allCases {
            let w = randomWeights(type, rows: 4, columns: 64, seed: 21)
            let x = randomTensor([1, 64], seed: 22)
            let activations = quantizeActivations(x.data, rows: 1, columns: 64, kernel: .portable)
            defer { activations.deallocate() }
            let plain = w.plainBytes()
            for block in 0 ..< 8 {
                let a = activations[block % 2]
                let q = withUnsafeBytes(of: a.q) { Array($0.bindMemory(to: Int8.self)) }
                var lanesC = [Int32](repeating: 0, count: 8)
                plain.withUnsafeBytes { raw in
                    let start = raw.baseAddress! + block * type.bytesPerBlock
                    q.withUnsafeBufferPointer { loom_quant_block_lanes_scalar(type.ggmlCode, start.assumingMemoryBound(to: UInt8.self), $0.baseAddress!, &lanesC) }
                    XCTAssertEqual(lanesC, lanes(type, start, q), "\(type) block \(block)")
                }
            }
        }
    }

    /// The interleaved layout gives the plain blocks back unchanged (rows in whole groups of four
    /// and the rows after them), and a range of rows that does not start at a group computes the
    /// same values as the whole product.
    func testInterleavedLayoutRoundTripsAndAnyRowRangeMatches() throws {
        for type in BlockQuantization.allCases {
            for rows in [1, 4, 7, 13] {
                var rng = SeededRandom(seed: UInt64(rows))
                let columns = 96, count = rows * columns / 32 * type.bytesPerBlock
                var plain = Data((0 ..< count).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
                // Finite scales: each block's halves set to small normal values.
                for block in 0 ..< rows * columns / 32 {
                    for half in (type == .q4_1 ? [0, 2] : [0]) {
                        let at = block * type.bytesPerBlock + half
                        plain[at] = UInt8(truncatingIfNeeded: rng.next()); plain[at + 1] = 0x20 | UInt8(rng.next() % 8)
                    }
                }
                let w = plain.withUnsafeBytes { QuantizedMatrix(type: type, rows: rows, columns: columns, copying: $0) }
                XCTAssertEqual(w.plainBytes(), plain, "\(type) \(rows) rows: the layout does not round-trip")
                let x = randomTensor([3, columns], seed: 51)
                let whole = quantizedLinear(x, w)
                let activations = quantizeActivations(x.data, rows: 3, columns: columns, kernel: .portable)
                defer { activations.deallocate() }
                let base = w.interleavedBytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
                for kernel in kernels {
                    for begin in 0 ..< rows {
                        var y = [Float](repeating: .nan, count: 3 * rows)
                        switch kernel {
                        case .avx512vnni: loom_quant_matmul_avx512vnni(type.ggmlCode, base, Int32(rows), Int32(columns / 32), Int32(begin), Int32(rows), activations.baseAddress!, 3, &y, rows, 0)
                        case .avx2: loom_quant_matmul_avx2(type.ggmlCode, base, Int32(rows), Int32(columns / 32), Int32(begin), Int32(rows), activations.baseAddress!, 3, &y, rows, 0)
                        case .portable: loom_quant_matmul_scalar(type.ggmlCode, base, Int32(rows), Int32(columns / 32), Int32(begin), Int32(rows), activations.baseAddress!, 3, &y, rows, 0)
                        }
                        for r in 0 ..< 3 {
                            for o in begin ..< rows {
                                XCTAssertEqual(y[r * rows + o].bitPattern, whole.data[r * rows + o].bitPattern, "\(type) \(kernel) rows \(begin)..<\(rows): output \(r),\(o)")
                            }
                        }
                    }
                }
            }
        }
    }

    func testARowInABatchOfEightEqualsThatRowAloneBitForBit() {
        for threads in [1, 2] {
            Threading.configure(threads: threads)
            for type in BlockQuantization.allCases {
                let w = randomWeights(type, rows: 70, columns: 96, seed: 31)
                let batch = randomTensor([8, 96], seed: 32)
                for kernel in kernels {
                    let together = quantizedLinear(batch, w, kernel: kernel)
                    for r in 0 ..< 8 {
                        let alone = Tensor(shape: [1, 96], values: Array(batch.scalars[r * 96 ..< (r + 1) * 96]))
                        let single = quantizedLinear(alone, w, kernel: kernel)
                        XCTAssertEqual(bits(single), Array(bits(together)[r * 70 ..< (r + 1) * 70]),
                                       "\(type) \(kernel) \(threads) thread(s): row \(r) of 8 differs from the row alone")
                    }
                    // Accumulating adds the same products into what is there.
                    let base = randomTensor([8, 70], seed: 33)
                    let expected = zip(base.scalars, together.scalars).map { $0 + $1 }
                    quantizedLinear(batch, w, accumulatingInto: base, kernel: kernel)
                    XCTAssertEqual(base.scalars.map(\.bitPattern), expected.map(\.bitPattern))
                }
            }
        }
    }

    func testQuantizeThenDequantizeStaysWithinHalfAStep() {
        let x = randomTensor([4, 64], seed: 41, scale: 3)
        for type in BlockQuantization.allCases {
            let back = QuantizedMatrix(quantizing: x, as: type).dequantized()
            for block in 0 ..< 8 {
                let values = (0 ..< 32).map { x.data[block * 32 + $0] }
                let range = type == .q4_1 ? values.max()! - values.min()! : 2 * values.map(abs).max()!
                // Half a step; Q4_0's grid −8…7 is one-sided, so the end opposite the largest
                // magnitude clips by up to a whole step. Plus the rounding of the half-precision scale.
                let bound: Float = type == .q8_0 ? range / 254 * 0.5 : type == .q4_1 ? range / 15 * 0.5 : range / 16
                for i in 0 ..< 32 {
                    XCTAssertLessThanOrEqual(abs(back.data[block * 32 + i] - values[i]), bound * 1.01 + range * 2e-3,
                                             "\(type) block \(block) element \(i)")
                }
            }
        }
    }
}
