import Foundation
import LoomSupport
import LoomData
import LoomTrain

/// Everything that decides what the pipeline trains and measures, as one file
/// (`configs/pipeline.json`): the tasks, the pretraining run, each stage's settings and the
/// evaluation. Keys are snake_case; a key left out keeps its default (the values below, which
/// are the default recipe's), and an unknown key is an error naming it and the nearest known one.
///
///     var recipe = try PipelineRecipe.load(URL(fileURLWithPath: "configs/pipeline.json"))
///     recipe.grpo.steps = 100
public struct PipelineRecipe: Codable, Equatable, Sendable {
    public struct Tasks: Codable, Equatable, Sendable {
        /// Task kinds (`InstructionTaskKind` names).
        public var kinds = ["parity", "lastDigit", "countLetters", "compareNumbers"]
        /// Problems per training file but the SFT one: RL prompts, rankings, preference pairs.
        public var train = 4000
        /// SFT demonstrations: fewer than `train` is RLHF's setting (demonstrations cost more than grades).
        public var demonstrations = 1000
        /// Dev problems: what every setting of the recipe is chosen by.
        public var dev = 800
        /// Test problems: the headline figures, evaluated once at the end of the run.
        public var test = 800
        /// Seed of the task data.
        public var seed: UInt64 = 2026
        /// SFT answers per ranking prompt graded into the rankings (0: constructed responses only).
        public var rankSamples = 3
        /// Question–answer worksheets of training problems mixed into pretraining (0: none).
        public var worksheets = 2000
        public init() {}
    }

    public struct Pretraining: Codable, Equatable, Sendable {
        /// The model and optimisation configuration (`configs/tiny.json`), relative to the working directory.
        public var config = "configs/tiny.json"
        /// Pretraining text: files or folders.
        public var data = ["data/pretrain"]
        /// Steps (nil: the configuration's `train.steps`).
        public var steps: Int?
        public init() {}
    }

    public struct SFT: Codable, Equatable, Sendable {
        public var steps = 1000
        public var batchSize = 32
        public var learningRate: Float = 3e-4
        public var minLearningRate: Float = 3e-5
        public var warmupSteps = 20
        /// Chat JSONL added to the task demonstrations, e.g. the real human-written FAQs of
        /// `data/alignment/` (`faq_python.jsonl`, `faq_debian_en.jsonl`, `faq_debian_zh.jsonl`).
        /// None by default: with them SFT took twice as long for 0.8 points more dev accuracy
        /// (`Benchmarks/results/pipeline/dev_sweep_sft.json`), over the pipeline's time budget.
        public var extraData: [String] = []
        public init() {}
    }

    public struct Reward: Codable, Equatable, Sendable {
        public var steps = 100
        public init() {}
    }

    public struct PPO: Codable, Equatable, Sendable {
        public var steps = 30
        /// Iterations at the start that fit only the critic (PPO-max).
        public var criticWarmup = 10
        public var batchSize = 64
        public var learningRate: Float = 1e-5
        public var klCoefficient: Float = 0.3
        /// Weight of the pretraining loss (PPO-ptx's γ) on text without the task worksheets.
        public var ptxCoefficient: Float = 0.5
        public init() {}
    }

    public struct DPO: Codable, Equatable, Sendable {
        public var steps = 60
        public var learningRate: Float = 1e-4
        public var minLearningRate: Float = 1e-5
        public var beta: Float = 0.5
        /// α of an NLL term on the chosen answers: 0 is plain DPO, anything else RPO (labelled so).
        public var sftWeight: Float = 0
        public init() {}
    }

    public struct GRPO: Codable, Equatable, Sendable {
        /// 50: 100 steps did better on dev (76.0 % against 74.2 %) but took the pipeline to
        /// 1,208 s, over its 20 minutes (Benchmarks/results/pipeline/grpo100_run/).
        public var steps = 50
        public var batchSize = 16
        public var groupSize = 8
        public var learningRate: Float = 1e-4
        public var klBeta: Float = 0.05
        /// DAPO's dynamic sampling.
        public var dynamicSampling = true
        public init() {}
    }

    public struct Evaluation: Codable, Equatable, Sendable {
        /// Answers sampled per test problem (temperature 1) for the sampled accuracy and pass@k.
        public var sampledAnswers = 4
        /// Test problems (the first N) of the in-context curve.
        public var inContextProblems = 200
        /// The k of the in-context curve.
        public var shots = [0, 1, 5]
        public init() {}
    }

    public var tasks = Tasks()
    public var pretrain = Pretraining()
    public var sft = SFT()
    public var reward = Reward()
    public var ppo = PPO()
    public var dpo = DPO()
    public var grpo = GRPO()
    public var evaluation = Evaluation()
    /// Seed of the RL stages (PPO-ptx, DPO, GRPO) instead of each stage's default.
    public var rlSeed: UInt64?

    public init() {}

    /// The task kinds, checked.
    public func taskKinds() throws -> [InstructionTaskKind] {
        do { return try NamedCases.parse(tasks.kinds, as: InstructionTaskKind.self, what: "task kind") } catch {
            throw RecipeError("tasks.kinds: \(error)")
        }
    }

    /// Checks every value and relation; throws naming the key.
    public func validate() throws {
        func positive(_ value: Int, _ key: String) throws { guard value >= 1 else { throw RecipeError("\(key) must be at least 1, got \(value)") } }
        func nonNegative(_ value: Int, _ key: String) throws { guard value >= 0 else { throw RecipeError("\(key) must not be negative, got \(value)") } }
        func rate(_ value: Float, _ key: String) throws { guard value.isFinite, value > 0 else { throw RecipeError("\(key) must be a positive number, got \(value)") } }
        guard !tasks.kinds.isEmpty else { throw RecipeError("tasks.kinds is empty") }
        _ = try taskKinds()
        try positive(tasks.train, "tasks.train"); try positive(tasks.demonstrations, "tasks.demonstrations")
        try positive(tasks.dev, "tasks.dev"); try positive(tasks.test, "tasks.test")
        try nonNegative(tasks.rankSamples, "tasks.rank_samples"); try nonNegative(tasks.worksheets, "tasks.worksheets")
        guard !pretrain.data.isEmpty else { throw RecipeError("pretrain.data is empty") }
        if let steps = pretrain.steps { try positive(steps, "pretrain.steps") }
        try positive(sft.steps, "sft.steps"); try positive(sft.batchSize, "sft.batch_size"); try nonNegative(sft.warmupSteps, "sft.warmup_steps")
        try rate(sft.learningRate, "sft.learning_rate"); try rate(sft.minLearningRate, "sft.min_learning_rate")
        guard sft.minLearningRate <= sft.learningRate else { throw RecipeError("sft.min_learning_rate (\(sft.minLearningRate)) is above sft.learning_rate (\(sft.learningRate))") }
        try positive(reward.steps, "reward.steps")
        try positive(ppo.steps, "ppo.steps"); try positive(ppo.batchSize, "ppo.batch_size"); try rate(ppo.learningRate, "ppo.learning_rate")
        guard ppo.criticWarmup >= 0, ppo.criticWarmup < ppo.steps else {
            throw RecipeError("ppo.critic_warmup (\(ppo.criticWarmup)) must be at least 0 and below ppo.steps (\(ppo.steps)), or PPO never updates the policy")
        }
        guard ppo.klCoefficient.isFinite, ppo.klCoefficient >= 0 else { throw RecipeError("ppo.kl_coefficient must be ≥ 0, got \(ppo.klCoefficient)") }
        guard ppo.ptxCoefficient.isFinite, ppo.ptxCoefficient >= 0 else { throw RecipeError("ppo.ptx_coefficient must be ≥ 0, got \(ppo.ptxCoefficient)") }
        try positive(dpo.steps, "dpo.steps"); try rate(dpo.learningRate, "dpo.learning_rate"); try rate(dpo.minLearningRate, "dpo.min_learning_rate")
        try rate(dpo.beta, "dpo.beta")
        guard dpo.sftWeight.isFinite, dpo.sftWeight >= 0 else { throw RecipeError("dpo.sft_weight must be ≥ 0, got \(dpo.sftWeight)") }
        try positive(grpo.steps, "grpo.steps"); try positive(grpo.batchSize, "grpo.batch_size"); try rate(grpo.learningRate, "grpo.learning_rate")
        guard grpo.groupSize >= 2 else { throw RecipeError("grpo.group_size must be at least 2, got \(grpo.groupSize)") }
        guard grpo.klBeta.isFinite, grpo.klBeta >= 0 else { throw RecipeError("grpo.kl_beta must be ≥ 0, got \(grpo.klBeta)") }
        try positive(evaluation.sampledAnswers, "evaluation.sampled_answers"); try positive(evaluation.inContextProblems, "evaluation.in_context_problems")
        guard !evaluation.shots.isEmpty, evaluation.shots.allSatisfy({ $0 >= 0 }) else { throw RecipeError("evaluation.shots must be non-negative numbers") }
        guard evaluation.shots.max()! < tasks.train else { throw RecipeError("evaluation.shots asks for more examples than tasks.train provides") }
    }

    /// Reads a recipe file: missing keys keep their defaults, unknown keys are an error.
    public static func load(_ url: URL) throws -> PipelineRecipe {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw RecipeError("cannot read the recipe \(url.path): \(error.localizedDescription)")
        }
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data) } catch {
            throw RecipeError("\(url.path): not valid JSON (\(error.localizedDescription))")
        }
        guard let dictionary = object as? [String: Any] else { throw RecipeError("\(url.path): the recipe must be a JSON object") }
        try checkKeys(dictionary, against: PipelineRecipe(), path: "", file: url.path)
        // Missing keys keep their defaults: the file's values are laid over the defaults' JSON.
        let defaults = try JSONSerialization.jsonObject(with: PipelineRecipe().jsonData()) as! [String: Any]
        let merged = try JSONSerialization.data(withJSONObject: deepMerge(defaults, dictionary))
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let recipe: PipelineRecipe
        do { recipe = try decoder.decode(PipelineRecipe.self, from: merged) }
        catch { throw RecipeError("\(url.path): \(describeDecodingError(error))") }
        do { try recipe.validate() } catch let e as RecipeError { throw RecipeError("\(url.path): \(e.message)") }
        return recipe
    }

    private static func deepMerge(_ base: [String: Any], _ overlay: [String: Any]) -> [String: Any] {
        var result = base
        for (key, value) in overlay {
            if let inner = value as? [String: Any], let baseInner = base[key] as? [String: Any] {
                result[key] = deepMerge(baseInner, inner)
            } else {
                result[key] = value
            }
        }
        return result
    }

    /// The recipe as a file `load` reads back.
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    /// Unknown keys: the known ones are the snake_case names of `reference`'s stored
    /// properties (optional ones included, which an encoded default would leave out).
    static func checkKeys(_ object: [String: Any], against reference: Any, path: String, file: String) throws {
        let knownKeys = Mirror(reflecting: reference).children.compactMap { $0.label.map(snakeCase) }
        for (key, value) in object.sorted(by: { $0.key < $1.key }) {
            guard knownKeys.contains(key) else {
                let suggestion = closestName(to: key, among: knownKeys)
                throw RecipeError("\(file): unknown key \"\(path)\(key)\"" + (suggestion.map { "; did you mean \"\(path)\($0)\"?" } ?? ""))
            }
            if let inner = value as? [String: Any], let innerReference = child(of: reference, snakeKey: key) {
                try checkKeys(inner, against: innerReference, path: "\(path)\(key).", file: file)
            }
        }
    }

    private static func child(of value: Any, snakeKey: String) -> Any? {
        Mirror(reflecting: value).children.first { ($0.label.map(snakeCase) ?? "") == snakeKey }?.value
    }

    static func snakeCase(_ name: String) -> String {
        var result = ""
        for character in name {
            if character.isUppercase { result += "_" + character.lowercased() } else { result.append(character) }
        }
        return result
    }
}

public struct RecipeError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
