/// The coefficient β of PPO's KL penalty, fixed or adapted toward a target KL
/// (Ziegler et al. 2019, "Fine-Tuning Language Models from Human Preferences", §2.2; TRL's
/// `AdaptiveKLController` / `FixedKLController`).
///
///     var kl = AdaptiveKLController(initial: 0.05, target: 6, horizon: 10_000)
///     kl.update(currentKL: measuredKL, steps: batchSize)   // after every rollout
///     let rewards = klPenaltyRewards(..., klCoefficient: kl.value)
import Foundation

public protocol KLController: Sendable {
    var value: Float { get }
    mutating func update(currentKL: Float, steps: Int)
}

/// β never changes.
public struct FixedKLController: KLController, Codable, Equatable {
    public private(set) var value: Float
    public init(_ value: Float) { self.value = value }
    public mutating func update(currentKL: Float, steps: Int) {}
}

/// β ← β·(1 + e·n/H), with the proportional error e = clip(KL/target − 1, −0.2, 0.2), n the number of
/// samples since the last update and H the horizon: β rises while the policy drifts further than the
/// target from the reference and falls while it stays closer.
public struct AdaptiveKLController: KLController, Codable, Equatable {
    public private(set) var value: Float
    public let target: Float
    public let horizon: Float

    public init(initial: Float, target: Float, horizon: Int) {
        precondition(target > 0 && horizon > 0, "AdaptiveKLController: target \(target) and horizon \(horizon) must be positive")
        self.value = initial
        self.target = target
        self.horizon = Float(horizon)
    }

    public mutating func update(currentKL: Float, steps: Int) {
        let error = Swift.min(Swift.max(currentKL / target - 1, -0.2), 0.2)
        value *= 1 + error * Float(steps) / horizon
    }
}
