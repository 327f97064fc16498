/// Group Relative Policy Optimization (Shao et al. 2024, DeepSeekMath), as TRL's `GRPOTrainer`.
///
/// For each prompt the policy samples a group of G completions; each completion's reward is
/// compared with the rest of its group, so no value model is needed. Completions of one prompt
/// sit next to each other (`rewards[p·G ..< (p+1)·G]`).
///
///     let advantages = grpoAdvantages(rewards: rewards, groupSize: 8)
///     let (loss, clipFraction, kl) = grpoLoss(
///         logProbs: tokenLogProbs,                // [sequences, tokens], differentiable
///         oldLogProbs: samplingLogProbs, referenceLogProbs: referenceLogProbs,
///         advantages: advantages, mask: completionMask, klBeta: 0.04)
import Foundation

/// Group-normalised advantages: (r − mean of its group) / (std of its group + ε).
///
/// Matches TRL's `_generate_and_score_completions`: the standard deviation is PyTorch's default
/// `std`, i.e. **unbiased** (divides by G − 1), and ε = 1e-4 is added to the std, not under the
/// square root. `scaleByStd: false` is TRL's `scale_rewards=False` (Dr. GRPO: only centre).
/// A group whose rewards are all equal gets advantages 0.
public func grpoAdvantages(rewards: [Float], groupSize: Int, epsilon: Float = 1e-4, scaleByStd: Bool = true) -> [Float] {
    precondition(groupSize >= 2, "grpoAdvantages: a group needs at least two completions, got \(groupSize)")
    precondition(rewards.count % groupSize == 0, "grpoAdvantages: \(rewards.count) rewards are not whole groups of \(groupSize)")
    var advantages = [Float](repeating: 0, count: rewards.count)
    for start in stride(from: 0, to: rewards.count, by: groupSize) {
        let group = rewards[start..<(start + groupSize)]
        var total: Float = 0
        for r in group { total += r }
        let mean = total / Float(groupSize)
        var squares: Float = 0
        for r in group { squares += (r - mean) * (r - mean) }
        let std = (squares / Float(groupSize - 1)).squareRoot()
        for i in start..<(start + groupSize) {
            let centred = rewards[i] - mean
            advantages[i] = scaleByStd ? centred / (std + epsilon) : centred
        }
    }
    return advantages
}

/// How per-token losses become one number (TRL's `loss_type`).
public enum GRPOAggregation: Equatable, Sendable {
    /// Σ over every counted token / number of counted tokens: TRL "bnpo", and "dapo" when the batch
    /// is the whole batch (DAPO, Yu et al. 2025). Long completions weigh in proportion to length.
    case token
    /// Mean over sequences of each sequence's token mean: the original GRPO objective (TRL "grpo").
    /// A sequence with no counted token contributes 0 but still counts in the mean, as in TRL.
    case sequence
    /// Σ over every counted token / (sequences × maximum completion length): TRL "dr_grpo"
    /// (Liu et al. 2025), a constant normaliser free of length bias.
    case fixedLength(Int)
}

/// The GRPO loss: per token, −min(ρ·A, clip(ρ, 1−ε_low, 1+ε_high)·A) + β·KL, aggregated over the
/// completion tokens (TRL `GRPOTrainer._compute_loss`, `importance_sampling_level="token"`).
///
/// - `logProbs`: `[sequences, tokens]` log-probs of the sampled tokens under the current policy.
/// - `oldLogProbs`: the same under the policy that sampled them (pass `logProbs`' values when there
///   is a single update per generation; ρ is then 1 and only its gradient matters).
/// - `referenceLogProbs`: under the frozen reference model; needed when `klBeta` ≠ 0.
/// - `advantages`: one per sequence (`grpoAdvantages`).
/// - `mask`: 1 on completion tokens (through EOS), 0 on padding.
/// - `clipEpsilon` is ε_low, and ε_high too unless `clipEpsilonHigh` is given (DAPO's clip-higher).
/// - KL is the k3 estimator exp(ref − logp) − (ref − logp) − 1 (Schulman, "Approximating KL").
///
/// Returns the loss, the fraction of counted tokens whose objective was clipped (ρ < 1−ε_low with
/// A < 0, or ρ > 1+ε_high with A > 0; TRL's `clip_ratio/region_mean`), and the mean k3 KL over
/// counted tokens (0 when `klBeta` is 0; TRL's `kl`).
public func grpoLoss(logProbs: Tensor, oldLogProbs: [Float], referenceLogProbs: [Float]?, advantages: [Float],
                     mask: [Float], clipEpsilon: Float = 0.2, clipEpsilonHigh: Float? = nil, klBeta: Float = 0,
                     aggregation: GRPOAggregation = .token) -> (loss: Tensor, clipFraction: Float, kl: Float) {
    let sequences = advantages.count
    let n = logProbs.count
    precondition(sequences > 0 && n % sequences == 0, "grpoLoss: \(n) log-probs for \(sequences) sequences")
    let tokens = n / sequences
    precondition(oldLogProbs.count == n && mask.count == n,
                 "grpoLoss: \(oldLogProbs.count) old log-probs and \(mask.count) mask entries for \(n) tokens")
    let low = 1 - clipEpsilon, high = 1 + (clipEpsilonHigh ?? clipEpsilon)
    let shape = [sequences, tokens]
    let logp = logProbs.reshaped(shape)
    let counted = isCounted(mask)
    let zeros = Tensor(zeros: shape)

    var tokenAdvantages = [Float](repeating: 0, count: n)
    for s in 0..<sequences { for t in 0..<tokens { tokenAdvantages[s * tokens + t] = advantages[s] } }
    let a = constant(tokenAdvantages, shape: shape)

    // Padding gets log-ratio 0 (ratio 1), so whatever it holds cannot overflow exp.
    let ratio = exp(where_(counted, sub(logp, constant(oldLogProbs, shape: shape)), zeros))
    let unclipped = mul(ratio, a)
    let clipped = mul(clamp(ratio, min: low, max: high), a)
    var perToken = scale(minimum(unclipped, clipped), -1)

    var meanKL: Float = 0
    if klBeta != 0 {
        guard let referenceLogProbs else { preconditionFailure("grpoLoss: klBeta \(klBeta) needs referenceLogProbs") }
        precondition(referenceLogProbs.count == n, "grpoLoss: \(referenceLogProbs.count) reference log-probs for \(n) tokens")
        let d = where_(counted, sub(constant(referenceLogProbs, shape: shape), logp), zeros)
        let kl = addScalar(sub(exp(d), d), -1)
        perToken = add(perToken, scale(kl, klBeta))
        meanKL = maskedMean(kl.scalars, mask: mask)
    }

    var weights = mask
    switch aggregation {
    case .token:
        let count = Swift.max(maskedCount(mask), 1)
        for i in 0..<n { weights[i] = mask[i] / count }
    case .sequence:
        for s in 0..<sequences {
            let count = Swift.max(maskedCount(Array(mask[(s * tokens)..<((s + 1) * tokens)])), 1)
            for t in 0..<tokens { weights[s * tokens + t] = mask[s * tokens + t] / (count * Float(sequences)) }
        }
    case .fixedLength(let length):
        precondition(length > 0, "grpoLoss: fixed length must be positive")
        for i in 0..<n { weights[i] = mask[i] / Float(sequences * length) }
    }
    let loss = weightedSum(perToken, weights: weights)

    let ratios = ratio.scalars
    var clippedRegion = [Float](repeating: 0, count: n)
    for i in 0..<n where (ratios[i] < low && tokenAdvantages[i] < 0) || (ratios[i] > high && tokenAdvantages[i] > 0) {
        clippedRegion[i] = 1
    }
    return (loss, maskedMean(clippedRegion, mask: mask), meanKL)
}
