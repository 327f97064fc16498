import XCTest
import Foundation
@testable import LoomTrain

/// Two AdamW steps on the Hugging Face reference model must land on the parameters
/// `torch.optim.AdamW` produced (Tests/Reference/make_llama_reference.py).
final class AdamWParityTests: XCTestCase {
    static var referenceDirectory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("LoomNNTests/Reference/llama-tiny")
    }

    func testTwoAdamWStepsMatchTorch() throws {
        Threading.configure(threads: 2)
        let dir = Self.referenceDirectory
        let model = try LlamaModel.load(directory: dir)
        let reference = try SafeTensors.load(dir.appendingPathComponent("reference.safetensors"))
        let ids = reference["input_ids"]!
        let batch = ids.shape[0], sequence = ids.shape[1]
        let tokens = ids.scalars.map { Int32($0) }
        var targets = [Int32](repeating: ignoredTarget, count: tokens.count)
        for b in 0..<batch { for t in 0..<(sequence - 1) { targets[b * sequence + t] = tokens[b * sequence + t + 1] } }

        let optimizer = AdamW(parameters: model.parameters,
                              hyperparameters: .init(beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1))
        var losses: [Float] = []
        for _ in 0..<2 {
            model.parameters.zeroGradients()
            let tape = Tape()
            let loss = tape.record { model.languageModelLoss(tokens: tokens, targets: targets, batch: batch, sequence: sequence) }
            tape.backward(from: loss)
            losses.append(loss.item)
            optimizer.update(learningRate: 1e-2)
        }
        for entry in model.parameters.entries {
            let expected = reference["adam2.\(entry.name)"]!
            var diff = 0.0, norm = 0.0
            for i in 0..<expected.count {
                let d = Double(entry.tensor.data[i]) - Double(expected.data[i])
                diff += d * d
                norm += Double(expected.data[i]) * Double(expected.data[i])
            }
            XCTAssertLessThanOrEqual(diff.squareRoot() / norm.squareRoot(), 1e-5, "\(entry.name) after 2 AdamW steps")
        }
        let expectedLosses = reference["adam.losses"]!.scalars
        XCTAssertEqual(losses[1], expectedLosses[1], accuracy: 1e-5 * expectedLosses[1])
        let final = withoutGradients { model.languageModelLoss(tokens: tokens, targets: targets, batch: batch, sequence: sequence) }
        XCTAssertEqual(final.item, expectedLosses[2], accuracy: 1e-5 * expectedLosses[2])
    }

    func testScheduleWarmsUpThenDecaysToMinimum() {
        let s = LearningRateSchedule(peak: 1, minimum: 0.1, warmupSteps: 10, totalSteps: 110)
        XCTAssertEqual(s.learningRate(at: 0), 0.1, accuracy: 1e-6)
        XCTAssertEqual(s.learningRate(at: 9), 1, accuracy: 1e-6)
        XCTAssertEqual(s.learningRate(at: 60), 0.55, accuracy: 1e-6)   // halfway down the cosine
        XCTAssertEqual(s.learningRate(at: 110), 0.1, accuracy: 1e-6)
    }

    func testClippingScalesToMaxNorm() {
        let store = ParameterStore([("w", [2, 2])])
        for (i, v) in [3, 0, 0, 4].enumerated() { store.gradients.pointer[i] = Float(v) }
        let norm = clipGradientNorm(store, maxNorm: 1)
        XCTAssertEqual(norm, 5, accuracy: 1e-6)
        XCTAssertEqual(store.gradients.pointer[0], 0.6, accuracy: 1e-5)
        XCTAssertEqual(store.gradients.pointer[3], 0.8, accuracy: 1e-5)
    }
}
