import Foundation

/// AdamW with PyTorch's semantics (`torch.optim.AdamW`): decoupled weight decay applied as
/// p ← p·(1 − lr·λ) before the Adam step, bias-corrected moments, and the same order of
/// floating-point operations as PyTorch's single-tensor path, so that both produce the same
/// parameters to float rounding. Weight decay applies to matrices only (rank ≥ 2), not to
/// norm weights. Moments live in two flat buffers laid out like the parameters — or, sharded
/// (ZeRO-1, `ZeroOptimizer`), like the slice `shard` of them: the optimizer then updates that
/// slice of the parameters only.
public final class AdamW {
    public struct Hyperparameters: Codable, Equatable, Sendable {
        public var beta1: Float = 0.9
        public var beta2: Float = 0.95
        public var eps: Float = 1e-8
        public var weightDecay: Float = 0.1
        public init(beta1: Float = 0.9, beta2: Float = 0.95, eps: Float = 1e-8, weightDecay: Float = 0.1) {
            self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
        }
    }

    public let parameters: ParameterStore
    public var hyperparameters: Hyperparameters
    /// The elements of the flat parameter buffer this optimizer updates and holds moments for
    /// (all of them unless sharded).
    public let shard: Range<Int>
    /// Moments of `shard`: element `i` of the moments belongs to parameter element `shard.lowerBound + i`.
    public let firstMoment: Storage
    public let secondMoment: Storage
    /// Optimizer steps taken (PyTorch's `step` state).
    public private(set) var step: Int = 0
    /// (offset, count, decayed) for each parameter, in storage order.
    let ranges: [(offset: Int, count: Int, decayed: Bool)]

    public init(parameters: ParameterStore, hyperparameters: Hyperparameters = Hyperparameters(), shard: Range<Int>? = nil) {
        self.parameters = parameters
        self.hyperparameters = hyperparameters
        self.shard = shard ?? 0..<parameters.count
        precondition(self.shard.lowerBound >= 0 && self.shard.upperBound <= parameters.count, "AdamW: shard \(self.shard) outside \(parameters.count) parameters")
        firstMoment = Storage(count: self.shard.count, longLived: true)
        secondMoment = Storage(count: self.shard.count, longLived: true)
        ranges = parameters.entries.map { ($0.offset, $0.tensor.count, $0.shape.count >= 2) }
    }

    /// One update with learning rate `lr` from the gradients in `parameters.gradients`.
    public func update(learningRate lr: Float) {
        step += 1
        let h = hyperparameters
        let biasCorrection1 = 1 - Foundation.pow(h.beta1, Float(step))
        let biasCorrection2Sqrt = (1 - Foundation.pow(h.beta2, Float(step))).squareRoot()
        let stepSize = lr / biasCorrection1
        let p = parameters.values.pointer, g = parameters.gradients.pointer
        // Moments indexed like the parameters (shifted back by the shard's start).
        let m = firstMoment.pointer - shard.lowerBound, v = secondMoment.pointer - shard.lowerBound
        Profiler.time("adamw", phase: .optimizer) {
            for range in ranges {
                let start = max(range.offset, shard.lowerBound), end = min(range.offset + range.count, shard.upperBound)
                guard start < end else { continue }
                let decay: Float = range.decayed ? 1 - lr * h.weightDecay : 1
                parallelRanges(end - start, minimumChunk: 1 << 14) { chunk in
                    for j in chunk {
                        let i = start + j
                        let grad = g[i]
                        p[i] *= decay
                        m[i] += (grad - m[i]) * (1 - h.beta1)              // lerp, as PyTorch
                        v[i] = v[i] * h.beta2 + (1 - h.beta2) * grad * grad
                        let denominator = (v[i].squareRoot() / biasCorrection2Sqrt) + h.eps
                        p[i] += -stepSize * (m[i] / denominator)
                    }
                }
            }
        }
    }

    /// Restores the step count (moments are restored by writing into the moment buffers).
    public func restore(step: Int) { self.step = step }
}

/// Scales all gradients so that their global L2 norm is at most `maxNorm` (as
/// `torch.nn.utils.clip_grad_norm_`). Returns the norm before clipping.
@discardableResult
public func clipGradientNorm(_ parameters: ParameterStore, maxNorm: Float) -> Float {
    // A frozen store has no gradients: `gradients.count` is 0 then.
    let g = parameters.gradients.pointer, n = parameters.gradients.count
    var total: Double = 0
    for i in 0..<n { total += Double(g[i]) * Double(g[i]) }
    let norm = Float(total.squareRoot())
    if maxNorm > 0 && norm > maxNorm {
        let factor = maxNorm / (norm + 1e-6)
        for i in 0..<n { g[i] *= factor }
    }
    return norm
}

/// Linear warmup from 0 to `peak` over `warmupSteps`, then cosine decay to `minimum` at
/// `totalSteps`. `step` counts from 0.
public struct LearningRateSchedule: Codable, Equatable, Sendable {
    public var peak: Float
    public var minimum: Float
    public var warmupSteps: Int
    public var totalSteps: Int

    public init(peak: Float, minimum: Float, warmupSteps: Int, totalSteps: Int) {
        self.peak = peak; self.minimum = minimum; self.warmupSteps = warmupSteps; self.totalSteps = totalSteps
    }

    public func learningRate(at step: Int) -> Float {
        if step < warmupSteps { return peak * Float(step + 1) / Float(warmupSteps) }
        if step >= totalSteps { return minimum }
        let progress = Float(step - warmupSteps) / Float(Swift.max(1, totalSteps - warmupSteps))
        return minimum + 0.5 * (peak - minimum) * (1 + Foundation.cos(Float.pi * progress))
    }
}
