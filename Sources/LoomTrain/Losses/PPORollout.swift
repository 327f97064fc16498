/// Turning a PPO rollout into training targets: KL-penalised per-token rewards, generalised
/// advantage estimation and whitening, as TRL's `trl.experimental.ppo.PPOTrainer.train`
/// (steps 4–6 of its rollout phase) and its `masked_mean` / `masked_var` / `masked_whiten`.
///
/// Responses are right-padded to a common width; `lengths[s]` is the number of valid positions of
/// response s (its tokens through EOS). Everything here is plain arrays: none of it takes gradients.
///
///     let rewards = klPenaltyRewards(logProbs: policy, referenceLogProbs: reference, scores: scores,
///                                    lengths: lengths, klCoefficient: kl.value)
///     let (advantages, returns) = generalizedAdvantageEstimation(
///         rewards: rewards, values: values, lengths: lengths, gamma: 1, lambda: 0.95)
///     let whitened = whiten(advantages, lengths: lengths)
import Foundation

/// The per-token KL estimator of the penalty (Schulman, "Approximating KL divergence").
public enum KLEstimator: String, Codable, Sendable {
    /// log π − log π_ref: unbiased, can be negative per token.
    case k1
    /// (r − 1) − log r with r = π_ref/π: unbiased, never negative, lower variance.
    case k3
}

/// Where the sequence-level score enters the per-token rewards.
public enum ScorePlacement: String, Codable, Sendable {
    /// On the last valid token (its EOS): the usual construction (Ziegler et al. 2019, InstructGPT).
    case lastToken
    /// On the position after the last valid token when the response is shorter than the padded
    /// width, else on the last valid token: exactly what TRL's PPOTrainer does (`actual_end =
    /// sequence_lengths_p1`). Values, GAE and the value loss then have to run over `lengths + 1`
    /// positions (capped at the width), TRL's `padding_mask_p1`.
    case afterLastToken
}

/// Per-token rewards −β·KL_t on valid positions, plus the score at one position per response;
/// 0 on padding (TRL fills both log-probs of padding with the same filler value, so its KL there is 0).
public func klPenaltyRewards(logProbs: [[Float]], referenceLogProbs: [[Float]], scores: [Float], lengths: [Int],
                             klCoefficient: Float, estimator: KLEstimator = .k1,
                             scorePlacement: ScorePlacement = .lastToken) -> [[Float]] {
    precondition(logProbs.count == scores.count && referenceLogProbs.count == scores.count && lengths.count == scores.count,
                 "klPenaltyRewards: \(logProbs.count) policy rows, \(referenceLogProbs.count) reference rows, \(scores.count) scores, \(lengths.count) lengths")
    return (0..<scores.count).map { s in
        let width = logProbs[s].count, length = lengths[s]
        precondition(referenceLogProbs[s].count == width, "klPenaltyRewards: row \(s) widths \(width) and \(referenceLogProbs[s].count) differ")
        precondition(length >= 1 && length <= width, "klPenaltyRewards: length \(length) of row \(s) outside 1...\(width)")
        var row = [Float](repeating: 0, count: width)
        for t in 0..<length {
            let logRatio = referenceLogProbs[s][t] - logProbs[s][t]
            let kl: Float
            switch estimator {
            case .k1: kl = -logRatio
            case .k3: kl = (Foundation.exp(logRatio) - 1) - logRatio
            }
            row[t] = -klCoefficient * kl
        }
        let end: Int
        switch scorePlacement {
        case .lastToken: end = length - 1
        case .afterLastToken: end = length < width ? length : length - 1
        }
        row[end] += scores[s]
        return row
    }
}

/// Generalised advantage estimation (Schulman et al. 2016) over the first `lengths[s]` positions
/// of each row:
///
///     δ_t = r_t + γ·V_{t+1} − V_t      (V past the last valid position is 0: the episode ends)
///     A_t = δ_t + γ·λ·A_{t+1}
///     R_t = A_t + V_t                    (the value targets)
///
/// Positions past the length get advantage and return 0. This equals TRL's recursion over the whole
/// padded width once its rewards and values are zero past the valid positions.
public func generalizedAdvantageEstimation(rewards: [[Float]], values: [[Float]], lengths: [Int], gamma: Float,
                                           lambda: Float) -> (advantages: [[Float]], returns: [[Float]]) {
    precondition(rewards.count == values.count && rewards.count == lengths.count,
                 "generalizedAdvantageEstimation: \(rewards.count) reward rows, \(values.count) value rows, \(lengths.count) lengths")
    let decay = gamma * lambda
    var advantages: [[Float]] = [], returns: [[Float]] = []
    for s in rewards.indices {
        let width = rewards[s].count, length = lengths[s]
        precondition(values[s].count == width, "generalizedAdvantageEstimation: row \(s) widths \(width) and \(values[s].count) differ")
        precondition(length >= 0 && length <= width, "generalizedAdvantageEstimation: length \(length) of row \(s) outside 0...\(width)")
        var a = [Float](repeating: 0, count: width), r = [Float](repeating: 0, count: width)
        var next: Float = 0
        for t in stride(from: length - 1, through: 0, by: -1) {
            let nextValue: Float = t + 1 < length ? values[s][t + 1] : 0
            let delta = rewards[s][t] + gamma * nextValue - values[s][t]
            next = delta + decay * next
            a[t] = next
            r[t] = next + values[s][t]
        }
        advantages.append(a); returns.append(r)
    }
    return (advantages, returns)
}

/// TRL's `masked_whiten`: (x − μ)/√(σ² + 1e-8) with μ and σ² the masked mean and the
/// Bessel-corrected masked variance (n/(n−1), TRL's `masked_var(unbiased=True)`); with
/// `shiftMean: false` μ is added back (only the scale changes; TRL uses that for rewards).
///
/// Like TRL, every position is transformed, masked ones included: zero them afterwards if they
/// must be 0 (or use `whiten(_:lengths:shiftMean:)`). With fewer than two counted values the
/// variance is taken as 0 (TRL raises for none and divides by zero for one).
public func whiten(_ values: [Float], mask: [Float], shiftMean: Bool = true) -> [Float] {
    precondition(values.count == mask.count, "whiten: \(values.count) values, \(mask.count) mask entries")
    var count: Double = 0, total: Double = 0
    for i in values.indices where mask[i] != 0 { count += Double(mask[i]); total += Double(values[i]) * Double(mask[i]) }
    guard count > 0 else { return values }
    let mean = total / count
    var squares: Double = 0
    for i in values.indices where mask[i] != 0 {
        let d = Double(values[i]) - mean
        squares += d * d * Double(mask[i])
    }
    let variance = count > 1 ? squares / count * (count / (count - 1)) : 0
    let inverseStd = 1 / (variance + 1e-8).squareRoot()
    return values.map { v in
        let w = (Double(v) - mean) * inverseStd
        return Float(shiftMean ? w : w + mean)
    }
}

/// Whitens the valid prefix of every row together (one mean and variance over all of them) and
/// sets padding to 0: TRL's `masked_whiten` followed by `masked_fill(padding, 0)`.
public func whiten(_ rows: [[Float]], lengths: [Int], shiftMean: Bool = true) -> [[Float]] {
    precondition(rows.count == lengths.count, "whiten: \(rows.count) rows, \(lengths.count) lengths")
    var flat: [Float] = [], mask: [Float] = []
    for (s, row) in rows.enumerated() {
        precondition(lengths[s] >= 0 && lengths[s] <= row.count, "whiten: length \(lengths[s]) of row \(s) outside 0...\(row.count)")
        flat += row
        mask += (0..<row.count).map { $0 < lengths[s] ? Float(1) : 0 }
    }
    let whitened = whiten(flat, mask: mask, shiftMean: shiftMean)
    var result: [[Float]] = [], offset = 0
    for (s, row) in rows.enumerated() {
        result.append((0..<row.count).map { $0 < lengths[s] ? whitened[offset + $0] : 0 })
        offset += row.count
    }
    return result
}
