import XCTest
import Foundation
import LoomData
import LoomInference
import LoomTokenizer
@testable import LoomTrain

/// The reward-model stage on a tiny random model and an easy synthetic preference: answers
/// with "good" beat answers with "fine", which beat answers with "bad".
final class RewardModelTests: XCTestCase {
    static let words = ["apple", "river", "stone", "cloud", "tiger", "lamp", "green", "seven", "paper", "music",
                        "table", "north", "bread", "chair", "light", "ocean", "sugar", "wind", "glass", "honey"]

    /// A tiny "SFT model" directory: random weights, language-model head, trained tokenizer.
    static let sftModelPath = FileManager.default.temporaryDirectory.appendingPathComponent("loom-rm-sft-\(getpid())")
    static let sftModel: URL = {
        let dir = sftModelPath
        try? FileManager.default.removeItem(at: dir)
        let corpus = words.map { "What about \($0)? good \($0) fine \($0) bad \($0)" }.joined(separator: "\n")
        let tokenizer = ByteLevelBPETokenizer.train(texts: [corpus], vocabSize: 320)
        let config = LlamaConfiguration(vocabularySize: tokenizer.vocabularySize, hiddenSize: 32, intermediateSize: 64, layerCount: 2,
                                        headCount: 4, kvHeadCount: 2, maxPositionEmbeddings: 48)
        let model = LlamaModel(configuration: config, heads: .languageModel)
        model.initializeWeights(seed: 7)
        try! model.save(directory: dir)
        try! tokenizer.save(to: dir)
        return dir
    }()

    override class func tearDown() {
        try? FileManager.default.removeItem(at: sftModelPath)
        super.tearDown()
    }

    func temporary(_ name: String) -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("loom-rm-\(name)-\(UUID())")
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// Rankings (K = 3) and pairs, mixed in one file.
    func writeData(_ url: URL, count: Int, offset: Int) throws {
        var lines: [String] = []
        for i in 0..<count {
            let w = Self.words[(i + offset) % Self.words.count]
            if i % 3 == 0 {
                lines.append(PreferenceDataset.jsonLine(PreferencePair(prompt: "What about \(w)?", chosen: "good \(w)", rejected: "bad \(w)")))
            } else {
                // Responses shuffled so the ranking is not the identity.
                lines.append(PreferenceDataset.jsonLine(try RankedResponses(prompt: "What about \(w)?", responses: ["bad \(w)", "good \(w)", "fine \(w)"],
                                                                              ranking: [1, 2, 0])))
            }
        }
        try (lines.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
    }

    func options(out: URL, data: URL, heldout: URL?, steps: Int) -> RewardOptions {
        var o = RewardOptions(model: Self.sftModel, data: [data], output: out)
        if let heldout { o.heldout = [heldout] }
        o.settings.steps = steps
        o.settings.batchSize = 6
        o.settings.learningRate = 3e-3
        o.settings.minLearningRate = 3e-4
        o.settings.warmupSteps = 2
        o.settings.evalInterval = 10
        o.settings.checkpointInterval = 0
        o.settings.logInterval = 1000
        o.settings.threads = 2
        o.settings.seed = 11
        return o
    }

    func metric(_ out: URL, _ key: String) -> [Double] {
        MetricsLog.read(out.appendingPathComponent("metrics.jsonl")).compactMap { $0[key] as? Double }
    }

    func testLearnsEasyPreferenceAndNormalizesDemonstrations() throws {
        let data = temporary("data.jsonl"), heldout = temporary("heldout.jsonl"), out = temporary("out")
        try writeData(data, count: 40, offset: 0)
        try writeData(heldout, count: 12, offset: 3)
        let summary = try RewardTrainer(options: options(out: out, data: data, heldout: heldout, steps: 30)).run()

        let losses = metric(out, "loss")
        XCTAssertEqual(losses.count, 30)
        XCTAssertLessThan(losses.suffix(5).reduce(0, +) / 5, losses.prefix(5).reduce(0, +) / 5 - 0.2, "loss did not decrease: \(losses)")
        // The zero-initialised head ties every pair (accuracy 0); training orders them.
        let accuracies = metric(out, "val_accuracy")
        XCTAssertGreaterThanOrEqual(accuracies.count, 3)
        XCTAssertGreaterThanOrEqual(summary.heldoutPairAccuracy, 0.9, "held-out accuracy \(accuracies)")
        XCTAssertGreaterThan(summary.heldoutMeanMargin, 0)
        XCTAssertTrue(summary.finished)
        XCTAssertEqual(summary.steps, 30)

        // The directory is a sequence-classification model with its normalisation.
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("config.json"))) as! [String: Any]
        XCTAssertEqual(config["architectures"] as? [String], ["LlamaForSequenceClassification"])
        let normalization = try XCTUnwrap(RewardModel.readNormalization(out))
        XCTAssertTrue(normalization.normalized)
        XCTAssertEqual(Double(normalization.rewardMean), summary.rewardMean, accuracy: 1e-6)
        XCTAssertNotEqual(normalization.rewardMean, 0)

        // Through RewardModel.score, the demonstrations (best-ranked training answers) average 0.
        let rm = try RewardModel.load(directory: out)
        XCTAssertEqual(rm.offset, normalization.rewardMean)
        let tokenizer = try ByteLevelBPETokenizer(contentsOf: out.appendingPathComponent("tokenizer.json"))
        let encoder = ChatEncoder(tokenizer: tokenizer)
        let records = try RewardRecord.load(data).records
        let prompts = records.map { encoder.prompt($0.record.prompt) }
        let best = records.map { r -> [Int32] in
            switch r.record {
            case .pair(let p): return encoder.response(p.chosen)
            case .ranking(let k): return encoder.response(k.ordered[0])
            }
        }
        let pad = Int32(tokenizer.padID ?? tokenizer.endOfTextID)
        let rewards = rm.score(prompts: prompts, responses: best, padID: pad, maxLength: 48)
        XCTAssertEqual(rewards.reduce(0, +) / Float(rewards.count), 0, accuracy: 1e-4)
        // Batching and order do not change a score.
        rm.batchSize = 1
        let single = rm.score(prompts: Array(prompts.prefix(5)), responses: Array(best.prefix(5)), padID: pad, maxLength: 48)
        for (a, b) in zip(single, rewards.prefix(5)) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        // Worse answers score below zero.
        let bad = records.map { encoder.response("bad " + $0.record.prompt.dropFirst("What about ".count).dropLast()) }
        XCTAssertLessThan(rm.score(prompts: prompts, responses: bad, padID: pad, maxLength: 48).reduce(0, +), 0)
    }

    func testDemonstrationsFileDefinesZero() throws {
        let data = temporary("data.jsonl"), demos = temporary("demos.jsonl"), out = temporary("out")
        try writeData(data, count: 24, offset: 0)
        let examples = Self.words.prefix(8).map { SFTExample(messages: [ChatMessage(role: "user", content: "What about \($0)?"),
                                                                          ChatMessage(role: "assistant", content: "fine \($0)")]) }
        try SFTDataset.write(Array(examples), to: demos)
        var o = options(out: out, data: data, heldout: nil, steps: 6)
        o.demonstrations = demos
        let summary = try RewardTrainer(options: o).run()
        XCTAssertEqual(summary.heldoutPrompts, 2)   // a seeded 10 % split
        XCTAssertEqual(summary.trainPrompts, 22)
        let rm = try RewardModel.load(directory: out)
        let tokenizer = try ByteLevelBPETokenizer(contentsOf: out.appendingPathComponent("tokenizer.json"))
        let encoder = ChatEncoder(tokenizer: tokenizer)
        let rewards = rm.score(prompts: examples.map { encoder.prompt($0.messages[0].content) },
                               responses: examples.map { encoder.response($0.messages[1].content) },
                               padID: Int32(tokenizer.padID ?? tokenizer.endOfTextID), maxLength: 48)
        XCTAssertEqual(rewards.reduce(0, +) / Float(rewards.count), 0, accuracy: 1e-4)
        XCTAssertEqual(try RewardModel.readNormalization(out)?.references, 8)
        // A hand-written reward_config.json needs only reward_mean; "normalized": false turns it off.
        try #"{"reward_mean": 0.25}"#.write(to: out.appendingPathComponent(RewardModel.configFile), atomically: true, encoding: .utf8)
        XCTAssertEqual(try RewardModel.load(directory: out).offset, 0.25)
        try #"{"reward_mean": 0.25, "normalized": false}"#.write(to: out.appendingPathComponent(RewardModel.configFile), atomically: true, encoding: .utf8)
        XCTAssertEqual(try RewardModel.load(directory: out).offset, 0)
        // An SFT model is not a reward model.
        XCTAssertThrowsError(try RewardModel.load(directory: Self.sftModel)) { XCTAssertTrue("\($0)".contains("score.weight"), "\($0)") }
    }

    /// One forward pass over all K responses of every prompt, `rewardModelLoss`, equals scoring
    /// each response alone and averaging −log σ(r_better − r_worse) over each prompt's C(K, 2)
    /// pairs, then over prompts; and equals `rankingRewardLoss` with the pairs as K = 2 groups.
    func testKWiseBatchEqualsAveragingOverPairs() throws {
        let model = try LlamaModel.load(directory: Self.sftModel, heads: .score)
        var rng = SeededRandom(seed: 3)
        model.scoreWeight!.fillNormal(std: 0.5, rng: &rng)
        let tokenizer = try ByteLevelBPETokenizer(contentsOf: Self.sftModel.appendingPathComponent("tokenizer.json"))
        let encoder = ChatEncoder(tokenizer: tokenizer)
        let pad = Int32(tokenizer.padID ?? tokenizer.endOfTextID)
        let groups = [
            RankedGroup(prompt: encoder.prompt("What about river?"), responses: ["good river", "fine", "bad river bad", "x"].map(encoder.response), margin: nil, isPair: false),
            RankedGroup(prompt: encoder.prompt("What about lamp?"), responses: ["good lamp", "bad"].map(encoder.response), margin: nil, isPair: true),
            RankedGroup(prompt: encoder.prompt("stone?"), responses: ["good stone", "fine stone", "bad"].map(encoder.response), margin: nil, isPair: false),
        ]
        var prompts: [[Int32]] = [], responses: [[Int32]] = []
        for g in groups { for r in g.responses { prompts.append(g.prompt); responses.append(r) } }
        let batch = PromptResponseBatch(prompts: prompts, responses: responses, padID: pad, maxLength: 48)
        let scores = model.scores(hidden: model.hiddenStates(tokens: batch.tokens, batch: batch.sequences, sequence: batch.length),
                                  rows: batch.lastTokenRows)
        let loss = rewardModelLoss(scores: scores, groups: groups, useMargins: false, centering: 0).item

        let scorer = RewardModel(model: model)
        scorer.batchSize = 1
        let alone = scorer.score(prompts: prompts, responses: responses, padID: pad, maxLength: 48)
        for (a, b) in zip(alone, scores.scalars) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        var manual = 0.0, offset = 0
        for g in groups {
            var sum = 0.0, pairs = 0
            for i in 0..<g.responses.count {
                for j in (i + 1)..<g.responses.count {
                    let d = Double(alone[offset + i]) - Double(alone[offset + j])
                    sum += log(1 + exp(-d)); pairs += 1
                }
            }
            manual += sum / Double(pairs)
            offset += g.responses.count
        }
        manual /= Double(groups.count)
        XCTAssertEqual(Double(loss), manual, accuracy: 1e-5)
        let asGroups = rankingRewardLoss(scores: scores, groups: [[0, 1, 2, 3], [4, 5], [6, 7, 8]]).item
        XCTAssertEqual(loss, asGroups, accuracy: 1e-6)

        // Pairs alone with margins and centering are TRL's loss (pairwiseRewardLoss).
        let pairScores = Tensor(shape: [4], values: [0.3, -0.2, 1.1, 0.4])
        let pairGroups = [RankedGroup(prompt: [1], responses: [[2], [3]], margin: 0.5, isPair: true),
                          RankedGroup(prompt: [1], responses: [[2], [3]], margin: nil, isPair: true)]
        let trl = pairwiseRewardLoss(chosen: Tensor(shape: [2], values: [0.3, 1.1]), rejected: Tensor(shape: [2], values: [-0.2, 0.4]),
                                     margin: [0.5, 0], centeringCoefficient: 0.01).item
        XCTAssertEqual(rewardModelLoss(scores: pairScores, groups: pairGroups, useMargins: true, centering: 0.01).item, trl, accuracy: 1e-6)
    }

    func testResumeContinuesExactly() throws {
        let data = temporary("data.jsonl"), straight = temporary("straight"), resumed = temporary("resumed")
        try writeData(data, count: 30, offset: 0)
        var o = options(out: straight, data: data, heldout: nil, steps: 8)
        o.settings.evalInterval = 4
        _ = try RewardTrainer(options: o).run()
        o.output = resumed
        o.stopAfterStep = 4
        let partial = try RewardTrainer(options: o).run()
        XCTAssertFalse(partial.finished)
        XCTAssertNil(try RewardModel.readNormalization(resumed))
        o.stopAfterStep = nil
        o.resume = true
        let finished = try RewardTrainer(options: o).run()
        XCTAssertTrue(finished.finished)
        XCTAssertEqual(metric(straight, "loss").count, 8)
        XCTAssertEqual(metric(straight, "loss"), metric(resumed, "loss"))
        let a = try LlamaModel.load(directory: straight), b = try LlamaModel.load(directory: resumed)
        XCTAssertEqual(memcmp(a.parameters.values.pointer, b.parameters.values.pointer, a.parameters.count * 4), 0,
                       "weights after 8 straight steps differ from 4 + resume to 8")
        XCTAssertEqual(try RewardModel.readNormalization(straight), try RewardModel.readNormalization(resumed))
        XCTAssertEqual(try Checkpoint.loadState(XCTUnwrap(CheckpointStore(runDirectory: resumed).latest())).stage, "reward")
    }

    func testMalformedLineNamesFileAndLine() throws {
        let bad = temporary("bad.jsonl")
        try """
            {"prompt": "a", "chosen": "b", "rejected": "c"}
            {"prompt": "a", "responses": ["b", "c", "d"], "ranking": [0, 0, 1]}
            """.write(to: bad, atomically: true, encoding: .utf8)
        var o = options(out: temporary("out"), data: bad, heldout: nil, steps: 1)
        XCTAssertThrowsError(try RewardTrainer(options: o).run()) { error in
            XCTAssertTrue("\(error)".contains("\(bad.path):2:"), "\(error)")
            XCTAssertTrue("\(error)".contains("ranking"), "\(error)")
        }
        try """
            {"prompt": "a", "chosen": "b", "rejected": "c", "margin": "big"}
            """.write(to: bad, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try RewardRecord.load(bad)) { error in
            XCTAssertTrue("\(error)".contains("\(bad.path):1:") && "\(error)".contains("margin"), "\(error)")
        }
        // Skipping bad lines leaves too little data: a clear error, not a crash.
        o.skipBadLines = true
        XCTAssertThrowsError(try RewardTrainer(options: o).run()) { error in
            XCTAssertTrue("\(error)".contains("need at least 2"), "\(error)")
        }
    }
}
