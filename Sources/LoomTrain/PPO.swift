import Foundation
import LoomSupport
import LoomData
import LoomDistributed
import LoomInference
import LoomTokenizer

/// Options of `loom ppo`: PPO on the SFT policy against a reward model, KL-penalised to the
/// SFT model, optionally mixed with the pretraining objective (PPO-ptx, InstructGPT), with
/// the PPO-max stabilisers of "Secrets of RLHF" (reward normalisation and clipping with
/// running statistics, advantage whitening, value clipping, global gradient clipping).
public struct PPOOptions {
    public var policy: URL
    public var rewardModel: URL
    public var prompts: URL
    public var output: URL
    public var settings = StageSettings()
    /// Token shards from `loom prepare` for the pretraining mix; nil disables PPO-ptx.
    public var ptxData: URL?
    /// γ of PPO-ptx: the weight of the pretraining loss in the policy's objective.
    public var ptxCoefficient: Float = 0.5
    /// Pretraining windows per policy update (per rank in a data-parallel run, like `settings.batchSize`).
    public var ptxBatchSize = 4
    public var ptxContext = 128
    /// Initial β of the per-token KL penalty; with `targetKL` set, an adaptive controller moves it.
    public var klCoefficient: Float = 0.05
    public var targetKL: Float? = nil
    public var klHorizon = 1000
    public var gamma: Float = 1
    public var lambda: Float = 0.95
    public var clipRange: Float = 0.2
    public var valueClipRange: Float = 0.2
    public var valueLearningRate: Float = 5e-4
    /// Iterations at the start that fit only the critic (PPO-max's critic pre-training): the
    /// critic starts as the reward model, whose scores of unfinished answers are not values, and
    /// advantages from an unfitted critic push the policy in directions that carry no reward.
    /// They count toward `settings.steps`.
    public var criticWarmupIterations = 0
    /// Passes over each rollout batch, and minibatches per pass.
    public var ppoEpochs = 2
    public var minibatches = 2
    public var maxNewTokens = 16
    public var temperature: Float = 1
    public var topP: Float = 1
    /// Reward given to an answer that never produced its end-of-turn token (PPO-max).
    public var missingEOSPenalty: Float = -3
    /// Normalised rewards are clipped to ±this.
    public var rewardClip: Float = 5
    /// New run, `--overwrite`, `--resume` (see `RunMode`).
    public var mode: RunMode = .fresh
    /// Resume even though settings that shape the run changed (`--allow-changes`).
    public var allowChanges = false
    /// `--resume`: continue the run in the output directory.
    public var resume: Bool {
        get { mode == .resume }
        set { mode = newValue ? .resume : .fresh }
    }

    public init(policy: URL, rewardModel: URL, prompts: URL, output: URL) {
        self.policy = policy; self.rewardModel = rewardModel; self.prompts = prompts; self.output = output
        settings.steps = 60
        settings.batchSize = 32
        settings.learningRate = 1e-4
        settings.minLearningRate = 1e-4
        settings.warmupSteps = 0
        settings.evalInterval = 20
        settings.checkpointInterval = 20
        settings.logInterval = 1
    }
}

public struct PPOSummary: Codable, Sendable {
    public var iterations: Int
    /// Mean reward-model score of the rollouts over the last and the first 10 iterations of
    /// this run (`windowMeans`; fewer in a shorter run).
    public var meanReward: Double
    public var firstMeanReward: Double
    public var kl: Double
    public var seconds: Double
    public var evaluations: [String: Double]
}

/// One batch of on-policy experience.
struct Rollout {
    var prompts: [[Int32]]
    var responses: [[Int32]]       // generated tokens, including the end-of-turn token when produced
    var oldLogProbs: [[Float]]     // log π_old per response token
    var referenceLogProbs: [[Float]]
    var values: [[Float]]
    var advantages: [[Float]] = []
    var returns: [[Float]] = []
    var lengths: [Int] { responses.map(\.count) }
}

/// PPO-ptx. Each iteration: sample prompts, generate answers with the policy (KV cache,
/// batched), score them with the reward model (minus a penalty for answers that never
/// end), normalise and clip scores with running statistics, form per-token rewards
/// −β·(log π − log π_SFT) plus the score on the last token, estimate advantages with GAE
/// (γ, λ) from the critic's values and whiten them, then run `ppoEpochs` passes of
/// minibatch updates: clipped surrogate (+ γ_ptx · pretraining LM loss) for the policy,
/// clipped value loss for the critic (initialised from the reward model), each with its
/// own AdamW and global gradient clipping.
public final class PPOTrainer {
    public let options: PPOOptions
    /// Called at evaluation intervals with the current policy; returns figures to log
    /// (the command wires held-out exact-match accuracy here).
    public var evaluate: ((LlamaModel) -> [String: Double])?

    public init(options: PPOOptions) { self.options = options }

    @discardableResult
    public func run() throws -> PPOSummary {
        let o = options
        let settings = o.settings
        try settings.validate(stage: "ppo")
        guard o.ppoEpochs >= 1 else { throw TrainingError("ppo: --ppo-epochs must be at least 1, got \(o.ppoEpochs)") }
        guard o.minibatches >= 1 && o.minibatches <= settings.batchSize else {
            throw TrainingError("ppo: --minibatches must be in 1...\(settings.batchSize) (the --batch-size), got \(o.minibatches)")
        }
        if let target = o.targetKL, !(target.isFinite && target > 0) { throw TrainingError("ppo: --target-kl must be a positive number, got \(target)") }
        let loaded = try StageModel(loading: o.policy, heads: .languageModel, settings: settings, maxLength: nil, stage: "ppo")
        let (policy, tokenizer, encoder, padID, maxLength) = (loaded.model, loaded.tokenizer, loaded.encoder, loaded.padID, loaded.maxLength)
        let reference = frozenReference(of: policy, settings: settings)
        let rewardModel = try RewardModel.load(directory: o.rewardModel)
        let critic = try LlamaModel.load(directory: o.rewardModel, heads: .score)
        let rewardTokenizer = try ModelDirectory.loadTokenizer(o.rewardModel)
        try ModelDirectory.checkTokenizer(rewardTokenizer, fits: critic.configuration, directory: o.rewardModel)
        try ModelDirectory.checkSameTokenizer(tokenizer, of: o.policy, rewardTokenizer, of: o.rewardModel)
        let prompts = try PromptDataset.load(o.prompts).examples
        guard !prompts.isEmpty else { throw TrainingError("\(o.prompts.path) holds no prompts") }
        guard o.criticWarmupIterations >= 0 else { throw TrainingError("PPO needs --critic-warmup ≥ 0, got \(o.criticWarmupIterations)") }
        let encodedPrompts = prompts.map { encoder.prompt($0.prompt) }
        var promptFingerprint = Fingerprint()
        for prompt in encodedPrompts { promptFingerprint.add(prompt) }

        // The run is shaped by the global batches (per rank × ranks), so that it resumes on
        // another number of ranks (StageRun does the same for settings.batchSize).
        var signature = RunSignature.of(o)
        signature["ptxBatchSize"] = String(o.ptxBatchSize * World.communicator.size)
        var ptxSampler: WindowSampler? = nil
        if let ptx = o.ptxData {
            guard o.ptxBatchSize >= 1 else { throw TrainingError("ppo: --ptx-batch-size must be at least 1, got \(o.ptxBatchSize)") }
            let ptxDataset = try TokenDataset(directory: ptx, split: "train")
            try ptxDataset.checkTokens(below: policy.configuration.vocabularySize)
            // --ptx-batch-size is per rank, like --batch-size: every rank draws the global batch's
            // windows (so that all generators stay in step) and trains on its own rows of them.
            ptxSampler = try WindowSampler(dataset: ptxDataset, batch: o.ptxBatchSize * World.communicator.size,
                                           context: min(o.ptxContext, maxLength))
        }

        var criticSettings = settings
        criticSettings.learningRate = o.valueLearningRate
        criticSettings.minLearningRate = o.valueLearningRate
        let criticStepper = try DataParallelOptimizer(singleProcess: critic.parameters, hyperparameters: criticSettings.adam)
        let criticOptimizer = criticStepper.optimizer
        var rewardStatistics = RunningMoments()
        var kl: any KLController = o.targetKL.map { AdaptiveKLController(initial: o.klCoefficient, target: $0, horizon: o.klHorizon) }
            ?? FixedKLController(o.klCoefficient)
        /// What PPO adds to a checkpoint: the critic (a model directory with its optimizer state
        /// in `critic/`), the running reward statistics and the KL coefficient.
        struct PPOState: Codable { var rewardStatistics: RunningMoments; var klCoefficient: Float }
        let criticDirectoryName = "critic", ppoStateName = "ppo_state.json"
        let run = try StageRun(
            stage: "ppo", model: policy, tokenizer: tokenizer, settings: settings, output: o.output, mode: o.mode,
            inputs: [o.policy, o.rewardModel, o.prompts] + (o.ptxData.map { [$0] } ?? []), signature: signature,
            allowChanges: o.allowChanges, extraStateFiles: [criticDirectoryName, ppoStateName], restoreExtra: { checkpoint in
            let stateURL = checkpoint.appendingPathComponent(ppoStateName)
            guard let data = FileManager.default.contents(atPath: stateURL.path) else {
                throw CheckpointError("\(stateURL.path) is missing; cannot resume PPO")
            }
            let saved: PPOState
            do { saved = try JSONDecoder().decode(PPOState.self, from: data) }
            catch { throw CheckpointError("\(stateURL.path): \(describeDecodingError(error))") }
            _ = try Checkpoint.restore(model: critic, optimizer: criticOptimizer, from: checkpoint.appendingPathComponent(criticDirectoryName))
            rewardStatistics = saved.rewardStatistics
            kl = o.targetKL.map { AdaptiveKLController(initial: saved.klCoefficient, target: $0, horizon: o.klHorizon) }
                ?? FixedKLController(saved.klCoefficient)
        }, dataParallel: true, launchFingerprint: ["data.prompts": promptFingerprint.hex])
        run.saveExtra = { [unowned run] checkpoint in
            try Checkpoint.save(model: critic, optimizer: criticOptimizer, state: run.state, tokenizer: nil,
                                to: checkpoint.appendingPathComponent(criticDirectoryName))
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]   // the same state, the same bytes
            try AtomicFile.write(try encoder.encode(PPOState(rewardStatistics: rewardStatistics, klCoefficient: kl.value)),
                                to: checkpoint.appendingPathComponent(ppoStateName))
            CheckpointFaults.fileWritten()
        }
        // Data parallelism: each rank rolls out its rows of the global batch, the rollouts are
        // gathered so that statistics, advantages and running moments are the whole batch's on
        // every rank, and each minibatch is split across the ranks like a batch of SFT.
        let parallel = run.parallel
        let minibatchSize = max(1, run.globalBatchSize / o.minibatches)
        let minibatchSizes = stride(from: 0, to: run.globalBatchSize, by: minibatchSize).map { min(minibatchSize, run.globalBatchSize - $0) }
        if let uneven = minibatchSizes.first(where: { $0 % parallel.size != 0 }) {
            throw TrainingError("ppo: --minibatches \(o.minibatches) cuts the global batch of \(run.globalBatchSize) rollouts into minibatches of \(uneven), "
                                + "which do not divide by \(parallel.size) ranks; choose --batch-size and --minibatches so that they do")
        }
        if parallel.isDistributed {
            // The critic starts as rank 0's, like the policy (`startTogether`).
            for storage in [critic.parameters.values, criticOptimizer.firstMoment, criticOptimizer.secondMoment] { parallel.broadcastFromPrimary(storage) }
        }
        let ptxRows = try parallel.localRows(globalBatch: o.ptxBatchSize * parallel.size)
        logLine("PPO: \(prompts.count) prompts, \(settings.steps) iterations × \(run.globalBatchSize) rollouts, \(o.ppoEpochs) epochs × \(o.minibatches) minibatches, β \(o.klCoefficient)\(o.targetKL.map { " → target KL \($0)" } ?? ""), ptx \(o.ptxData == nil ? "off" : "γ \(o.ptxCoefficient)")")
        var meanRewards: [Double] = [], lastKL = 0.0
        var evaluations: [String: Double] = [:]
        if run.state.step == 0, parallel.isPrimary, let evaluate {
            evaluations = policy.withAdaptersMerged { evaluate(policy) }
            try run.log(evaluations.mapValues { $0 as Any }, show: Array(evaluations.keys).sorted(), force: true)
        }
        while !run.isFinished {
            // 1. Rollouts.
            var rng = run.state.rng
            let chosen = (0..<run.globalBatchSize).map { _ in rng.nextInt(below: prompts.count) }
            run.state.rng = rng
            let batchPrompts = chosen.map { encodedPrompts[$0] }
            // This rank's rows of the global batch. Row i of the batch samples with seed + i
            // (`generateBatch`), counted in the global batch: the same answers whatever the ranks.
            let mine = try parallel.localRows(globalBatch: chosen.count)
            let localPrompts = Array(batchPrompts[mine])
            let sampling = SamplingParameters(temperature: o.temperature, topP: o.topP,
                                              seed: (settings.seed &+ UInt64(run.state.step) &* 1_000_003) &+ UInt64(mine.lowerBound))
            let generations = policy.withAdaptersMerged { Generator(model: policy, stopTokens: encoder.stopTokens)
                .generateBatch(prompts: localPrompts, maxTokens: o.maxNewTokens, sampling: sampling) }
            // Keep the end-of-turn token as part of the response: the policy is trained to emit it.
            let localResponses = generations.map { g in g.finishReason == .stop ? g.tokens + [encoder.endOfTurn] : g.tokens }
                .map { $0.isEmpty ? [encoder.endOfTurn] : $0 }
            let localEnded = generations.map { $0.finishReason == .stop }

            // 2. Scores: reward model minus the missing-EOS penalty (normalised and clipped below,
            // over the whole batch).
            var localScores = rewardModel.score(prompts: localPrompts, responses: localResponses, padID: padID, maxLength: maxLength)
            for i in localScores.indices where !localEnded[i] { localScores[i] = o.missingEOSPenalty }

            // 3. Log-probs of the policy and the SFT model, values of the critic, entropy.
            let batch = PromptResponseBatch(prompts: localPrompts, responses: localResponses, padID: padID, maxLength: maxLength)
            let (localLogProbs, localEntropy) = withoutGradients { () -> ([[Float]], [Double]) in
                let logits = policy.logits(tokens: batch.tokens, batch: batch.sequences, sequence: batch.length)
                let lp = logSoftmaxGather(logits: logits, targets: batch.targets)
                let rowEntropy = softmaxEntropy(logits: logits)
                var total = 0.0, count = 0
                for positions in batch.responsePositions { for p in positions { total += Double(rowEntropy[p]); count += 1 } }
                return (batch.responsePositions.map { $0.map { lp.data[$0] } }, [total, Double(count)])
            }
            let localReferenceLogProbs = batch.responseLogProbs(reference)
            let localValues: [[Float]] = withoutGradients {
                let v = critic.scores(hidden: critic.hiddenStates(tokens: batch.tokens, batch: batch.sequences, sequence: batch.length))
                return batch.responsePositions.map { $0.map { v.data[$0] } }
            }

            // Every rank's rollouts, in the global batch's order: from here on every rank computes
            // what one process would with the whole batch (running moments, advantages, statistics).
            let responses = parallel.gathered(tokens: localResponses)
            let ended = parallel.gathered(localEnded.map { $0 ? Float(1) : 0 }).map { $0 != 0 }
            let rawScores = parallel.gathered(localScores)
            let oldLogProbs = parallel.gathered(rows: localLogProbs)
            let referenceLogProbs = parallel.gathered(rows: localReferenceLogProbs)
            let values = parallel.gathered(rows: localValues)
            let entropySums = parallel.summed(localEntropy)
            let entropy = entropySums[0] / max(entropySums[1], 1)
            _ = rewardStatistics.update(rawScores)
            let scores = rewardStatistics.normalize(rawScores).map { max(-o.rewardClip, min(o.rewardClip, $0)) }
            var rollout = Rollout(prompts: batchPrompts, responses: responses, oldLogProbs: oldLogProbs,
                                  referenceLogProbs: referenceLogProbs, values: values)
            let lengths = rollout.lengths
            let rewards = klPenaltyRewards(logProbs: oldLogProbs, referenceLogProbs: referenceLogProbs, scores: scores,
                                           lengths: lengths, klCoefficient: kl.value)
            let (advantages, returns) = generalizedAdvantageEstimation(rewards: rewards, values: values, lengths: lengths,
                                                                       gamma: o.gamma, lambda: o.lambda)
            rollout.advantages = whiten(advantages, lengths: lengths)
            rollout.returns = returns

            // Rollout statistics.
            var sequenceKL = 0.0, referenceNLL = 0.0, tokenCount = 0
            for s in 0..<responses.count {
                for t in 0..<lengths[s] {
                    sequenceKL += Double(oldLogProbs[s][t] - referenceLogProbs[s][t])
                    referenceNLL -= Double(referenceLogProbs[s][t])
                    tokenCount += 1
                }
            }
            let meanKL = sequenceKL / Double(responses.count)
            let meanReward = Double(rawScores.reduce(0, +)) / Double(rawScores.count)
            meanRewards.append(meanReward)
            lastKL = meanKL
            let explainedVariance = explainedVarianceOf(values: values, returns: returns, lengths: lengths)

            // 4. PPO updates.
            let lr = run.learningRate
            var clipFractions: [Float] = [], valueLosses: [Float] = [], policyLosses: [Float] = [], ptxLosses: [Float] = [], valueClips: [Float] = []
            var gradNorm: Float = 0
            let updatesPolicy = run.state.step >= o.criticWarmupIterations
            // Per minibatch, summed over the ranks at the end of the iteration: response tokens,
            // and policy loss, clip fraction, value loss, value clip fraction weighted by them.
            var minibatchSums: [Double] = []
            var order = Array(0..<responses.count)
            for _ in 0..<o.ppoEpochs {
                order.shuffle(using: &run.state.rng)
                for start in stride(from: 0, to: order.count, by: minibatchSize) {
                    // The minibatch is drawn from the global batch; each rank trains on its share of it.
                    let members = try parallel.localSlice(Array(order[start..<min(start + minibatchSize, order.count)]))
                    let mb = PromptResponseBatch(prompts: members.map { batchPrompts[$0] }, responses: members.map { responses[$0] },
                                                 padID: padID, maxLength: maxLength)
                    var old = [Float](repeating: 0, count: mb.sequences * mb.length)
                    var adv = old, ret = old, oldValues = old
                    for (k, s) in members.enumerated() {
                        for (t, p) in mb.responsePositions[k].enumerated() {
                            old[p] = rollout.oldLogProbs[s][t]; adv[p] = rollout.advantages[s][t]
                            ret[p] = rollout.returns[s][t]; oldValues[p] = rollout.values[s][t]
                        }
                    }
                    // The losses are means over the minibatch's response tokens: this rank's mean
                    // weighs by its share of all ranks' tokens (`meanWeight`).
                    let (share, _) = parallel.meanWeight(localCount: Int(maskedCount(mb.responseMask)))
                    let localTokens = Double(maskedCount(mb.responseMask))
                    var sums = [localTokens, 0, 0, 0, 0]
                    // Policy (+ pretraining mix), after the critic's warm-up.
                    if updatesPolicy {
                        run.zeroGradients()
                        let tape = Tape()
                        run.overlapGradientReduction(with: tape)
                        let (objective, policyLoss, clipFraction, ptxLoss) = tape.record { () -> (Tensor, Float, Float, Tensor?) in
                            let logProbs = mb.tokenLogProbs(policy)
                            let pg = ppoPolicyLoss(logProbs: logProbs, oldLogProbs: old, advantages: adv, mask: mb.responseMask, clipRange: o.clipRange)
                            let weighted = share == 1 ? pg.loss : scale(pg.loss, share)
                            guard let sampler = ptxSampler else { return (weighted, pg.loss.item, pg.clipFraction, nil) }
                            // The ptx windows are as many on every rank: a plain mean over ranks.
                            let windows = sampler.sample(&run.state.rng, rows: ptxRows)
                            let lm = policy.languageModelLoss(tokens: windows.inputs, targets: windows.targets, batch: ptxRows.count, sequence: sampler.context)
                            return (add(weighted, scale(lm, o.ptxCoefficient)), pg.loss.item, pg.clipFraction, lm)
                        }
                        try run.requireFinite(objective.item, "policy loss")
                        tape.backward(from: objective)
                        gradNorm = try run.optimizerStep(advancing: false).gradNorm
                        sums[1] = Double(policyLoss) * localTokens
                        sums[2] = Double(clipFraction) * localTokens
                        if let ptxLoss { ptxLosses.append(ptxLoss.item) }
                    }

                    // Critic.
                    critic.parameters.zeroGradients()
                    let criticTape = Tape()
                    let (valueLoss, valueClip) = criticTape.record { () -> (Tensor, Float) in
                        let v = critic.scores(hidden: critic.hiddenStates(tokens: mb.tokens, batch: mb.sequences, sequence: mb.length))
                        let r = ppoValueLoss(values: v, oldValues: oldValues, returns: ret, mask: mb.responseMask, clipRange: o.valueClipRange)
                        return (r.loss, r.clipFraction)
                    }
                    criticTape.backward(from: valueLoss, seed: share)
                    // The critic is replicated: its gradients are averaged like the policy's,
                    // then clipped, checked and applied alike on every rank.
                    parallel.averageGradients(critic.parameters)
                    _ = try criticStepper.clipCheckUpdate(maxNorm: settings.gradClip, learningRate: o.valueLearningRate) { norm in
                        TrainingError("ppo: the critic's gradient norm is \(norm) at step \(run.state.step + 1); stopping: \(run.store.describeLastCheckpoint())")
                    }
                    sums[3] = Double(valueLoss.item) * localTokens
                    sums[4] = Double(valueClip) * localTokens
                    minibatchSums += sums
                }
            }
            minibatchSums = parallel.summed(minibatchSums)
            ptxLosses = parallel.averaged(ptxLosses.map(Double.init)).map(Float.init)
            for m in stride(from: 0, to: minibatchSums.count, by: 5) {
                let tokens = max(minibatchSums[m], 1)
                if updatesPolicy {
                    // The policy's objective: the clipped surrogate plus γ_ptx · the pretraining loss.
                    let ptx = ptxLosses.isEmpty ? 0 : o.ptxCoefficient * ptxLosses[m / 5]
                    policyLosses.append(Float(minibatchSums[m + 1] / tokens) + ptx)
                    clipFractions.append(Float(minibatchSums[m + 2] / tokens))
                }
                valueLosses.append(Float(minibatchSums[m + 3] / tokens))
                valueClips.append(Float(minibatchSums[m + 4] / tokens))
            }
            kl.update(currentKL: Float(meanKL), steps: run.globalBatchSize)
            run.state.step += 1
            run.state.tokensSeen += tokenCount

            func mean(_ xs: [Float]) -> Double { xs.isEmpty ? .nan : Double(xs.reduce(0, +)) / Double(xs.count) }
            var record: [String: Any] = [
                "reward": meanReward, "reward_normalized": Double(scores.reduce(0, +)) / Double(scores.count),
                "kl": meanKL, "kl_coef": Double(kl.value), "entropy": entropy,
                "response_length": Double(lengths.reduce(0, +)) / Double(lengths.count),
                "ended_fraction": Double(ended.filter { $0 }.count) / Double(ended.count),
                "value_loss": mean(valueLosses),
                "value_clip_fraction": mean(valueClips), "explained_variance": explainedVariance,
                "sft_perplexity": Foundation.exp(referenceNLL / Double(max(tokenCount, 1))),
                "lr": Double(lr), "grad_norm": Double(gradNorm), "policy_updated": updatesPolicy ? 1 : 0,
            ]
            if updatesPolicy { record["clip_fraction"] = mean(clipFractions); record["policy_loss"] = mean(policyLosses) }
            if !ptxLosses.isEmpty { record["ptx_loss"] = mean(ptxLosses) }
            if run.shouldEvaluate, let evaluate {
                evaluations = policy.withAdaptersMerged { evaluate(policy) }
                for (k, v) in evaluations { record[k] = v }
            }
            try run.log(record, show: ["reward", "kl", "entropy", "response_length", "clip_fraction", "value_loss", "explained_variance"] + evaluations.keys.sorted(),
                    force: run.shouldEvaluate)
            try run.checkpointIfDue()
        }
        try run.finish()
        let rewardWindows = windowMeans(meanRewards)
        return PPOSummary(iterations: run.state.step, meanReward: rewardWindows.last, firstMeanReward: rewardWindows.first,
                          kl: lastKL, seconds: run.seconds, evaluations: evaluations)
    }
}

/// 1 − Var(returns − values) / Var(returns) over valid positions: how much of the return
/// the critic explains (1 is perfect, ≤ 0 is no better than a constant).
func explainedVarianceOf(values: [[Float]], returns: [[Float]], lengths: [Int]) -> Double {
    var r: [Double] = [], d: [Double] = []
    for s in 0..<lengths.count {
        for t in 0..<lengths[s] {
            r.append(Double(returns[s][t]))
            d.append(Double(returns[s][t] - values[s][t]))
        }
    }
    func variance(_ x: [Double]) -> Double {
        let m = x.reduce(0, +) / Double(max(x.count, 1))
        return x.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(max(x.count, 1))
    }
    let vr = variance(r)
    return vr > 0 ? 1 - variance(d) / vr : .nan
}
