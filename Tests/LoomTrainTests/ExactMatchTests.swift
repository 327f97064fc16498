import XCTest
import Foundation
import LoomData
import LoomEval
import LoomTokenizer
@testable import LoomTrain

/// Held-out evaluation: the greedy exact match and the sampled accuracy check the answers the
/// model really gives, and the sampled one is reproducible from its seed.
final class ExactMatchTests: XCTestCase {
    let prompts = (0..<12).map { "what is \($0) plus one?" }

    func testGreedyAccuracyChecksTheGreedyAnswers() throws {
        let directory = try AlignmentTestModel.make(seed: 21, standardDeviation: 0.3)
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try LlamaModel.load(directory: directory)
        let tokenizer = try ByteLevelBPETokenizer(contentsOf: directory.appendingPathComponent("tokenizer.json"))
        let greedy = sampleAnswers(model: model, tokenizer: tokenizer, prompts: prompts, samples: 0, seed: 0).map { $0[0] }
        // The model's own greedy answers as the reference: every one is right …
        var examples = zip(prompts, greedy).map { PromptExample(prompt: $0, answer: $1) }
        var result = exactMatchAccuracy(model: model, tokenizer: tokenizer, prompts: examples, format: .chat)
        XCTAssertEqual(result.correct, prompts.count)
        XCTAssertEqual(result.samples.map(\.response), greedy)
        // … and with the answers of two prompts changed, exactly those two are wrong.
        examples[3].answer = "certainly not this"
        examples[7].answer = "nor this"
        result = exactMatchAccuracy(model: model, tokenizer: tokenizer, prompts: examples, format: .chat)
        XCTAssertEqual(result.correct, prompts.count - 2)
        XCTAssertEqual(result.samples.indices.filter { !result.samples[$0].correct }, [3, 7])
        XCTAssertEqual(result.accuracy, Double(prompts.count - 2) / Double(prompts.count), accuracy: 1e-12)
        // Per group: prompts 0–5 are "low" (3 is wrong), 6–10 "high" (7 is wrong), 11 has no group.
        let groups: [String?] = (0..<prompts.count).map { $0 < 6 ? "low" : $0 < 11 ? "high" : nil }
        XCTAssertEqual(result.accuracyByGroup(groups), ["low": 5.0 / 6.0, "high": 4.0 / 5.0])
    }

    func testSampledAccuracyIsReproducibleFromItsSeed() throws {
        let directory = try AlignmentTestModel.make(seed: 22, standardDeviation: 0.3)
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try LlamaModel.load(directory: directory)
        let tokenizer = try ByteLevelBPETokenizer(contentsOf: directory.appendingPathComponent("tokenizer.json"))
        // One answer per prompt sampled with seed 5 becomes the reference answer.
        let drawn = sampleAnswers(model: model, tokenizer: tokenizer, prompts: prompts, greedy: false, samples: 1, seed: 5, maxTokens: 6)
        let examples = zip(prompts, drawn).map { PromptExample(prompt: $0, answer: $1[0]) }
        let same = sampledExactMatch(model: model, tokenizer: tokenizer, prompts: examples, samples: 1, seed: 5, maxTokens: 6)
        XCTAssertEqual(same.correct, Array(repeating: 1, count: prompts.count))
        XCTAssertEqual(same.accuracy, 1)
        // Another seed draws other answers from this high-entropy random model.
        let other = sampledExactMatch(model: model, tokenizer: tokenizer, prompts: examples, samples: 1, seed: 6, maxTokens: 6)
        XCTAssertLessThan(other.accuracy, 1)
        XCTAssertEqual(other, sampledExactMatch(model: model, tokenizer: tokenizer, prompts: examples, samples: 1, seed: 6, maxTokens: 6))
        // With more samples the first one is still the seed-5 draw: every prompt has a right answer
        // among its three (pass@3 = 1), and at least one in three answers is right.
        let three = sampledExactMatch(model: model, tokenizer: tokenizer, prompts: examples, samples: 3, seed: 5, maxTokens: 6)
        XCTAssertTrue(three.correct.allSatisfy { $0 >= 1 })
        XCTAssertEqual(three.passAt(3), 1)
        XCTAssertGreaterThanOrEqual(three.accuracy, 1.0 / 3.0 - 1e-12)
        XCTAssertEqual(three.passAt(1), three.accuracy, accuracy: 1e-12)
    }

    /// pass@k with Chen et al.'s estimator, against counts worked by hand: with n = 4 samples,
    /// c right: pass@1 = c/4, pass@2 = 1 − C(4−c, 2)/C(4, 2), pass@4 = [c > 0].
    func testPassAtKMatchesTheCombinatorialFormula() {
        let graded = SampledExactMatch(correct: [0, 1, 2, 4], samplesPerPrompt: 4)
        XCTAssertEqual(graded.accuracy, 7.0 / 16.0, accuracy: 1e-12)
        XCTAssertEqual(graded.passAt(1), 7.0 / 16.0, accuracy: 1e-12)
        // c = 0: 0; c = 1: 1 − 3/6; c = 2: 1 − 1/6; c = 4: 1.
        XCTAssertEqual(graded.passAt(2), (0 + 0.5 + 5.0 / 6.0 + 1) / 4, accuracy: 1e-12)
        // k = 3: c = 1 → 1 − C(3,3)/C(4,3) = 3/4; c = 2 → 1 (fewer than 3 wrong answers).
        XCTAssertEqual(graded.passAt(3), (0 + 0.75 + 1 + 1) / 4, accuracy: 1e-12)
        XCTAssertEqual(graded.passAt(4), 3.0 / 4.0, accuracy: 1e-12)
    }

    /// The paired difference: the point estimate counts the problems only one model solves, and
    /// the bootstrap interval holds 0 for a small difference and excludes it for a large one.
    func testPairedDifferenceAndItsInterval() {
        func result(_ correct: [Bool]) -> ExactMatchResult {
            ExactMatchResult(correct: correct.filter { $0 }.count, total: correct.count,
                             samples: correct.indices.map { .init(prompt: "p\($0)", answer: "a", response: correct[$0] ? "a" : "b", correct: correct[$0]) })
        }
        let baseline = (0..<400).map { $0 % 2 == 0 }   // 50 %
        // Same answers: no difference, a zero-width interval.
        let same = result(baseline).difference(from: result(baseline))
        XCTAssertEqual(same, PairedDifference(difference: 0, low: 0, high: 0, onlyBaseline: 0, onlyThis: 0))
        // 3 problems fixed, 1 broken: +0.5 points, not told apart from 0 on 400 problems.
        var small = baseline
        for i in [1, 3, 5] { small[i] = true }
        small[0] = false
        let d = result(small).difference(from: result(baseline), seed: 4)
        XCTAssertEqual(d.difference, 2.0 / 400, accuracy: 1e-12)
        XCTAssertEqual(d.onlyBaseline, 1)
        XCTAssertEqual(d.onlyThis, 3)
        XCTAssertLessThanOrEqual(d.low, 0)
        XCTAssertGreaterThan(d.high, d.difference)
        XCTAssertEqual(d, result(small).difference(from: result(baseline), seed: 4), "seeded")
        // 60 problems fixed: +15 points, the interval well above 0 and around the estimate
        // (binomial standard error of the mean delta ≈ √(60/400)/20 ≈ 1.9 points).
        var large = baseline
        for i in stride(from: 1, to: 121, by: 2) { large[i] = true }
        let big = result(large).difference(from: result(baseline), seed: 4)
        XCTAssertEqual(big.difference, 0.15, accuracy: 1e-12)
        XCTAssertGreaterThan(big.low, 0.10)
        XCTAssertLessThan(big.high, 0.20)
        XCTAssertLessThan(big.low, 0.15)
        XCTAssertGreaterThan(big.high, 0.15)
    }
}
