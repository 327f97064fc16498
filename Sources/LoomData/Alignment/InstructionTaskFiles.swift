import Foundation

/// The instruction-task data set of the alignment stages, as `loom tasks` and the pipeline write it:
///
/// | file | split | use |
/// |---|---|---|
/// | `sft_train.jsonl` | train | SFT, chat format, the reference answer as the assistant turn |
/// | `prompts_train.jsonl` | train | PPO / GRPO prompts with answers |
/// | `prompts_dev.jsonl` | dev | exact-match evaluation for choosing settings (learning rates, steps, β …) |
/// | `prompts_test.jsonl` | test | exact-match evaluation reported once per run |
/// | `rankings_train.jsonl` | train | reward model, K = 4 (`RankingBuilder.rule`; half the wrong answers decoys) |
/// | `rankings_dev.jsonl` | dev | reward-model ranking accuracy while choosing settings |
/// | `rankings_test.jsonl` | test | reward-model ranking accuracy reported once per run |
/// | `preferences_train.jsonl` | train | DPO: reference answer over a wrong or off-format response |
///
/// Every file draws its own tasks (its own stream of the seed), so SFT, RL and reward-model data
/// see different mixes of problems; all training files come from train problems only, and the
/// three splits are disjoint up to each kind's symmetries (`InstructionTask.splitKey`).
///
/// `demonstrations` (default: `train`) sets the lines of `sft_train.jsonl` alone. Fewer
/// demonstrations than RL prompts is the setting RLHF is for (InstructGPT: 13k SFT
/// demonstrations, 31k PPO prompts): a written answer costs a labeller more than a grade, so the
/// reinforcement-learning stages see prompts the SFT model never saw an answer to.
///
///     let summary = try InstructionTaskFiles.write(to: URL(fileURLWithPath: "out/tasks"), train: 2000, dev: 200, test: 200, seed: 0)
public enum InstructionTaskFiles {
    public static let sftTrain = "sft_train.jsonl"
    public static let promptsTrain = "prompts_train.jsonl"
    public static let promptsDev = "prompts_dev.jsonl"
    public static let promptsTest = "prompts_test.jsonl"
    public static let rankingsTrain = "rankings_train.jsonl"
    public static let rankingsDev = "rankings_dev.jsonl"
    public static let rankingsTest = "rankings_test.jsonl"
    public static let preferencesTrain = "preferences_train.jsonl"

    /// The prompts file of an evaluation split.
    public static func prompts(_ split: TaskSplit) -> String {
        switch split { case .train: return promptsTrain; case .dev: return promptsDev; case .test: return promptsTest }
    }

    /// The rankings file of a split.
    public static func rankings(_ split: TaskSplit) -> String {
        switch split { case .train: return rankingsTrain; case .dev: return rankingsDev; case .test: return rankingsTest }
    }

    /// The lines written to each file, in file order.
    public struct Summary: Equatable, Sendable {
        public var lines: [(file: String, count: Int)]

        public static func == (lhs: Summary, rhs: Summary) -> Bool {
            lhs.lines.map(\.file) == rhs.lines.map(\.file) && lhs.lines.map(\.count) == rhs.lines.map(\.count)
        }

        public var description: String {
            lines.map { "\($0.file): \($0.count) lines" }.joined(separator: "\n")
        }
    }

    /// The data in memory, for the pipeline to use without reading files back.
    public struct Contents: Sendable {
        public var sftTrain: [SFTExample]
        public var promptsTrain: [PromptExample]
        public var promptsDev: [PromptExample]
        public var promptsTest: [PromptExample]
        public var rankingsTrain: [RankedResponses]
        public var rankingsDev: [RankedResponses]
        public var rankingsTest: [RankedResponses]
        public var preferencesTrain: [PreferencePair]
    }

    /// What a file's tasks are drawn for; each purpose has its own stream of the seed.
    public enum Purpose: String, Sendable {
        case sft, prompts, rankings, preferences
    }

    /// The tasks behind the files of one purpose, exactly as `make` draws them (so a caller can
    /// rebuild, say, the rankings with model samples graded into them).
    public static func tasks(for purpose: Purpose, count: Int, split: TaskSplit, seed: UInt64,
                             kinds: [InstructionTaskKind] = InstructionTaskKind.allCases) -> [InstructionTask] {
        InstructionTasks.generate(kinds: kinds, count: count, seed: seed ^ TaskRandom.mix(TaskRandom.stableHash(purpose.rawValue)), split: split)
    }

    /// Rankings of `split`'s `tasks` by `RankingBuilder.rule`, optionally with a model's answers
    /// graded into them: `samples[i]` are the model's answers to `tasks[i]` (each takes the slot of
    /// its grade; see `RankingBuilder.ranking(for:samples:)`), the constructed responses fill the
    /// other slots. Training rankings get decoys (`RankingBuilder.decoys`); dev and test ones keep
    /// the plausible wrong answers, so their accuracy measures what it measured before decoys.
    public static func rankings(for tasks: [InstructionTask], split: TaskSplit, samples: [[String]]? = nil, seed: UInt64) -> [RankedResponses] {
        let samples = samples ?? Array(repeating: [], count: tasks.count)
        precondition(samples.count == tasks.count, "one list of samples per task")
        let offset: UInt64 = split == .train ? 2 : split == .test ? 3 : 4
        var builder = RankingBuilder(seed: seed &+ offset, decoys: split == .train)
        return zip(tasks, samples).map { builder.ranking(for: $0, samples: $1) }
    }

    /// Generates every file's data. `train` lines for each training file but the SFT one, which
    /// gets `demonstrations` (nil: `train`); `dev` and `test` for each file of those splits. The
    /// demonstrations are a prefix of each kind's SFT draws: fewer of them are a subset of more.
    public static func make(train: Int, dev: Int, test: Int, seed: UInt64, kinds: [InstructionTaskKind] = InstructionTaskKind.allCases,
                            demonstrations: Int? = nil) -> Contents {
        func tasks(_ purpose: Purpose, _ count: Int, _ split: TaskSplit) -> [InstructionTask] {
            Self.tasks(for: purpose, count: count, split: split, seed: seed, kinds: kinds)
        }
        var preferences = RankingBuilder(seed: seed &+ 1)
        return Contents(
            sftTrain: tasks(.sft, demonstrations ?? train, .train).map(\.sftExample),
            promptsTrain: tasks(.prompts, train, .train).map(\.promptExample),
            promptsDev: tasks(.prompts, dev, .dev).map(\.promptExample),
            promptsTest: tasks(.prompts, test, .test).map(\.promptExample),
            rankingsTrain: rankings(for: tasks(.rankings, train, .train), split: .train, seed: seed),
            rankingsDev: rankings(for: tasks(.rankings, dev, .dev), split: .dev, seed: seed),
            rankingsTest: rankings(for: tasks(.rankings, test, .test), split: .test, seed: seed),
            preferencesTrain: tasks(.preferences, train, .train).map { preferences.preferencePair(for: $0) }
        )
    }

    /// Writes the eight files into `directory` (created if needed), each atomically.
    @discardableResult
    public static func write(to directory: URL, train: Int, dev: Int, test: Int, seed: UInt64,
                             kinds: [InstructionTaskKind] = InstructionTaskKind.allCases, demonstrations: Int? = nil) throws -> Summary {
        let contents = make(train: train, dev: dev, test: test, seed: seed, kinds: kinds, demonstrations: demonstrations)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        func url(_ name: String) -> URL { directory.appendingPathComponent(name) }
        try SFTDataset.write(contents.sftTrain, to: url(sftTrain))
        try PromptDataset.write(contents.promptsTrain, to: url(promptsTrain))
        try PromptDataset.write(contents.promptsDev, to: url(promptsDev))
        try PromptDataset.write(contents.promptsTest, to: url(promptsTest))
        try PreferenceDataset.write(contents.rankingsTrain, to: url(rankingsTrain))
        try PreferenceDataset.write(contents.rankingsDev, to: url(rankingsDev))
        try PreferenceDataset.write(contents.rankingsTest, to: url(rankingsTest))
        try PreferenceDataset.write(contents.preferencesTrain, to: url(preferencesTrain))
        return Summary(lines: [
            (sftTrain, contents.sftTrain.count),
            (promptsTrain, contents.promptsTrain.count),
            (promptsDev, contents.promptsDev.count),
            (promptsTest, contents.promptsTest.count),
            (rankingsTrain, contents.rankingsTrain.count),
            (rankingsDev, contents.rankingsDev.count),
            (rankingsTest, contents.rankingsTest.count),
            (preferencesTrain, contents.preferencesTrain.count),
        ])
    }
}
