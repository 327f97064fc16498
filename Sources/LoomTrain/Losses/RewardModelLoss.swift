/// Reward-model losses: pairwise (Bradley–Terry) and K-wise ranking, with accuracy metrics.
///
/// A reward model scores a whole response with one number (the value head at its last token).
/// Training pushes the preferred response's score above the other's.
///
///     let loss = pairwiseRewardLoss(chosen: rewardsChosen, rejected: rewardsRejected)
///     let accuracy = pairwiseAccuracy(chosen: rewardsChosen.scalars, rejected: rewardsRejected.scalars)
import Foundation

/// mean(−log σ(r_c − r_r − margin)) + coefficient · mean((r_c + r_r)²), as TRL `RewardTrainer`.
///
/// - `chosen`, `rejected`: one reward per pair, `[pairs]` or `[pairs, 1]`.
/// - `margin`: optional per-pair margin by which the chosen reward should win (Llama 2's
///   graded-preference margin; TRL's `margin` column).
/// - `centeringCoefficient`: TRL's `center_rewards_coefficient` (Eisenstein et al. 2023), which
///   keeps rewards near zero mean; 0 turns it off.
public func pairwiseRewardLoss(chosen: Tensor, rejected: Tensor, margin: [Float]? = nil,
                               centeringCoefficient: Float = 0) -> Tensor {
    precondition(chosen.count == rejected.count,
                 "pairwiseRewardLoss: \(chosen.count) chosen rewards, \(rejected.count) rejected")
    var difference = sub(chosen, rejected)
    if let margin {
        precondition(margin.count == chosen.count, "pairwiseRewardLoss: \(margin.count) margins for \(chosen.count) pairs")
        difference = sub(difference, constant(margin, shape: difference.shape))
    }
    var loss = scale(mean(logSigmoid(difference)), -1)
    if centeringCoefficient != 0 {
        let total = add(chosen, rejected.reshaped(chosen.shape))
        loss = add(loss, scale(mean(square(total)), centeringCoefficient))
    }
    return loss
}

/// K-wise ranking loss (InstructGPT, Ouyang et al. 2022, eq. 1).
///
/// `scores` holds one reward per response, the responses of every prompt concatenated (`[n]` or
/// `[n, 1]`). Each entry of `groups` lists the indices into `scores` of one prompt's responses,
/// ordered best to worst. For a prompt with K responses the loss is the mean over its C(K, 2)
/// pairs (i ranked above j) of −log σ(r_i − r_j); prompts are then averaged, so every prompt
/// weighs the same however many responses it has (all its pairs are one batch element, which is
/// also what keeps InstructGPT's reward model from overfitting). Groups of fewer than two
/// responses have no pair and are left out of the average. With K = 2 this is
/// `pairwiseRewardLoss`.
public func rankingRewardLoss(scores: Tensor, groups: [[Int]]) -> Tensor {
    let n = scores.count
    var better: [Int] = [], worse: [Int] = [], weights: [Float] = []
    let ranked = groups.filter { $0.count >= 2 }
    precondition(!ranked.isEmpty, "rankingRewardLoss: no group has two responses to compare")
    for group in ranked {
        precondition(Set(group).count == group.count, "rankingRewardLoss: group \(group) repeats a response")
        let pairs = group.count * (group.count - 1) / 2
        let weight = 1 / (Float(ranked.count) * Float(pairs))
        for i in 0..<group.count {
            precondition(group[i] >= 0 && group[i] < n, "rankingRewardLoss: index \(group[i]) outside 0..<\(n)")
            for j in (i + 1)..<group.count {
                better.append(group[i]); worse.append(group[j]); weights.append(weight)
            }
        }
    }
    let column = scores.reshaped([n, 1])
    let difference = sub(gatherRows(column, indices: better), gatherRows(column, indices: worse))
    return scale(weightedSum(logSigmoid(difference), weights: weights), -1)
}

/// The fraction of pairs whose chosen reward is strictly above the rejected one.
public func pairwiseAccuracy(chosen: [Float], rejected: [Float]) -> Float {
    precondition(chosen.count == rejected.count, "pairwiseAccuracy: \(chosen.count) vs \(rejected.count) rewards")
    guard !chosen.isEmpty else { return 0 }
    return Float(zip(chosen, rejected).filter { $0 > $1 }.count) / Float(chosen.count)
}

/// The mean of r_chosen − r_rejected.
public func meanRewardMargin(chosen: [Float], rejected: [Float]) -> Float {
    precondition(chosen.count == rejected.count, "meanRewardMargin: \(chosen.count) vs \(rejected.count) rewards")
    guard !chosen.isEmpty else { return 0 }
    var total: Double = 0
    for (c, r) in zip(chosen, rejected) { total += Double(c) - Double(r) }
    return Float(total / Double(chosen.count))
}

/// The fraction of all ranked pairs (over every group) whose better response scores strictly higher.
public func rankingAccuracy(scores: [Float], groups: [[Int]]) -> Float {
    var correct = 0, total = 0
    for group in groups where group.count >= 2 {
        for i in 0..<group.count {
            for j in (i + 1)..<group.count {
                total += 1
                if scores[group[i]] > scores[group[j]] { correct += 1 }
            }
        }
    }
    return total > 0 ? Float(correct) / Float(total) : 0
}
