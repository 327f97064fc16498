import XCTest
import Foundation
import LoomData
@testable import LoomTrain

/// The `loom` binary killed (SIGKILL, by `LOOM_FAULT_CHECKPOINT`) after each file of a
/// checkpoint save, then resumed: every run must end with the weights, optimizer state and
/// metrics of an uninterrupted run, byte for byte (metrics less their wall-clock fields).
final class CheckpointFaultTests: XCTestCase {
    /// The `loom` executable built beside the test bundle (`swift build --build-tests` builds it).
    static var loom: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("loom")
    }

    struct Outcome { var status: Int32; var killed: Bool; var stderr: String }

    @discardableResult
    func loom(_ arguments: [String], fault: String? = nil) throws -> Outcome {
        guard FileManager.default.isExecutableFile(atPath: Self.loom.path) else {
            XCTFail("\(Self.loom.path) is missing: build it first (swift build --build-tests)")
            throw CheckpointError("no loom binary")
        }
        let process = Process()
        process.executableURL = Self.loom
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["LOOM_FAULT_CHECKPOINT"] = fault
        process.environment = environment
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let data = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Outcome(status: process.terminationStatus, killed: process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL,
                       stderr: String(decoding: data, as: UTF8.self))
    }

    /// metrics.jsonl without the fields that measure time.
    func metrics(_ run: URL) -> [String] {
        MetricsLog.read(run.appendingPathComponent("metrics.jsonl")).map { record in
            var r = record
            for key in ["elapsed", "tokens_per_second"] { r[key] = nil }
            return String(decoding: try! JSONSerialization.data(withJSONObject: r, options: [.sortedKeys]), as: UTF8.self)
        }
    }

    func assertSameRun(_ reference: URL, _ run: URL, _ label: String, files: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(try Data(contentsOf: reference.appendingPathComponent("model.safetensors")),
                       try Data(contentsOf: run.appendingPathComponent("model.safetensors")), "\(label): final weights", file: file, line: line)
        let a = try XCTUnwrap(CheckpointStore(runDirectory: reference).latest()), b = try XCTUnwrap(CheckpointStore(runDirectory: run).latest())
        XCTAssertEqual(a.lastPathComponent, b.lastPathComponent, label, file: file, line: line)
        for name in files {
            XCTAssertEqual(try Data(contentsOf: a.appendingPathComponent(name)), try Data(contentsOf: b.appendingPathComponent(name)),
                           "\(label): \(name)", file: file, line: line)
        }
        XCTAssertEqual(metrics(reference), metrics(run), "\(label): metrics", file: file, line: line)
        // Nothing left behind by the killed saves.
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: CheckpointStore(runDirectory: run).directory.path)
            .filter { $0.hasPrefix(".") }
        XCTAssertEqual(leftovers, [], label, file: file, line: line)
    }

    /// Kills the save of step `step` after each of its files in turn (`points` of them), resumes,
    /// and compares with `reference`. Returns how many kills happened.
    func killEverywhere(_ arguments: (URL) -> [String], reference: URL, step: Int, points: ClosedRange<Int>, files: [String]) throws -> Int {
        var kills = 0
        for point in points {
            let out = AlignmentTestModel.temporary("fault-\(point)")
            defer { try? FileManager.default.removeItem(at: out) }
            let first = try loom(arguments(out), fault: "\(point)@\(step)")
            XCTAssertTrue(first.killed, "fault point \(point): expected SIGKILL, got status \(first.status): \(first.stderr.suffix(500))")
            if first.killed { kills += 1 }
            let resumed = try loom(arguments(out) + ["--resume"])
            XCTAssertEqual(resumed.status, 0, "fault point \(point): resume failed: \(resumed.stderr.suffix(800))")
            try assertSameRun(reference, out, "fault point \(point)", files: files)
        }
        return kills
    }

    func testPretrainKilledInsideEverySaveResumesExactly() throws {
        let config = try PretrainTests.writeSmallConfig("fault-config", steps: 6, evalInterval: 3, checkpointInterval: 2)
        let reference = AlignmentTestModel.temporary("fault-reference")
        defer { try? FileManager.default.removeItem(at: config); try? FileManager.default.removeItem(at: reference) }
        let arguments = { (out: URL) in ["pretrain", "--config", config.path, "--data", PretrainTests.corpus.path, "--out", out.path, "--threads", "1"] }
        XCTAssertEqual(try loom(arguments(reference)).status, 0)
        // Files of a pretraining save: tokenizer, model, optimizer, state, the rename, the pointer.
        let kills = try killEverywhere(arguments, reference: reference, step: 4, points: 1...6,
                                       files: ["model.safetensors", Checkpoint.optimizerFile, "tokenizer.json"])
        XCTAssertEqual(kills, 6)
        // A kill in the final save (step 6) too.
        XCTAssertEqual(try killEverywhere(arguments, reference: reference, step: 6, points: 5...5, files: [Checkpoint.optimizerFile]), 1)
        // The same binary refuses to start over a run without --resume or --overwrite.
        let again = try loom(arguments(reference))
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("--overwrite"), again.stderr)
    }

    func testSFTKilledInsideASaveResumesExactly() throws {
        let model = try AlignmentTestModel.make()
        let data = try AlignmentTestModel.write((0..<24).map {
            #"{"messages": [{"role": "user", "content": "what is \#($0) plus one?"}, {"role": "assistant", "content": "\#($0 + 1)"}]}"#
        }, "fault-sft")
        let reference = AlignmentTestModel.temporary("fault-sft-reference")
        defer { for u in [model, data, reference] { try? FileManager.default.removeItem(at: u) } }
        let arguments = { (out: URL) in
            ["sft", "--model", model.path, "--data", data.path, "--out", out.path, "--steps", "6", "--batch-size", "4",
             "--checkpoint-interval", "2", "--threads", "1", "--eval-interval", "3"]
        }
        XCTAssertEqual(try loom(arguments(reference)).status, 0)
        XCTAssertEqual(try killEverywhere(arguments, reference: reference, step: 4, points: 2...6,
                                          files: ["model.safetensors", Checkpoint.optimizerFile]), 5)
    }

    func testPPOKilledInsideASaveResumesExactly() throws {
        let fixture = PPOTests.fixture
        let reference = AlignmentTestModel.temporary("fault-ppo-reference")
        defer { try? FileManager.default.removeItem(at: reference) }
        let arguments = { (out: URL) in
            ["ppo", "--policy", fixture.appendingPathComponent("policy").path, "--reward", fixture.appendingPathComponent("reward").path,
             "--prompts", fixture.appendingPathComponent("prompts.jsonl").path, "--out", out.path, "--steps", "3", "--batch-size", "4",
             "--checkpoint-interval", "1", "--threads", "1", "--eval-interval", "0", "--max-new-tokens", "5"]
        }
        XCTAssertEqual(try loom(arguments(reference)).status, 0)
        // PPO's save: the policy's 4 files, the critic's 4, PPO's statistics, the rename, the pointer.
        XCTAssertEqual(try killEverywhere(arguments, reference: reference, step: 2, points: 3...11,
                                          files: ["model.safetensors", Checkpoint.optimizerFile, "critic/model.safetensors",
                                                  "critic/optimizer.safetensors", "ppo_state.json"]), 9)
    }
}
