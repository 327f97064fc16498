import XCTest
@testable import LoomTensor

/// Forward values against hand-computed or naive references (a wrong forward with a
/// matching wrong backward would pass the gradient checks).
final class ForwardValueTests: XCTestCase {
    func testMatmulMatchesNaive() {
        let a = random([3, 4], seed: 1), b = random([4, 5], seed: 2)
        let c = matmul(a, b)
        for i in 0..<3 { for j in 0..<5 {
            var s: Float = 0
            for k in 0..<4 { s += a.data[i * 4 + k] * b.data[k * 5 + j] }
            XCTAssertEqual(c.data[i * 5 + j], s, accuracy: 1e-5)
        } }
    }

    func testSoftmaxCrossEntropyValue() {
        let logits = Tensor(shape: [2, 3], values: [1, 2, 3, 0, 0, 0])
        let loss = crossEntropy(logits: logits, targets: [2, 0]).item
        let expected = ((log(exp(1) + exp(2) + exp(3)) - 3) + log(3.0)) / 2
        XCTAssertEqual(Double(loss), expected, accuracy: 1e-6)
    }

    func testAttentionMatchesNaiveCausalSoftmax() {
        let shape = AttentionShape(batch: 1, sequence: 5, heads: 2, kvHeads: 1, headDim: 3)
        let q = random([5, 6], seed: 3), k = random([5, 3], seed: 4), v = random([5, 3], seed: 5)
        let out = causalAttention(q: q, k: k, v: v, shape: shape)
        for h in 0..<2 { for i in 0..<5 {
            var scores = [Double]()
            for j in 0...i {
                var s = 0.0
                for d in 0..<3 { s += Double(q.data[i * 6 + h * 3 + d]) * Double(k.data[j * 3 + d]) }
                scores.append(s / 3.0.squareRoot())
            }
            let m = scores.max()!, e = scores.map { Foundation.exp($0 - m) }, z = e.reduce(0, +)
            for d in 0..<3 {
                var o = 0.0
                for j in 0...i { o += e[j] / z * Double(v.data[j * 3 + d]) }
                XCTAssertEqual(Double(out.data[i * 6 + h * 3 + d]), o, accuracy: 1e-5)
            }
        } }
    }

    func testSoftmaxEntropyValues() {
        let logits = Tensor(shape: [2, 4], values: [0, 0, 0, 0, 2, 0, -1, 0.5])
        let h = softmaxEntropy(logits: logits)
        XCTAssertEqual(Double(h[0]), log(4.0), accuracy: 1e-6)
        let e = [2.0, 0, -1, 0.5].map { Foundation.exp($0) }, z = e.reduce(0, +)
        XCTAssertEqual(Double(h[1]), -e.map { $0 / z * log($0 / z) }.reduce(0, +), accuracy: 1e-5)
    }

    func testRMSNormValue() {
        let x = Tensor(shape: [1, 2], values: [3, 4])
        let y = rmsNorm(x, weight: Tensor(shape: [2], values: [1, 2]), eps: 0)
        let rms = Float((12.5).squareRoot())
        XCTAssertEqual(y.scalars[0], 3 / rms, accuracy: 1e-6)
        XCTAssertEqual(y.scalars[1], 8 / rms, accuracy: 1e-6)
    }

    func testSeededRandomIsReproducible() {
        var a = SeededRandom(seed: 42), b = SeededRandom(seed: 42), c = SeededRandom(seed: 43)
        let xs = (0..<5).map { _ in a.next() }
        XCTAssertEqual(xs, (0..<5).map { _ in b.next() })
        XCTAssertNotEqual(xs, (0..<5).map { _ in c.next() })
        // A fixed value pins the generator across platforms and releases.
        var d = SeededRandom(seed: 0)
        XCTAssertEqual(d.next(), 11091344671253066420)
    }

    func testNoGradientScopeRecordsNothing() {
        let w = random([2, 2], seed: 6)
        w.requiresGrad = true
        let tape = Tape()
        let y = tape.record { withoutGradients { linear(w, w) } }
        XCTAssertEqual(tape.count, 0)
        XCTAssertFalse(y.requiresGrad)
    }

    func testReshapedViewSharesGradient() {
        let x = random([2, 3], seed: 7)
        x.requiresGrad = true
        let tape = Tape()
        let loss = tape.record { sum(scale(x.reshaped([6]), 2)) }
        tape.backward(from: loss)
        XCTAssertEqual(x.gradScalars!, [Float](repeating: 2, count: 6))
    }
}
