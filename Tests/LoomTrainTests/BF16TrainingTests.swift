import XCTest
import Foundation
@testable import LoomTrain
import LoomTensor

/// `--precision bf16` end to end through the `loom` binary: a run learns about as fp32 does,
/// stops and resumes exactly, and refuses to resume in the other precision. On a CPU without
/// AVX512-BF16 the runs use `LOOM_BF16_EMULATION=1` (same rounding and order of additions).
final class BF16TrainingTests: XCTestCase {
    struct Outcome { var status: Int32; var output: String }

    func loom(_ arguments: [String], bf16Emulation: Bool) throws -> Outcome {
        guard FileManager.default.isExecutableFile(atPath: CheckpointFaultTests.loom.path) else {
            throw XCTSkip("the loom executable is not built beside the tests (\(CheckpointFaultTests.loom.path)); run `swift build --build-tests`")
        }
        let process = Process()
        process.executableURL = CheckpointFaultTests.loom
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["LOOM_BF16_EMULATION"] = bf16Emulation ? "1" : nil
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe; process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Outcome(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
    }

    /// Emulation only where the CPU cannot run bf16 itself, so that a CPU with AVX512-BF16 runs
    /// the vdpbf16ps kernel here.
    var emulate: Bool {
        if case .success(.native) = BF16Implementation.chosen(cpu: .current, level: .current, emulation: nil) { return false }
        return true
    }

    func validationLosses(_ run: URL) -> [Double] {
        MetricsLog.read(run.appendingPathComponent("metrics.jsonl")).compactMap { $0["val_loss"] as? Double }
    }

    func testBF16PretrainingLearnsLikeFP32AndResumesExactly() throws {
        let config = try PretrainTests.writeSmallConfig("bf16-config", steps: 24, evalInterval: 12, checkpointInterval: 12)
        let fp32 = AlignmentTestModel.temporary("bf16-fp32"), bf16 = AlignmentTestModel.temporary("bf16-run"),
            stopped = AlignmentTestModel.temporary("bf16-stopped")
        defer { for url in [config, fp32, bf16, stopped] { try? FileManager.default.removeItem(at: url) } }
        let arguments = { (out: URL) in ["pretrain", "--config", config.path, "--data", PretrainTests.corpus.path, "--out", out.path, "--threads", "2"] }

        let a = try loom(arguments(fp32), bf16Emulation: false)
        XCTAssertEqual(a.status, 0, a.output)
        let b = try loom(arguments(bf16) + ["--precision", "bf16"], bf16Emulation: emulate)
        XCTAssertEqual(b.status, 0, b.output)
        XCTAssertTrue(b.output.contains("bf16 matrix products"), b.output)

        // It learns, and ends near fp32 (bf16 rounds every product's inputs to 8 significant bits).
        let lossesFP32 = validationLosses(fp32), lossesBF16 = validationLosses(bf16)
        XCTAssertEqual(lossesBF16.count, 2)
        let firstLoss = try XCTUnwrap(MetricsLog.read(bf16.appendingPathComponent("metrics.jsonl")).first?["loss"] as? Double)
        XCTAssertLessThan(lossesBF16.last!, firstLoss - 0.5, "bf16 training lowers the loss")
        XCTAssertEqual(lossesBF16.last!, lossesFP32.last!, accuracy: 0.03 * lossesFP32.last!)
        // The products really were bf16: the weights differ from fp32's.
        XCTAssertNotEqual(try Data(contentsOf: fp32.appendingPathComponent("model.safetensors")),
                          try Data(contentsOf: bf16.appendingPathComponent("model.safetensors")))

        // Stopped at the checkpoint of step 12 and resumed: the same run, bit for bit.
        XCTAssertEqual(try loom(arguments(stopped) + ["--precision", "bf16", "--steps", "12"], bf16Emulation: emulate).status, 0)
        let resumed = try loom(arguments(stopped) + ["--precision", "bf16", "--resume"], bf16Emulation: emulate)
        XCTAssertEqual(resumed.status, 0, resumed.output)
        XCTAssertEqual(try Data(contentsOf: bf16.appendingPathComponent("model.safetensors")),
                       try Data(contentsOf: stopped.appendingPathComponent("model.safetensors")))

        // Resuming in the other precision is refused, naming the setting.
        let switched = try loom(arguments(stopped) + ["--steps", "30", "--resume"], bf16Emulation: false)
        XCTAssertNotEqual(switched.status, 0)
        XCTAssertTrue(switched.output.contains("precision: bf16 → fp32"), switched.output)

        // A checkpoint written before the setting existed (no "precision" in its signature) was
        // fp32, and resumes in fp32.
        let checkpoint = try XCTUnwrap(CheckpointStore(runDirectory: fp32).latest())
        let stateURL = checkpoint.appendingPathComponent(Checkpoint.stateFile)
        var state = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: stateURL)) as? [String: Any])
        var signature = try XCTUnwrap(state["signature"] as? [String: String])
        XCTAssertEqual(signature.removeValue(forKey: "precision"), "fp32")
        state["signature"] = signature
        try JSONSerialization.data(withJSONObject: state).write(to: stateURL)
        let old = try loom(arguments(fp32) + ["--steps", "26", "--resume"], bf16Emulation: false)
        XCTAssertEqual(old.status, 0, old.output)
    }

    /// The alignment stages take `--precision` through the flags they share (`StageFlags`): an
    /// SFT run in bf16 learns, differs from fp32, and records the setting in its checkpoints.
    func testAlignmentStageTrainsInBF16() throws {
        let model = try AlignmentTestModel.make()
        let data = try AlignmentTestModel.write((0..<24).map {
            #"{"messages": [{"role": "user", "content": "what is \#($0) plus one?"}, {"role": "assistant", "content": "\#($0 + 1)"}]}"#
        }, "bf16-sft")
        let fp32 = AlignmentTestModel.temporary("bf16-sft-fp32"), bf16 = AlignmentTestModel.temporary("bf16-sft-bf16")
        defer { for u in [model, data, fp32, bf16] { try? FileManager.default.removeItem(at: u) } }
        let arguments = { (out: URL) in
            ["sft", "--model", model.path, "--data", data.path, "--out", out.path, "--steps", "8", "--batch-size", "4",
             "--threads", "2", "--eval-interval", "4", "--checkpoint-interval", "4"]
        }
        XCTAssertEqual(try loom(arguments(fp32), bf16Emulation: false).status, 0)
        let run = try loom(arguments(bf16) + ["--precision", "bf16"], bf16Emulation: emulate)
        XCTAssertEqual(run.status, 0, run.output)
        let losses = MetricsLog.read(bf16.appendingPathComponent("metrics.jsonl")).compactMap { $0["loss"] as? Double }
        XCTAssertLessThan(try XCTUnwrap(losses.last), try XCTUnwrap(losses.first), "bf16 SFT lowers the loss")
        XCTAssertEqual(validationLosses(bf16).last!, validationLosses(fp32).last!, accuracy: 0.03 * validationLosses(fp32).last!)
        XCTAssertNotEqual(try Data(contentsOf: fp32.appendingPathComponent("model.safetensors")),
                          try Data(contentsOf: bf16.appendingPathComponent("model.safetensors")))
        let checkpoint = try XCTUnwrap(CheckpointStore(runDirectory: bf16).latest())
        let state = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: checkpoint.appendingPathComponent(Checkpoint.stateFile))) as? [String: Any])
        XCTAssertEqual((state["signature"] as? [String: String])?["settings.precision"], "bf16")
    }
}

