/// The PPO clipped policy loss and clipped value loss (Schulman et al. 2017), as TRL's
/// `trl.experimental.ppo.PPOTrainer` computes them for one micro-batch.
///
/// All inputs are per token of padded responses (flat, or `[sequences, tokens]` flattened row by
/// row) with a mask of the same count. TRL counts one more position in the value loss than in the
/// policy loss (its `padding_mask_p1`: the position after the last response token, where the score
/// sits); the caller chooses by the masks it passes.
///
///     let (policyLoss, clipFraction, approxKL) = ppoPolicyLoss(
///         logProbs: newLogProbs, oldLogProbs: rolloutLogProbs, advantages: advantages,
///         mask: responseMask, clipRange: 0.2)
///     let (valueLoss, valueClipFraction) = ppoValueLoss(
///         values: valuePredictions, oldValues: rolloutValues, returns: returns, mask: valueMask, clipRange: 0.2)
///     let loss = add(policyLoss, scale(valueLoss, 0.1))   // vf_coef
import Foundation

/// masked_mean(max(−A·ρ, −A·clip(ρ, 1−c, 1+c))) with ρ = exp(logp − logp_old).
///
/// Returns the loss, the clip fraction (counted tokens where the clipped term is strictly larger,
/// TRL's `pg_clipfrac`) and the approximate KL ½·(logp − logp_old)² averaged over counted tokens.
/// (TRL's `approxkl` averages over every position, padding included, where both log-probs hold the
/// same filler value; Loom leaves padding out of the denominator.)
public func ppoPolicyLoss(logProbs: Tensor, oldLogProbs: [Float], advantages: [Float], mask: [Float],
                          clipRange: Float) -> (loss: Tensor, clipFraction: Float, approxKL: Float) {
    let n = logProbs.count
    precondition(oldLogProbs.count == n && advantages.count == n && mask.count == n,
                 "ppoPolicyLoss: \(n) log-probs, \(oldLogProbs.count) old, \(advantages.count) advantages, \(mask.count) mask entries")
    let shape = [n]
    let logp = logProbs.reshaped(shape)
    let logRatio = where_(isCounted(mask), sub(logp, constant(oldLogProbs, shape: shape)), Tensor(zeros: shape))
    let ratio = exp(logRatio)
    let negativeAdvantages = constant(countedOnly(advantages.map { -$0 }, mask: mask), shape: shape)
    let unclipped = mul(ratio, negativeAdvantages)
    let clipped = mul(clamp(ratio, min: 1 - clipRange, max: 1 + clipRange), negativeAdvantages)
    let loss = maskedMean(maximum(unclipped, clipped), mask: mask)

    let u = unclipped.scalars, c = clipped.scalars, d = logRatio.scalars
    let clipFraction = maskedMean((0..<n).map { c[$0] > u[$0] ? Float(1) : 0 }, mask: mask)
    let approxKL = maskedMean(d.map { 0.5 * $0 * $0 }, mask: mask)
    return (loss, clipFraction, approxKL)
}

/// ½·masked_mean(max((v − R)², (clip(v, v_old − c, v_old + c) − R)²)), TRL's clipped value loss.
///
/// Returns the loss and the fraction of counted positions where the clipped error is strictly
/// larger (TRL's `vf_clipfrac`).
public func ppoValueLoss(values: Tensor, oldValues: [Float], returns: [Float], mask: [Float],
                         clipRange: Float) -> (loss: Tensor, clipFraction: Float) {
    let n = values.count
    precondition(oldValues.count == n && returns.count == n && mask.count == n,
                 "ppoValueLoss: \(n) values, \(oldValues.count) old values, \(returns.count) returns, \(mask.count) mask entries")
    let shape = [n]
    let v = zeroingMasked(values.reshaped(shape), mask: mask)
    let old = countedOnly(oldValues, mask: mask)
    let lower = constant(old.map { $0 - clipRange }, shape: shape)
    let upper = constant(old.map { $0 + clipRange }, shape: shape)
    let clippedValues = minimum(maximum(v, lower), upper)
    let target = constant(countedOnly(returns, mask: mask), shape: shape)
    let unclipped = square(sub(v, target))
    let clipped = square(sub(clippedValues, target))
    let loss = scale(maskedMean(maximum(unclipped, clipped), mask: mask), 0.5)

    let u = unclipped.scalars, c = clipped.scalars
    let clipFraction = maskedMean((0..<n).map { c[$0] > u[$0] ? Float(1) : 0 }, mask: mask)
    return (loss, clipFraction)
}
