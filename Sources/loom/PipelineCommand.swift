import ArgumentParser
import Foundation
import LoomSupport
import LoomPipeline
import LoomTensor
import LoomTrain

extension PipelineStage: ExpressibleByArgument {}

/// `loom pipeline`: parses flags into a `PipelineRecipe` (the recipe file, then any flag that
/// overrides one of its values) and runs `Pipeline`.
struct PipelineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "The main job: prepare → pretrain → SFT → reward model → PPO-ptx, DPO and GRPO, then the test split once, with a report (report.md, report.json).",
        discussion: """
        The recipe (configs/pipeline.json by default) holds every setting: tasks and their splits, the pretraining \
        run, each stage, the evaluation; the flags below override single values. Stages write into OUT: tasks/, \
        data/ and data-ptx/ (shards, tokenizer), base/, sft/, reward/, ppo/, dpo/, grpo/ (model directories), \
        recipe.json (the recipe as run), and the report. --stop-after ends the run after a stage (the models made \
        are still evaluated on the test split).
        """)

    @Option(help: "Output directory.") var out: String = "runs/demo"
    @Option(help: "The recipe file (see configs/pipeline.json).") var recipe: String = "configs/pipeline.json"
    @Option(help: "Run configuration for pretraining (recipe: pretrain.config).") var config: String?
    @Option(help: "Pretraining text, files or folders (recipe: pretrain.data).") var data: [String] = []
    @Option(help: "Pretraining steps (recipe: pretrain.steps).") var pretrainSteps: Int?
    @Option(help: "Instruction-task kinds, comma-separated (recipe: tasks.kinds).") var kinds: String?
    @Option(help: "Training problems per task file but the SFT one (recipe: tasks.train).") var trainTasks: Int?
    @Option(help: "SFT task demonstrations (recipe: tasks.demonstrations).") var demonstrations: Int?
    @Option(help: "Dev problems (recipe: tasks.dev).") var devTasks: Int?
    @Option(help: "Test problems (recipe: tasks.test).") var testTasks: Int?
    @Option(help: "SFT answers per ranking prompt graded into the rankings (recipe: tasks.rank_samples).") var rankSamples: Int?
    @Option(help: "Worksheets of training problems mixed into pretraining (recipe: tasks.worksheets).") var pretrainTaskDocuments: Int?
    @Option(help: "Seed of the task data (recipe: tasks.seed).") var seed: UInt64?
    @Option(help: "SFT steps (recipe: sft.steps).") var sftSteps: Int?
    @Option(help: "Reward-model steps (recipe: reward.steps).") var rewardSteps: Int?
    @Option(help: "PPO iterations (recipe: ppo.steps).") var ppoSteps: Int?
    @Option(help: "PPO iterations that fit only the critic (recipe: ppo.critic_warmup).") var ppoCriticWarmup: Int?
    @Option(help: "DPO steps (recipe: dpo.steps).") var dpoSteps: Int?
    @Option(help: "GRPO steps (recipe: grpo.steps).") var grpoSteps: Int?
    @Option(help: "Answers sampled per test problem (recipe: evaluation.sampled_answers).") var sampledAnswers: Int?
    @Option(help: "Test problems of the in-context curve (recipe: evaluation.in_context_problems).") var inContextProblems: Int?
    @Option(help: "Seed of the RL stages (recipe: rl_seed); with --resume on a copy of a run, replicates its RL part (Benchmarks/replicate_rl.sh).") var rlSeed: UInt64?
    @Option(help: "Stop after this stage.") var stopAfter: PipelineStage?
    @Option(help: "Threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "Matrix products of every training stage in fp32, or bf16 (bf16 inputs, fp32 accumulation; needs AVX512-BF16).") var precision: MatrixPrecision = .fp32
    @Flag(help: "Continue a pipeline run in --out: finished stages are kept, an interrupted one resumes from its latest checkpoint.") var resume = false
    @Flag(help: "Replace the pipeline run already in --out.") var overwrite = false
    @Flag(help: "For choosing settings: every stage and its dev accuracy, but no model is evaluated on the test split (Benchmarks/sweep_rl_dev.sh).") var devOnly = false

    func validate() throws {
        if resume && overwrite { throw ValidationError("--resume and --overwrite exclude each other: continue the run in --out, or replace it") }
        try checkNumericFlags()
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
        try validatePrecision(precision)
        do { try makeRecipe().validate() } catch let error as RecipeError { throw ValidationError(error.message) }
    }

    /// The recipe file with the flags' overrides.
    func makeRecipe() throws -> PipelineRecipe {
        var r = try PipelineRecipe.load(URL(fileURLWithPath: recipe))
        if let config { r.pretrain.config = config }
        if !data.isEmpty { r.pretrain.data = data }
        if let pretrainSteps { r.pretrain.steps = pretrainSteps }
        if let kinds { r.tasks.kinds = NamedCases.splitList(kinds) }
        if let trainTasks { r.tasks.train = trainTasks }
        if let demonstrations { r.tasks.demonstrations = demonstrations }
        if let devTasks { r.tasks.dev = devTasks }
        if let testTasks { r.tasks.test = testTasks }
        if let rankSamples { r.tasks.rankSamples = rankSamples }
        if let pretrainTaskDocuments { r.tasks.worksheets = pretrainTaskDocuments }
        if let seed { r.tasks.seed = seed }
        if let sftSteps { r.sft.steps = sftSteps }
        if let rewardSteps { r.reward.steps = rewardSteps }
        if let ppoSteps { r.ppo.steps = ppoSteps }
        if let ppoCriticWarmup { r.ppo.criticWarmup = ppoCriticWarmup }
        if let dpoSteps { r.dpo.steps = dpoSteps }
        if let grpoSteps { r.grpo.steps = grpoSteps }
        if let sampledAnswers { r.evaluation.sampledAnswers = sampledAnswers }
        if let inContextProblems { r.evaluation.inContextProblems = inContextProblems }
        if let rlSeed { r.rlSeed = rlSeed }
        return r
    }

    func run() throws {
        let pipeline = Pipeline(recipe: try makeRecipe(), output: URL(fileURLWithPath: out),
                                mode: resume ? .resumeIfPresent : overwrite ? .overwrite : .fresh, stopAfter: stopAfter, threads: threads)
        pipeline.evaluatesTest = !devOnly
        pipeline.precision = precision
        try pipeline.run()
    }
}
