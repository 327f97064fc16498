import ArgumentParser
import Foundation
import LoomData

/// `loom tasks`: writes the constructed instruction-task data of the alignment stages.
struct TasksCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tasks",
        abstract: "Write seeded instruction tasks (arithmetic, reversing, sorting, counting, records, uppercase, sequences) for SFT, reward model, PPO/GRPO and DPO.",
        discussion: "Writes sft_train.jsonl, prompts_train.jsonl, prompts_heldout.jsonl, rankings_train.jsonl, rankings_heldout.jsonl and preferences_train.jsonl. Train and held-out problems are disjoint by construction; every line carries \"source\": \"constructed: …\"."
    )

    @Option(help: "Output folder (created if needed).") var out: String
    @Option(help: "Lines in each training file.") var train: Int = 2000
    @Option(help: "Lines in each held-out file.") var heldout: Int = 200
    @Option(help: "Seed: the same seed writes the same files.") var seed: UInt64 = 0
    @Option(help: "Comma-separated task kinds (default all: \(InstructionTaskKind.allCases.map(\.rawValue).joined(separator: ","))).")
    var kinds: String?

    func validate() throws {
        guard train >= 0, heldout >= 0 else { throw ValidationError("--train and --heldout must not be negative") }
        _ = try parsedKinds()
    }

    func parsedKinds() throws -> [InstructionTaskKind] {
        guard let kinds else { return InstructionTaskKind.allCases }
        let names = kinds.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !names.isEmpty else { throw ValidationError("--kinds is empty") }
        return try names.map { name in
            guard let kind = InstructionTaskKind(rawValue: name) else {
                throw ValidationError("unknown task kind '\(name)'; known: \(InstructionTaskKind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return kind
        }
    }

    func run() throws {
        let directory = URL(fileURLWithPath: out)
        let summary = try InstructionTaskFiles.write(to: directory, train: train, heldout: heldout, seed: seed, kinds: try parsedKinds())
        print("wrote \(directory.path) (seed \(seed)):")
        for (file, count) in summary.lines {
            print("  \(file): \(count) lines")
        }
    }
}
