import XCTest
@testable import LoomTensor

final class OpGradientTests: XCTestCase {
    override func setUp() { Threading.configure(threads: 2) }

    func testLinear() {
        checkGradients("linear", inputs: [random([5, 7], seed: 1), random([3, 7], seed: 2)]) { linear($0[0], $0[1]) }
    }

    func testMatmulAllTranspositions() {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = random(ta ? [2, 4, 3] : [2, 3, 4], seed: 3)
            let b = random(tb ? [2, 5, 4] : [2, 4, 5], seed: 4)
            checkGradients("matmul(tA: \(ta), tB: \(tb))", inputs: [a, b]) { matmul($0[0], $0[1], transposeA: ta, transposeB: tb) }
        }
    }

    func testBinaryOpsWithBroadcasting() {
        let shapes: [[Int]] = [[4, 6], [6], [4, 1], [1]]
        for shape in shapes {
            let a = random([4, 6], seed: 5)
            checkGradients("add \(shape)", inputs: [a, random(shape, seed: 6)]) { add($0[0], $0[1]) }
            checkGradients("sub \(shape)", inputs: [a, random(shape, seed: 7)]) { sub($0[0], $0[1]) }
            checkGradients("mul \(shape)", inputs: [a, random(shape, seed: 8)]) { mul($0[0], $0[1]) }
            // Keep divisors away from zero.
            checkGradients("div \(shape)", inputs: [a, random(shape, seed: 9, std: 0.3, offset: 2)]) { div($0[0], $0[1]) }
        }
    }

    func testMinimumMaximumWhere() {
        let a = random([3, 5], seed: 10), b = random([3, 5], seed: 11)
        checkGradients("minimum", inputs: [a, b]) { minimum($0[0], $0[1]) }
        checkGradients("maximum", inputs: [a, b]) { maximum($0[0], $0[1]) }
        let condition = (0..<15).map { $0 % 3 == 0 }
        checkGradients("where", inputs: [a, b]) { where_(condition, $0[0], $0[1]) }
    }

    func testUnaryOps() {
        let x = random([4, 5], seed: 12)
        checkGradients("exp", inputs: [x]) { exp($0[0]) }
        checkGradients("log", inputs: [random([4, 5], seed: 13, std: 0.2, offset: 1.5)]) { log($0[0]) }
        checkGradients("sigmoid", inputs: [x]) { sigmoid($0[0]) }
        checkGradients("logSigmoid", inputs: [x]) { logSigmoid($0[0]) }
        checkGradients("clamp", inputs: [x]) { clamp($0[0], min: -0.5, max: 0.7) }
        checkGradients("scale", inputs: [x]) { scale($0[0], -2.5) }
        checkGradients("square", inputs: [x]) { square($0[0]) }
    }

    func testReductions() {
        let x = random([3, 4, 5], seed: 14)
        checkGradients("sum", inputs: [x]) { sum($0[0]) }
        checkGradients("mean", inputs: [x]) { mean($0[0]) }
        checkGradients("sumLastAxis", inputs: [x]) { sumLastAxis($0[0]) }
        checkGradients("meanLastAxis", inputs: [x]) { meanLastAxis($0[0]) }
    }

    func testEmbeddingScatterAddsRepeatedIds() {
        let table = random([6, 4], seed: 15)
        checkGradients("embedding", inputs: [table]) { embedding($0[0], ids: [1, 3, 1, 5, 0, 1]) }
    }

    func testGatherRows() {
        checkGradients("gatherRows", inputs: [random([5, 3], seed: 16)]) { gatherRows($0[0], indices: [4, 0, 4]) }
    }

    func testRMSNorm() {
        checkGradients("rmsNorm", inputs: [random([6, 8], seed: 17), random([8], seed: 18, std: 0.2, offset: 1)]) {
            rmsNorm($0[0], weight: $0[1], eps: 1e-5)
        }
    }

    func testRope() {
        let table = RotaryTable(headDim: 8, maxPositions: 16, theta: 10000)
        checkGradients("rope", inputs: [random([6, 16], seed: 19)]) { rope($0[0], table: table, positions: [0, 1, 2, 7, 3, 15]) }
    }

    func testSwiGLU() {
        checkGradients("swiglu", inputs: [random([4, 6], seed: 20), random([4, 6], seed: 21)]) { swiglu(gate: $0[0], up: $0[1]) }
    }

    func testCausalAttentionWithGroupedQueryHeads() {
        // T = 70 crosses the 64-row block boundary; 4 query heads share 2 key/value heads.
        let shape = AttentionShape(batch: 2, sequence: 70, heads: 4, kvHeads: 2, headDim: 4)
        let q = random([140, 16], seed: 22, std: 0.5), k = random([140, 8], seed: 23, std: 0.5), v = random([140, 8], seed: 24)
        checkGradients("attention", inputs: [q, k, v], tolerance: 2e-2) { causalAttention(q: $0[0], k: $0[1], v: $0[2], shape: shape) }
    }

    func testCrossEntropyWithIgnoredTargets() {
        let logits = random([5, 7], seed: 25)
        checkGradients("crossEntropy", inputs: [logits]) { crossEntropy(logits: $0[0], targets: [3, ignoredTarget, 0, 6, ignoredTarget]) }
    }

    func testLogSoftmaxGather() {
        checkGradients("logSoftmaxGather", inputs: [random([4, 9], seed: 26)]) { logSoftmaxGather(logits: $0[0], targets: [8, 0, ignoredTarget, 4]) }
    }

    func testComposedChainAccumulatesIntoSharedInput() {
        // x feeds two branches; its gradient must be the sum of both.
        let x = random([3, 4], seed: 27), w = random([5, 4], seed: 28)
        checkGradients("composed", inputs: [x, w]) { inputs in
            let h = linear(inputs[0], inputs[1])
            return add(mul(sigmoid(h), h), linear(inputs[0], inputs[1]))
        }
    }
}
