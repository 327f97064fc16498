import ArgumentParser
import Foundation
import LoomTrain

/// Optimisation flags every alignment command shares; unset flags keep the stage's defaults.
struct StageFlags: ParsableArguments {
    @Option(help: "Optimizer steps.") var steps: Int?
    @Option(help: "Examples (or prompts) per step.") var batchSize: Int?
    @Option(help: "Peak learning rate.") var learningRate: Float?
    @Option(help: "Final learning rate of the cosine schedule.") var minLearningRate: Float?
    @Option(help: "Warmup steps.") var warmupSteps: Int?
    @Option(help: "AdamW weight decay (matrices only).") var weightDecay: Float?
    @Option(help: "Global gradient-norm clip (0 = off).") var gradClip: Float?
    @Option(help: "Evaluate every N steps.") var evalInterval: Int?
    @Option(help: "Checkpoint every N steps.") var checkpointInterval: Int?
    @Option(help: "Print a progress line every N steps.") var logInterval: Int?
    @Option(help: "Random seed.") var seed: UInt64?
    @Option(help: "Threads.") var threads: Int?
    @Option(help: "Complete checkpoints kept in --out/checkpoints (the newest).") var keepCheckpoints: Int?
    @Option(help: "Under mpirun: 1 shards the optimizer state across ranks (ZeRO-1), 0 keeps it whole on every rank.") var zero: Int?
    @Option(help: "Matrix products in fp32, or bf16: bf16 inputs, fp32 accumulation, fp32 weights and optimizer state (needs AVX512-BF16).") var precision: MatrixPrecision = .fp32
    @Flag(help: "Continue the run in --out from its latest complete checkpoint.") var resume = false
    @Flag(help: "Replace the run already in --out (its model, checkpoints and metrics).") var overwrite = false
    @Flag(help: "With --resume: continue even though settings that shape the run differ from the checkpoint's.") var allowChanges = false
    @Option(help: "Train LoRA adapters of this rank on the frozen model instead of its weights (PEFT format in --out).") var loraRank: Int?
    @Option(help: "LoRA alpha: the adapters' output is scaled by alpha/rank (default: 2 × rank).") var loraAlpha: Float?
    @Option(help: "Dropout on the LoRA adapters' input while training.") var loraDropout: Float?
    @Option(help: "Layers that get adapters, comma-separated (q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj; default all).") var loraTargets: String?

    var mode: RunMode { RunMode(resume: resume, overwrite: overwrite) }

    func apply(to settings: inout StageSettings) {
        if let steps { settings.steps = steps }
        if let batchSize { settings.batchSize = batchSize }
        if let learningRate { settings.learningRate = learningRate; settings.minLearningRate = minLearningRate ?? learningRate / 10 }
        if let minLearningRate { settings.minLearningRate = minLearningRate }
        if let warmupSteps { settings.warmupSteps = warmupSteps }
        if let weightDecay { settings.weightDecay = weightDecay }
        if let gradClip { settings.gradClip = gradClip }
        if let evalInterval { settings.evalInterval = evalInterval }
        if let checkpointInterval { settings.checkpointInterval = checkpointInterval }
        if let keepCheckpoints { settings.keepCheckpoints = keepCheckpoints }
        if let logInterval { settings.logInterval = logInterval }
        if let seed { settings.seed = seed }
        if let threads { settings.threads = threads }
        if let loraRank {
            // validate() has already parsed the targets.
            let targets = loraTargets.flatMap { try? LoRASettings.parseTargets($0) } ?? LoRATarget.allCases
            settings.lora = LoRASettings(rank: loraRank, alpha: loraAlpha, dropout: loraDropout ?? 0, targets: targets)
        }
        if let zero { settings.zeroStage = zero }
        settings.precision = precision
    }
}

/// The flags that say how a stage treats its output directory, checked together.
func validateRunFlags(resume: Bool, overwrite: Bool, allowChanges: Bool, keepCheckpoints: Int?) throws {
    if resume && overwrite { throw ValidationError("--resume and --overwrite exclude each other: continue the run in --out, or replace it") }
    if allowChanges && !resume { throw ValidationError("--allow-changes only applies with --resume") }
    if let keepCheckpoints, keepCheckpoints < 1 { throw ValidationError("--keep-checkpoints must be at least 1, got \(keepCheckpoints)") }
}

struct SFTCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sft",
        abstract: "Supervised fine-tuning on chat or Alpaca JSONL; loss on assistant tokens only.")

    @Option(help: "Base model directory.") var model: String
    @Option(help: "Training data (JSONL: {\"messages\": [...]} or {\"instruction\", \"input\", \"output\"}); repeatable.") var data: [String]
    @Option(help: "Output model directory.") var out: String
    @Option(help: "Fraction of examples held out for validation loss.") var valFraction: Double = 0.05
    @Option(help: "Longest example in tokens (default: the model's context).") var maxLength: Int?
    @Flag(help: "Skip malformed JSONL lines (counted) instead of failing.") var skipBadLines = false
    @Flag(help: "Batch examples of similar length together (less padding; Hugging Face's group_by_length).") var groupByLength = false
    @OptionGroup var stage: StageFlags

    func run() throws {
        var options = SFTOptions(model: URL(fileURLWithPath: model), data: data.map { URL(fileURLWithPath: $0) }, output: URL(fileURLWithPath: out))
        stage.apply(to: &options.settings)
        options.validationFraction = valFraction
        options.maxLength = maxLength
        options.skipBadLines = skipBadLines
        options.groupByLength = groupByLength
        options.mode = stage.mode
        options.allowChanges = stage.allowChanges
        let summary = try SFTTrainer(options: options).run()
        logLine(String(format: "SFT done: train loss %.4f, validation loss %.4f, %d steps in %.0f s; model in %@",
                       summary.trainLoss, summary.validationLoss, summary.steps, summary.seconds, out))
    }
}
