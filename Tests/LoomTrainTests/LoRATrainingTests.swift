import XCTest
import Foundation
import LoomData
import LoomInference
import LoomTokenizer
@testable import LoomTrain

/// LoRA through the stages: the base stays bit-identical and carries no optimizer state, the
/// adapters learn, a run resumes exactly, its output loads as a model, and DPO/GRPO with LoRA
/// use the frozen base as their reference.
final class LoRATrainingTests: XCTestCase {
    func sftData() throws -> URL {
        try AlignmentTestModel.write((0..<24).map { i in
            SFTDataset.jsonLine(SFTExample(messages: [ChatMessage(role: "user", content: "question \(i): what is \(i) plus one?"),
                                                      ChatMessage(role: "assistant", content: i % 2 == 0 ? "yes" : "no")]))
        }, "lora-sft")
    }

    func sftOptions(model: URL, data: URL, out: URL, steps: Int, rank: Int = 4, resume: Bool = false) -> SFTOptions {
        var o = SFTOptions(model: model, data: [data], output: out)
        o.validationFraction = 0.1
        o.resume = resume
        o.settings.steps = steps
        o.settings.batchSize = 4
        o.settings.learningRate = 2e-2
        o.settings.minLearningRate = 2e-2
        o.settings.warmupSteps = 0
        o.settings.evalInterval = 0
        o.settings.checkpointInterval = 10
        o.settings.logInterval = 1000
        o.settings.threads = 2
        o.settings.lora = LoRASettings(rank: rank, alpha: 8, dropout: 0.1)
        return o
    }

    func bits(_ store: ParameterStore) -> [UInt32] {
        store.values.pointer.withMemoryRebound(to: UInt32.self, capacity: store.count) { Array(UnsafeBufferPointer(start: $0, count: store.count)) }
    }

    /// One LoRA step by hand, as StageRun sets it up: the base's bits do not change, only the
    /// adapters move, and the optimizer's moments are the size of the adapters.
    func testALoRAStepLeavesTheBaseBitIdentical() throws {
        let directory = try AlignmentTestModel.make()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (model, _) = try ModelDirectory.load(directory, heads: .languageModel)
        var settings = StageSettings()
        settings.lora = LoRASettings(rank: 2)
        let trainable = try attachLoRAIfRequested(settings, to: model, baseModel: directory)
        XCTAssertTrue(trainable === model.adapters!.parameters)
        XCTAssertTrue(model.parameters.isFrozen)
        let optimizer = AdamW(parameters: trainable, hyperparameters: AdamW.Hyperparameters(weightDecay: 0.1))
        XCTAssertEqual(optimizer.firstMoment.count, trainable.count)
        XCTAssertLessThan(trainable.count * 10, model.parameters.count)
        let baseBefore = bits(model.parameters), adaptersBefore = bits(trainable)
        let tokens: [Int32] = [5, 9, 14, 3, 22, 7, 1, 30], targets: [Int32] = [9, 14, 3, 22, 7, 1, 30, 2]
        for _ in 0..<3 {
            trainable.zeroGradients()
            let tape = Tape()
            let loss = tape.record { model.languageModelLoss(tokens: tokens, targets: targets, batch: 2, sequence: 4) }
            tape.backward(from: loss)
            clipGradientNorm(trainable, maxNorm: 1)
            optimizer.update(learningRate: 1e-2)
        }
        XCTAssertEqual(bits(model.parameters), baseBefore, "a LoRA step must not touch the base weights")
        XCTAssertNotEqual(bits(trainable), adaptersBefore)
        // The B matrices moved away from zero (A alone would leave the output unchanged).
        XCTAssertTrue(trainable.entries.filter { $0.name.hasSuffix("lora_B.weight") }.contains { $0.tensor.scalars.contains { $0 != 0 } })
    }

    func testLoRASFTLearnsWritesPEFTFilesAndResumesExactly() throws {
        let model = try AlignmentTestModel.make(), data = try sftData()
        let a = AlignmentTestModel.temporary("lora-sft-a"), b = AlignmentTestModel.temporary("lora-sft-b")
        defer { for u in [model, data, a, b] { try? FileManager.default.removeItem(at: u) } }
        let baseBytes = try Data(contentsOf: model.appendingPathComponent("model.safetensors"))
        let summary = try SFTTrainer(options: sftOptions(model: model, data: data, out: a, steps: 20)).run()
        XCTAssertEqual(summary.steps, 20)
        // The output is a PEFT adapter directory (no copy of the base), and the base is untouched.
        for name in ["adapter_config.json", "adapter_model.safetensors", "tokenizer.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: a.appendingPathComponent(name).path), name)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: a.appendingPathComponent("model.safetensors").path))
        XCTAssertEqual(try Data(contentsOf: model.appendingPathComponent("model.safetensors")), baseBytes)
        // The checkpoint's optimizer state is the adapters' size.
        let checkpoint = CheckpointStore(runDirectory: a, keep: 2).latest()!
        let moments = try SafeTensors.header(checkpoint.appendingPathComponent(Checkpoint.optimizerFile)).tensors
        let adapterCount = LoRAAdapters.layout(settings: LoRASettings(rank: 4), configuration: try LlamaConfiguration.load(model.appendingPathComponent("config.json")), scoreHead: false)
            .reduce(0) { $0 + $1.shape.reduce(1, *) }
        XCTAssertEqual(moments["exp_avg"]?.shape, [adapterCount])
        // The adapter directory loads as a model (base + adapter merged) and the answers' loss fell.
        let tokenizer = try ModelDirectory.loadTokenizer(model)
        func answerLoss(_ directory: URL) throws -> Float {
            let (m, _) = try ModelDirectory.load(directory)
            let examples = try SFTDataset.load(data).examples.map { tokenizeChat($0, tokenizer: tokenizer, maxLength: 64) }
            let batch = paddedBatch(examples.map(\.ids), targetMasks: examples.map(\.assistantMask), padID: Int32(tokenizer.padID ?? tokenizer.endOfTextID))
            return withoutGradients { sftLoss(logits: m.logits(tokens: batch.tokens, batch: examples.count, sequence: batch.length), targets: batch.targets).item }
        }
        XCTAssertLessThan(try answerLoss(a), 0.7 * (try answerLoss(model)))
        // 10 steps, then resume to 20 (dropout masks included): the same adapters.
        try SFTTrainer(options: sftOptions(model: model, data: data, out: b, steps: 10)).run()
        try SFTTrainer(options: sftOptions(model: model, data: data, out: b, steps: 20, resume: true)).run()
        XCTAssertEqual(try Data(contentsOf: a.appendingPathComponent("adapter_model.safetensors")),
                       try Data(contentsOf: b.appendingPathComponent("adapter_model.safetensors")))
        // The LoRA settings are part of what a resume checks.
        XCTAssertThrowsError(try SFTTrainer(options: sftOptions(model: model, data: data, out: b, steps: 30, rank: 2, resume: true)).run()) {
            XCTAssertTrue("\($0)".contains("lora.rank: 4 → 2"), "\($0)")
        }
        // A rank larger than the layers is an error naming the flag.
        let c = AlignmentTestModel.temporary("lora-sft-c")
        defer { try? FileManager.default.removeItem(at: c) }
        XCTAssertThrowsError(try SFTTrainer(options: sftOptions(model: model, data: data, out: c, steps: 1, rank: 40)).run()) {
            XCTAssertTrue("\($0)".contains("--lora-rank 40"), "\($0)")
        }
    }

    func testLoRADPOUsesTheFrozenBaseAsReferenceAndLearns() throws {
        let model = try AlignmentTestModel.make()
        let data = try AlignmentTestModel.write((0..<40).map {
            PreferenceDataset.jsonLine(PreferencePair(prompt: "question \($0): what is \($0) plus one?", chosen: "yes", rejected: "no"))
        }, "lora-prefs")
        let out = AlignmentTestModel.temporary("lora-dpo")
        defer { for u in [model, data, out] { try? FileManager.default.removeItem(at: u) } }
        var o = DPOOptions(model: model, data: [data], output: out)
        o.settings.steps = 20
        o.settings.batchSize = 4
        o.settings.learningRate = 2e-2
        o.settings.minLearningRate = 2e-2
        o.settings.warmupSteps = 0
        o.settings.evalInterval = 0
        o.settings.logInterval = 1000
        o.settings.threads = 2
        o.settings.lora = LoRASettings(rank: 4)
        o.validationFraction = 0.25
        o.beta = 0.5
        o.sftWeight = 0
        let summary = try DPOTrainer(options: o).run()
        let losses = MetricsLog.read(out.appendingPathComponent("metrics.jsonl")).compactMap { $0["loss"] as? Double }
        XCTAssertEqual(losses.first!, log(2), accuracy: 1e-4, "adapters start at zero: policy = reference")
        XCTAssertEqual(summary.heldout.accuracy, 1)
        XCTAssertTrue(LoRAAdapters.isAdapterOnlyDirectory(out))
    }

    /// GRPO with LoRA: the reference is a second model object over the same (frozen) weights,
    /// rollouts come from the adapted policy, and the run learns a synthetic reward. (The reward
    /// is one a frozen final norm and embedding let adapters reach: the first token's embedding
    /// points along a fixed direction; an "even token id" reward needs the embedding itself.)
    func testLoRAGRPOLearnsWithTheSharedBaseAsReference() throws {
        let model = try AlignmentTestModel.make(standardDeviation: 0.5)
        let prompts = try AlignmentTestModel.write((0..<16).map {
            PromptDataset.jsonLine(PromptExample(prompt: "question \($0): what is \($0) plus one?", answer: String($0 + 1)))
        }, "lora-prompts")
        let out = AlignmentTestModel.temporary("lora-grpo")
        defer { for u in [model, prompts, out] { try? FileManager.default.removeItem(at: u) } }
        let base = try LlamaModel.load(directory: model)
        let hidden = base.configuration.hiddenSize
        let alongDirection = (0..<base.configuration.vocabularySize).map { base.embedTokens.data[$0 * hidden] > 0 }
        var o = GRPOOptions(model: model, prompts: [prompts], output: out)
        o.settings.steps = 30
        o.settings.batchSize = 4
        o.settings.learningRate = 1e-2
        o.settings.minLearningRate = 1e-2
        o.settings.evalInterval = 0
        o.settings.logInterval = 1000
        o.settings.threads = 2
        o.settings.seed = 99
        o.settings.lora = LoRASettings(rank: 8)
        o.groupSize = 8
        o.maxNewTokens = 3
        o.klBeta = 0.01
        let trainer = GRPOTrainer(options: o)
        trainer.reward = { _, tokens, _, _ in tokens.map { alongDirection[Int($0.first ?? 0)] ? 1 : 0 } }
        let summary = try trainer.run()
        let rewards = trainer.history.map(\.meanReward)
        XCTAssertLessThan(rewards.prefix(2).reduce(0, +) / 2, 0.85, "rewards \(rewards)")
        XCTAssertGreaterThan(rewards.suffix(10).reduce(0, +) / 10, 0.9, "rewards \(rewards)")
        XCTAssertTrue(summary.kl.isFinite && summary.kl > 0, "the adapted policy drifts from the shared base: KL \(summary.kl)")
        XCTAssertTrue(LoRAAdapters.isAdapterOnlyDirectory(out))

        let (policy, _) = try ModelDirectory.load(model, heads: .languageModel)
        var settings = StageSettings(); settings.lora = LoRASettings(rank: 2)
        let reference = frozenReference(of: policy, settings: settings)
        XCTAssertTrue(reference.parameters === policy.parameters, "LoRA's reference shares the weights")
        settings.lora = nil
        XCTAssertFalse(frozenReference(of: policy, settings: settings).parameters === policy.parameters)
    }

    /// A LoRA reward model trains the adapters and a copy of the score head (PEFT's
    /// modules_to_save), writes a SEQ_CLS adapter, and loads back as a reward model.
    func testLoRARewardModelLearnsAndLoadsAsAnAdapter() throws {
        let data = AlignmentTestModel.temporary("lora-rm-data"), heldout = AlignmentTestModel.temporary("lora-rm-heldout")
        let out = AlignmentTestModel.temporary("lora-rm")
        defer { for u in [data, heldout, out] { try? FileManager.default.removeItem(at: u) } }
        func write(_ url: URL, count: Int, offset: Int) throws {
            let lines = (0..<count).map { i -> String in
                let w = RewardModelTests.words[(i + offset) % RewardModelTests.words.count]
                return PreferenceDataset.jsonLine(PreferencePair(prompt: "What about \(w)?", chosen: "good \(w)", rejected: "bad \(w)"))
            }
            try (lines.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
        }
        try write(data, count: 40, offset: 0)
        try write(heldout, count: 12, offset: 3)
        var o = RewardOptions(model: RewardModelTests.sftModel, data: [data], output: out)
        o.heldout = [heldout]
        o.settings.steps = 30
        o.settings.batchSize = 6
        o.settings.learningRate = 1e-2
        o.settings.minLearningRate = 1e-2
        o.settings.warmupSteps = 2
        o.settings.evalInterval = 10
        o.settings.checkpointInterval = 0
        o.settings.logInterval = 1000
        o.settings.threads = 2
        o.settings.seed = 11
        o.settings.lora = LoRASettings(rank: 4)
        let summary = try RewardTrainer(options: o).run()
        XCTAssertGreaterThan(summary.heldoutPairAccuracy, 0.9)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("adapter_config.json"))) as! [String: Any]
        XCTAssertEqual(config["task_type"] as? String, "SEQ_CLS")
        XCTAssertEqual(config["modules_to_save"] as? [String], ["score"])
        let header = try SafeTensors.header(out.appendingPathComponent("adapter_model.safetensors")).tensors
        XCTAssertNotNil(header["base_model.model.score.weight"])
        let reward = try RewardModel.load(directory: out)
        XCTAssertTrue(reward.model.heads.contains(.score))
        XCTAssertEqual(Double(reward.offset), summary.rewardMean, accuracy: 1e-6)
    }

    /// PPO with LoRA on the policy: the loop runs, starts at zero KL against the shared base,
    /// and writes the policy's adapter.
    func testLoRAPPORunsAgainstTheSharedBase() throws {
        let out = AlignmentTestModel.temporary("lora-ppo")
        defer { try? FileManager.default.removeItem(at: out) }
        var o = PPOOptions(policy: PPOTests.fixture.appendingPathComponent("policy"), rewardModel: PPOTests.fixture.appendingPathComponent("reward"),
                           prompts: PPOTests.fixture.appendingPathComponent("prompts.jsonl"), output: out)
        o.settings.steps = 2
        o.settings.batchSize = 4
        o.settings.threads = 1
        o.settings.evalInterval = 0
        o.settings.logInterval = 1000
        o.maxNewTokens = 5
        o.minibatches = 2
        o.settings.lora = LoRASettings(rank: 4)
        o.settings.learningRate = 1e-2
        o.settings.minLearningRate = 1e-2
        let summary = try PPOTrainer(options: o).run()
        XCTAssertEqual(summary.iterations, 2)
        let records = MetricsLog.read(out.appendingPathComponent("metrics.jsonl"))
        XCTAssertEqual(records[0]["kl"] as! Double, 0, accuracy: 1e-6)
        XCTAssertNotEqual(records[1]["kl"] as! Double, 0)
        XCTAssertTrue(LoRAAdapters.isAdapterOnlyDirectory(out))
        XCTAssertNoThrow(try ModelDirectory.load(out))
    }
}
