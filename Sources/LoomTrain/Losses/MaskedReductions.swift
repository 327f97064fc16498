/// Masked reductions shared by the alignment losses.
///
/// Every loss here takes per-token quantities of padded sequences: a `Tensor` of shape
/// `[sequences, tokens]` (or flat `[rows]`) and a mask of the same element count, 1 on tokens that
/// count and 0 on padding (fractional weights are allowed where noted). Masked positions may hold
/// any finite or non-finite value: they are replaced by 0 before they are weighted, so padding
/// never turns a loss into NaN and receives exactly zero gradient.
///
///     let x = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6], requiresGrad: true)
///     let m = maskedMean(x, mask: [1, 1, 0, 1, 0, 0])   // (1 + 2 + 4) / 3
import Foundation

/// A tensor that takes no gradient (targets, old log-probs, advantages, masks as weights).
@inline(__always)
func constant(_ values: [Float], shape: [Int]) -> Tensor {
    Tensor(shape: shape, values: values, requiresGrad: false)
}

/// The mask as booleans: an element counts when its weight is non-zero.
@inline(__always)
func isCounted(_ mask: [Float]) -> [Bool] { mask.map { $0 != 0 } }

/// `x` with every masked position replaced by 0 (its gradient there is 0).
func zeroingMasked(_ x: Tensor, mask: [Float]) -> Tensor {
    precondition(mask.count == x.count, "mask of \(mask.count) elements for a tensor of shape \(x.shape)")
    return where_(isCounted(mask), x, Tensor(zeros: x.shape))
}

/// The values with every masked position set to 0, so that nothing a padded position holds (even
/// inf or NaN) reaches a loss or its gradient.
func countedOnly(_ values: [Float], mask: [Float]) -> [Float] {
    var result = values
    for i in result.indices where mask[i] == 0 { result[i] = 0 }
    return result
}

/// Σ_i weights_i · x_i, as a `[1]` tensor; positions whose weight is 0 are skipped entirely.
public func weightedSum(_ x: Tensor, weights: [Float]) -> Tensor {
    sum(mul(zeroingMasked(x, mask: weights), constant(weights, shape: x.shape)))
}

/// The number of counted elements (the sum of the mask weights).
public func maskedCount(_ mask: [Float]) -> Float {
    var total: Double = 0
    for m in mask { total += Double(m) }
    return Float(total)
}

/// Σ mask·x over every element, as a `[1]` tensor.
public func maskedSum(_ x: Tensor, mask: [Float]) -> Tensor { weightedSum(x, weights: mask) }

/// Σ mask·x / Σ mask over every element (TRL's `masked_mean` with `axis=None`), as a `[1]` tensor.
/// A fully masked input gives 0 (TRL divides by zero there), so an empty micro-batch passes through
/// gradient accumulation harmlessly.
public func maskedMean(_ x: Tensor, mask: [Float]) -> Tensor {
    let count = maskedCount(mask)
    return count > 0 ? scale(maskedSum(x, mask: mask), 1 / count) : scale(maskedSum(x, mask: mask), 0)
}

/// Σ mask·x / Σ mask of plain values (for metrics; no gradient). 0 when nothing is counted.
public func maskedMean(_ values: [Float], mask: [Float]) -> Float {
    precondition(values.count == mask.count, "maskedMean: \(values.count) values, \(mask.count) mask entries")
    var total: Double = 0, count: Double = 0
    for i in values.indices where mask[i] != 0 {
        total += Double(values[i]) * Double(mask[i])
        count += Double(mask[i])
    }
    return count > 0 ? Float(total / count) : 0
}

/// A `[sequences × width]` 0/1 mask whose row s has `lengths[s]` leading ones (right padding).
public func prefixMask(lengths: [Int], width: Int) -> [Float] {
    var mask = [Float](repeating: 0, count: lengths.count * width)
    for (s, length) in lengths.enumerated() {
        precondition(length >= 0 && length <= width, "prefixMask: length \(length) outside 0...\(width)")
        for t in 0..<length { mask[s * width + t] = 1 }
    }
    return mask
}

/// Per-sequence log-probability of a completion from its per-token log-probs `[sequences, tokens]`:
/// the masked sum, or with `average` the masked mean (sum / counted tokens; 0 for an empty row).
/// Returns `[sequences]`, differentiable. This is TRL `DPOTrainer.concatenated_forward`'s reduction:
/// sums for `loss_type="sigmoid"`, averages for `"ipo"`.
///
///     let tokenLogProbs = logSoftmaxGather(logits: logits, targets: targets).reshaped([batch, tokens])
///     let sequenceLogProbs = sequenceLogProbs(tokenLogProbs, mask: completionMask)
public func sequenceLogProbs(_ tokenLogProbs: Tensor, mask: [Float], average: Bool = false) -> Tensor {
    precondition(tokenLogProbs.rank == 2, "sequenceLogProbs: expected [sequences, tokens], got \(tokenLogProbs.shape)")
    let sequences = tokenLogProbs.shape[0], tokens = tokenLogProbs.shape[1]
    let summed = sumLastAxis(mul(zeroingMasked(tokenLogProbs, mask: mask), constant(mask, shape: tokenLogProbs.shape)))
    guard average else { return summed }
    var counts = [Float](repeating: 1, count: sequences)
    for s in 0..<sequences {
        let count = maskedCount(Array(mask[(s * tokens)..<((s + 1) * tokens)]))
        if count > 0 { counts[s] = count }
    }
    return div(summed, constant(counts, shape: [sequences]))
}
