import Foundation
import LoomSupport
import LoomDistributed
import LoomTokenizer

/// Optimisation settings shared by the alignment stages (SFT, reward, PPO, DPO, GRPO).
/// Every field has a default that works for the tiny model on the bundled data, and every
/// command takes flags that override them.
public struct StageSettings: Codable, Equatable, Sendable {
    public var steps: Int = 200
    public var batchSize: Int = 16
    public var learningRate: Float = 1e-3
    public var minLearningRate: Float = 1e-4
    public var warmupSteps: Int = 10
    public var weightDecay: Float = 0.0
    public var beta1: Float = 0.9
    public var beta2: Float = 0.95
    public var gradClip: Float = 1.0
    public var evalInterval: Int = 50
    public var checkpointInterval: Int = 100
    /// Complete checkpoints kept in `checkpoints/` (the newest ones).
    public var keepCheckpoints: Int = 2
    public var logInterval: Int = 10
    public var seed: UInt64 = 1234
    public var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    /// LoRA (`--lora-rank` …): train low-rank adapters on the frozen model instead of its weights.
    public var lora: LoRASettings?
    /// ZeRO stage of a data-parallel run: 0 (every rank holds the whole optimizer state) or 1
    /// (the state sharded across ranks, `DataParallelOptimizer`). Same results either way.
    public var zeroStage: Int = 0
    /// Precision of the matrix products (`--precision`): fp32, or bf16 inputs with fp32
    /// accumulation (`MatrixPrecision`); weights, gradients and optimizer state stay fp32.
    public var precision: MatrixPrecision = .fp32

    public init() {}

    public var schedule: LearningRateSchedule {
        LearningRateSchedule(peak: learningRate, minimum: minLearningRate, warmupSteps: warmupSteps, totalSteps: steps)
    }
    public var adam: AdamW.Hyperparameters {
        AdamW.Hyperparameters(beta1: beta1, beta2: beta2, eps: 1e-8, weightDecay: weightDecay)
    }
}

/// The bookkeeping every training stage shares: optimizer, schedule, resume state, metrics
/// log, progress lines, and checkpoints through one `CheckpointStore` in the output directory.
public final class StageRun {
    public let stage: String
    public let model: LlamaModel
    public let tokenizer: ByteLevelBPETokenizer
    public let settings: StageSettings
    public let output: URL
    /// The learning rate at each step (`settings.schedule` unless the stage gives its own).
    public let schedule: LearningRateSchedule
    /// AdamW over the parameters (under ZeRO-1, over this rank's block of them).
    public let optimizer: AdamW
    /// What the optimizer trains: the model's parameters, or with LoRA the adapters' only.
    public let trainable: ParameterStore
    /// Gradient averaging, clipping, the update and (ZeRO-1) the sharding of the optimizer state.
    let optimizerStepper: DataParallelOptimizer
    public var state: TrainerState
    public let metrics: MetricsLog
    public let store: CheckpointStore
    /// Held for the life of the run: no other process writes to `output` meanwhile (nil on the
    /// ranks of a data-parallel run other than rank 0, which never write there).
    public let lock: RunLock?
    /// The ranks training together (one process unless started by `mpirun`).
    public let parallel: DataParallel
    /// The checkpoint the run resumed from (nil for a new run).
    public let resumedFrom: URL?
    /// Files of a checkpoint besides the model directory and the optimizer state (PPO's
    /// critic and statistics), written by `saveExtra` into the checkpoint being saved.
    public var saveExtra: ((URL) throws -> Void)?
    /// Names `saveExtra` writes, left out of the exported model and removed by `--overwrite`.
    public let extraStateFiles: [String]
    private let started = Date()
    private let firstStep: Int
    private var savedStep: Int?

    /// Sets up the run in `output` according to `mode` (see `RunMode`). `inputs` are the
    /// directories and files the stage reads (the output may not be one of them); `signature`
    /// is what shapes the run (`RunSignature`), checked against the checkpoint on resume unless
    /// `allowChanges`; `restoreExtra` restores `saveExtra`'s files from the checkpoint being
    /// resumed (a failure there falls back to the previous checkpoint like any other).
    ///
    /// Data parallelism (`DataParallelRun.swift`): `dataParallel` says the stage slices its
    /// batches with `localBatch` (a stage that does not is refused under `mpirun`);
    /// `launchFingerprint` (its data, its reference values) must agree across ranks.
    ///
    /// Pretraining describes itself by its configuration file rather than `StageSettings`:
    /// `schedule` and `adam` then replace `settings.schedule` and `settings.adam`, `rngSeed` the
    /// seed of the run's generator, and `configuration` is kept in the trainer state.
    public init(stage: String, model: LlamaModel, tokenizer: ByteLevelBPETokenizer, settings: StageSettings,
                output: URL, mode: RunMode, inputs: [URL] = [], signature: [String: String] = [:], allowChanges: Bool = false,
                extraStateFiles: [String] = [], restoreExtra: ((URL) throws -> Void)? = nil,
                communicator: Communicator = World.communicator, dataParallel: Bool = false,
                launchFingerprint: [String: String] = [:], schedule: LearningRateSchedule? = nil, adam: AdamW.Hyperparameters? = nil,
                rngSeed: UInt64? = nil, configuration: TrainingConfiguration? = nil) throws {
        self.stage = stage; self.model = model; self.tokenizer = tokenizer; self.settings = settings; self.output = output
        self.schedule = schedule ?? settings.schedule
        self.extraStateFiles = extraStateFiles
        parallel = DataParallel(communicator)
        if parallel.isDistributed && !dataParallel {
            throw TrainingError("loom \(stage) does not train data-parallel yet; run it as one process (without mpirun)")
        }
        Threading.configure(threads: settings.threads)
        do { try MatrixProducts.use(settings.precision) } catch let error as MatrixPrecisionError { throw TrainingError(error.message) }
        guard settings.keepCheckpoints >= 1 else {
            throw TrainingError("--keep-checkpoints must be at least 1, got \(settings.keepCheckpoints)")
        }
        store = CheckpointStore(runDirectory: output, keep: settings.keepCheckpoints)
        lock = parallel.isPrimary ? try RunDirectoryGuard.prepare(store, mode: mode, inputs: inputs, extraRunFiles: extraStateFiles) : nil
        trainable = try attachLoRAIfRequested(settings, to: model, baseModel: inputs.first)
        optimizerStepper = try DataParallelOptimizer(parameters: trainable, hyperparameters: adam ?? settings.adam, parallel: parallel,
                                                     zeroStage: settings.zeroStage)
        optimizer = optimizerStepper.optimizer
        // Paths inside the run's own parent directory are kept relative to it, so that a copied or
        // moved run resumes (`RunSignature.relativized`).
        let fullSignature = RunSignature.relativized(
            parallel.withGlobalBatch(signature.isEmpty ? RunSignature.of(settings) : signature,
                                     keys: ["settings.batchSize", "batchSize", "configuration.train.batchSize"],
                                     perRank: settings.batchSize),
            to: output)
        state = TrainerState(step: 0, rng: SeededRandom(seed: rngSeed ?? settings.seed), tokensSeen: 0, stage: stage, totalSteps: settings.steps,
                             configuration: configuration, signature: fullSignature)
        let resuming = mode == .resume || (mode == .resumeIfPresent && !store.candidates().isEmpty)
        if resuming {
            let restoreTarget = optimizerStepper.restoreTarget()
            let (restored, checkpoint) = try store.resume { [model] directory -> TrainerState in
                let state = try Checkpoint.resumeRun(stage: stage, signature: fullSignature, allowChanges: allowChanges,
                                                     model: model, optimizer: restoreTarget, from: directory, runDirectory: output)
                try restoreExtra?(directory)
                return state
            }
            optimizerStepper.adoptRestored(restoreTarget)
            state = restored
            state.totalSteps = settings.steps
            state.signature = fullSignature
            resumedFrom = checkpoint
            savedStep = state.step
            logLine("resuming \(stage) from step \(state.step) in \(checkpoint.path)")
        } else {
            resumedFrom = nil
        }
        firstStep = state.step
        try parallel.startTogether(model: model, optimizer: optimizer, shardedMoments: optimizerStepper.isSharded, step: state.step,
                                   launch: fullSignature.merging(launchFingerprint) { $1 })
        metrics = parallel.isPrimary ? try MetricsLog(directory: output, resumingAfter: resuming ? state.step : nil) : MetricsLog(discarding: output)
        reseedLoRADropout()
    }

    public var isFinished: Bool { state.step >= settings.steps }
    public var learningRate: Float { schedule.learningRate(at: state.step) }

    /// Throws when a loss is NaN or infinite, naming the stage, the step and the checkpoint
    /// that is kept; the stages call it before every backward pass.
    public func requireFinite(_ loss: Float, _ what: String = "loss") throws {
        guard loss.isFinite else {
            throw TrainingError("\(stage) \(what) is \(loss) at step \(state.step + 1); stopping: \(store.describeLastCheckpoint())")
        }
    }

    /// Averages the ranks' gradients, clips, applies AdamW, advances the step (unless
    /// `advancing` is false: GRPO's inner updates on one batch share its step). Call after the
    /// backward pass(es). Throws on a non-finite gradient, keeping the last checkpoint.
    @discardableResult
    public func optimizerStep(advancing: Bool = true) throws -> (gradNorm: Float, learningRate: Float) {
        let lr = learningRate
        let norm = try optimizerStepper.clipCheckUpdate(maxNorm: settings.gradClip, learningRate: lr) { [self] norm in
            TrainingError("\(stage): gradient norm is \(norm) at step \(state.step + 1); stopping: \(store.describeLastCheckpoint())")
        }
        if advancing {
            state.step += 1
            reseedLoRADropout()
        }
        return (norm, lr)
    }

    /// Lets `tape`'s backward pass start averaging the ranks' gradients as they become final,
    /// overlapped with the rest of the backward pass (data-parallel runs; nothing otherwise).
    /// Call it before recording the forward pass, for the last backward before `optimizerStep`.
    public func overlapGradientReduction(with tape: Tape) { optimizerStepper.watchGradients(tape) }

    /// Advances the step without an update (a batch that holds nothing to learn from).
    public func skipStep() { state.step += 1; reseedLoRADropout() }

    /// Zeroes the gradients of what is trained (before each backward pass).
    public func zeroGradients() { trainable.zeroGradients() }

    /// LoRA dropout masks are a function of (seed, step), so a resumed run draws the same ones.
    private func reseedLoRADropout() {
        model.adapters?.dropoutRandom = SeededRandom(seed: settings.seed &+ 0x10A_D50 &+ UInt64(state.step) &* 1_000_003)
    }

    /// Logs `fields` (plus step) to metrics.jsonl and, every `logInterval` steps or when
    /// `force`, a progress line with the listed keys. Throws when the metrics cannot be written.
    public func log(_ fields: [String: Any], show keys: [String], force: Bool = false) throws {
        var record = fields
        record["step"] = state.step
        record["elapsed"] = Date().timeIntervalSince(started)
        try metrics.log(record)
        if force || state.step % max(1, settings.logInterval) == 0 || state.step == settings.steps {
            let done = state.step - firstStep
            let rate = Double(done) / max(Date().timeIntervalSince(started), 1e-9)
            let eta = Double(settings.steps - state.step) / max(rate, 1e-9)
            let values = keys.compactMap { key -> String? in
                guard let v = record[key] else { return nil }
                if let d = v as? Double { return "\(key) \(String(format: abs(d) < 0.01 && d != 0 ? "%.2e" : "%.4f", d))" }
                if let f = v as? Float { return "\(key) \(String(format: "%.4f", f))" }
                return "\(key) \(v)"
            }
            logLine("\(progressBar(fraction: Double(state.step) / Double(max(settings.steps, 1)))) \(stage) \(state.step)/\(settings.steps) | "
                    + values.joined(separator: " | ") + " | ETA \(DurationText.format(eta))")
        }
    }

    /// Whether this step evaluates (rank 0 only: the ranks hold the same weights).
    public var shouldEvaluate: Bool {
        parallel.isPrimary && settings.evalInterval > 0 && (state.step % settings.evalInterval == 0 || state.step == settings.steps)
    }

    /// Writes a checkpoint if this step is on the checkpoint interval (not the last step:
    /// `finish` writes that one).
    public func checkpointIfDue() throws {
        if settings.checkpointInterval > 0 && state.step % settings.checkpointInterval == 0 && !isFinished {
            try checkpoint()
        }
    }

    /// Writes the checkpoint of the current step (once per step), returning its directory.
    @discardableResult
    public func checkpoint() throws -> URL {
        // Every rank decides alike (the optimizer state is gathered collectively); only rank 0 writes.
        if savedStep == state.step, parallel.isDistributed || store.latest() != nil { return store.latest() ?? output }
        let optimizerState = optimizerStepper.gatheredState()
        guard parallel.isPrimary else {
            savedStep = state.step
            return output
        }
        let directory = try store.save(step: state.step) { [self] staging in
            try Checkpoint.save(model: model, optimizer: optimizerState, state: state, tokenizer: tokenizer, to: staging)
            try saveExtra?(staging)
        }
        savedStep = state.step
        return directory
    }

    /// The end of a run: the last checkpoint, and its model files made the output directory's
    /// own, so that `output` is a plain Hugging Face model directory for the next stage.
    public func finish() throws {
        let directory = try checkpoint()
        guard parallel.isPrimary else { return }
        try store.exportModel(from: directory, excluding: Set(extraStateFiles))
    }

    public var seconds: Double { Date().timeIntervalSince(started) }

    // The products after the run (a test, the next stage of a pipeline) run in fp32 again.
    deinit { MatrixProducts.useFP32() }
}

/// Pads rows of token ids to a common length: `[rows, length]` ids (pad = `padID`) and
/// next-token targets where `targetMask[t + 1]` (default: all real tokens) is true, else
/// ignored.
public func paddedBatch(_ sequences: [[Int32]], targetMasks: [[Bool]]? = nil, padID: Int32) -> (tokens: [Int32], targets: [Int32], length: Int) {
    let length = sequences.map(\.count).max() ?? 1
    var tokens = [Int32](repeating: padID, count: sequences.count * length)
    var targets = [Int32](repeating: ignoredTarget, count: sequences.count * length)
    for (r, seq) in sequences.enumerated() {
        for (t, id) in seq.enumerated() { tokens[r * length + t] = id }
        for t in 0..<max(0, seq.count - 1) where targetMasks?[r][t + 1] ?? true {
            targets[r * length + t] = seq[t + 1]
        }
    }
    return (tokens, targets, length)
}

/// The example indices of optimizer step `step`: the examples are shuffled once per epoch by a
/// generator seeded with (seed, epoch), and each step takes the next `batchSize` of that order.
/// The batch is a function of the step alone, so a resumed run sees exactly the batches the
/// interrupted one would have.
public func epochBatchIndices(step: Int, count: Int, batchSize: Int, seed: UInt64) -> [Int] {
    let size = min(batchSize, count)
    let perEpoch = max(1, count / max(size, 1))
    let order = epochOrder(count: count, epoch: step / perEpoch, seed: seed), offset = (step % perEpoch) * size
    return (0..<size).map { order[(offset + $0) % order.count] }
}

/// The seeded permutation of `0..<count` that `epochBatchIndices` cuts epoch `epoch`'s batches
/// from; also any other reproducible draw of a whole set (GRPO's extra sampling rounds).
func epochOrder(count: Int, epoch: Int, seed: UInt64) -> [Int] {
    var rng = epochGenerator(epoch: epoch, seed: seed)
    return shuffledOrder(count, &rng)
}

/// The generator of one epoch's order, seeded with (seed, epoch).
private func epochGenerator(epoch: Int, seed: UInt64) -> SeededRandom {
    SeededRandom(seed: seed &+ UInt64(epoch) &* 7919)
}

private func shuffledOrder(_ count: Int, _ rng: inout SeededRandom) -> [Int] {
    var order = Array(0..<count)
    order.shuffle(using: &rng)
    return order
}

/// Like `epochBatchIndices`, but each batch holds examples of similar length (Hugging Face's
/// `group_by_length`): each epoch's seeded order is cut into mega-batches of `megaBatch` batches,
/// each mega-batch is sorted by length and cut into batches, and the epoch's batches are shuffled.
/// With padding per batch, a few long examples then no longer make every batch long: padding
/// costs little, and short examples' tokens are not outweighed in the loss by a long example's.
/// A function of the step alone, like `epochBatchIndices` (resumes see the same batches).
public func lengthGroupedBatchIndices(step: Int, lengths: [Int], batchSize: Int, seed: UInt64, megaBatch: Int = 50) -> [Int] {
    let count = lengths.count
    let size = min(batchSize, count)
    guard size > 0 else { return [] }
    let perEpoch = max(1, count / size)
    var rng = epochGenerator(epoch: step / perEpoch, seed: seed)
    let order = Array(shuffledOrder(count, &rng).prefix(perEpoch * size))
    var batches: [[Int]] = []
    for start in stride(from: 0, to: order.count, by: size * max(1, megaBatch)) {
        // Longest first; ties keep the shuffled order.
        let chunk = order[start..<min(start + size * max(1, megaBatch), order.count)].enumerated()
            .sorted { lengths[$0.element] != lengths[$1.element] ? lengths[$0.element] > lengths[$1.element] : $0.offset < $1.offset }
            .map(\.element)
        for b in stride(from: 0, to: chunk.count, by: size) { batches.append(Array(chunk[b..<min(b + size, chunk.count)])) }
    }
    batches.shuffle(using: &rng)
    return batches[step % perEpoch]
}
