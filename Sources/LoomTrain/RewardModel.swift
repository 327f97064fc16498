import Foundation
import LoomSupport
import LoomData
import LoomDistributed
import LoomInference
import LoomTokenizer

// MARK: - Scoring

/// A trained reward model: a `LlamaForSequenceClassification`-style decoder whose `score`
/// head, read on the last token of prompt + response (the `<|im_end|>` that closes the
/// answer), gives one number per response — minus `offset`, the normalisation constant.
///
/// **Why an offset instead of changed weights.** After training, Loom normalises the reward
/// model the way OpenAI and TRL describe it: the rewards of the SFT demonstrations should have
/// mean 0 (Stiennon et al. 2020, Ouyang et al. 2022; TRL's "normalize the reward model"), so that
/// PPO's reward is neither pushed up nor down by a constant. The usual implementation subtracts
/// the mean μ through the head's bias, but Hugging Face's `score` layer is `Linear(hidden, 1,
/// bias=False)`, and no change of `score.weight` alone can shift every output by a constant
/// (the final RMSNorm does not give the hidden state a constant component to multiply). So μ
/// is kept beside the weights, in `reward_config.json` (`{"reward_mean": μ, "normalized":
/// true}`), the weights stay exactly what training produced (and load unchanged in
/// `transformers`), and every score Loom hands out goes through `score(…)`, which subtracts μ.
/// Code outside Loom that reads the directory should subtract `reward_mean` itself.
///
///     let rm = try RewardModel.load(directory: URL(fileURLWithPath: "runs/demo/reward"))
///     let rewards = rm.score(prompts: promptIDs, responses: responseIDs, padID: pad, maxLength: 256)
public final class RewardModel {
    /// The file beside the weights that records the normalisation.
    public static let configFile = "reward_config.json"

    /// What `reward_config.json` holds.
    public struct Normalization: Codable, Equatable, Sendable {
        /// μ, the mean raw reward of the reference answers; `score` subtracts it.
        public var rewardMean: Float
        public var normalized: Bool
        /// How many answers μ averages, and where they came from (informational).
        public var references: Int?
        public var referenceSource: String?

        public init(rewardMean: Float, normalized: Bool = true, references: Int? = nil, referenceSource: String? = nil) {
            self.rewardMean = rewardMean; self.normalized = normalized
            self.references = references; self.referenceSource = referenceSource
        }

        /// Only `reward_mean` is required; `normalized` defaults to true.
        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            rewardMean = try c.decode(Float.self, forKey: .rewardMean)
            normalized = try c.decodeIfPresent(Bool.self, forKey: .normalized) ?? true
            references = try c.decodeIfPresent(Int.self, forKey: .references)
            referenceSource = try c.decodeIfPresent(String.self, forKey: .referenceSource)
        }

        enum CodingKeys: String, CodingKey {
            case rewardMean = "reward_mean", normalized, references, referenceSource = "reference_source"
        }
    }

    public let model: LlamaModel
    /// Subtracted from every raw score (μ of `reward_config.json`; 0 when the directory has none).
    public let offset: Float
    /// Sequences per forward pass in `score`.
    public var batchSize = 32

    public init(model: LlamaModel, offset: Float = 0) {
        precondition(model.heads.contains(.score), "a reward model needs a score head")
        self.model = model
        self.offset = offset
    }

    /// Loads the weights (which must include `score.weight`) and, if present, `reward_config.json`.
    /// (With tied embeddings the model also gets a language-model head; it adds no parameters.)
    public static func load(directory: URL) throws -> RewardModel {
        let model = try LlamaModel.load(directory: directory)
        guard model.heads.contains(.score) else {
            throw TrainingError("\(directory.appendingPathComponent("model.safetensors").path): no score.weight; this is not a reward model (train one with `loom reward`)")
        }
        let normalization = try readNormalization(directory)
        return RewardModel(model: model, offset: normalization?.normalized == true ? normalization!.rewardMean : 0)
    }

    /// The normalisation recorded in `directory`, or nil when there is none.
    public static func readNormalization(_ directory: URL) throws -> Normalization? {
        let url = directory.appendingPathComponent(configFile)
        guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
        do { return try JSONDecoder().decode(Normalization.self, from: data) }
        catch { throw TrainingError("\(url.path): \(describeDecodingError(error))") }
    }

    public static func writeNormalization(_ normalization: Normalization, to directory: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(normalization), to: directory.appendingPathComponent(configFile))
    }

    /// One reward per (prompt, response), normalised (raw score − `offset`); no gradients.
    /// Sequences longer than `maxLength` (capped at the model's context) lose the prompt's
    /// beginning first, as `PromptResponseBatch` does. Similar lengths are batched together.
    public func score(prompts: [[Int32]], responses: [[Int32]], padID: Int32, maxLength: Int) -> [Float] {
        rawScores(prompts: prompts, responses: responses, padID: padID, maxLength: maxLength).map { $0 - offset }
    }

    /// The head's output without the offset.
    public func rawScores(prompts: [[Int32]], responses: [[Int32]], padID: Int32, maxLength: Int) -> [Float] {
        precondition(prompts.count == responses.count, "score: \(prompts.count) prompts for \(responses.count) responses")
        let limit = min(maxLength, model.configuration.maxPositionEmbeddings)
        let order = prompts.indices.sorted { prompts[$0].count + responses[$0].count < prompts[$1].count + responses[$1].count }
        var result = [Float](repeating: 0, count: prompts.count)
        withoutGradients {
            for start in stride(from: 0, to: order.count, by: max(1, batchSize)) {
                let chunk = Array(order[start..<min(start + max(1, batchSize), order.count)])
                let batch = PromptResponseBatch(prompts: chunk.map { prompts[$0] }, responses: chunk.map { responses[$0] },
                                                padID: padID, maxLength: limit)
                let scores = model.scores(hidden: model.hiddenStates(tokens: batch.tokens, batch: batch.sequences, sequence: batch.length),
                                          rows: batch.lastTokenRows)
                for (k, index) in chunk.enumerated() { result[index] = scores.data[k] }
            }
        }
        return result
    }
}

// MARK: - Training

/// Options of `loom reward`.
public struct RewardOptions {
    /// The SFT model the reward model starts from (its decoder; a zero score head is added).
    public var model: URL
    /// Preference files: pairs `{"prompt","chosen","rejected"}` and rankings
    /// `{"prompt","responses","ranking"}`, mixed freely.
    public var data: [URL]
    public var output: URL
    /// Held-out preference files; without them a seeded `validationFraction` of the data.
    public var heldout: [URL] = []
    public var validationFraction = 0.1
    /// Use each pair's optional `"margin"` field (Llama 2's graded margin); ignored on rankings.
    public var useMargins = false
    /// TRL's `center_rewards_coefficient`: adds C·mean((r_better + r_worse)²) over the pairs.
    public var centeringCoefficient: Float = 0
    /// SFT chat examples whose answers define reward 0; without them, the best-ranked answer
    /// (or `chosen`) of every training prompt.
    public var demonstrations: URL?
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
    /// Stop after this step with a checkpoint, as an interrupted run would (the schedule
    /// still spans `settings.steps`); skips the normalisation. For tests and time slicing.
    public var stopAfterStep: Int?

    public init(model: URL, data: [URL], output: URL) {
        self.model = model; self.data = data; self.output = output
        settings.steps = 150
        settings.batchSize = 16
        settings.learningRate = 5e-4
        settings.minLearningRate = 5e-5
        settings.warmupSteps = 10
        settings.evalInterval = 50
        settings.checkpointInterval = 50
    }

    public var settings = StageSettings()
}

public struct RewardSummary: Codable, Sendable {
    public var trainPrompts: Int
    public var heldoutPrompts: Int
    public var skippedLines: Int
    /// The last step's training loss.
    public var trainLoss: Double
    /// Fraction of held-out ordered pairs (all C(K, 2) of each ranking) scored in the right order.
    public var heldoutPairAccuracy: Double
    /// Mean of r_better − r_worse over the same pairs.
    public var heldoutMeanMargin: Double
    /// μ, the raw mean reward of the reference answers, now subtracted by `RewardModel.score`
    /// (0 when the run stopped early and did not normalise).
    public var rewardMean: Double
    public var steps: Int
    public var seconds: Double
    /// False when `stopAfterStep` ended the run before `settings.steps`.
    public var finished: Bool
}

/// One prompt with its responses from best to worst, tokenised: one batch element.
public struct RankedGroup: Sendable {
    public var prompt: [Int32]
    /// Best first.
    public var responses: [[Int32]]
    /// The pair's margin (pairs only, with `useMargins`).
    public var margin: Float?
    /// A pairwise line (K = 2 from `chosen`/`rejected`) rather than a ranking.
    public var isPair: Bool
}

/// A preference record and the optional `margin` field of its line.
public struct RewardRecord: Sendable {
    public var record: PreferenceRecord
    public var margin: Float?

    /// Loads preference lines, keeping each pair's optional numeric `"margin"`. Errors name
    /// the file, line and field.
    public static func load(_ url: URL, skipBadLines: Bool = false, onSkip: ((DataError) -> Void)? = nil) throws -> (records: [RewardRecord], skipped: Int) {
        let result = try AlignmentJSONL.load(url, skipBadLines: skipBadLines, onSkip: onSkip) { line -> RewardRecord in
            let record = try PreferenceDataset.parse(line)
            var margin: Float?
            if let value = line.object["margin"], !(value is NSNull) {
                guard let number = value as? NSNumber, String(cString: number.objCType) != "c", number.doubleValue.isFinite else {
                    throw line.error("\"margin\" must be a finite number, found \(value is String ? "a string" : "\(value)")")
                }
                margin = number.floatValue
            }
            return RewardRecord(record: record, margin: margin)
        }
        return (result.items, result.skipped)
    }
}

/// The reward-model loss of a batch of groups whose responses were scored together
/// (`scores` holds the responses of `groups[0]`, then `groups[1]`, …, each best first).
///
/// Every prompt is one batch element and weighs the same:
/// `L = (n_rank · L_rank + n_pair · L_pair) / (n_rank + n_pair)`, where
/// - `L_rank = rankingRewardLoss` over the rankings (InstructGPT: the mean over a prompt's
///   C(K, 2) pairs of −log σ(r_i − r_j), then over prompts), plus `centering` · the mean over
///   all their pairs of (r_i + r_j)²;
/// - `L_pair = pairwiseRewardLoss` over the pairwise lines (TRL's loss: margins, centering).
/// Without margins and centering this is `rankingRewardLoss` with the pairs as K = 2 groups;
/// on pairs alone it is exactly TRL's `RewardTrainer` loss.
public func rewardModelLoss(scores: Tensor, groups: [RankedGroup], useMargins: Bool, centering: Float) -> Tensor {
    var offsets: [Int] = [], n = 0
    for g in groups { offsets.append(n); n += g.responses.count }
    precondition(scores.count == n, "rewardModelLoss: \(scores.count) scores for \(n) responses")
    let column = scores.reshaped([n, 1])
    let ranked = groups.indices.filter { !groups[$0].isPair }
    let pairs = groups.indices.filter { groups[$0].isPair }
    var parts: [(loss: Tensor, prompts: Int)] = []
    if !ranked.isEmpty {
        let indexGroups = ranked.map { g in (0..<groups[g].responses.count).map { offsets[g] + $0 } }
        var loss = rankingRewardLoss(scores: scores, groups: indexGroups)
        if centering != 0 {
            var better: [Int] = [], worse: [Int] = []
            for group in indexGroups {
                for i in 0..<group.count { for j in (i + 1)..<group.count { better.append(group[i]); worse.append(group[j]) } }
            }
            let total = add(gatherRows(column, indices: better), gatherRows(column, indices: worse))
            loss = add(loss, scale(mean(square(total)), centering))
        }
        parts.append((loss, ranked.count))
    }
    if !pairs.isEmpty {
        let chosen = gatherRows(column, indices: pairs.map { offsets[$0] })
        let rejected = gatherRows(column, indices: pairs.map { offsets[$0] + 1 })
        let margins = useMargins ? pairs.map { groups[$0].margin ?? 0 } : nil
        parts.append((pairwiseRewardLoss(chosen: chosen, rejected: rejected, margin: margins, centeringCoefficient: centering), pairs.count))
    }
    if parts.count == 1 { return parts[0].loss }
    let total = Float(groups.count)
    return add(scale(parts[0].loss, Float(parts[0].prompts) / total), scale(parts[1].loss, Float(parts[1].prompts) / total))
}

/// Reward-model training (InstructGPT's recipe on Loom's model): the SFT decoder with a zero
/// `score` head reads each response on its last token; a batch holds `batchSize` prompts and
/// all K responses of a prompt go through the same forward pass, all C(K, 2) pairs forming one
/// batch element (`rewardModelLoss`). Held-out pair accuracy and mean margin are measured at
/// every eval interval; at the end the rewards are normalised so the demonstrations average 0
/// (see `RewardModel`), recorded in `reward_config.json`.
public final class RewardTrainer {
    public let options: RewardOptions
    public init(options: RewardOptions) { self.options = options }

    /// Accuracy and mean margin over every ordered pair of `groups`, scores read by `scorer`.
    public static func evaluate(_ scorer: RewardModel, groups: [RankedGroup], padID: Int32, maxLength: Int) -> (accuracy: Double, margin: Double, pairs: Int) {
        var prompts: [[Int32]] = [], responses: [[Int32]] = []
        for g in groups { for r in g.responses { prompts.append(g.prompt); responses.append(r) } }
        let scores = scorer.rawScores(prompts: prompts, responses: responses, padID: padID, maxLength: maxLength)
        var correct = 0, pairs = 0, margin = 0.0, offset = 0
        for g in groups {
            for i in 0..<g.responses.count {
                for j in (i + 1)..<g.responses.count {
                    let d = Double(scores[offset + i]) - Double(scores[offset + j])
                    if d > 0 { correct += 1 }
                    margin += d
                    pairs += 1
                }
            }
            offset += g.responses.count
        }
        return (Double(correct) / Double(max(pairs, 1)), margin / Double(max(pairs, 1)), pairs)
    }

    static func groups(_ records: [RewardRecord], encoder: ChatEncoder) -> [RankedGroup] {
        records.map { r in
            switch r.record {
            case .pair(let p):
                return RankedGroup(prompt: encoder.prompt(p.prompt), responses: [encoder.response(p.chosen), encoder.response(p.rejected)],
                                   margin: r.margin, isPair: true)
            case .ranking(let ranked):
                return RankedGroup(prompt: encoder.prompt(ranked.prompt), responses: ranked.ordered.map(encoder.response), margin: nil, isPair: false)
            }
        }
    }

    func loadRecords(_ urls: [URL]) throws -> (records: [RewardRecord], skipped: Int) {
        var records: [RewardRecord] = [], skipped = 0
        for url in urls {
            let loaded = try RewardRecord.load(url, skipBadLines: options.skipBadLines) { logLine("skipped: \($0)") }
            records += loaded.records
            skipped += loaded.skipped
        }
        return (records, skipped)
    }

    @discardableResult
    public func run() throws -> RewardSummary {
        let settings = options.settings
        try settings.validate(stage: "reward")
        if options.heldout.isEmpty { try checkValidationFraction(options.validationFraction, stage: "reward") }
        let loaded = try StageModel(loading: options.model, heads: .score, settings: settings, maxLength: options.maxLength, stage: "reward")
        let (model, tokenizer, encoder, padID, maxLength) = (loaded.model, loaded.tokenizer, loaded.encoder, loaded.padID, loaded.maxLength)

        var (records, skipped) = try loadRecords(options.data)
        var heldoutRecords: [RewardRecord]
        if options.heldout.isEmpty {
            // Seeded split, so a resumed run holds out the same prompts.
            var splitRNG = SeededRandom(seed: settings.seed ^ 0x12D)
            records.shuffle(using: &splitRNG)
            let count = max(1, Int(Double(records.count) * options.validationFraction))
            guard records.count > count else {
                throw TrainingError("reward: \(options.data.map(\.path).joined(separator: ", ")) hold \(records.count) preference lines; need at least 2 (one is held out)")
            }
            heldoutRecords = Array(records.prefix(count))
            records.removeFirst(count)
        } else {
            let loaded = try loadRecords(options.heldout)
            heldoutRecords = loaded.records
            skipped += loaded.skipped
        }
        guard !records.isEmpty else { throw TrainingError("reward: no preference lines in \(options.data.map(\.path).joined(separator: ", "))") }
        guard !heldoutRecords.isEmpty else { throw TrainingError("reward: no held-out preference lines in \(options.heldout.map(\.path).joined(separator: ", "))") }
        let train = Self.groups(records, encoder: encoder), heldout = Self.groups(heldoutRecords, encoder: encoder)
        let rankedCount = train.filter { !$0.isPair }.count
        logLine("reward: \(train.count) training prompts (\(rankedCount) rankings, \(train.count - rankedCount) pairs, "
                + "\(train.reduce(0) { $0 + $1.responses.count * ($1.responses.count - 1) / 2 }) pairs in all), \(heldout.count) held-out prompts"
                + " (\(skipped) lines skipped), \(settings.steps) steps × \(settings.batchSize) prompts")

        let run = try StageRun(stage: "reward", model: model, tokenizer: tokenizer, settings: settings, output: options.output, mode: options.mode,
                               inputs: [options.model] + options.data + options.heldout + (options.demonstrations.map { [$0] } ?? []),
                               signature: RunSignature.of(options), allowChanges: options.allowChanges,
                               dataParallel: true, launchFingerprint: ["data.groups": rankedGroupFingerprint(train + heldout)])
        // A normalisation from an earlier run no longer matches the weights being trained.
        if run.parallel.isPrimary { try? FileManager.default.removeItem(at: options.output.appendingPathComponent(RewardModel.configFile)) }
        let scorer = RewardModel(model: model)

        func batchIndices(step: Int) -> [Int] {
            epochBatchIndices(step: step, count: train.count, batchSize: run.globalBatchSize, seed: settings.seed)
        }
        var lastLoss = Double.nan
        var lastEval: (accuracy: Double, margin: Double, pairs: Int)?
        let stop = min(options.stopAfterStep ?? settings.steps, settings.steps)
        while run.state.step < stop {
            let batchGroups = try run.localBatch(batchIndices(step: run.state.step)).map { train[$0] }
            var prompts: [[Int32]] = [], responses: [[Int32]] = []
            for g in batchGroups { for r in g.responses { prompts.append(g.prompt); responses.append(r) } }
            let batch = PromptResponseBatch(prompts: prompts, responses: responses, padID: padID, maxLength: maxLength)
            run.zeroGradients()
            let tape = Tape()
            run.overlapGradientReduction(with: tape)
            var scores: Tensor!
            let loss = tape.record { () -> Tensor in
                scores = model.scores(hidden: model.hiddenStates(tokens: batch.tokens, batch: batch.sequences, sequence: batch.length),
                                      rows: batch.lastTokenRows)
                return rewardModelLoss(scores: scores, groups: batchGroups, useMargins: options.useMargins, centering: options.centeringCoefficient)
            }
            try run.requireFinite(loss.item)
            tape.backward(from: loss)
            let (norm, lr) = try run.optimizerStep()
            var indexGroups: [[Int]] = [], n = 0
            for g in batchGroups { indexGroups.append(Array(n..<(n + g.responses.count))); n += g.responses.count }
            // Every prompt weighs the same in the loss and every rank holds as many: the ranks'
            // means average to the global batch's.
            let stepStatistics = run.parallel.averaged([Double(loss.item), Double(rankingAccuracy(scores: Array(scores.scalars), groups: indexGroups))])
            lastLoss = stepStatistics[0]
            var record: [String: Any] = ["loss": lastLoss, "accuracy": stepStatistics[1], "lr": Double(lr), "grad_norm": Double(norm)]
            if run.shouldEvaluate {
                let e = Self.evaluate(scorer, groups: heldout, padID: padID, maxLength: maxLength)
                lastEval = e
                record["val_accuracy"] = e.accuracy
                record["val_margin"] = e.margin
            }
            try run.log(record, show: ["loss", "accuracy", "val_accuracy", "val_margin", "lr", "grad_norm"], force: record["val_accuracy"] != nil)
            try run.checkpointIfDue()
        }
        let evaluation = lastEval ?? Self.evaluate(scorer, groups: heldout, padID: padID, maxLength: maxLength)
        guard run.isFinished else {
            try run.checkpoint()
            logLine("reward: stopped after step \(run.state.step) of \(settings.steps); resume with --resume")
            return RewardSummary(trainPrompts: train.count, heldoutPrompts: heldout.count, skippedLines: skipped, trainLoss: lastLoss,
                                 heldoutPairAccuracy: evaluation.accuracy, heldoutMeanMargin: evaluation.margin, rewardMean: 0,
                                 steps: run.state.step, seconds: run.seconds, finished: false)
        }
        try run.finish()

        // Normalise: μ over the reference answers, recorded for RewardModel.score to subtract.
        let references: (prompts: [[Int32]], responses: [[Int32]], source: String)
        if let url = options.demonstrations {
            references = try Self.demonstrations(url, encoder: encoder, skipBadLines: options.skipBadLines)
        } else {
            references = (train.map(\.prompt), train.map { $0.responses[0] }, "best-ranked response of each training prompt")
        }
        let raw = scorer.rawScores(prompts: references.prompts, responses: references.responses, padID: padID, maxLength: maxLength)
        let mu = Float(raw.reduce(0.0) { $0 + Double($1) } / Double(max(raw.count, 1)))
        if run.parallel.isPrimary {
            try RewardModel.writeNormalization(.init(rewardMean: mu, references: raw.count, referenceSource: references.source), to: options.output)
        }
        try run.log(["val_accuracy": evaluation.accuracy, "val_margin": evaluation.margin, "reward_mean": Double(mu), "final": true],
                show: ["val_accuracy", "val_margin", "reward_mean"], force: true)
        return RewardSummary(trainPrompts: train.count, heldoutPrompts: heldout.count, skippedLines: skipped, trainLoss: lastLoss,
                             heldoutPairAccuracy: evaluation.accuracy, heldoutMeanMargin: evaluation.margin, rewardMean: Double(mu),
                             steps: run.state.step, seconds: run.seconds, finished: true)
    }

    /// Prompt and answer ids of SFT chat examples: the last assistant turn is the answer, the
    /// turns before it the prompt.
    static func demonstrations(_ url: URL, encoder: ChatEncoder, skipBadLines: Bool) throws -> (prompts: [[Int32]], responses: [[Int32]], source: String) {
        let (examples, _) = try SFTDataset.load(url, skipBadLines: skipBadLines) { logLine("skipped: \($0)") }
        var prompts: [[Int32]] = [], responses: [[Int32]] = []
        for example in examples {
            guard let last = example.messages.lastIndex(where: { $0.role == "assistant" }) else { continue }
            prompts.append(encoder.tokenizer.chatTemplate.encodePrompt(Array(example.messages[..<last]), tokenizer: encoder.tokenizer).map(Int32.init))
            responses.append(encoder.response(example.messages[last].content))
        }
        guard !prompts.isEmpty else { throw TrainingError("\(url.path): no demonstrations (SFT examples with an assistant turn)") }
        return (prompts, responses, "demonstrations in \(url.lastPathComponent)")
    }
}

/// A fingerprint of tokenised preference groups, compared across the ranks of a data-parallel run.
func rankedGroupFingerprint(_ groups: [RankedGroup]) -> String {
    var fingerprint = Fingerprint()
    fingerprint.add(groups.count)
    for group in groups {
        fingerprint.add(group.prompt)
        for response in group.responses { fingerprint.add(response) }
    }
    return fingerprint.hex
}
