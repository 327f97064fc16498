import XCTest
import Foundation
import LoomData
@testable import LoomTrain

final class GRPOTests: XCTestCase {
    func promptFile(count: Int = 16) throws -> URL {
        try AlignmentTestModel.write((0..<count).map {
            PromptDataset.jsonLine(PromptExample(prompt: "question \($0): what is \($0) plus one?", answer: String($0 + 1)))
        }, "prompts")
    }

    func options(model: URL, prompts: URL, out: URL, steps: Int) -> GRPOOptions {
        var o = GRPOOptions(model: model, prompts: [prompts], output: out)
        o.settings.steps = steps
        o.settings.batchSize = 4
        o.settings.learningRate = 1e-2
        o.settings.minLearningRate = 1e-2
        o.settings.evalInterval = 0
        o.settings.checkpointInterval = 4
        o.settings.logInterval = 1000
        o.settings.threads = 2
        o.settings.seed = 99
        o.groupSize = 8
        o.maxNewTokens = 3
        o.klBeta = 0.01
        return o
    }

    /// Synthetic verifiable reward: 1 when the first generated token has an even id.
    static func evenFirstToken(_ prompts: [PromptExample], _ tokens: [[Int32]], _ texts: [String], _ finished: [Bool]) -> [Float] {
        tokens.map { ($0.first ?? 1) % 2 == 0 ? 1 : 0 }
    }

    func testGroupAdvantagesAreNormalisedWithinGroups() {
        let rewards: [Float] = [1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 1]
        let advantages = grpoAdvantages(rewards: rewards, groupSize: 4)
        XCTAssertEqual(advantages.count, 12)
        for g in 0..<3 {
            let group = advantages[(g * 4)..<(g * 4 + 4)]
            XCTAssertEqual(group.reduce(0, +), 0, accuracy: 1e-5)
        }
        XCTAssertEqual(Array(advantages[4..<8]), [0, 0, 0, 0], "equal rewards give no signal")
        XCTAssertGreaterThan(advantages[0], 0)
        XCTAssertLessThan(advantages[1], 0)
    }

    func testSyntheticRewardIncreases() throws {
        let model = try AlignmentTestModel.make(), prompts = try promptFile()
        let out = AlignmentTestModel.temporary("grpo-reward")
        defer { for u in [model, prompts, out] { try? FileManager.default.removeItem(at: u) } }
        let trainer = GRPOTrainer(options: options(model: model, prompts: prompts, out: out, steps: 30))
        trainer.reward = Self.evenFirstToken
        let summary = try trainer.run()
        let rewards = trainer.history.map(\.meanReward)
        XCTAssertEqual(rewards.count, 30)
        let early = rewards.prefix(3).reduce(0, +) / 3, late = rewards.suffix(3).reduce(0, +) / 3
        XCTAssertGreaterThan(late, early + 0.2, "rewards \(rewards)")
        XCTAssertGreaterThan(late, 0.75, "rewards \(rewards)")
        // The summary compares the first and the last ten steps, not two single batches.
        XCTAssertEqual(summary.firstMeanReward, rewards.prefix(10).reduce(0, +) / 10, accuracy: 1e-12)
        XCTAssertEqual(summary.meanReward, rewards.suffix(10).reduce(0, +) / 10, accuracy: 1e-12)
        XCTAssertTrue(summary.kl.isFinite && summary.kl >= 0)
        // Every logged step has the per-step statistics.
        let lines = MetricsLog.read(out.appendingPathComponent("metrics.jsonl"))
        XCTAssertEqual(lines.count, 30)
        for key in ["reward", "accuracy", "kl", "clip_fraction", "response_length", "zero_variance_groups"] {
            XCTAssertNotNil(lines.last?[key], key)
        }
    }

    func testSeededRunsAreIdenticalAndResumeMatches() throws {
        let model = try AlignmentTestModel.make(), prompts = try promptFile()
        let a = AlignmentTestModel.temporary("grpo-a"), b = AlignmentTestModel.temporary("grpo-b"), c = AlignmentTestModel.temporary("grpo-c")
        defer { for u in [model, prompts, a, b, c] { try? FileManager.default.removeItem(at: u) } }
        func run(_ out: URL, steps: Int, resume: Bool = false, updates: Int = 2) throws -> [Double] {
            var o = options(model: model, prompts: prompts, out: out, steps: steps)
            o.resume = resume
            o.updatesPerBatch = updates
            let trainer = GRPOTrainer(options: o)
            trainer.reward = Self.evenFirstToken
            try trainer.run()
            return trainer.history.map(\.meanReward)
        }
        let first = try run(a, steps: 8)
        let second = try run(b, steps: 8)
        XCTAssertEqual(first, second)
        XCTAssertTrue(try AlignmentTestModel.weightsEqual(a, b), "same seed, same weights")
        // Stop at the checkpoint at step 4, resume to 8: the same rollouts and weights.
        let part = try run(c, steps: 4)
        let rest = try run(c, steps: 8, resume: true)
        XCTAssertEqual(part + rest, first)
        XCTAssertTrue(try AlignmentTestModel.weightsEqual(a, c), "4 steps + resume to 8 should equal 8 straight steps")
    }
}
