import ArgumentParser
import Foundation
import LoomTrain

struct PretrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pretrain",
        abstract: "Train a base model by next-token prediction on token shards from `loom prepare`.",
        discussion: """
        Writes a model directory (config.json, model.safetensors, tokenizer.json, tokenizer_config.json), \
        metrics.jsonl, and checkpoints in checkpoints/step-N (each a model directory plus optimizer.safetensors and \
        trainer_state.json; checkpoints/latest names the newest). --steps is the total number of optimizer steps; with \
        --resume the run continues from the latest complete checkpoint up to that total, exactly as if it had not \
        stopped. An --out that already holds a run needs --resume or --overwrite.
        """)

    @Option(help: "Run configuration (see configs/).") var config: String = "configs/tiny.json"
    @Option(help: "Directory written by `loom prepare`.") var data: String
    @Option(help: "Output model directory.") var out: String
    @Option(help: "Total optimizer steps: where the run stops (default train.steps).") var steps: Int?
    @Option(help: "Length of the warmup + cosine learning-rate schedule (default train.steps); independent of --steps so that stopping and resuming retraces a straight run.") var scheduleSteps: Int?
    @Option(help: "Threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Flag(help: "Continue the run in --out from its latest complete checkpoint.") var resume = false
    @Flag(help: "Replace the run already in --out (its model, checkpoints and metrics).") var overwrite = false
    @Flag(help: "With --resume: continue even though settings that shape the run differ from the checkpoint's.") var allowChanges = false
    @Option(help: "Complete checkpoints kept in --out/checkpoints (the newest).") var keepCheckpoints: Int = 2
    @Option(help: "Print a progress line every N steps.") var logInterval: Int = 10
    @Option(help: "Start from this model directory instead of random weights.") var initFrom: String?
    @Option(help: "Under mpirun: 1 shards the optimizer state across ranks (ZeRO-1), 0 keeps it whole on every rank.") var zero: Int = 0
    @Option(help: "Matrix products in fp32, or bf16: bf16 inputs, fp32 accumulation, fp32 weights and optimizer state (needs AVX512-BF16).") var precision: MatrixPrecision = .fp32

    func run() throws {
        let configuration = try TrainingConfiguration.load(URL(fileURLWithPath: config))
        var options = PretrainOptions(configuration: configuration, dataDirectory: URL(fileURLWithPath: data),
                                      outputDirectory: URL(fileURLWithPath: out), steps: steps, threads: threads,
                                      resume: resume, logInterval: logInterval,
                                      initialModel: initFrom.map { URL(fileURLWithPath: $0) })
        options.scheduleSteps = scheduleSteps
        options.mode = RunMode(resume: resume, overwrite: overwrite)
        options.allowChanges = allowChanges
        options.keepCheckpoints = keepCheckpoints
        options.zeroStage = zero
        options.precision = precision
        try Pretrainer(options: options).run()
    }
}
