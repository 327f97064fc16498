import Foundation
import LoomSupport
import LoomData
import LoomDistributed
import LoomTokenizer

public struct TrainingError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Options of `loom pretrain`.
public struct PretrainOptions {
    public var configuration: TrainingConfiguration
    public var dataDirectory: URL
    public var outputDirectory: URL
    /// Total optimizer steps of the run: where it stops (default `train.steps`). The
    /// learning-rate schedule always spans `scheduleSteps` (default `train.steps`), never the
    /// stopping point, so `--steps 10` then `--steps 20 --resume` retraces `--steps 20`
    /// exactly (nanoGPT's `lr_decay_iters` versus `max_iters`).
    public var steps: Int?
    /// Length of the warmup + cosine schedule (default `train.steps`).
    public var scheduleSteps: Int?
    public var threads: Int
    /// New run, `--overwrite`, `--resume` (see `RunMode`).
    public var mode: RunMode
    /// Resume even though settings that shape the run changed (`--allow-changes`).
    public var allowChanges = false
    /// Complete checkpoints kept in `checkpoints/`.
    public var keepCheckpoints = 2
    /// `--resume`: continue the run in the output directory.
    public var resume: Bool {
        get { mode == .resume }
        set { mode = newValue ? .resume : .fresh }
    }
    /// Print a progress line every this many steps.
    public var logInterval: Int
    /// Model to start from instead of random initialisation (continued pretraining).
    public var initialModel: URL?
    /// ZeRO stage of a data-parallel run (`StageSettings.zeroStage`).
    public var zeroStage = 0
    /// Precision of the matrix products (`StageSettings.precision`).
    public var precision: MatrixPrecision = .fp32

    public init(configuration: TrainingConfiguration, dataDirectory: URL, outputDirectory: URL, steps: Int? = nil,
                threads: Int = 1, resume: Bool = false, logInterval: Int = 10, initialModel: URL? = nil) {
        self.configuration = configuration; self.dataDirectory = dataDirectory; self.outputDirectory = outputDirectory
        self.steps = steps; self.threads = threads; self.mode = resume ? .resume : .fresh; self.logInterval = logInterval
        self.initialModel = initialModel
    }
}

public struct EvaluationResult: Codable, Sendable {
    public var loss: Double
    /// Bits per UTF-8 byte of the evaluated text: total nats / ln 2 / bytes. Independent of
    /// the tokenizer, so models with different vocabularies compare.
    public var bitsPerByte: Double
    public var tokens: Int
    public var bytes: Int
}

public struct PretrainSummary: Codable, Sendable {
    public var steps: Int
    public var finalTrainLoss: Double
    public var validation: EvaluationResult?
    public var tokensPerSecond: Double
    public var seconds: Double
    public var parameters: Int
}

/// Draws `[batch, context + 1]` windows uniformly from a token dataset with a seeded
/// generator: inputs are the first `context` tokens, targets the next ones.
public struct WindowSampler {
    public let dataset: TokenDataset
    public let batch: Int
    public let context: Int

    public init(dataset: TokenDataset, batch: Int, context: Int) throws {
        guard dataset.count > context + 1 else {
            throw TrainingError("\(dataset.directory.path) (\(dataset.split)) holds \(dataset.count) tokens, fewer than one window of \(context + 1)")
        }
        self.dataset = dataset; self.batch = batch; self.context = context
    }

    /// Draws the `batch` windows of one step and returns rows `rows` of them (all by default;
    /// one rank's slice in data-parallel training, which still draws every window so that all
    /// ranks' generators stay in step).
    public func sample(_ rng: inout SeededRandom, rows: Range<Int>? = nil) -> (inputs: [Int32], targets: [Int32]) {
        let rows = rows ?? 0..<batch
        var inputs = [Int32](repeating: 0, count: rows.count * context), targets = inputs
        var window = [Int32](repeating: 0, count: context + 1)
        for b in 0..<batch {
            let start = rng.nextInt(below: dataset.count - context - 1)
            guard rows.contains(b) else { continue }
            let row = b - rows.lowerBound
            window.withUnsafeMutableBufferPointer { dataset.copy(from: start, count: context + 1, into: $0.baseAddress!) }
            for t in 0..<context {
                inputs[row * context + t] = window[t]
                targets[row * context + t] = window[t + 1]
            }
        }
        return (inputs, targets)
    }
}

/// Mean loss and bits per byte over a fixed set of validation windows (evenly spaced
/// through the split, the same at every evaluation).
public func evaluateLanguageModel(model: LlamaModel, dataset: TokenDataset, tokenizer: ByteLevelBPETokenizer,
                                  batch: Int, context: Int, batches: Int) -> EvaluationResult {
    let windows = min(batches * batch, max(1, (dataset.count - 1) / context))
    let stride = max(context, (dataset.count - context - 1) / max(windows, 1))
    var totalNats = 0.0, totalTokens = 0, totalBytes = 0
    var w = 0
    while w < windows {
        let rows = min(batch, windows - w)
        var inputs = [Int32](), targets = [Int32]()
        for r in 0..<rows {
            let start = min((w + r) * stride, dataset.count - context - 1)
            let window = dataset.window(from: start, count: context + 1)
            inputs += window.dropLast()
            targets += window.dropFirst()
            totalBytes += tokenizer.decodeBytes(window.dropFirst().map(Int.init)).count
        }
        let loss = withoutGradients { model.languageModelLoss(tokens: inputs, targets: targets, batch: rows, sequence: context) }
        totalNats += Double(loss.item) * Double(rows * context)
        totalTokens += rows * context
        w += rows
    }
    let meanLoss = totalNats / Double(max(totalTokens, 1))
    return EvaluationResult(loss: meanLoss, bitsPerByte: totalNats / Foundation.log(2.0) / Double(max(totalBytes, 1)),
                            tokens: totalTokens, bytes: totalBytes)
}

/// Next-token pretraining on token shards: seeded windows, AdamW with warmup + cosine,
/// gradient clipping and accumulation, periodic validation and atomic checkpoints, exact
/// resume.
public final class Pretrainer {
    public let options: PretrainOptions
    /// The ranks training together (`train.batch_size` is per rank; see `DataParallel`).
    public let communicator: Communicator
    public init(options: PretrainOptions, communicator: Communicator = World.communicator) {
        self.options = options; self.communicator = communicator
    }

    @discardableResult
    public func run() throws -> PretrainSummary {
        let config = options.configuration
        let train = config.train
        let totalSteps = options.steps ?? train.steps
        let out = options.outputDirectory
        Threading.configure(threads: options.threads)

        let trainData = try TokenDataset(directory: options.dataDirectory, split: "train")
        let validationData = try? TokenDataset(directory: options.dataDirectory, split: "val")
        let tokenizer = try ByteLevelBPETokenizer(contentsOf: options.dataDirectory.appendingPathComponent("tokenizer.json"))
        guard tokenizer.vocabularySize <= config.model.vocabularySize else {
            throw ConfigurationError("the tokenizer in \(options.dataDirectory.path) has \(tokenizer.vocabularySize) tokens but model.vocab_size is \(config.model.vocabularySize)")
        }
        try config.train.validate(model: config.model)
        try config.model.checkFitsInMemory(bytesPerParameter: 16, purpose: "training (weights, gradients and two AdamW moments)")
        var modelConfig = config.model
        modelConfig.eosTokenID = tokenizer.endOfTextID
        modelConfig.bosTokenID = tokenizer.endOfTextID
        modelConfig.padTokenID = tokenizer.padID
        let model: LlamaModel
        if let initial = options.initialModel {
            model = try LlamaModel.load(directory: initial)
            guard tokenizer.vocabularySize <= model.configuration.vocabularySize else {
                throw ConfigurationError("\(initial.path) has vocab_size \(model.configuration.vocabularySize), fewer than the \(tokenizer.vocabularySize) tokens of the tokenizer in \(options.dataDirectory.path)")
            }
            if model.configuration.hiddenSize != config.model.hiddenSize || model.configuration.layerCount != config.model.layerCount {
                logLine("note: --init-from \(initial.path) is not the model of \(config.model.layerCount) layers × \(config.model.hiddenSize) the configuration describes; training the loaded model")
            }
            model.setSpecialTokens(bos: tokenizer.endOfTextID, eos: tokenizer.endOfTextID, pad: tokenizer.padID)
        } else {
            model = LlamaModel(configuration: modelConfig)
            model.initializeWeights(seed: train.seed)
        }
        try trainData.checkTokens(below: model.configuration.vocabularySize)
        try validationData?.checkTokens(below: model.configuration.vocabularySize)

        // What shapes the run: the configuration (less the cadence of evaluation and
        // checkpoints), the data, the starting model and the schedule's length.
        var signature = RunSignature.of(options, excluding: RunSignature.resumableChanges.union(["evalBatches"]))
        signature["scheduleSteps"] = String(options.scheduleSteps ?? train.steps)
        var dataFingerprint = Fingerprint()
        dataFingerprint.add(trainData.count)
        dataFingerprint.add(trainData.window(from: 0, count: min(trainData.count, 1 << 16)))
        // The stage machinery every trainer shares (run directory, optimizer, resume, metrics,
        // checkpoints), described by the configuration file instead of alignment-stage flags.
        var settings = StageSettings()
        settings.steps = totalSteps
        settings.batchSize = train.batchSize
        settings.gradClip = train.gradClip
        settings.evalInterval = train.evalInterval
        settings.checkpointInterval = train.checkpointInterval
        settings.keepCheckpoints = options.keepCheckpoints
        settings.logInterval = options.logInterval
        settings.seed = train.seed
        settings.threads = options.threads
        settings.zeroStage = options.zeroStage
        settings.precision = options.precision
        let run = try StageRun(stage: "pretrain", model: model, tokenizer: tokenizer, settings: settings, output: out, mode: options.mode,
                               inputs: [options.dataDirectory] + (options.initialModel.map { [$0] } ?? []), signature: signature,
                               allowChanges: options.allowChanges, communicator: communicator, dataParallel: true,
                               launchFingerprint: ["data.tokens": dataFingerprint.hex],
                               schedule: train.schedule(totalSteps: options.scheduleSteps ?? train.steps), adam: train.adamHyperparameters,
                               rngSeed: train.seed &+ 1, configuration: config)
        let parallel = run.parallel
        let globalBatch = train.batchSize * parallel.size
        let localRows = try parallel.localRows(globalBatch: globalBatch)
        let sampler = try WindowSampler(dataset: trainData, batch: globalBatch, context: train.contextLength)
        // Tokens of one optimizer step over all ranks: the throughput reported is the global one.
        let tokensPerStep = globalBatch * train.contextLength * train.gradientAccumulation
        logLine("pretraining \(model.parameters.count) parameters on \(trainData.count) tokens: \(totalSteps) steps × \(tokensPerStep) tokens, \(options.threads) thread(s)"
                + (parallel.isDistributed ? " per rank × \(parallel.size) ranks (batch \(train.batchSize) per rank)" : "")
                + (options.precision == .bf16 ? ", bf16 matrix products (\(MatrixProducts.bf16Name))" : ""))

        func evaluate() -> EvaluationResult? {
            guard parallel.isPrimary, let validationData, validationData.count > train.contextLength + 1 else { return nil }
            return evaluateLanguageModel(model: model, dataset: validationData, tokenizer: tokenizer, batch: train.batchSize,
                                         context: train.contextLength, batches: train.evalBatches)
        }

        let start = Date()
        let firstStep = run.state.step
        var lastLoss = Double.nan, validation: EvaluationResult? = nil
        var windowStart = Date(), windowTokens = 0
        while !run.isFinished {
            run.zeroGradients()
            var stepLoss = 0.0
            for micro in 0..<train.gradientAccumulation {
                let batch = sampler.sample(&run.state.rng, rows: localRows)
                let tape = Tape()
                if micro == train.gradientAccumulation - 1 { run.overlapGradientReduction(with: tape) }
                let loss = tape.record {
                    model.languageModelLoss(tokens: batch.inputs, targets: batch.targets, batch: localRows.count, sequence: train.contextLength)
                }
                guard loss.item.isFinite else {
                    throw TrainingError("loss is \(loss.item) at step \(run.state.step + 1); stopping: \(run.store.describeLastCheckpoint()). Try a lower learning_rate.")
                }
                tape.backward(from: loss, seed: 1 / Float(train.gradientAccumulation))
                stepLoss += Double(loss.item) / Double(train.gradientAccumulation)
            }
            stepLoss = parallel.averaged([stepLoss])[0]
            let (gradNorm, lr) = try run.optimizerStep()
            run.state.tokensSeen += tokensPerStep
            windowTokens += tokensPerStep
            lastLoss = stepLoss
            let elapsed = Date().timeIntervalSince(start)
            let windowSeconds = Date().timeIntervalSince(windowStart)
            let tokensPerSecond = Double(windowTokens) / max(windowSeconds, 1e-9)
            var record: [String: Any] = ["step": run.state.step, "loss": stepLoss, "lr": Double(lr), "grad_norm": Double(gradNorm),
                                         "tokens_per_second": tokensPerSecond, "elapsed": elapsed, "tokens": run.state.tokensSeen]
            let isLast = run.isFinished
            if train.evalInterval > 0 && (run.state.step % train.evalInterval == 0 || isLast), let v = evaluate() {
                validation = v
                record["val_loss"] = v.loss
                record["val_bpb"] = v.bitsPerByte
            }
            try run.metrics.log(record)
            if run.state.step % max(1, options.logInterval) == 0 || isLast || record["val_loss"] != nil {
                let eta = Double(totalSteps - run.state.step) * Double(tokensPerStep) / max(tokensPerSecond, 1e-9)
                let bar = progressBar(fraction: Double(run.state.step) / Double(totalSteps))
                var line = String(format: "%@ step %d/%d | loss %.4f | lr %.2e | grad %.2f | %.0f tok/s | ETA %@",
                                  bar, run.state.step, totalSteps, stepLoss, lr, gradNorm, tokensPerSecond, DurationText.format(eta))
                if let v = record["val_loss"] as? Double { line += String(format: " | val %.4f (%.3f bpb)", v, record["val_bpb"] as! Double) }
                logLine(line)
                windowStart = Date(); windowTokens = 0
            }
            try run.checkpointIfDue()
        }
        if validation == nil { validation = evaluate() }
        try run.finish()
        let seconds = Date().timeIntervalSince(start)
        let summary = PretrainSummary(steps: run.state.step, finalTrainLoss: lastLoss, validation: validation,
                                      tokensPerSecond: Double((run.state.step - firstStep) * tokensPerStep) / max(seconds, 1e-9), seconds: seconds,
                                      parameters: model.parameters.count)
        if let v = validation {
            logLine(String(format: "done: %d steps in %@, val loss %.4f, %.3f bits/byte; model in %@", run.state.step,
                           DurationText.format(seconds), v.loss, v.bitsPerByte, out.path))
        }
        return summary
    }
}

/// A 20-cell text progress bar.
public func progressBar(fraction: Double) -> String {
    let cells = 20, filled = Int((min(max(fraction, 0), 1) * Double(cells)).rounded(.down))
    return "[" + String(repeating: "█", count: filled) + String(repeating: "·", count: cells - filled) + "]"
}
