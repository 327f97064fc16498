import XCTest
@testable import LoomTensor

/// bf16 matrix products (`--precision bf16`): inputs rounded to bfloat16, one float32 fused
/// multiply-add per k in increasing k. The emulated codes run on every CPU and must equal that
/// definition bit for bit; the native vdpbf16ps code runs where the CPU has AVX512-BF16.
final class BF16ProductTests: XCTestCase {
    /// The emulated codes this CPU runs (portable everywhere, AVX2 where it has it), and the widest.
    static let emulatedLevels: [KernelLevel] = KernelLevel.widest(for: .current) >= .avx2 ? [.portable, .avx2] : [.portable]
    static var widestEmulated: KernelLevel { emulatedLevels.last! }

    /// Rounding to bfloat16 by its definition, independent of the bit trick in the kernels: the
    /// two neighbouring bfloat16 values (the high 16 bits, and one unit above), the nearer one,
    /// ties to the even one; subnormal results become ±0.
    static func referenceRound(_ x: Float) -> Float {
        if x.isNaN || x.isInfinite { return x }
        let truncated = Float(bitPattern: x.bitPattern & 0xffff_0000)
        // The next bfloat16 away from zero; past the largest finite one it is ±inf, which
        // IEEE rounding treats as the value ±2¹²⁸ for the comparison.
        let next = Float(bitPattern: (x.bitPattern & 0xffff_0000) &+ 0x1_0000)
        let nextValue = next.isInfinite ? (x < 0 ? -0x1p128 : 0x1p128) : Double(next)
        let gapBelow = abs(Double(x) - Double(truncated)), gapAbove = abs(nextValue - Double(x))
        var result: Float
        if gapBelow < gapAbove { result = truncated }
        else if gapAbove < gapBelow { result = next }
        else { result = (truncated.bitPattern >> 16) & 1 == 0 ? truncated : next }
        if !result.isInfinite && abs(result) < Float.leastNormalMagnitude { result = result.sign == .minus ? -0.0 : 0.0 }
        return result
    }

    func testRoundingToBFloat16() {
        let cases: [(Float, Float)] = [
            (1, 1), (-2.5, -2.5),
            (1 + 0x1p-8, 1),                           // halfway to 1 + 2⁻⁷: ties to even (1)
            (1 + 3 * 0x1p-8, 1 + 0x1p-6),              // halfway between 1 + 2⁻⁷ (odd) and 1 + 2⁻⁶: to the even one
            (1 + 0x1p-8 + 0x1p-20, 1 + 0x1p-7),        // just past halfway: up
            (Float.greatestFiniteMagnitude, .infinity),
            (-Float.greatestFiniteMagnitude, -.infinity),
            (Float.leastNormalMagnitude, Float.leastNormalMagnitude),
            (Float.leastNormalMagnitude / 4, 0),       // subnormal: zero, as vdpbf16ps reads it
            (-Float.leastNormalMagnitude / 4, -0.0),
        ]
        for (x, expected) in cases {
            let r = bf16Rounded(x)
            XCTAssertEqual(r.bitPattern, expected.bitPattern, "round(\(x)) = \(r), expected \(expected)")
        }
        XCTAssertTrue(bf16Rounded(.nan).isNaN)
        XCTAssertEqual(bf16Rounded(.infinity), .infinity)
        var rng = SeededRandom(seed: 11)
        for _ in 0..<20_000 {
            // Random bit patterns of finite floats over the whole exponent range.
            let x = Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))
            guard x.isFinite else { continue }
            XCTAssertEqual(bf16Rounded(x).bitPattern, Self.referenceRound(x).bitPattern, "round(\(x)) [\(String(x.bitPattern, radix: 16))]")
        }
    }

    /// The definition: round, then acc = fma(a, b, acc) in increasing k from zero, then
    /// alpha·acc, plus beta·c fused when beta is not zero.
    static func referenceProduct(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: [Float], lda: Int,
                                 b: [Float], ldb: Int, beta: Float, c: [Float], ldc: Int) -> [Float] {
        var out = c
        for i in 0..<m {
            for j in 0..<n {
                var acc: Float = 0
                for p in 0..<k {
                    let x = referenceRound(transposeA ? a[p * lda + i] : a[i * lda + p])
                    let y = referenceRound(transposeB ? b[j * ldb + p] : b[p * ldb + j])
                    acc = acc.addingProduct(x, y)
                }
                let scaled = alpha * acc
                out[i * ldc + j] = beta == 0 ? scaled : scaled.addingProduct(beta, c[i * ldc + j])
            }
        }
        return out
    }

    struct Case { var m: Int, n: Int, k: Int, transposeA: Bool, transposeB: Bool, alpha: Float, beta: Float }

    static var cases: [Case] {
        var cases: [Case] = []
        let shapes = [(1, 1, 1), (3, 5, 2), (4, 24, 16), (5, 23, 7), (9, 50, 33), (17, 49, 64), (2, 97, 5), (8, 48, 1), (6, 7, 0),
                      (70, 53, 35), (261, 9, 19)]  // packing's 8×8 blocks with edges on both sides; past 256 rows of op(A)
        for (index, (m, n, k)) in shapes.enumerated() {
            for transposeA in [false, true] {
                for transposeB in [false, true] {
                    let (alpha, beta): (Float, Float) = [(1, 0), (0.5, 1), (-2, 0.25)][(index + (transposeA ? 1 : 0)) % 3]
                    cases.append(Case(m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB, alpha: alpha, beta: beta))
                }
            }
        }
        return cases
    }

    /// Runs `sgemm` with bf16 products by `implementation` on random inputs (uniform in [-2, 2),
    /// or drawn by `input`) with padded leading dimensions, and returns (result, definition) per case.
    func products(_ implementation: BF16Implementation, threads: Int = 1, parallel: Bool = false,
                  cases: [Case] = BF16ProductTests.cases,
                  input: ((inout SeededRandom) -> Float)? = nil) -> [(Case, [Float], [Float])] {
        var rng = SeededRandom(seed: 3)
        func random(_ count: Int) -> [Float] {
            (0..<count).map { _ in input.map { $0(&rng) } ?? Float(rng.nextDouble() * 4 - 2) }
        }
        Threading.configure(threads: threads)
        defer { Threading.configure(threads: 1) }
        return cases.map { t in
            let lda = (t.transposeA ? t.m : t.k) + 3, ldb = (t.transposeB ? t.k : t.n) + 2, ldc = t.n + 4
            let a = random((t.transposeA ? t.k : t.m) * lda + 1), b = random((t.transposeB ? t.n : t.k) * ldb + 1)
            let c0 = random(t.m * ldc)
            var c = c0
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    c.withUnsafeMutableBufferPointer { pc in
                        MatrixProducts.with(bf16: implementation) {
                            if parallel {
                                parallelSgemm(transposeA: t.transposeA, transposeB: t.transposeB, m: t.m, n: t.n, k: t.k, alpha: t.alpha,
                                              a: pa.baseAddress!, lda: lda, b: pb.baseAddress!, ldb: ldb, beta: t.beta, c: pc.baseAddress!, ldc: ldc)
                            } else {
                                sgemm(transposeA: t.transposeA, transposeB: t.transposeB, m: t.m, n: t.n, k: t.k, alpha: t.alpha,
                                      a: pa.baseAddress!, lda: lda, b: pb.baseAddress!, ldb: ldb, beta: t.beta, c: pc.baseAddress!, ldc: ldc)
                            }
                        }
                    }
                }
            }
            let expected = Self.referenceProduct(transposeA: t.transposeA, transposeB: t.transposeB, m: t.m, n: t.n, k: t.k, alpha: t.alpha,
                                                 a: a, lda: lda, b: b, ldb: ldb, beta: t.beta, c: c0, ldc: ldc)
            return (t, c, expected)
        }
    }

    func testEmulatedProductsEqualTheDefinitionBitForBit() {
        for level in Self.emulatedLevels {
            for (t, result, expected) in products(.emulated(level)) {
                // Every element, including the columns past n (ldc padding) that must stay untouched.
                XCTAssertEqual(result.map(\.bitPattern), expected.map(\.bitPattern), "\(level.name): \(t)")
            }
        }
    }

    /// Inputs at rounding's edges go through every code's packers as the definition rounds them:
    /// the dropped half exactly a tie, just below or above one, all ones (a carry into the
    /// exponent), zero; exponents from subnormal (→ ±0, or up to the smallest normal) to 2.
    func testEmulatedProductsRoundEdgeValuesAsTheDefinition() {
        let lowHalves: [UInt32] = [0x8000, 0x7fff, 0x8001, 0xffff, 0x0000]
        let exponents: [UInt32] = [0, 1, 2, 120, 126, 127, 128]
        let edge: (inout SeededRandom) -> Float = { rng in
            let r = rng.next()
            let sign = UInt32(truncatingIfNeeded: r & 1) << 31
            let exponent = exponents[Int((r >> 1) % UInt64(exponents.count))] << 23
            let high = UInt32(truncatingIfNeeded: r >> 8) & 0x7f_0000  // the 7 mantissa bits bfloat16 keeps
            let low = (r >> 40) % 6 == 5 ? UInt32(truncatingIfNeeded: r >> 16) & 0xffff : lowHalves[Int((r >> 40) % 6)]
            return Float(bitPattern: sign | exponent | high | low)
        }
        for level in Self.emulatedLevels {
            for (t, result, expected) in products(.emulated(level), input: edge) {
                XCTAssertEqual(result.map(\.bitPattern), expected.map(\.bitPattern), "\(level.name): \(t)")
            }
        }
    }

    /// A weight packed while `PackedWeights.during` runs is kept alive until it returns, so a later
    /// tensor cannot take its memory or its identity and be given its packed copy: products by a
    /// new temporary weight each time give the products without the cache.
    func testPackedWeightsAreNotMistakenForALaterTensor() {
        let level = Self.widestEmulated
        MatrixProducts.with(bf16: .emulated(level)) {
            let x = Tensor(shape: [2, 8], values: (0..<16).map { Float($0) * 0.1 })
            let weights = (0..<20).map { trial in (0..<24).map { Float($0 * 3 + trial) * 0.01 } }
            let expected = weights.map { linear(x, Tensor(shape: [3, 8], values: $0)).scalars }
            let got = PackedWeights.during { weights.map { linear(x, Tensor(shape: [3, 8], values: $0)).scalars } }
            XCTAssertEqual(got, expected)
            XCTAssertEqual(PackedWeights.lastPackings, weights.count)
        }
    }

    /// Each element is one dot product in a fixed order, so splitting the product over threads
    /// (rows or columns) cannot change a bit.
    func testThreadSplitDoesNotChangeBF16Products() {
        let level = Self.widestEmulated
        // Large enough for parallelSgemm to split: by rows (B packed once, shared) and by columns.
        let split = [false, true].flatMap { transposeA in
            [false, true].flatMap { transposeB in
                [Case(m: 203, n: 50, k: 41, transposeA: transposeA, transposeB: transposeB, alpha: 1, beta: 0),
                 Case(m: 20, n: 301, k: 64, transposeA: transposeA, transposeB: transposeB, alpha: 0.5, beta: 1)]
            }
        }
        for (t, result, expected) in products(.emulated(level), threads: 2, parallel: true, cases: split) {
            XCTAssertEqual(result.map(\.bitPattern), expected.map(\.bitPattern), "\(t)")
        }
    }

    /// vdpbf16ps itself, where the CPU has it: the same definition. The instruction rounds each
    /// multiply-add once (Intel's description) and flushes subnormal partial sums, which these
    /// inputs never reach; the tolerance only covers a processor that sums a pair differently.
    func testNativeProductsFollowTheDefinition() throws {
        guard case .success(.native) = BF16Implementation.chosen(cpu: .current, level: .current, emulation: nil) else {
            throw XCTSkip("this CPU (\(CPUFeatures.current.modelName)) has no AVX512-BF16 at kernel level \(KernelLevel.current.name)")
        }
        var exact = 0, total = 0
        for (t, result, expected) in products(.native) {
            for (r, e) in zip(result, expected) {
                total += 1
                if r.bitPattern == e.bitPattern { exact += 1 }
                XCTAssertEqual(r, e, accuracy: 1e-4 * max(1, abs(e)), "\(t)")
            }
        }
        print("native bf16 products: \(exact) of \(total) elements bit-equal to the definition")
    }

    /// `linear` under bf16: the forward product and both backward products see rounded inputs,
    /// so a value bf16 cannot hold is visibly rounded, where fp32 keeps it.
    func testLinearForwardAndBackwardUseBF16() {
        let level = Self.widestEmulated
        let x = Tensor(shape: [1, 2], values: [1 + 0x1p-10, 2], requiresGrad: true)
        let w = Tensor(shape: [2, 2], values: [1, 0x1p-12, 3, 1], requiresGrad: true)
        MatrixProducts.with(bf16: .emulated(level)) {
            let tape = Tape()
            let y = tape.record { linear(x, w) }
            // y = [x0·w00 + x1·w01, x0·w10 + x1·w11] with x0 rounded to 1 and w01 to 2⁻¹².
            XCTAssertEqual(y.scalars, [1 + 2 * 0x1p-12, 3 + 2])
            let loss = tape.record { sum(mul(y, Tensor(shape: [1, 2], values: [1 + 0x1p-9, 1]))) }
            tape.backward(from: loss)
            // dx = dy · W with dy0 = 1 + 2⁻⁹ rounded to 1; dW = dyᵀ · x with x0 rounded to 1.
            XCTAssertEqual(x.gradScalars, [1 + 3, 0x1p-12 + 1])
            XCTAssertEqual(w.gradScalars, [1, 2, 1, 2])
        }
        // fp32 keeps the small parts.
        let y32 = linear(x, w)
        XCTAssertEqual(y32.scalars[0], (1 + 0x1p-10) + 2 * 0x1p-12)
    }
}
