import XCTest
import Foundation
import LoomData
@testable import LoomTrain

/// Pretraining end to end on a small prepared corpus: exact resume, atomic checkpoints,
/// and a clear stop on a non-finite loss.
final class PretrainTests: XCTestCase {
    static let corpus: URL = {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("loom-pretrain-test-\(getpid())")
        try? FileManager.default.removeItem(at: root)
        let texts = FileManager.default.temporaryDirectory.appendingPathComponent("loom-pretrain-texts-\(getpid())")
        try! FileManager.default.createDirectory(at: texts, withIntermediateDirectories: true)
        // Varied, non-repeating text so that deduplication keeps every document.
        for d in 0..<40 {
            var lines: [String] = []
            for i in 0..<30 { lines.append("Document \(d) line \(i): the number \(d * 31 + i * 7) follows \(i * i + d) and precedes \((d + 3) * (i + 5)).") }
            try! lines.joined(separator: "\n").write(to: texts.appendingPathComponent("doc\(d).txt"), atomically: true, encoding: .utf8)
        }
        var options = PrepareOptions(inputs: [texts.path], outputDirectory: root)
        options.vocabSize = 300
        options.valFraction = 0.1
        options.showProgress = false
        _ = try! PreparePipeline.run(options, log: { _ in })
        return root
    }()

    func configuration() -> TrainingConfiguration {
        let model = LlamaConfiguration(vocabularySize: 300, hiddenSize: 32, intermediateSize: 64, layerCount: 2,
                                       headCount: 4, kvHeadCount: 2, maxPositionEmbeddings: 32)
        let train = TrainSettings(batchSize: 4, contextLength: 32, steps: 8, learningRate: 3e-3, minLearningRate: 3e-4,
                                  warmupSteps: 2, evalInterval: 4, evalBatches: 2, checkpointInterval: 3, seed: 5)
        return TrainingConfiguration(model: model, train: train)
    }

    func run(_ out: URL, steps: Int, resume: Bool) throws -> PretrainSummary {
        try Pretrainer(options: PretrainOptions(configuration: configuration(), dataDirectory: Self.corpus,
                                                outputDirectory: out, steps: steps, threads: 2, resume: resume,
                                                logInterval: 1000)).run()
    }

    func losses(_ out: URL) -> [Double] {
        MetricsLog.read(out.appendingPathComponent("metrics.jsonl")).compactMap { $0["loss"] as? Double }
    }

    func testResumeContinuesExactly() throws {
        let tmp = FileManager.default.temporaryDirectory
        let straight = tmp.appendingPathComponent("loom-straight-\(UUID())")
        let resumed = tmp.appendingPathComponent("loom-resumed-\(UUID())")
        defer { try? FileManager.default.removeItem(at: straight); try? FileManager.default.removeItem(at: resumed) }
        _ = try run(straight, steps: 8, resume: false)
        _ = try run(resumed, steps: 4, resume: false)
        _ = try run(resumed, steps: 8, resume: true)
        XCTAssertEqual(losses(straight).count, 8)
        XCTAssertEqual(losses(straight), losses(resumed))
        let a = try LlamaModel.load(directory: straight), b = try LlamaModel.load(directory: resumed)
        XCTAssertEqual(memcmp(a.parameters.values.pointer, b.parameters.values.pointer, a.parameters.count * 4), 0,
                       "weights after 8 straight steps differ from 4 + resume to 8")
        let state = try Checkpoint.loadState(resumed)
        XCTAssertEqual(state.step, 8)
        // The loss went down on this easy corpus.
        XCTAssertLessThan(losses(straight).last!, losses(straight).first!)
        for file in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "optimizer.safetensors", "trainer_state.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: straight.appendingPathComponent(file).path), file)
        }
    }

    func testInterruptedCheckpointIsDetectedOnResume() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("loom-interrupted-\(UUID())")
        defer { try? FileManager.default.removeItem(at: out) }
        _ = try run(out, steps: 3, resume: false)
        // Simulate a save killed after the weights of a later step were renamed into place.
        let model = try LlamaModel.load(directory: out)
        try model.save(directory: out, metadata: ["step": "99"])
        XCTAssertThrowsError(try run(out, steps: 6, resume: true)) { error in
            XCTAssertTrue("\(error)".contains("interrupted"), "\(error)")
        }
    }

    func testMetricsLogWritesNonFiniteValuesAsNull() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loom-metrics-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let log = try MetricsLog(directory: directory)
        try log.log(["step": 1, "loss": Double.nan, "kl": Float.infinity, "reward": 0.5])
        try log.log(["step": 2, "loss": 1.25])
        let records = MetricsLog.read(log.url)
        XCTAssertEqual(records.count, 2)   // a NaN used to drop the whole record
        XCTAssertTrue(records[0]["loss"] is NSNull)
        XCTAssertTrue(records[0]["kl"] is NSNull)
        XCTAssertEqual(records[0]["reward"] as? Double, 0.5)
        XCTAssertEqual(records[1]["loss"] as? Double, 1.25)
    }

    func testWindowMeans() {
        let (first, last) = windowMeans([1, 2, 3, 4, 5], window: 2)
        XCTAssertEqual(first, 1.5)
        XCTAssertEqual(last, 4.5)
        XCTAssertEqual(windowMeans([1, 3], window: 10).first, 2)     // shorter than the window
        XCTAssertEqual(windowMeans([1, 3], window: 10).last, 2)
        XCTAssertTrue(windowMeans([]).first.isNaN)
    }

    func testResumeWithoutCheckpointFailsClearly() {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("loom-nothing-\(UUID())")
        XCTAssertThrowsError(try run(out, steps: 2, resume: true)) { error in
            XCTAssertTrue("\(error)".contains("trainer_state.json"), "\(error)")
        }
    }

    func testNonFiniteLossStopsWithMessage() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("loom-nan-\(UUID())")
        defer { try? FileManager.default.removeItem(at: out) }
        var config = configuration()
        config.train.learningRate = 1e30
        config.train.minLearningRate = 1e30
        config.train.gradClip = 0
        XCTAssertThrowsError(try Pretrainer(options: PretrainOptions(configuration: config, dataDirectory: Self.corpus,
                                                                    outputDirectory: out, steps: 8, threads: 1, logInterval: 1000)).run()) { error in
            XCTAssertTrue("\(error)".contains("stopping"), "\(error)")
        }
    }

    func testValidationReportsBitsPerByte() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("loom-bpb-\(UUID())")
        defer { try? FileManager.default.removeItem(at: out) }
        let summary = try run(out, steps: 4, resume: false)
        let v = try XCTUnwrap(summary.validation)
        XCTAssertGreaterThan(v.bytes, v.tokens)   // BPE tokens cover more than one byte on average
        XCTAssertEqual(v.bitsPerByte, v.loss * Double(v.tokens) / log(2.0) / Double(v.bytes), accuracy: 1e-9)
    }
}
