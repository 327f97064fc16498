import Foundation
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
    public var logInterval: Int = 10
    public var seed: UInt64 = 1234
    public var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    public init() {}

    public var schedule: LearningRateSchedule {
        LearningRateSchedule(peak: learningRate, minimum: minLearningRate, warmupSteps: warmupSteps, totalSteps: steps)
    }
    public var adam: AdamW.Hyperparameters {
        AdamW.Hyperparameters(beta1: beta1, beta2: beta2, eps: 1e-8, weightDecay: weightDecay)
    }
}

/// The bookkeeping every training stage shares: optimizer, schedule, resume state, metrics
/// log, progress lines and atomic checkpoints into the output model directory.
public final class StageRun {
    public let stage: String
    public let model: LlamaModel
    public let tokenizer: ByteLevelBPETokenizer
    public let settings: StageSettings
    public let output: URL
    public let optimizer: AdamW
    public var state: TrainerState
    public let metrics: MetricsLog
    private let started = Date()
    private let firstStep: Int

    public init(stage: String, model: LlamaModel, tokenizer: ByteLevelBPETokenizer, settings: StageSettings,
                output: URL, resume: Bool) throws {
        self.stage = stage; self.model = model; self.tokenizer = tokenizer; self.settings = settings; self.output = output
        Threading.configure(threads: settings.threads)
        optimizer = AdamW(parameters: model.parameters, hyperparameters: settings.adam)
        state = TrainerState(step: 0, rng: SeededRandom(seed: settings.seed), tokensSeen: 0, stage: stage, totalSteps: settings.steps)
        if resume {
            state = try Checkpoint.restore(model: model, optimizer: optimizer, from: output)
            guard state.stage == stage else { throw CheckpointError("\(output.path) holds a \(state.stage) checkpoint, not \(stage)") }
            state.totalSteps = settings.steps
            logLine("resuming \(stage) from step \(state.step) in \(output.path)")
        }
        firstStep = state.step
        metrics = try MetricsLog(directory: output, resumingAfter: resume ? state.step : nil)
    }

    public var isFinished: Bool { state.step >= settings.steps }
    public var learningRate: Float { settings.schedule.learningRate(at: state.step) }

    /// Throws when a loss is NaN or infinite, naming the stage, the step and the checkpoint
    /// that is kept; the stages call it before every backward pass.
    public func requireFinite(_ loss: Float, _ what: String = "loss") throws {
        guard loss.isFinite else {
            throw TrainingError("\(stage) \(what) is \(loss) at step \(state.step + 1); stopping: \(Checkpoint.describeLastCheckpoint(output))")
        }
    }

    /// Clips, applies AdamW, advances the step. Call after the backward pass(es).
    /// Throws on a non-finite gradient, keeping the last checkpoint.
    @discardableResult
    public func optimizerStep() throws -> (gradNorm: Float, learningRate: Float) {
        let lr = learningRate
        let norm = clipGradientNorm(model.parameters, maxNorm: settings.gradClip)
        guard norm.isFinite else {
            throw TrainingError("\(stage): gradient norm is \(norm) at step \(state.step + 1); stopping: \(Checkpoint.describeLastCheckpoint(output))")
        }
        optimizer.update(learningRate: lr)
        state.step += 1
        return (norm, lr)
    }

    /// Advances the step without an update (a batch that holds nothing to learn from).
    public func skipStep() { state.step += 1 }

    /// Logs `fields` (plus step) to metrics.jsonl and, every `logInterval` steps or when
    /// `force`, a progress line with the listed keys.
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
                    + values.joined(separator: " | ") + " | ETA \(formatDuration(eta))")
        }
    }

    public var shouldEvaluate: Bool {
        settings.evalInterval > 0 && (state.step % settings.evalInterval == 0 || state.step == settings.steps)
    }

    /// Writes a checkpoint if this step is on the checkpoint interval (not the last step:
    /// `finish` writes that one).
    public func checkpointIfDue() throws {
        if settings.checkpointInterval > 0 && state.step % settings.checkpointInterval == 0 && !isFinished {
            try checkpoint()
        }
    }

    public func checkpoint() throws {
        try Checkpoint.save(model: model, optimizer: optimizer, state: state, tokenizer: tokenizer, to: output)
    }

    public var seconds: Double { Date().timeIntervalSince(started) }
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
