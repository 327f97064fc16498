import Foundation
import LoomData
import LoomDistributed
import LoomInference
import LoomTokenizer

/// Where GRPO's rewards come from.
public enum GRPORewardSource: String, Codable, Sendable, CaseIterable {
    /// 1 when `InstructionTasks.verify(response, answer)` accepts the answer, else 0 (needs
    /// prompts with answers).
    case verifier
    /// A trained reward model's score of (prompt, response).
    case model
}

/// Options of `loom grpo`.
public struct GRPOOptions {
    public var model: URL
    /// Prompt files (`PromptDataset`: `{"prompt", "answer"?}`).
    public var prompts: [URL]
    public var output: URL
    /// `batchSize` counts prompts; each step generates `batchSize × groupSize` responses.
    public var settings = StageSettings()
    public var groupSize = 16
    public var reward: GRPORewardSource = .verifier
    /// Required with `reward == .model`.
    public var rewardModel: URL?
    /// Weight of the k3 KL penalty toward the initial model (0: no reference model is kept).
    public var klBeta: Float = 0.04
    public var clipEpsilon: Float = 0.2
    /// DAPO's clip-higher ε_high (default: `clipEpsilon`).
    public var clipEpsilonHigh: Float?
    public var aggregation: GRPOAggregation = .token
    /// Divide centred rewards by the group's standard deviation (false: Dr. GRPO).
    public var scaleRewardsByStd = true
    /// Gradient steps on each batch of rollouts (μ); each one is an optimizer step.
    public var updatesPerBatch = 1
    /// DAPO's dynamic sampling: drop groups whose rewards are all equal (every answer right, or
    /// every one wrong: their advantages are 0) and sample further prompts until `batchSize`
    /// groups with a reward spread are found, in at most `maxSamplingRounds` rounds of
    /// `batchSize` prompts. The update then spends its whole batch on prompts it can learn from.
    public var dynamicSampling = false
    public var maxSamplingRounds = 4
    public var maxNewTokens = 16
    public var temperature: Float = 1.0
    public var topP: Float = 1.0
    /// Subtracted from the reward of a response that never ends (reaches `maxNewTokens`
    /// without an end-of-turn token), so that the policy keeps stopping after its answer.
    public var unfinishedPenalty: Float = 0.5
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

    public init(model: URL, prompts: [URL], output: URL) {
        self.model = model; self.prompts = prompts; self.output = output
        // 4 prompts × 16 samples: larger groups leave fewer groups with all-equal rewards when
        // the SFT model is rarely right. About 2.5 s a step for the tiny model on 2 cores.
        settings.steps = 60
        settings.batchSize = 4
        settings.learningRate = 1e-4
        settings.minLearningRate = 1e-4
        settings.warmupSteps = 0
        settings.evalInterval = 30
        settings.checkpointInterval = 30
        settings.logInterval = 5
    }
}

public struct GRPOSummary: Codable, Sendable {
    public var prompts: Int
    public var steps: Int
    public var seconds: Double
    /// Mean reward and verifier accuracy over the first and the last 10 steps of this run
    /// (`windowMeans`; fewer in a shorter run).
    public var firstMeanReward: Double
    public var meanReward: Double
    public var firstAccuracy: Double
    public var accuracy: Double
    /// Mean k3 KL to the initial model over the tokens of the last batch.
    public var kl: Double
    /// Whatever the evaluation callback measured (e.g. `exact_match`) before training …
    public var initialEvaluation: [String: Double]
    /// … and after.
    public var finalEvaluation: [String: Double]
}

/// Statistics of one batch of rollouts and its updates.
public struct GRPOStepStatistics: Sendable {
    public var meanReward: Double
    /// Fraction of responses the verifier accepts (NaN without answers).
    public var accuracy: Double
    public var loss: Double
    public var kl: Double
    public var clipFraction: Double
    /// Mean response length in tokens (the end-of-turn token included).
    public var responseLength: Double
    /// Fraction of responses that ended with an end-of-turn token.
    public var finished: Double
    /// Fraction of groups whose rewards are all equal (their advantages are 0: no signal), of all
    /// groups sampled in the step.
    public var zeroVarianceGroups: Double
    /// Groups in the update (with dynamic sampling, those with a reward spread) …
    public var groupsUsed = 0
    /// … out of this many sampled.
    public var groupsSampled = 0
}

/// Group Relative Policy Optimization (Shao et al. 2024).
///
/// Each step draws `batchSize` prompts (a seeded shuffle per epoch), samples `groupSize`
/// responses to each from the current policy (batched KV-cache decoding; the sampling seed is
/// drawn from the run's generator, which checkpoints save), scores them (verifier or reward
/// model, minus a penalty for responses that never end), normalises rewards within each group
/// (`grpoAdvantages`), and takes `updatesPerBatch` gradient steps on the clipped surrogate with
/// a k3 KL penalty toward the initial model (`grpoLoss`, token-level aggregation). The old
/// log-probs are the policy's at sampling time: with one update per batch they equal the
/// current ones, so the first forward supplies them; with more, one no-gradient forward does.
public final class GRPOTrainer {
    public let options: GRPOOptions
    /// Measures the policy (e.g. held-out exact-match accuracy); called before training, at every
    /// evaluation interval and at the end. Keys are logged to metrics.jsonl as they are.
    public var evaluate: ((LlamaModel) throws -> [String: Double])?
    /// Replaces the verifier / reward model: rewards for (prompt, generated tokens without the
    /// stop token, decoded text, whether it ended). Tests use it for synthetic rewards.
    public var reward: ((_ prompts: [PromptExample], _ tokens: [[Int32]], _ texts: [String], _ finished: [Bool]) throws -> [Float])?
    /// Scores (encoded prompts, responses with their end-of-turn token) for `reward == .model`;
    /// the command sets it from the reward model directory.
    public var scoreResponses: ((_ prompts: [[Int32]], _ responses: [[Int32]]) throws -> [Float])?
    /// Per-step statistics of this run (also in metrics.jsonl).
    public private(set) var history: [GRPOStepStatistics] = []

    public init(options: GRPOOptions, evaluate: ((LlamaModel) throws -> [String: Double])? = nil) {
        self.options = options
        self.evaluate = evaluate
    }

    @discardableResult
    public func run() throws -> GRPOSummary {
        let o = options
        let settings = o.settings
        try settings.validate(stage: "grpo")
        guard o.groupSize >= 2 else { throw TrainingError("GRPO needs --group-size ≥ 2, got \(o.groupSize)") }
        guard o.updatesPerBatch >= 1 else { throw TrainingError("GRPO needs --updates-per-batch ≥ 1, got \(o.updatesPerBatch)") }
        guard o.maxNewTokens >= 1 else { throw TrainingError("GRPO needs --max-new-tokens ≥ 1, got \(o.maxNewTokens)") }
        guard o.maxSamplingRounds >= 1 else { throw TrainingError("GRPO needs --max-sampling-rounds ≥ 1, got \(o.maxSamplingRounds)") }
        try SamplingParameters(temperature: o.temperature, topP: o.topP).validate()
        let loaded = try StageModel(loading: o.model, heads: .languageModel, settings: settings, maxLength: o.maxLength, stage: "grpo")
        let (model, tokenizer, encoder, padID, maxLength) = (loaded.model, loaded.tokenizer, loaded.encoder, loaded.padID, loaded.maxLength)

        var prompts: [PromptExample] = []
        for url in o.prompts {
            let loaded = try PromptDataset.load(url, skipBadLines: o.skipBadLines) { logLine("skipped: \($0)") }
            if reward == nil && o.reward == .verifier, let missing = loaded.examples.firstIndex(where: { $0.answer == nil }) {
                throw TrainingError("\(url.path): prompt \(missing + 1) (\"\(loaded.examples[missing].prompt.prefix(40))\") has no \"answer\"; --reward verifier needs one on every prompt")
            }
            prompts += loaded.examples
        }
        guard !prompts.isEmpty else { throw TrainingError("GRPO: \(o.prompts.map(\.path)) hold no prompts") }
        if reward == nil && o.reward == .model && scoreResponses == nil {
            throw TrainingError("GRPO: --reward model needs a reward model (--reward-model DIR)")
        }
        let encodedPrompts = prompts.map { encoder.prompt($0.prompt) }

        // The reference is the model as loaded (before a resume restores later weights).
        let reference = o.klBeta != 0 ? frozenReference(of: model, settings: settings) : nil
        // Dynamic sampling draws a different number of rounds on each rank: one process only.
        if o.dynamicSampling && World.isDistributed {
            throw TrainingError("GRPO: --dynamic-sampling does not run data-parallel; run it as one process (without mpirun)")
        }
        var promptFingerprint = Fingerprint()
        for prompt in encodedPrompts { promptFingerprint.add(prompt) }
        let run = try StageRun(stage: "grpo", model: model, tokenizer: tokenizer, settings: settings, output: o.output, mode: o.mode,
                               inputs: [o.model] + o.prompts + (o.rewardModel.map { [$0] } ?? []), signature: RunSignature.of(o), allowChanges: o.allowChanges,
                               dataParallel: true, launchFingerprint: ["data.prompts": promptFingerprint.hex])
        logLine("GRPO: \(prompts.count) prompts, \(settings.steps) steps × \(settings.batchSize) prompts × \(o.groupSize) samples, reward \(reward == nil ? o.reward.rawValue : "custom"), KL β \(o.klBeta), ε \(o.clipEpsilon), μ \(o.updatesPerBatch), T \(o.temperature), top-p \(o.topP)")

        var initialEvaluation: [String: Double] = [:], finalEvaluation: [String: Double] = [:]
        if let evaluate, run.state.step == 0 {
            initialEvaluation = try model.withAdaptersMerged { try evaluate(model) }
            logLine("GRPO: before training " + describe(initialEvaluation))
            try run.metrics.log(initialEvaluation.merging(["step": 0]) { $1 })
        }
        func promptIndices(step: Int) -> [Int] {
            epochBatchIndices(step: step, count: prompts.count, batchSize: run.globalBatchSize, seed: settings.seed)
        }

        /// G samples of each prompt in `indices` (a group's samples side by side), their rewards
        /// (minus the penalty for answers that never end) and verdicts. `firstPrompt` is the place
        /// of `indices[0]` in the step's global batch: sample i of it draws with the step's seed
        /// + its place in the global batch (`generateBatch` seeds row i with seed + i), so that the
        /// answers do not depend on how the batch is split across ranks.
        func rollouts(_ indices: [Int], firstPrompt: Int = 0) throws -> Rollouts {
            let chosen = indices.flatMap { Array(repeating: $0, count: o.groupSize) }
            let inputs = chosen.map { encodedPrompts[$0] }
            let sampling = SamplingParameters(temperature: o.temperature, topP: o.topP,
                                              seed: run.state.rng.next() &+ UInt64(firstPrompt * o.groupSize))
            let generations = model.withAdaptersMerged { Generator(model: model, stopTokens: encoder.stopTokens)
                .generateBatch(prompts: inputs, maxTokens: o.maxNewTokens, sampling: sampling) }
            let finished = generations.map { $0.finishReason == .stop }
            // The end-of-turn token is part of the response: the policy learns to stop.
            let responses = generations.map { $0.finishReason == .stop ? $0.tokens + [encoder.endOfTurn] : $0.tokens }
            let texts = generations.map { encoder.text($0.tokens) }
            let examples = chosen.map { prompts[$0] }
            var correct: [Bool]? = nil
            if examples.allSatisfy({ $0.answer != nil }) {
                correct = zip(texts, examples).map { InstructionTasks.verify(response: $0, answer: $1.answer!) }
            }
            var rewards: [Float]
            if let reward {
                rewards = try reward(examples, generations.map(\.tokens), texts, finished)
            } else if o.reward == .model {
                rewards = try scoreResponses!(inputs, responses)
            } else {
                rewards = correct!.map { $0 ? 1 : 0 }
            }
            guard rewards.count == chosen.count, rewards.allSatisfy(\.isFinite) else {
                throw TrainingError("GRPO: the reward function returned \(rewards.count) rewards (some not finite?) for \(chosen.count) responses")
            }
            if reward == nil { for i in rewards.indices where !finished[i] { rewards[i] -= o.unfinishedPenalty } }
            return Rollouts(inputs: inputs, responses: responses, finished: finished, correct: correct, rewards: rewards, groupSize: o.groupSize)
        }

        while !run.isFinished {
            // 1. Rollouts, and with dynamic sampling more rounds of prompts (not yet drawn in this
            // step) until `batchSize` groups have a reward spread.
            // Each rank rolls out its own slice of the step's prompts (whole groups: advantages are
            // normalised within a group, so they need nothing from the other ranks).
            let stepPrompts = promptIndices(step: run.state.step)
            let first = try run.localBatch(stepPrompts)
            var sampled = try rollouts(first, firstPrompt: try run.parallel.localRows(globalBatch: stepPrompts.count).lowerBound)
            var used = o.dynamicSampling ? sampled.groupsWithSpread() : sampled
            if o.dynamicSampling {
                var drawn = Set(first)
                var round = 1
                while used.groupCount < settings.batchSize && round < o.maxSamplingRounds && drawn.count < prompts.count {
                    // Another seeded order of the prompts for each (step, round): reproducible on resume.
                    let more = epochOrder(count: prompts.count, epoch: run.state.step, seed: settings.seed &+ UInt64(round) &* 104_729)
                        .filter { !drawn.contains($0) }.prefix(settings.batchSize)
                    drawn.formUnion(more)
                    let next = try rollouts(Array(more))
                    sampled.append(next)
                    used.append(next.groupsWithSpread())
                    round += 1
                }
                used = used.firstGroups(settings.batchSize)
            }

            // 2. Group-normalised advantages, and the updates (none when no group has a spread).
            var step = GRPOStepStatistics(meanReward: 0, accuracy: .nan, loss: 0, kl: .nan, clipFraction: 0, responseLength: 0, finished: 0, zeroVarianceGroups: 0)
            if used.groupCount > 0 {
                let advantages = grpoAdvantages(rewards: used.rewards, groupSize: o.groupSize, scaleByStd: o.scaleRewardsByStd)
                step = try update(run: run, batch: PromptResponseBatch(prompts: used.inputs, responses: used.responses, padID: padID, maxLength: maxLength),
                                  advantages: advantages, reference: reference)
            } else {
                run.skipStep()
            }
            let rewards = sampled.rewards
            step.meanReward = Double(rewards.reduce(0, +)) / Double(rewards.count)
            step.accuracy = sampled.correct.map { Double($0.filter { $0 }.count) / Double($0.count) } ?? .nan
            step.responseLength = Double(sampled.responses.map(\.count).reduce(0, +)) / Double(sampled.responses.count)
            step.finished = Double(sampled.finished.filter { $0 }.count) / Double(sampled.finished.count)
            let flat = sampled.flatGroups
            step.zeroVarianceGroups = Double(flat.filter { $0 }.count) / Double(flat.count)
            if run.parallel.isDistributed {
                // Every rank sampled as many groups: the means over ranks are the step's (`update`
                // made loss, KL and clip fraction the whole batch's).
                let global = run.parallel.averaged([step.meanReward, step.accuracy, step.responseLength, step.finished, step.zeroVarianceGroups])
                (step.meanReward, step.accuracy, step.responseLength, step.finished) = (global[0], global[1], global[2], global[3])
                step.zeroVarianceGroups = global[4]
            }
            step.groupsUsed = used.groupCount
            step.groupsSampled = sampled.groupCount
            history.append(step)

            var record: [String: Any] = [
                "reward": step.meanReward, "loss": step.loss, "clip_fraction": step.clipFraction,
                "response_length": step.responseLength, "finished": step.finished, "zero_variance_groups": step.zeroVarianceGroups,
                "lr": Double(run.learningRate),
            ]
            if o.dynamicSampling { record["groups_used"] = step.groupsUsed; record["groups_sampled"] = step.groupsSampled }
            if !step.accuracy.isNaN { record["accuracy"] = step.accuracy }
            if !step.kl.isNaN { record["kl"] = step.kl }
            var show = ["reward", "accuracy", "kl", "clip_fraction", "response_length", "zero_variance_groups"] + (o.dynamicSampling ? ["groups_used"] : [])
            if run.shouldEvaluate, let evaluate {
                finalEvaluation = try model.withAdaptersMerged { try evaluate(model) }
                for (k, v) in finalEvaluation { record[k] = v }
                show += finalEvaluation.keys.sorted().filter { !$0.contains("/") }
            }
            try run.log(record, show: show, force: run.shouldEvaluate && evaluate != nil)
            try run.checkpointIfDue()
        }
        if let evaluate, finalEvaluation.isEmpty { finalEvaluation = try model.withAdaptersMerged { try evaluate(model) } }
        try run.finish()
        let rewards = windowMeans(history.map(\.meanReward)), accuracies = windowMeans(history.map(\.accuracy))
        let summary = GRPOSummary(prompts: prompts.count, steps: run.state.step, seconds: run.seconds,
                                  firstMeanReward: rewards.first, meanReward: rewards.last,
                                  firstAccuracy: accuracies.first, accuracy: accuracies.last, kl: history.last?.kl ?? .nan,
                                  initialEvaluation: initialEvaluation, finalEvaluation: finalEvaluation)
        if run.parallel.isPrimary { try writeSummary(summary, to: o.output.appendingPathComponent("grpo_summary.json")) }
        return summary
    }

    /// `updatesPerBatch` gradient steps on one batch of rollouts; returns loss, KL and clip
    /// fraction of the first update (the others' are logged by nobody: the first is on-policy).
    func update(run: StageRun, batch: PromptResponseBatch, advantages: [Float], reference: LlamaModel?) throws -> GRPOStepStatistics {
        let o = options, model = run.model
        let mask = batch.responseMask
        let referenceLogProbs = reference.map { ref in withoutGradients { batch.tokenLogProbs(ref) }.scalars }
        var oldLogProbs: [Float]? = o.updatesPerBatch > 1 ? withoutGradients { batch.tokenLogProbs(model) }.scalars : nil
        var stats = GRPOStepStatistics(meanReward: 0, accuracy: .nan, loss: 0, kl: 0, clipFraction: 0, responseLength: 0,
                                       finished: 0, zeroVarianceGroups: 0)
        for u in 0..<o.updatesPerBatch {
            run.zeroGradients()
            let tape = Tape()
            run.overlapGradientReduction(with: tape)
            let result = tape.record { () -> (loss: Tensor, clipFraction: Float, kl: Float) in
                let logProbs = batch.tokenLogProbs(model)
                if oldLogProbs == nil { oldLogProbs = logProbs.scalars }
                return grpoLoss(logProbs: logProbs, oldLogProbs: oldLogProbs!, referenceLogProbs: referenceLogProbs,
                                advantages: advantages, mask: mask, clipEpsilon: o.clipEpsilon, clipEpsilonHigh: o.clipEpsilonHigh,
                                klBeta: o.klBeta, aggregation: o.aggregation)
            }
            try run.requireFinite(result.loss.item)
            // A token mean weighs this rank's tokens by their share of all ranks' tokens.
            let share: Float = o.aggregation == .token ? run.parallel.meanWeight(localCount: Int(maskedCount(mask))).weight : 1
            tape.backward(from: result.loss, seed: share)
            if u == 0 {
                stats.loss = Double(result.loss.item); stats.kl = Double(result.kl); stats.clipFraction = Double(result.clipFraction)
                if run.parallel.isDistributed {
                    // The whole batch's figures: KL and clip fraction are token means, and so is
                    // the loss under token aggregation (the others weigh the ranks' equal slices alike).
                    let tokens = Double(maskedCount(mask)), lossWeight = o.aggregation == .token ? tokens : 1
                    let sums = run.parallel.summed([stats.loss * lossWeight, lossWeight, stats.kl * tokens, stats.clipFraction * tokens, tokens])
                    stats.loss = sums[0] / max(sums[1], 1e-30)
                    (stats.kl, stats.clipFraction) = (sums[2] / max(sums[4], 1), sums[3] / max(sums[4], 1))
                }
            }
            if u + 1 < o.updatesPerBatch {
                // Inner updates share the batch's step number (and learning rate).
                try run.optimizerStep(advancing: false)
            } else {
                try run.optimizerStep()
            }
        }
        // Without a reference the KL of the policy to its start is not measured.
        if reference == nil { stats.kl = .nan }
        return stats
    }
}

/// One step's rollouts: `groupSize` responses per prompt, a group's side by side.
struct Rollouts {
    var inputs: [[Int32]]
    var responses: [[Int32]]
    var finished: [Bool]
    var correct: [Bool]?
    var rewards: [Float]
    let groupSize: Int

    var groupCount: Int { rewards.count / groupSize }

    /// Per group: whether all its rewards are equal (zero advantages, no signal).
    var flatGroups: [Bool] {
        stride(from: 0, to: rewards.count, by: groupSize).map { Set(rewards[$0..<($0 + groupSize)]).count == 1 }
    }

    /// The groups whose rewards differ (non-zero advantages), in order.
    func groupsWithSpread() -> Rollouts {
        let flat = flatGroups
        return select(flat.indices.filter { !flat[$0] })
    }

    /// The first `count` groups.
    func firstGroups(_ count: Int) -> Rollouts { select(Array(0..<min(count, groupCount))) }

    private func select(_ groups: [Int]) -> Rollouts {
        let rows = groups.flatMap { g in (g * groupSize)..<((g + 1) * groupSize) }
        return Rollouts(inputs: rows.map { inputs[$0] }, responses: rows.map { responses[$0] }, finished: rows.map { finished[$0] },
                        correct: correct.map { c in rows.map { c[$0] } }, rewards: rows.map { rewards[$0] }, groupSize: groupSize)
    }

    mutating func append(_ other: Rollouts) {
        inputs += other.inputs; responses += other.responses; finished += other.finished; rewards += other.rewards
        correct = correct.flatMap { c in other.correct.map { c + $0 } }
    }
}
