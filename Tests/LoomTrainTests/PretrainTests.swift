import XCTest
import Foundation
import LoomData
@testable import LoomTrain

/// Pretraining end to end on a small prepared corpus: exact resume, atomic checkpoints,
/// and a clear stop on a non-finite loss.
final class PretrainTests: XCTestCase {
    /// A configuration file for `loom pretrain` runs in tests: a 2-layer model of width 32 on
    /// `corpus`'s 300-token vocabulary, batch 4 × 32.
    static func writeSmallConfig(_ name: String, steps: Int, evalInterval: Int, checkpointInterval: Int) throws -> URL {
        let config = AlignmentTestModel.temporary(name).appendingPathExtension("json")
        try """
        {"model": {"vocab_size": 300, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                   "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 32},
         "train": {"batch_size": 4, "context_length": 32, "steps": \(steps), "learning_rate": 0.003, "min_learning_rate": 0.0003,
                   "warmup_steps": 2, "eval_interval": \(evalInterval), "eval_batches": 2, "checkpoint_interval": \(checkpointInterval), "seed": 5}}
        """.write(to: config, atomically: true, encoding: .utf8)
        return config
    }

    static let corpus: URL = {
        let root = ProcessFixtures.removedAtExit(FileManager.default.temporaryDirectory.appendingPathComponent("loom-pretrain-test-\(getpid())"))
        try? FileManager.default.removeItem(at: root)
        let texts = ProcessFixtures.removedAtExit(FileManager.default.temporaryDirectory.appendingPathComponent("loom-pretrain-texts-\(getpid())"))
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
        let latest = try XCTUnwrap(CheckpointStore(runDirectory: resumed).latest())
        XCTAssertEqual(latest.lastPathComponent, "step-00000008")
        XCTAssertEqual(try Checkpoint.loadState(latest).step, 8)
        // The loss went down on this easy corpus.
        XCTAssertLessThan(losses(straight).last!, losses(straight).first!)
        // The run directory is a plain model directory; resume state lives in the checkpoints.
        for file in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: straight.appendingPathComponent(file).path), file)
        }
        for file in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "optimizer.safetensors", "trainer_state.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: latest.appendingPathComponent(file).path), file)
        }
        // Checkpoints at 3 and 6 and the final one at 8: the newest two are kept.
        XCTAssertEqual(CheckpointStore(runDirectory: straight).stepDirectories().map(\.step), [8, 6])
    }

    func testDamagedLatestCheckpointFallsBackToThePreviousOne() throws {
        let tmp = FileManager.default.temporaryDirectory
        let straight = tmp.appendingPathComponent("loom-fallback-straight-\(UUID())")
        let out = tmp.appendingPathComponent("loom-fallback-\(UUID())")
        defer { try? FileManager.default.removeItem(at: out); try? FileManager.default.removeItem(at: straight) }
        _ = try run(straight, steps: 8, resume: false)
        _ = try run(out, steps: 6, resume: false)
        // The newest checkpoint (step 6) gets weights tagged with another step, as a save that
        // mixed two steps would leave; the resume must take step 3 and still end like `straight`.
        let store = CheckpointStore(runDirectory: out)
        let latest = try XCTUnwrap(store.latest())
        XCTAssertEqual(latest.lastPathComponent, "step-00000006")
        try LlamaModel.load(directory: latest).save(directory: latest, metadata: ["step": "99"])
        _ = try run(out, steps: 8, resume: true)
        XCTAssertEqual(losses(straight), losses(out))
        XCTAssertTrue(try AlignmentTestModel.weightsEqual(straight, out))
    }

    func testTruncatedCheckpointFileFallsBack() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("loom-truncated-\(UUID())")
        defer { try? FileManager.default.removeItem(at: out) }
        _ = try run(out, steps: 6, resume: false)
        let store = CheckpointStore(runDirectory: out)
        let optimizer = try XCTUnwrap(store.latest()).appendingPathComponent(Checkpoint.optimizerFile)
        let bytes = try Data(contentsOf: optimizer)
        try bytes.prefix(bytes.count / 2).write(to: optimizer)
        // Every checkpoint damaged: the error names each one and why.
        let older = try XCTUnwrap(store.stepDirectories().last).url
        try Data("{".utf8).write(to: older.appendingPathComponent(Checkpoint.stateFile))
        XCTAssertThrowsError(try run(out, steps: 8, resume: true)) { error in
            XCTAssertTrue("\(error)".contains("step-00000006"), "\(error)")
            XCTAssertTrue("\(error)".contains("step-00000003"), "\(error)")
            XCTAssertTrue("\(error)".contains(Checkpoint.optimizerFile), "\(error)")
        }
    }

    func testRunIsNeverOverwrittenByAccident() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("loom-guard-\(UUID())")
        defer { try? FileManager.default.removeItem(at: out) }
        _ = try run(out, steps: 3, resume: false)
        let before = try Data(contentsOf: out.appendingPathComponent("model.safetensors"))
        XCTAssertThrowsError(try run(out, steps: 3, resume: false)) { error in
            XCTAssertTrue("\(error)".contains("--resume") && "\(error)".contains("--overwrite"), "\(error)")
        }
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("model.safetensors")), before)
        XCTAssertEqual(losses(out).count, 3)
        // --overwrite starts over: a new run of 2 steps, no checkpoint of the old one left.
        var options = PretrainOptions(configuration: configuration(), dataDirectory: Self.corpus, outputDirectory: out, steps: 2,
                                      threads: 2, logInterval: 1000)
        options.mode = .overwrite
        _ = try Pretrainer(options: options).run()
        XCTAssertEqual(losses(out).count, 2)
        XCTAssertEqual(CheckpointStore(runDirectory: out).stepDirectories().map(\.step), [2])
        // The output may not be an input.
        options.outputDirectory = Self.corpus
        XCTAssertThrowsError(try Pretrainer(options: options).run()) { error in
            XCTAssertTrue("\(error)".contains("also an input"), "\(error)")
        }
    }

    func testASecondProcessOnTheSameRunIsRefused() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("loom-locked-\(UUID())")
        defer { try? FileManager.default.removeItem(at: out) }
        // The lock is per open file: a second holder in this process stands for another process.
        let other = try RunLock(directory: out)
        XCTAssertThrowsError(try run(out, steps: 2, resume: false)) { error in
            XCTAssertTrue("\(error)".contains("in use by another loom process (pid \(getpid()))"), "\(error)")
        }
        other.release()
        XCTAssertEqual(try run(out, steps: 2, resume: false).steps, 2)
        // Released at the end of the run: the next one may start.
        XCTAssertEqual(try run(out, steps: 3, resume: true).steps, 3)
    }

    func testResumeRefusesChangedSettingsUnlessAllowed() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("loom-changed-\(UUID())")
        defer { try? FileManager.default.removeItem(at: out) }
        _ = try run(out, steps: 3, resume: false)
        var config = configuration()
        config.train.batchSize = 2
        config.train.learningRate = 1e-3
        var options = PretrainOptions(configuration: config, dataDirectory: Self.corpus, outputDirectory: out, steps: 6,
                                      threads: 2, resume: true, logInterval: 1000)
        XCTAssertThrowsError(try Pretrainer(options: options).run()) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("configuration.train.batchSize: 4 → 2"), text)
            XCTAssertTrue(text.contains("configuration.train.learningRate"), text)
            XCTAssertTrue(text.contains("--allow-changes"), text)
        }
        // Threads, the stopping step and logging may change freely; --allow-changes takes the rest.
        options.allowChanges = true
        options.threads = 1
        XCTAssertEqual(try Pretrainer(options: options).run().steps, 6)
    }

    func testStaleStagingFromAKilledSaveIsRemoved() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("loom-stale-\(UUID())")
        defer { try? FileManager.default.removeItem(at: out) }
        _ = try run(out, steps: 3, resume: false)
        let store = CheckpointStore(runDirectory: out)
        let staging = store.directory.appendingPathComponent(".staging-step-00000006-123")
        try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
        try Data(count: 1000).write(to: staging.appendingPathComponent("model.safetensors"))
        try Data(count: 10).write(to: out.appendingPathComponent(".model.safetensors.tmp-999-1"))
        _ = try run(out, steps: 4, resume: true)
        XCTAssertFalse(FileManager.default.fileExists(atPath: staging.path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent(".model.safetensors.tmp-999-1").path))
        XCTAssertEqual(store.stepDirectories().map(\.step), [4, 3])
    }

    func testMetricsLineCutShortByAKillIsDroppedOnResume() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loom-metrics-cut-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Data("{\"step\":1,\"loss\":2}\n{\"step\":2,\"loss\":1.5}\n{\"step\":3,\"lo".utf8)
            .write(to: directory.appendingPathComponent("metrics.jsonl"), options: [])
        let log = try MetricsLog(directory: directory, resumingAfter: 5)
        try log.log(["step": 6, "loss": 1.0])
        XCTAssertEqual(MetricsLog.read(log.url).compactMap { $0["step"] as? Int }, [1, 2, 6])
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

    func testResumeWithoutCheckpointFailsClearly() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("loom-nothing-\(UUID())")
        XCTAssertThrowsError(try run(out, steps: 2, resume: true)) { error in
            XCTAssertTrue("\(error)".contains("no checkpoint to resume from: the directory does not exist"), "\(error)")
        }
        // The failed command created nothing (before, the run lock left DIR/.loom.lock behind).
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
        // An existing directory without a checkpoint: the same error, the directory kept.
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: out) }
        XCTAssertThrowsError(try run(out, steps: 2, resume: true)) { error in
            XCTAssertTrue("\(error)".contains("no checkpoint to resume from"), "\(error)")
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
