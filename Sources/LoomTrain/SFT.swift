import Foundation
import LoomData
import LoomDistributed
import LoomInference
import LoomTokenizer

/// Options of `loom sft`.
public struct SFTOptions {
    public var model: URL
    public var data: [URL]
    public var output: URL
    public var settings = StageSettings()
    public var validationFraction = 0.05
    /// Longest example in tokens; longer ones are cut at the end.
    public var maxLength: Int?
    public var skipBadLines = false
    /// New run, `--overwrite`, `--resume` (see `RunMode`).
    public var mode: RunMode = .fresh
    /// Resume even though settings that shape the run changed (`--allow-changes`).
    public var allowChanges = false
    /// `--resume`: continue the run in the output directory.
    public var resume: Bool {
        get { mode == .resume }
        set { mode = newValue ? .resume : .fresh }
    }
    /// Batches of examples of similar length (`lengthGroupedBatchIndices`) instead of random ones.
    public var groupByLength = false

    public init(model: URL, data: [URL], output: URL) {
        self.model = model; self.data = data; self.output = output
        settings.learningRate = 1e-3
        settings.minLearningRate = 1e-4
    }
}

public struct SFTSummary: Codable, Sendable {
    public var examples: Int
    public var skippedLines: Int
    public var trainLoss: Double
    public var validationLoss: Double
    public var steps: Int
    public var seconds: Double
}

/// One tokenised chat example: ids, and which positions are assistant tokens (the loss
/// is taken on those only).
public struct TokenizedExample: Sendable {
    public var ids: [Int32]
    public var assistantMask: [Bool]
}

public func tokenizeChat(_ example: SFTExample, tokenizer: ByteLevelBPETokenizer, maxLength: Int) -> TokenizedExample {
    let (ids, mask) = tokenizer.chatTemplate.encodeForTraining(example.messages, tokenizer: tokenizer)
    let n = min(ids.count, maxLength)
    return TokenizedExample(ids: ids.prefix(n).map(Int32.init), assistantMask: Array(mask.prefix(n)))
}

/// Supervised fine-tuning: next-token loss on assistant tokens only, examples padded per
/// batch (padding at the end cannot affect earlier positions under the causal mask),
/// shuffled every epoch with a seeded generator (optionally grouped by length), validation
/// loss on a held-out split.
public final class SFTTrainer {
    public let options: SFTOptions
    public init(options: SFTOptions) { self.options = options }

    @discardableResult
    public func run() throws -> SFTSummary {
        let settings = options.settings
        try settings.validate(stage: "sft")
        try checkValidationFraction(options.validationFraction, stage: "sft")
        let loaded = try StageModel(loading: options.model, heads: .languageModel, settings: settings, maxLength: options.maxLength, stage: "sft")
        let (model, tokenizer, padID, maxLength) = (loaded.model, loaded.tokenizer, loaded.padID, loaded.maxLength)
        var examples: [SFTExample] = [], skipped = 0
        for url in options.data {
            let loaded = try SFTDataset.load(url, skipBadLines: options.skipBadLines) { logLine("skipped: \($0)") }
            examples += loaded.examples
            skipped += loaded.skipped
        }
        guard examples.count >= 2 else { throw TrainingError("SFT needs at least 2 examples; \(options.data.map(\.path)) hold \(examples.count)") }
        var tokenized = examples.map { tokenizeChat($0, tokenizer: tokenizer, maxLength: maxLength) }
            .filter { $0.assistantMask.dropFirst().contains(true) }
        guard tokenized.count >= 2 else {
            throw TrainingError("SFT: only \(tokenized.count) of \(examples.count) examples keep an assistant token within \(maxLength) tokens; need at least 2 (one is held out)")
        }
        // Seeded split into train and validation.
        var splitRNG = SeededRandom(seed: settings.seed ^ 0x5F7)
        tokenized.shuffle(using: &splitRNG)
        let validationCount = max(1, Int(Double(tokenized.count) * options.validationFraction))
        let validation = Array(tokenized.prefix(validationCount)), train = Array(tokenized.dropFirst(validationCount))
        guard !train.isEmpty else {
            throw TrainingError("SFT: --val-fraction \(options.validationFraction) holds out all \(tokenized.count) examples; nothing is left to train on")
        }
        logLine("SFT: \(train.count) training and \(validation.count) validation examples (\(skipped) lines skipped), \(settings.steps) steps × \(settings.batchSize)")

        let run = try StageRun(stage: "sft", model: model, tokenizer: tokenizer, settings: settings, output: options.output, mode: options.mode,
                               inputs: [options.model] + options.data, signature: RunSignature.of(options), allowChanges: options.allowChanges,
                               dataParallel: true, launchFingerprint: ["data.examples": tokenizedFingerprint(train + validation)])
        func loss(_ batch: [TokenizedExample]) -> (tokens: [Int32], targets: [Int32], length: Int) {
            paddedBatch(batch.map(\.ids), targetMasks: batch.map(\.assistantMask), padID: padID)
        }
        func validationLoss() -> Double {
            var nats = 0.0, count = 0
            for start in stride(from: 0, to: validation.count, by: settings.batchSize) {
                let b = Array(validation[start..<min(start + settings.batchSize, validation.count)])
                let batch = loss(b)
                let counted = batch.targets.filter { $0 != ignoredTarget }.count
                let l = withoutGradients { model.languageModelLoss(tokens: batch.tokens, targets: batch.targets, batch: b.count, sequence: batch.length) }
                nats += Double(l.item) * Double(counted)
                count += counted
            }
            return nats / Double(max(count, 1))
        }
        let lengths = train.map(\.ids.count)
        func batchIndices(step: Int) -> [Int] {
            options.groupByLength
                ? lengthGroupedBatchIndices(step: step, lengths: lengths, batchSize: run.globalBatchSize, seed: settings.seed)
                : epochBatchIndices(step: step, count: train.count, batchSize: run.globalBatchSize, seed: settings.seed)
        }
        var lastLoss = Double.nan, lastValidation = Double.nan
        while !run.isFinished {
            let batchExamples = try run.localBatch(batchIndices(step: run.state.step)).map { train[$0] }
            let batch = loss(batchExamples)
            run.zeroGradients()
            let tape = Tape()
            run.overlapGradientReduction(with: tape)
            let l = tape.record { sftLoss(model: model, tokens: batch.tokens, targets: batch.targets, batch: batchExamples.count, sequence: batch.length) }
            try run.requireFinite(l.item)
            // The loss is a mean over assistant tokens: weigh this rank's mean by its share of
            // the global batch's tokens (1 in a single process).
            let counted = batch.targets.reduce(0) { $0 + ($1 != ignoredTarget ? 1 : 0) }
            let share = run.parallel.meanWeight(localCount: counted)
            tape.backward(from: l, seed: share.weight)
            let (norm, lr) = try run.optimizerStep()
            lastLoss = run.parallel.averaged([Double(l.item) * Double(share.weight)])[0]
            // Padded tokens of the global batch (every rank's slice).
            let tokens = Int(run.parallel.summed([Double(batch.tokens.count)])[0])
            var record: [String: Any] = ["loss": lastLoss, "lr": Double(lr), "grad_norm": Double(norm), "tokens": tokens]
            if run.shouldEvaluate {
                lastValidation = validationLoss()
                record["val_loss"] = lastValidation
            }
            try run.log(record, show: ["loss", "val_loss", "lr", "grad_norm"], force: record["val_loss"] != nil)
            try run.checkpointIfDue()
        }
        if lastValidation.isNaN { lastValidation = validationLoss() }
        try run.finish()
        return SFTSummary(examples: tokenized.count, skippedLines: skipped, trainLoss: lastLoss, validationLoss: lastValidation,
                          steps: run.state.step, seconds: run.seconds)
    }
}

/// A fingerprint of tokenised examples, which the ranks of a data-parallel run compare.
func tokenizedFingerprint(_ examples: [TokenizedExample]) -> String {
    var fingerprint = Fingerprint()
    fingerprint.add(examples.count)
    for example in examples { fingerprint.add(example.ids); fingerprint.add(example.assistantMask) }
    return fingerprint.hex
}
