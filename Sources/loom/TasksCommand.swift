import ArgumentParser
import Foundation
import LoomSupport
import LoomData
import LoomEval
import LoomInference
import LoomTokenizer

/// `loom tasks`: writes the constructed instruction-task data of the alignment stages.
struct TasksCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tasks",
        abstract: "Write seeded instruction tasks (arithmetic, reversing, sorting, counting, records, uppercase, sequences) for SFT, reward model, PPO/GRPO and DPO.",
        discussion: "Writes sft_train.jsonl, prompts_{train,dev,test}.jsonl, rankings_{train,dev,test}.jsonl and preferences_train.jsonl. Train, dev and test problems are disjoint by construction, up to each kind's symmetries (operand order, larger/smaller, anagrams …); choose settings on dev, report test. Every line carries \"source\": \"constructed: …\"."
    )

    @Option(help: "Output folder (created if needed).") var out: String
    @Option(help: "Lines in each training file.") var train: Int = 2000
    @Option(help: "Lines in each dev file (for choosing settings).") var dev: Int = 200
    @Option(help: "Lines in each test file (for the reported figures).") var test: Int = 200
    @Option(help: "Lines in sft_train.jsonl (default: --train). Fewer demonstrations than RL prompts is RLHF's setting: the RL stages then see problems SFT never saw an answer to.")
    var demonstrations: Int?
    @Option(help: "Seed: the same seed writes the same files.") var seed: UInt64 = 0
    @Option(help: "Comma-separated task kinds (default all: \(InstructionTaskKind.allCases.map(\.rawValue).joined(separator: ","))).")
    var kinds: String?
    @Option(help: "A model (e.g. the SFT model) whose own answers are graded by the verifier and placed in the rankings.")
    var rankSamplesFrom: String?
    @Option(help: "Answers per ranking prompt from --rank-samples-from: the greedy one and N − 1 sampled at temperature 1.")
    var rankSamples: Int = 3

    func validate() throws {
        guard train >= 0, dev >= 0, test >= 0 else { throw ValidationError("--train, --dev and --test must not be negative") }
        if let demonstrations, demonstrations < 0 { throw ValidationError("--demonstrations must not be negative, got \(demonstrations)") }
        _ = try parsedKinds()
        guard rankSamples >= 1 else { throw ValidationError("--rank-samples must be at least 1, got \(rankSamples)") }
    }

    func parsedKinds() throws -> [InstructionTaskKind] {
        guard let kinds else { return InstructionTaskKind.allCases }
        let names = NamedCases.splitList(kinds)
        guard !names.isEmpty else { throw ValidationError("--kinds is empty") }
        do { return try NamedCases.parse(names, as: InstructionTaskKind.self, what: "task kind") } catch {
            throw ValidationError("--kinds: \(error)")
        }
    }

    func run() throws {
        let directory = URL(fileURLWithPath: out)
        let summary = try InstructionTaskFiles.write(to: directory, train: train, dev: dev, test: test, seed: seed, kinds: try parsedKinds(),
                                                     demonstrations: demonstrations)
        try StandardOutput.writeLine("wrote \(directory.path) (seed \(seed)):")
        for (file, count) in summary.lines {
            try StandardOutput.writeLine("  \(file): \(count) lines")
        }
        if let rankSamplesFrom {
            let started = Date()
            let used = try RankingsWithSamples.write(to: directory, model: URL(fileURLWithPath: rankSamplesFrom), counts: [.train: train, .dev: dev, .test: test],
                                                     seed: seed, kinds: try parsedKinds(), samples: rankSamples)
            try StandardOutput.writeLine(String(format: "  rankings rewritten with %d answers per prompt of %@ (%d rankings hold at least one) in %.0f s", rankSamples, rankSamplesFrom, used, Date().timeIntervalSince(started)))
        }
    }
}
