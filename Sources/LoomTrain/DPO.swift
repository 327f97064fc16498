import Foundation
import LoomSupport
import LoomData
import LoomDistributed
import LoomInference
import LoomTokenizer

/// How a K-wise ranking line of the preference data becomes DPO pairs.
public enum RankingPairs: String, Codable, Sendable, CaseIterable {
    /// Every one of the C(K, 2) ordered pairs (each response over every response ranked below it).
    case all
    /// Only the best response over the worst: one pair per ranking, the clearest signal.
    case bestWorst = "best-worst"

    public func pairs(_ record: PreferenceRecord) -> [PreferencePair] {
        switch (self, record) {
        case (_, .pair(let pair)): return [pair]
        case (.all, .ranking(let ranked)): return ranked.pairs
        case (.bestWorst, .ranking(let ranked)):
            let ordered = ranked.ordered
            return [PreferencePair(prompt: ranked.prompt, chosen: ordered.first!, rejected: ordered.last!, source: ranked.source)]
        }
    }
}

/// Options of `loom dpo`.
public struct DPOOptions {
    public var model: URL
    /// Preference files (pairs and/or rankings, `PreferenceDataset`).
    public var data: [URL]
    public var output: URL
    public var settings = StageSettings()
    public var beta: Float = 0.1
    public var kind: DPOKind = .sigmoid
    public var labelSmoothing: Float = 0
    /// Weight α of an NLL term on the chosen responses (RPO, Pang et al. 2024; TRL's
    /// `rpo_alpha`): loss = DPO + α · mean token NLL of chosen. Plain DPO lets the chosen
    /// log-probs fall as long as the rejected ones fall faster; with a weak SFT model that
    /// un-learns its correct answers, and the NLL term holds them up. 0 (the default) is plain
    /// DPO; any other value is RPO and is labelled so in the log.
    public var sftWeight: Float = 0

    /// "DPO" for plain DPO, "RPO" when the loss adds the chosen responses' NLL.
    public var methodName: String { sftWeight == 0 ? "DPO" : "RPO" }
    public var rankingPairs: RankingPairs = .all
    /// Pairs added to those of `data` (for example chosen = reference answer over the SFT
    /// model's own wrong answer, built by the command before training).
    public var extraPairs: [PreferencePair] = []
    /// Preference files for held-out preference accuracy; without them a `validationFraction`
    /// of the training prompts (all pairs of a prompt together) is held out instead.
    public var heldoutPreferences: [URL] = []
    public var validationFraction = 0.05
    /// Longest prompt + response in tokens (default: the model's context).
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

    public init(model: URL, data: [URL], output: URL) {
        self.model = model; self.data = data; self.output = output
        // Measured on the tiny pipeline (see the DPO notes in the report): plain DPO at 1e-4
        // leaves exact match unchanged, at 5e-4 it lowers it; with the chosen-NLL term at 5e-4
        // it rises.
        settings.steps = 100
        settings.batchSize = 16
        settings.learningRate = 5e-4
        settings.minLearningRate = 5e-5
        settings.warmupSteps = 5
        settings.evalInterval = 50
        settings.checkpointInterval = 50
    }
}

/// Held-out preference metrics of a DPO policy against its reference.
public struct DPOPreferenceMetrics: Codable, Sendable {
    /// Fraction of pairs whose implicit reward β·(log π − log π_ref) is strictly higher for the
    /// chosen response (0 when policy = reference: every pair ties).
    public var accuracy: Double
    /// Mean chosen − rejected implicit reward.
    public var margin: Double
    public var chosenReward: Double
    public var rejectedReward: Double
    /// The DPO loss on these pairs.
    public var loss: Double
    public var pairs: Int
}

public struct DPOSummary: Codable, Sendable {
    public var trainPairs: Int
    public var heldoutPairs: Int
    public var skippedLines: Int
    public var steps: Int
    public var seconds: Double
    public var trainLoss: Double
    /// Preference accuracy and margins on the batch of the last step.
    public var trainAccuracy: Double
    public var heldout: DPOPreferenceMetrics
    /// Whatever the evaluation callback measured (e.g. `exact_match`) before training …
    public var initialEvaluation: [String: Double]
    /// … and after.
    public var finalEvaluation: [String: Double]
    /// Reference-model forward passes (all before the first step: log-probs are cached).
    public var referenceForwards: Int
}

/// One tokenised preference pair with its cached reference log-probs.
struct TokenizedPair {
    var prompt: [Int32]
    var chosen: [Int32]
    var rejected: [Int32]
    /// Σ log π_ref over the response tokens, and the number of response tokens, per side.
    var referenceChosen: Float = 0
    var referenceRejected: Float = 0
    var chosenTokens = 0
    var rejectedTokens = 0
}

/// Direct Preference Optimization (Rafailov et al. 2023; IPO with `--loss ipo`).
///
/// The policy starts from the SFT model; the reference is that same model, frozen. Its
/// log-probs for every training and held-out pair are computed once before the first step
/// (TRL's `precompute_ref_log_probs`), with the loaded model before any update — so no second
/// copy of the weights is kept, and a resumed run recomputes them from `--model`, not from the
/// half-trained checkpoint. Each step puts the B chosen and B rejected responses into one
/// padded batch of 2·B sequences, one forward and one backward.
///
/// By default the loss is plain DPO (the first step's loss is exactly log 2). `sftWeight` α > 0
/// adds the chosen responses' mean token NLL (RPO): a weak SFT model trained with plain DPO can
/// drive the chosen log-probs down along with the rejected ones, and the NLL term holds them up
/// — at the price of also training on the chosen answers, so it is no longer DPO alone.
public final class DPOTrainer {
    public let options: DPOOptions
    /// Measures the policy (e.g. held-out exact-match accuracy); called before training, at every
    /// evaluation interval and at the end. Keys are logged to metrics.jsonl as they are.
    public var evaluate: ((LlamaModel) throws -> [String: Double])?
    /// Reference forward passes made so far (a batch of sequences counts once).
    public private(set) var referenceForwards = 0

    public init(options: DPOOptions, evaluate: ((LlamaModel) throws -> [String: Double])? = nil) {
        self.options = options
        self.evaluate = evaluate
    }

    @discardableResult
    public func run() throws -> DPOSummary {
        let settings = options.settings
        try settings.validate(stage: "dpo")
        guard options.validationFraction.isFinite, options.validationFraction >= 0, options.validationFraction < 1 else {
            throw TrainingError("dpo: --val-fraction must be in [0, 1), got \(options.validationFraction)")
        }
        guard options.beta.isFinite, options.beta > 0 else { throw TrainingError("dpo: --beta must be a positive number, got \(options.beta)") }
        let loaded = try StageModel(loading: options.model, heads: .languageModel, settings: settings, maxLength: options.maxLength, stage: "dpo")
        let (model, tokenizer, encoder, padID, maxLength) = (loaded.model, loaded.tokenizer, loaded.encoder, loaded.padID, loaded.maxLength)

        var pairs: [PreferencePair] = [], skipped = 0
        for url in options.data {
            let loaded = try PreferenceDataset.load(url, skipBadLines: options.skipBadLines) { logLine("skipped: \($0)") }
            pairs += loaded.records.flatMap(options.rankingPairs.pairs)
            skipped += loaded.skipped
        }
        pairs += options.extraPairs
        var heldoutPairs: [PreferencePair] = []
        for url in options.heldoutPreferences {
            let loaded = try PreferenceDataset.load(url, skipBadLines: options.skipBadLines) { logLine("skipped: \($0)") }
            heldoutPairs += loaded.records.flatMap(options.rankingPairs.pairs)
        }
        if options.heldoutPreferences.isEmpty && options.validationFraction > 0 {
            // Hold out whole prompts so that no held-out prompt is seen in training.
            var prompts = Array(Set(pairs.map(\.prompt))).sorted()
            var rng = SeededRandom(seed: settings.seed ^ 0xD90)
            prompts.shuffle(using: &rng)
            let held = Set(prompts.prefix(max(1, Int(Double(prompts.count) * options.validationFraction))))
            heldoutPairs = pairs.filter { held.contains($0.prompt) }
            pairs = pairs.filter { !held.contains($0.prompt) }
        }
        guard !pairs.isEmpty else {
            throw TrainingError("DPO needs preference pairs; \(options.data.map(\.path)) hold none for training")
        }
        func tokenize(_ pair: PreferencePair) -> TokenizedPair {
            TokenizedPair(prompt: encoder.prompt(pair.prompt), chosen: encoder.response(pair.chosen), rejected: encoder.response(pair.rejected))
        }
        var train = pairs.map(tokenize), heldout = heldoutPairs.map(tokenize)
        logLine("\(options.methodName): \(train.count) training pairs, \(heldout.count) held-out pairs (\(skipped) lines skipped), \(settings.steps) steps × \(settings.batchSize), β \(options.beta), \(options.kind.rawValue) loss\(options.sftWeight != 0 ? " + \(options.sftWeight) × chosen NLL" : "")")

        // The reference is the model as loaded: cache its log-probs before any update.
        let started = Date()
        cacheReferenceLogProbs(&train, model: model, padID: padID, maxLength: maxLength)
        cacheReferenceLogProbs(&heldout, model: model, padID: padID, maxLength: maxLength)
        logLine(String(format: "DPO: reference log-probs of %d pairs cached in %.1f s", train.count + heldout.count, Date().timeIntervalSince(started)))

        let run = try StageRun(stage: "dpo", model: model, tokenizer: tokenizer, settings: settings, output: options.output, mode: options.mode,
                               inputs: [options.model] + options.data + options.heldoutPreferences, signature: RunSignature.of(options),
                               allowChanges: options.allowChanges, dataParallel: true, launchFingerprint: ["data.pairs": pairFingerprint(train + heldout)])
        var initialEvaluation: [String: Double] = [:]
        if let evaluate, run.resumedFrom == nil || run.state.step == 0 {
            initialEvaluation = try model.withAdaptersMerged { try evaluate(model) }
            logLine("DPO: before training " + describe(initialEvaluation))
            try run.metrics.log(initialEvaluation.merging(["step": 0]) { $1 })
        }

        func batchIndices(step: Int) -> [Int] {
            epochBatchIndices(step: step, count: train.count, batchSize: run.globalBatchSize, seed: settings.seed)
        }

        var lastLoss = Double.nan, lastAccuracy = Double.nan
        var heldoutMetrics: DPOPreferenceMetrics? = nil
        var finalEvaluation: [String: Double] = [:]
        while !run.isFinished {
            let batch = try run.localBatch(batchIndices(step: run.state.step)).map { train[$0] }
            run.zeroGradients()
            let tape = Tape()
            run.overlapGradientReduction(with: tape)
            let result = tape.record { dpoBatchLoss(batch, model: model, padID: padID, maxLength: maxLength) }
            try run.requireFinite(result.loss.item)
            tape.backward(from: result.loss)
            let (norm, lr) = try run.optimizerStep()
            // Means over this rank's pairs; every rank holds as many, so their average is the
            // global batch's mean.
            let stepStatistics = run.parallel.averaged([
                Double(result.loss.item), Double(pairwiseAccuracy(chosen: result.chosenRewards, rejected: result.rejectedRewards)),
                Double(meanRewardMargin(chosen: result.chosenRewards, rejected: result.rejectedRewards)),
                Double(result.chosenRewards.reduce(0, +)) / Double(batch.count), Double(result.rejectedRewards.reduce(0, +)) / Double(batch.count),
            ])
            lastLoss = stepStatistics[0]
            lastAccuracy = stepStatistics[1]
            var record: [String: Any] = [
                "loss": lastLoss, "accuracy": lastAccuracy, "lr": Double(lr), "grad_norm": Double(norm),
                "margin": stepStatistics[2], "chosen_reward": stepStatistics[3], "rejected_reward": stepStatistics[4],
            ]
            var show = ["loss", "accuracy", "margin", "lr"]
            if run.shouldEvaluate {
                if !heldout.isEmpty {
                    let m = preferenceMetrics(heldout, model: model, padID: padID, maxLength: maxLength)
                    heldoutMetrics = m
                    record["val_loss"] = m.loss; record["val_accuracy"] = m.accuracy; record["val_margin"] = m.margin
                    show += ["val_accuracy", "val_margin"]
                }
                if let evaluate {
                    finalEvaluation = try model.withAdaptersMerged { try evaluate(model) }
                    for (k, v) in finalEvaluation { record[k] = v }
                    show += finalEvaluation.keys.sorted().filter { !$0.contains("/") }
                }
            }
            try run.log(record, show: show, force: run.shouldEvaluate)
            try run.checkpointIfDue()
        }
        if heldoutMetrics == nil {
            heldoutMetrics = preferenceMetrics(heldout, model: model, padID: padID, maxLength: maxLength)
        }
        if let evaluate, finalEvaluation.isEmpty { finalEvaluation = try model.withAdaptersMerged { try evaluate(model) } }
        try run.finish()
        let summary = DPOSummary(trainPairs: train.count, heldoutPairs: heldout.count, skippedLines: skipped, steps: run.state.step,
                                 seconds: run.seconds, trainLoss: lastLoss, trainAccuracy: lastAccuracy, heldout: heldoutMetrics!,
                                 initialEvaluation: initialEvaluation, finalEvaluation: finalEvaluation,
                                 referenceForwards: referenceForwards)
        if run.parallel.isPrimary { try writeSummary(summary, to: options.output.appendingPathComponent("dpo_summary.json")) }
        return summary
    }

    // MARK: - Pieces

    /// Chosen then rejected, in one padded batch of 2·B sequences.
    func promptResponseBatch(_ pairs: [TokenizedPair], padID: Int32, maxLength: Int) -> PromptResponseBatch {
        PromptResponseBatch(prompts: pairs.map(\.prompt) + pairs.map(\.prompt),
                            responses: pairs.map(\.chosen) + pairs.map(\.rejected), padID: padID, maxLength: maxLength)
    }

    /// Fills `referenceChosen` / `referenceRejected` with the model's current (no-gradient) log-probs.
    func cacheReferenceLogProbs(_ pairs: inout [TokenizedPair], model: LlamaModel, padID: Int32, maxLength: Int) {
        let chunk = max(options.settings.batchSize, 16)
        for start in stride(from: 0, to: pairs.count, by: chunk) {
            let range = start..<min(start + chunk, pairs.count)
            let batch = promptResponseBatch(Array(pairs[range]), padID: padID, maxLength: maxLength)
            let tokens = batch.responseLogProbs(model)
            referenceForwards += 1
            let n = range.count
            for (i, index) in range.enumerated() {
                pairs[index].referenceChosen = tokens[i].reduce(0, +)
                pairs[index].chosenTokens = tokens[i].count
                pairs[index].referenceRejected = tokens[n + i].reduce(0, +)
                pairs[index].rejectedTokens = tokens[n + i].count
            }
        }
    }

    /// The DPO loss of a batch: per-sequence sums (sigmoid) or per-token means (IPO) of the
    /// policy's response log-probs against the cached reference values.
    func dpoBatchLoss(_ pairs: [TokenizedPair], model: LlamaModel, padID: Int32, maxLength: Int)
        -> (loss: Tensor, chosenRewards: [Float], rejectedRewards: [Float]) {
        let batch = promptResponseBatch(pairs, padID: padID, maxLength: maxLength)
        let average = options.kind == .ipo
        let tokenLogProbs = batch.tokenLogProbs(model).reshaped([batch.sequences, batch.length])
        let policy = sequenceLogProbs(tokenLogProbs, mask: batch.responseMask, average: average).reshaped([batch.sequences, 1])
        let n = pairs.count
        let policyChosen = gatherRows(policy, indices: Array(0..<n))
        let policyRejected = gatherRows(policy, indices: Array(n..<(2 * n)))
        func reference(_ sum: Float, _ count: Int) -> Float { average ? sum / Float(max(count, 1)) : sum }
        let dpo = dpoLoss(policyChosen: policyChosen, policyRejected: policyRejected,
                       referenceChosen: pairs.map { reference($0.referenceChosen, $0.chosenTokens) },
                       referenceRejected: pairs.map { reference($0.referenceRejected, $0.rejectedTokens) },
                       beta: options.beta, kind: options.kind, labelSmoothing: options.labelSmoothing)
        guard options.sftWeight != 0 else { return dpo }
        // Mean NLL over every chosen-response token of the batch (the first n rows).
        var weights = batch.responseMask
        for i in (n * batch.length)..<weights.count { weights[i] = 0 }
        let count = max(maskedCount(weights), 1)
        for i in weights.indices { weights[i] /= count }
        let nll = scale(weightedSum(tokenLogProbs, weights: weights), -options.sftWeight)
        return (add(dpo.loss, nll), dpo.chosenRewards, dpo.rejectedRewards)
    }

    func preferenceMetrics(_ pairs: [TokenizedPair], model: LlamaModel, padID: Int32, maxLength: Int) -> DPOPreferenceMetrics {
        var chosen: [Float] = [], rejected: [Float] = [], loss = 0.0
        let chunk = max(options.settings.batchSize, 16)
        for start in stride(from: 0, to: pairs.count, by: chunk) {
            let slice = Array(pairs[start..<min(start + chunk, pairs.count)])
            let result = withoutGradients { dpoBatchLoss(slice, model: model, padID: padID, maxLength: maxLength) }
            chosen += result.chosenRewards; rejected += result.rejectedRewards
            loss += Double(result.loss.item) * Double(slice.count)
        }
        let n = Double(max(chosen.count, 1))
        return DPOPreferenceMetrics(accuracy: Double(pairwiseAccuracy(chosen: chosen, rejected: rejected)),
                                    margin: Double(meanRewardMargin(chosen: chosen, rejected: rejected)),
                                    chosenReward: Double(chosen.reduce(0, +)) / n, rejectedReward: Double(rejected.reduce(0, +)) / n,
                                    loss: loss / n, pairs: chosen.count)
    }
}

/// "key value, key value" with keys sorted, for progress lines.
func describe(_ values: [String: Double]) -> String {
    values.keys.sorted().map { String(format: "%@ %.4f", $0, values[$0]!) }.joined(separator: ", ")
}

/// Writes a `Codable` summary as pretty JSON, atomically (a NaN, e.g. an accuracy without
/// answers, is written as the string "nan").
func writeSummary<T: Encodable>(_ summary: T, to url: URL) throws {
    let encoder = JSONEncoder()
    encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try AtomicFile.write(try encoder.encode(summary), to: url)
}

/// A fingerprint of tokenised pairs and their reference log-probs (which differ when the ranks
/// loaded different models), compared across the ranks of a data-parallel run.
func pairFingerprint(_ pairs: [TokenizedPair]) -> String {
    var fingerprint = Fingerprint()
    fingerprint.add(pairs.count)
    for pair in pairs {
        fingerprint.add(pair.prompt); fingerprint.add(pair.chosen); fingerprint.add(pair.rejected)
        fingerprint.add([pair.referenceChosen, pair.referenceRejected])
    }
    return fingerprint.hex
}
