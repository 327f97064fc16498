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
        XCTAssertEqual(sampledExactMatchAccuracy(model: model, tokenizer: tokenizer, prompts: examples, samples: 1, seed: 5, maxTokens: 6), 1)
        // Another seed draws other answers from this high-entropy random model.
        let other = sampledExactMatchAccuracy(model: model, tokenizer: tokenizer, prompts: examples, samples: 1, seed: 6, maxTokens: 6)
        XCTAssertLessThan(other, 1)
        XCTAssertEqual(other, sampledExactMatchAccuracy(model: model, tokenizer: tokenizer, prompts: examples, samples: 1, seed: 6, maxTokens: 6))
        // With more samples the first one is still the seed-5 draw: at least 1/3 of the answers are right.
        let three = sampledExactMatchAccuracy(model: model, tokenizer: tokenizer, prompts: examples, samples: 3, seed: 5, maxTokens: 6)
        XCTAssertGreaterThanOrEqual(three, 1.0 / 3.0 - 1e-12)
    }
}
