import XCTest
@testable import LoomInference
@testable import LoomTrain

/// The SFT loss computes logits only on the rows that have a target; this holds it to the full
/// computation (every row projected, then masked).
final class AnswerRowsLossTests: XCTestCase {
    /// Loss value and every parameter's gradient of `loss`.
    func lossAndGradients(_ model: LlamaModel, _ loss: () -> Tensor) -> (Float, [Float]) {
        model.parameters.zeroGradients()
        let tape = Tape()
        let l = tape.record(loss)
        tape.backward(from: l)
        return (l.item, Array(UnsafeBufferPointer(start: model.parameters.gradients.pointer, count: model.parameters.count)))
    }

    func assertClose(_ a: [Float], _ b: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        let scale = max(b.map(abs).max() ?? 0, 1e-6)
        let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThan(worst / scale, 1e-5, "\(what): largest difference \(worst) against a largest value \(scale)",
                          file: file, line: line)
        XCTAssertGreaterThan(b.map(abs).max() ?? 0, 0, "\(what): all zero, nothing compared", file: file, line: line)
    }

    func testSFTLossOnAnswerRowsEqualsTheMaskedFullLoss() {
        let model = tinyRandomLlama(vocabulary: 60, seed: 21)
        let sequences = 3, length = 9
        let tokens = (0..<(sequences * length)).map { Int32(($0 * 7 + 3) % 60) }
        // Answers at the ends of the sequences, one sequence with no answer at all.
        var targets = [Int32](repeating: ignoredTarget, count: tokens.count)
        for t in 5..<8 { targets[t] = tokens[t + 1] }
        for t in (2 * length + 3)..<(3 * length - 1) { targets[t] = tokens[t + 1] }
        let full = lossAndGradients(model) {
            sftLoss(logits: model.logits(tokens: tokens, batch: sequences, sequence: length), targets: targets)
        }
        let rows = lossAndGradients(model) {
            sftLoss(model: model, tokens: tokens, targets: targets, batch: sequences, sequence: length)
        }
        XCTAssertEqual(rows.0, full.0, accuracy: 1e-5 * abs(full.0))
        assertClose(rows.1, full.1, "SFT gradients")
    }
}
