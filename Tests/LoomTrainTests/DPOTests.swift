import XCTest
import Foundation
import LoomData
import LoomTokenizer
@testable import LoomTrain

/// A tiny chat model directory (random weights, a BPE tokenizer trained on a few lines) for
/// the preference and RL stage tests.
enum AlignmentTestModel {
    static let texts = (0..<40).map { "question \($0): what is \($0) plus one? answer yes or no, red or blue, left or right." }

    static func make(seed: UInt64 = 7, standardDeviation: Float = 0.1) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loom-align-model-\(UUID())")
        let tokenizer = ByteLevelBPETokenizer.train(texts: texts, vocabSize: 300)
        let configuration = LlamaConfiguration(vocabularySize: tokenizer.vocabularySize, hiddenSize: 32, intermediateSize: 64,
                                               layerCount: 2, headCount: 4, kvHeadCount: 2, maxPositionEmbeddings: 64)
        let model = LlamaModel(configuration: configuration)
        model.initializeWeights(seed: seed, standardDeviation: standardDeviation)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try model.save(directory: directory)
        try tokenizer.save(to: directory)
        return directory
    }

    static func temporary(_ name: String) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("loom-\(name)-\(UUID())")
    }

    static func write(_ lines: [String], _ name: String) throws -> URL {
        let url = temporary(name).appendingPathExtension("jsonl")
        try lines.joined(separator: "\n").write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    static func weightsEqual(_ a: URL, _ b: URL) throws -> Bool {
        let x = try LlamaModel.load(directory: a), y = try LlamaModel.load(directory: b)
        return x.parameters.count == y.parameters.count
            && memcmp(x.parameters.values.pointer, y.parameters.values.pointer, x.parameters.count * 4) == 0
    }
}

final class DPOTests: XCTestCase {
    /// Easy pairs: the chosen answer is always "yes", the rejected one always "no".
    func preferenceFile(count: Int = 40) throws -> URL {
        try AlignmentTestModel.write((0..<count).map {
            PreferenceDataset.jsonLine(PreferencePair(prompt: "question \($0): what is \($0) plus one?", chosen: "yes", rejected: "no"))
        }, "prefs")
    }

    func options(model: URL, data: URL, out: URL, steps: Int) -> DPOOptions {
        var o = DPOOptions(model: model, data: [data], output: out)
        o.settings.steps = steps
        o.settings.batchSize = 4
        o.settings.learningRate = 3e-3
        o.settings.minLearningRate = 3e-3
        o.settings.warmupSteps = 0
        o.settings.evalInterval = 0
        o.settings.checkpointInterval = 3
        o.settings.logInterval = 1000
        o.settings.threads = 2
        o.validationFraction = 0.25
        o.beta = 0.5
        o.sftWeight = 0
        return o
    }

    func metrics(_ out: URL, _ key: String) -> [Double] {
        MetricsLog.read(out.appendingPathComponent("metrics.jsonl")).compactMap { $0[key] as? Double }
    }

    func testReferenceLogProbsAreComputedOnceAndFirstLossIsLog2() throws {
        let model = try AlignmentTestModel.make(), data = try preferenceFile()
        let short = AlignmentTestModel.temporary("dpo-short"), long = AlignmentTestModel.temporary("dpo-long")
        defer { for u in [model, data, short, long] { try? FileManager.default.removeItem(at: u) } }
        let one = DPOTrainer(options: options(model: model, data: data, out: short, steps: 1))
        let oneSummary = try one.run()
        let six = DPOTrainer(options: options(model: model, data: data, out: long, steps: 6))
        let sixSummary = try six.run()
        // 30 training and 10 held-out pairs in chunks of 16: 2 + 1 reference forwards, however many steps.
        XCTAssertEqual(oneSummary.trainPairs, 30)
        XCTAssertEqual(oneSummary.heldoutPairs, 10)
        XCTAssertEqual(one.referenceForwards, 3)
        XCTAssertEqual(six.referenceForwards, 3)
        XCTAssertEqual(sixSummary.referenceForwards, 3)
        // Policy = reference at step 0: every implicit reward is 0 and the loss is log 2.
        let losses = metrics(long, "loss")
        XCTAssertEqual(losses.count, 6)
        XCTAssertEqual(losses[0], log(2), accuracy: 1e-4)
        XCTAssertEqual(metrics(long, "accuracy")[0], 0, "ties are not wins")
    }

    func testPreferenceAccuracyRisesOnEasyPairs() throws {
        let model = try AlignmentTestModel.make(), data = try preferenceFile()
        let out = AlignmentTestModel.temporary("dpo-easy")
        defer { for u in [model, data, out] { try? FileManager.default.removeItem(at: u) } }
        var o = options(model: model, data: data, out: out, steps: 20)
        o.settings.evalInterval = 10
        let summary = try DPOTrainer(options: o).run()
        let heldoutAccuracy = metrics(out, "val_accuracy")
        XCTAssertEqual(heldoutAccuracy.count, 2)
        XCTAssertEqual(summary.heldout.accuracy, 1, "held-out prompts: chosen 'yes' should beat 'no' after training")
        XCTAssertGreaterThan(summary.heldout.margin, 0.5)
        XCTAssertLessThan(summary.trainLoss, 0.3)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("dpo_summary.json").path))
    }

    func testChosenNLLTermKeepsChosenLogProbsUp() throws {
        let model = try AlignmentTestModel.make(), data = try preferenceFile()
        let plain = AlignmentTestModel.temporary("dpo-plain"), rpo = AlignmentTestModel.temporary("dpo-rpo")
        defer { for u in [model, data, plain, rpo] { try? FileManager.default.removeItem(at: u) } }
        _ = try DPOTrainer(options: options(model: model, data: data, out: plain, steps: 10)).run()
        var o = options(model: model, data: data, out: rpo, steps: 10)
        o.sftWeight = 1
        _ = try DPOTrainer(options: o).run()
        // Step 1 (policy = reference): the loss is log 2 plus the chosen responses' mean NLL.
        XCTAssertGreaterThan(metrics(rpo, "loss")[0], log(2) + 0.5)
        XCTAssertGreaterThan(metrics(rpo, "chosen_reward").last!, metrics(plain, "chosen_reward").last!)
    }

    func testIPOAndRankingsRun() throws {
        let model = try AlignmentTestModel.make()
        let rankings = try AlignmentTestModel.write((0..<12).map {
            PreferenceDataset.jsonLine(try! RankedResponses(prompt: "question \($0)?", responses: ["no", "yes", "red"], ranking: [1, 2, 0]))
        }, "rankings")
        let out = AlignmentTestModel.temporary("dpo-ipo")
        defer { for u in [model, rankings, out] { try? FileManager.default.removeItem(at: u) } }
        var o = options(model: model, data: rankings, out: out, steps: 2)
        o.kind = .ipo
        o.validationFraction = 0
        o.rankingPairs = .bestWorst
        XCTAssertEqual(try DPOTrainer(options: o).run().trainPairs, 12)
        o.rankingPairs = .all
        o.output = AlignmentTestModel.temporary("dpo-ipo-all")
        defer { try? FileManager.default.removeItem(at: o.output) }
        XCTAssertEqual(try DPOTrainer(options: o).run().trainPairs, 36)
    }

    func testResumeEqualsStraightRun() throws {
        let model = try AlignmentTestModel.make(), data = try preferenceFile()
        let straight = AlignmentTestModel.temporary("dpo-straight"), resumed = AlignmentTestModel.temporary("dpo-resumed")
        defer { for u in [model, data, straight, resumed] { try? FileManager.default.removeItem(at: u) } }
        _ = try DPOTrainer(options: options(model: model, data: data, out: straight, steps: 6)).run()
        _ = try DPOTrainer(options: options(model: model, data: data, out: resumed, steps: 3)).run()
        var o = options(model: model, data: data, out: resumed, steps: 6)
        o.resume = true
        _ = try DPOTrainer(options: o).run()
        XCTAssertEqual(metrics(straight, "loss"), metrics(resumed, "loss"))
        XCTAssertTrue(try AlignmentTestModel.weightsEqual(straight, resumed), "3 steps + resume to 6 should equal 6 straight steps")
    }
}
