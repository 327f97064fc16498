import Foundation
import XCTest
import LoomTensor

/// The CLI's enum-like flags: `--help` lists their values, and a wrong value fails before any
/// work with an error that names the flag and the values it takes.
final class CommandFlagTests: XCTestCase {
    private func loom(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        guard FileManager.default.isExecutableFile(atPath: CheckpointFaultTests.loom.path) else {
            throw XCTSkip("the loom executable is not built beside the tests (\(CheckpointFaultTests.loom.path)); run `swift build --build-tests`")
        }
        let process = Process()
        process.executableURL = CheckpointFaultTests.loom
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let pipe = Pipe()
        process.standardOutput = pipe; process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// (command, flag, a wrong value, the allowed values as the error lists them, as --help lists them)
    private let flags: [(command: [String], flag: String, values: [String])] = [
        (["dpo", "--model", "m", "--out", "o", "--data", "d"], "--loss", ["sigmoid", "ipo"]),
        (["dpo", "--model", "m", "--out", "o", "--data", "d"], "--ranking-pairs", ["all", "best-worst"]),
        (["grpo", "--model", "m", "--prompts", "p", "--out", "o"], "--reward", ["verifier", "model"]),
        (["grpo", "--model", "m", "--prompts", "p", "--out", "o"], "--aggregation", ["token", "sequence", "dr-grpo"]),
        (["export", "gguf", "d", "--out", "o"], "--type", ["f32", "f16", "q8_0", "q4_0", "q4_1"]),
        (["quantize", "d", "--out", "o"], "--type", ["q8_0", "q4_0", "q4_1"]),
        (["import", "gguf", "f", "--out", "o"], "--dtype", ["f32", "keep"]),
        (["pretrain", "--data", "d", "--out", "o"], "--precision", ["fp32", "bf16"]),
        (["sft", "--model", "m", "--data", "d", "--out", "o"], "--precision", ["fp32", "bf16"]),
    ]

    func testWrongValueNamesTheFlagAndTheValues() throws {
        for (command, flag, values) in flags {
            let run = try loom(command + [flag, "nonsense"])
            XCTAssertNotEqual(run.status, 0, "\(command) \(flag)")
            XCTAssertTrue(run.output.contains("'nonsense' is invalid for '\(flag) "), "\(flag): \(run.output)")
            for value in values { XCTAssertTrue(run.output.contains("'\(value)'"), "\(flag) lists \(value): \(run.output)") }
        }
    }

    func testHelpListsTheValues() throws {
        for (command, flag, values) in flags {
            let subcommand = Array(command.prefix { !$0.hasPrefix("-") && $0 != "d" && $0 != "f" })
            let help = try loom(subcommand + ["--help"]).output.replacingOccurrences(of: "\n", with: " ")
                .split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
            XCTAssertTrue(help.contains("(values: \(values.joined(separator: ", "))"), "\(subcommand) --help lists \(flag)'s values: \(help)")
        }
    }

    func testUnknownTaskKindIsNamed() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("loom-flags-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        let run = try loom(["tasks", "--out", out.path, "--kinds", "arithmetic, poetry"])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.output.contains("--kinds: unknown task kind \"poetry\"; known: arithmetic,"), run.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "nothing is written")
    }

    private let tinyConfig = URL(fileURLWithPath: #filePath).appendingPathComponent("../../../configs/tiny.json").standardizedFileURL.path

    /// A bad value of an environment setting stops `loom tasks` at start with exit 2 and
    /// `message`, before it writes anything.
    private func assertSettingStopsAtStart(_ environment: [String: String], message: String,
                                           file: StaticString = #filePath, line: UInt = #line) throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("loom-setting-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        let bad = try loom(["tasks", "--out", out.path], environment: environment)
        XCTAssertEqual(bad.status, 2, bad.output, file: file, line: line)
        XCTAssertTrue(bad.output.contains(message), bad.output, file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "nothing is written", file: file, line: line)
    }

    /// LOOM_CPU_KERNELS: an unknown level stops any command before it does anything, naming
    /// the variable and the levels this CPU runs; a valid one is reported by the benchmarks.
    func testKernelLevelSettingIsCheckedAtStart() throws {
        try assertSettingStopsAtStart(["LOOM_CPU_KERNELS": "sse9"], message: "loom: LOOM_CPU_KERNELS=sse9 is not a kernel level; use one of: portable")
        let config = tinyConfig
        let forced = try loom(["bench", "generate", "--config", config, "--tokens", "4", "--prompt-length", "4"],
                              environment: ["LOOM_CPU_KERNELS": "portable"])
        XCTAssertEqual(forced.status, 0, forced.output)
        XCTAssertTrue(forced.output.contains("Loom's kernels: portable (quantized: portable)"), forced.output)
    }

    /// `--precision bf16` on a CPU without AVX512-BF16 stops before anything is read or written,
    /// saying why and what to do; a bad LOOM_BF16_EMULATION stops any command at start.
    func testBF16NeedsTheInstructionsOrTheEmulationSetting() throws {
        try assertSettingStopsAtStart(["LOOM_BF16_EMULATION": "yes"], message: "loom: LOOM_BF16_EMULATION=yes must be 1 (emulate bf16 products) or 0")
        // The emulation runs on every CPU, and says so.
        let emulated = try loom(["bench", "train", "--config", tinyConfig, "--steps", "1", "--warmup", "0", "--batch-size", "1",
                                 "--no-sweep-cores", "--precision", "bf16"], environment: ["LOOM_BF16_EMULATION": "1"])
        XCTAssertEqual(emulated.status, 0, emulated.output)
        XCTAssertTrue(emulated.output.contains("matrix products bf16 inputs, fp32 accumulation: emulated with"), emulated.output)
        if CPUFeatures.current.hasAVX512BF16 && KernelLevel.current == .avx512 {
            throw XCTSkip("this CPU runs bf16 products (BF16TrainingTests trains with them)")
        }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("loom-bf16-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        for command in [["pretrain", "--data", out.path], ["sft", "--model", out.path, "--data", out.path],
                        ["bench", "train"]] {
            let refused = try loom(command + (command[0] == "bench" ? [] : ["--out", out.path]) + ["--precision", "bf16"])
            XCTAssertNotEqual(refused.status, 0, refused.output)
            XCTAssertTrue(refused.output.contains("--precision bf16: bf16 products need AVX512-BF16 (vdpbf16ps), which this CPU ("), refused.output)
            XCTAssertTrue(refused.output.contains("LOOM_BF16_EMULATION=1"), refused.output)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "nothing is written")
        }
    }

    /// A model whose chat template is not ChatML (here Llama 3's): every command that would put
    /// conversations into ChatML for it stops and says why; plain-text generation still works.
    func testNonChatMLTemplateIsRefusedWhereConversationsAreRendered() throws {
        let model = try AlignmentTestModel.make()
        defer { try? FileManager.default.removeItem(at: model) }
        let configURL = model.appendingPathComponent("tokenizer_config.json")
        var config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
        config["chat_template"] = "{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] + '<|eot_id|>' }}{% endfor %}"
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        let data = try AlignmentTestModel.write([#"{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yes"}]}"#], "chat-sft")
        let prompts = try AlignmentTestModel.write([#"{"prompt":"what is 1 plus one?","answer":"2"}"#], "chat-prompts")
        let out = AlignmentTestModel.temporary("chat-refused")
        defer { [data, prompts, out].forEach { try? FileManager.default.removeItem(at: $0) } }
        for command in [["chat", "--model", model.path], ["generate", "--model", model.path, "--prompt", "hi", "--chat"],
                        ["sft", "--model", model.path, "--data", data.path, "--out", out.path, "--steps", "1"],
                        ["eval", "--model", model.path, "--task", "exact-match", "--prompts", prompts.path]] {
            let refused = try loom(command)
            XCTAssertNotEqual(refused.status, 0, "\(command[0]): \(refused.output)")
            XCTAssertTrue(refused.output.contains("\(model.path): the model's chat template does not use ChatML"), "\(command[0]): \(refused.output)")
        }
        let plain = try loom(["generate", "--model", model.path, "--prompt", "hi", "--max-tokens", "2"])
        XCTAssertEqual(plain.status, 0, plain.output)
    }
}
