import XCTest
import Foundation
import LoomData
import LoomTokenizer
@testable import LoomTrain

/// PPO end to end on tiny random models: the loop runs, logs what InstructGPT / PPO-max
/// practice asks for, starts at zero KL, and resumes exactly.
final class PPOTests: XCTestCase {
    /// A tiny policy (AlignmentTestModel) and a reward model made from it with a random score head.
    static let fixture: URL = {
        let root = ProcessFixtures.removedAtExit(AlignmentTestModel.temporary("ppo-fixture"))
        let policy = try! AlignmentTestModel.make(seed: 3)
        try! FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        try! FileManager.default.moveItem(at: policy, to: root.appendingPathComponent("policy"))
        let reward = try! LlamaModel.load(directory: root.appendingPathComponent("policy"), heads: .score)
        var rng = SeededRandom(seed: 77)
        reward.scoreWeight!.fillNormal(std: 0.5, rng: &rng)
        try! reward.save(directory: root.appendingPathComponent("reward"))
        try! ByteLevelBPETokenizer(contentsOf: root.appendingPathComponent("policy/tokenizer.json")).save(to: root.appendingPathComponent("reward"))
        let prompts = (0..<12).map { PromptExample(prompt: "what is \($0) plus one?", answer: "\($0 + 1)") }
        try! PromptDataset.write(prompts, to: root.appendingPathComponent("prompts.jsonl"))
        return root
    }()

    func options(_ out: URL, steps: Int, resume: Bool = false) -> PPOOptions {
        var o = PPOOptions(policy: Self.fixture.appendingPathComponent("policy"), rewardModel: Self.fixture.appendingPathComponent("reward"),
                           prompts: Self.fixture.appendingPathComponent("prompts.jsonl"), output: out)
        o.settings.steps = steps
        o.settings.batchSize = 4
        o.settings.learningRate = 1e-3
        o.settings.minLearningRate = 1e-3
        o.settings.threads = 1
        o.settings.evalInterval = 0
        o.settings.logInterval = 1000
        o.maxNewTokens = 5
        o.minibatches = 2
        o.resume = resume
        return o
    }

    func testLoopLogsEveryFigureAndStartsAtZeroKL() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("loom-ppo-\(UUID())")
        defer { try? FileManager.default.removeItem(at: out) }
        let summary = try PPOTrainer(options: options(out, steps: 2)).run()
        XCTAssertEqual(summary.iterations, 2)
        let records = MetricsLog.read(out.appendingPathComponent("metrics.jsonl"))
        XCTAssertEqual(records.count, 2)
        // Two iterations: both windows of the summary are the mean over both.
        let rewards = records.compactMap { $0["reward"] as? Double }
        XCTAssertEqual(summary.firstMeanReward, (rewards[0] + rewards[1]) / 2, accuracy: 1e-9)
        XCTAssertEqual(summary.meanReward, summary.firstMeanReward, accuracy: 1e-12)
        for key in ["reward", "kl", "entropy", "response_length", "clip_fraction", "value_loss", "explained_variance", "sft_perplexity", "kl_coef"] {
            XCTAssertNotNil(records[0][key], key)
        }
        // The first rollout comes from the SFT weights themselves.
        XCTAssertEqual(records[0]["kl"] as! Double, 0, accuracy: 1e-6)
        XCTAssertNotEqual(records[1]["kl"] as! Double, 0)
        // The checkpoint holds the policy, the critic and PPO's statistics; the run directory
        // itself is the policy, a plain model directory.
        let checkpoint = try XCTUnwrap(CheckpointStore(runDirectory: out).latest())
        for file in ["model.safetensors", "optimizer.safetensors", "trainer_state.json", "ppo_state.json", "critic/model.safetensors", "critic/optimizer.safetensors"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: checkpoint.appendingPathComponent(file).path), file)
        }
        for file in ["model.safetensors", "config.json", "tokenizer.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(file).path), file)
        }
        for file in ["optimizer.safetensors", "trainer_state.json", "ppo_state.json", "critic"] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent(file).path), file)
        }
    }

    func testResumeContinuesExactly() throws {
        let straight = FileManager.default.temporaryDirectory.appendingPathComponent("loom-ppo-straight-\(UUID())")
        let resumed = FileManager.default.temporaryDirectory.appendingPathComponent("loom-ppo-resumed-\(UUID())")
        defer { try? FileManager.default.removeItem(at: straight); try? FileManager.default.removeItem(at: resumed) }
        try PPOTrainer(options: options(straight, steps: 3)).run()
        try PPOTrainer(options: options(resumed, steps: 1)).run()
        try PPOTrainer(options: options(resumed, steps: 3, resume: true)).run()
        XCTAssertTrue(try AlignmentTestModel.weightsEqual(straight, resumed))
        let rewards = { (dir: URL) in MetricsLog.read(dir.appendingPathComponent("metrics.jsonl")).compactMap { $0["reward"] as? Double } }
        XCTAssertEqual(rewards(straight), rewards(resumed))
    }

    func testCriticWarmupFitsOnlyTheCritic() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("loom-ppo-warmup-\(UUID())")
        defer { try? FileManager.default.removeItem(at: out) }
        var o = options(out, steps: 2)
        o.criticWarmupIterations = 2
        try PPOTrainer(options: o).run()
        // Two warm-up iterations: the policy is still the SFT model, the critic has moved away
        // from the reward model, and the log says which iterations updated the policy.
        XCTAssertTrue(try AlignmentTestModel.weightsEqual(out, Self.fixture.appendingPathComponent("policy")))
        let critic = try LlamaModel.load(directory: XCTUnwrap(CheckpointStore(runDirectory: out).latest()).appendingPathComponent("critic"), heads: .score)
        let reward = try LlamaModel.load(directory: Self.fixture.appendingPathComponent("reward"), heads: .score)
        XCTAssertNotEqual(critic.scoreWeight!.scalars, reward.scoreWeight!.scalars)
        var records = MetricsLog.read(out.appendingPathComponent("metrics.jsonl"))
        XCTAssertEqual(records.compactMap { $0["policy_updated"] as? Int }, [0, 0])
        // A third iteration (resumed) updates the policy.
        o.settings.steps = 3
        o.resume = true
        try PPOTrainer(options: o).run()
        XCTAssertFalse(try AlignmentTestModel.weightsEqual(out, Self.fixture.appendingPathComponent("policy")))
        records = MetricsLog.read(out.appendingPathComponent("metrics.jsonl"))
        XCTAssertEqual(records.compactMap { $0["policy_updated"] as? Int }, [0, 0, 1])
    }

    func testPretrainingMixNeedsShards() {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("loom-ppo-ptx-\(UUID())")
        var o = options(out, steps: 1)
        o.ptxData = FileManager.default.temporaryDirectory.appendingPathComponent("no-such-shards")
        XCTAssertThrowsError(try PPOTrainer(options: o).run())
    }
}
