import Foundation
import LoomData
import LoomTokenizer

/// Rankings that hold a model's own answers, graded by the verifier, as the alignment data's
/// rule asks: for each ranking prompt, the model's greedy answer and samples at temperature 1
/// take the slots of their grades (correct-and-clean, correct-but-rambling, wrong, off-format),
/// constructed responses fill the rest. Rewrites the rankings file of each split in `counts`
/// (`rankings_train.jsonl`, `rankings_dev.jsonl`, `rankings_test.jsonl`) in `directory` (the
/// tasks are the ones `InstructionTaskFiles.write` drew with the same arguments). Returns how
/// many rankings hold at least one model answer.
public enum RankingsWithSamples {
    public static func write(to directory: URL, model: URL, counts: [TaskSplit: Int], seed: UInt64, kinds: [InstructionTaskKind],
                      samples: Int) throws -> Int {
        let policy = try LlamaModel.load(directory: model, heads: .languageModel)
        let tokenizer = try ByteLevelBPETokenizer(contentsOf: model.appendingPathComponent("tokenizer.json"))
        var placed = 0
        for split in TaskSplit.allCases {
            guard let count = counts[split] else { continue }
            let file = InstructionTaskFiles.rankings(split)
            let tasks = InstructionTaskFiles.tasks(for: .rankings, count: count, split: split, seed: seed, kinds: kinds)
            let answers = sampleAnswers(model: policy, tokenizer: tokenizer, prompts: tasks.map(\.prompt), samples: samples - 1,
                                        seed: seed &+ (split == .train ? 11 : split == .test ? 13 : 17))
            let rankings = InstructionTaskFiles.rankings(for: tasks, split: split, samples: answers, seed: seed)
            placed += rankings.filter(RankingBuilder.holdsModelSamples).count
            try PreferenceDataset.write(rankings, to: directory.appendingPathComponent(file))
        }
        return placed
    }
}
