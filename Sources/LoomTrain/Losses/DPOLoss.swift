/// Direct Preference Optimization (Rafailov et al. 2023) and IPO (Azar et al. 2023), as TRL's
/// `DPOTrainer.dpo_loss`.
///
/// Inputs are per-sequence completion log-probabilities of the policy (differentiable) and of the
/// frozen reference model (plain values). What "per-sequence" means depends on the loss, and the
/// caller reduces accordingly with `sequenceLogProbs(_:mask:average:)`:
///
/// - `.sigmoid` (DPO): the **sum** of the completion's token log-probs, log π(y|x).
/// - `.ipo`: the **mean** over the completion's tokens, because TRL's `concatenated_forward`
///   divides by the number of completion tokens when `loss_type="ipo"` (for policy and reference
///   alike). Pass means for both to match TRL.
///
///     let policy = sequenceLogProbs(tokenLogProbs, mask: completionMask)          // [2B]: chosen, then rejected
///     let (loss, chosenRewards, rejectedRewards) = dpoLoss(
///         policyChosen: policyChosen, policyRejected: policyRejected,
///         referenceChosen: refChosen, referenceRejected: refRejected, beta: 0.1)
import Foundation

public enum DPOKind: String, Codable, Sendable, CaseIterable {
    /// −log σ(β·h), h = (log π_c − log ref_c) − (log π_r − log ref_r); with label smoothing ε the
    /// conservative-DPO form −(1−ε)·log σ(β·h) − ε·log σ(−β·h).
    case sigmoid
    /// (h − 1/(2β))², with h built from average per-token log-probs.
    case ipo
}

/// The DPO loss (mean over pairs) and the implicit rewards β·(log π − log ref) of each response
/// (TRL's `chosen_rewards` / `rejected_rewards`, without gradient).
public func dpoLoss(policyChosen: Tensor, policyRejected: Tensor, referenceChosen: [Float], referenceRejected: [Float],
                    beta: Float, kind: DPOKind = .sigmoid, labelSmoothing: Float = 0)
    -> (loss: Tensor, chosenRewards: [Float], rejectedRewards: [Float]) {
    let pairs = policyChosen.count
    precondition(policyRejected.count == pairs && referenceChosen.count == pairs && referenceRejected.count == pairs,
                 "dpoLoss: \(pairs) chosen, \(policyRejected.count) rejected, \(referenceChosen.count)/\(referenceRejected.count) reference log-probs")
    precondition(beta > 0, "dpoLoss: beta must be positive, got \(beta)")
    precondition(labelSmoothing >= 0 && labelSmoothing < 0.5, "dpoLoss: label smoothing \(labelSmoothing) outside [0, 0.5)")
    let shape = [pairs]
    let chosenLogRatio = sub(policyChosen.reshaped(shape), constant(referenceChosen, shape: shape))
    let rejectedLogRatio = sub(policyRejected.reshaped(shape), constant(referenceRejected, shape: shape))
    let logits = sub(chosenLogRatio, rejectedLogRatio)

    let losses: Tensor
    switch kind {
    case .sigmoid:
        let agree = scale(logSigmoid(scale(logits, beta)), -(1 - labelSmoothing))
        losses = labelSmoothing == 0 ? agree : sub(agree, scale(logSigmoid(scale(logits, -beta)), labelSmoothing))
    case .ipo:
        precondition(labelSmoothing == 0, "dpoLoss: IPO takes no label smoothing")
        losses = square(addScalar(logits, -Float(1 / (2 * Double(beta)))))
    }
    return (mean(losses), chosenLogRatio.scalars.map { beta * $0 }, rejectedLogRatio.scalars.map { beta * $0 })
}
