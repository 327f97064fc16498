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

    /// DAPO dynamic sampling: groups whose rewards are all equal never reach the update. Prompts
    /// with an even number always get reward 1 (flat groups); odd ones the even-first-token reward
    /// (a spread, from this high-entropy model). Each step samples rounds of 4 prompts until 4
    /// groups with a spread are found (at most 4 rounds), and updates on exactly those.
    func testDynamicSamplingDropsGroupsWithoutSpread() throws {
        let model = try AlignmentTestModel.make(), prompts = try promptFile()
        let out = AlignmentTestModel.temporary("grpo-dynamic"), flat = AlignmentTestModel.temporary("grpo-flat")
        defer { for u in [model, prompts, out, flat] { try? FileManager.default.removeItem(at: u) } }
        var o = options(model: model, prompts: prompts, out: out, steps: 6)
        o.dynamicSampling = true
        o.maxSamplingRounds = 4
        let trainer = GRPOTrainer(options: o)
        var spreadPerCall: [Int] = [], evenPromptsPerCall: [Int] = []
        trainer.reward = { examples, tokens, texts, finished in
            let rewards = zip(examples, Self.evenFirstToken(examples, tokens, texts, finished)).map { example, r -> Float in
                Int(example.answer!)! % 2 == 1 ? 1 : r   // answer = number + 1: odd answer ⇔ even number
            }
            spreadPerCall.append(stride(from: 0, to: rewards.count, by: 8).filter { Set(rewards[$0..<($0 + 8)]).count > 1 }.count)
            evenPromptsPerCall.append(stride(from: 0, to: examples.count, by: 8).filter { Int(examples[$0].answer!)! % 2 == 1 }.count)
            return rewards
        }
        try trainer.run()
        XCTAssertEqual(trainer.history.count, 6)
        var call = 0
        for step in trainer.history {
            let calls = step.groupsSampled / 4
            XCTAssertTrue((1...4).contains(calls), "rounds \(calls)")
            let spread = spreadPerCall[call..<(call + calls)].reduce(0, +)
            XCTAssertEqual(step.groupsUsed, min(4, spread), "the update holds the groups with a spread, at most a batch")
            // Sampling stops as soon as 4 groups with a spread are found.
            if calls > 1 { XCTAssertLessThan(spreadPerCall[call..<(call + calls - 1)].reduce(0, +), 4) }
            XCTAssertEqual(step.zeroVarianceGroups, Double(step.groupsSampled - spread) / Double(step.groupsSampled), accuracy: 1e-12)
            call += calls
        }
        XCTAssertEqual(call, spreadPerCall.count)
        XCTAssertGreaterThan(evenPromptsPerCall.reduce(0, +), 0, "flat prompts were sampled, and dropped")
        let logged = MetricsLog.read(out.appendingPathComponent("metrics.jsonl"))
        XCTAssertEqual(logged.last?["groups_used"] as? Int, trainer.history.last?.groupsUsed)

        // When every group is flat there is nothing to learn: no update, the weights stay put
        // (without dynamic sampling AdamW's weight decay would still move them).
        var allFlat = options(model: model, prompts: prompts, out: flat, steps: 2)
        allFlat.dynamicSampling = true
        allFlat.maxSamplingRounds = 2
        let idle = GRPOTrainer(options: allFlat)
        idle.reward = { examples, _, _, _ in examples.map { _ in 1 } }
        try idle.run()
        XCTAssertEqual(idle.history.map(\.groupsUsed), [0, 0])
        XCTAssertEqual(idle.history.map(\.groupsSampled), [8, 8])
        XCTAssertTrue(try AlignmentTestModel.weightsEqual(model, flat), "no group to learn from, no step")
    }
}
