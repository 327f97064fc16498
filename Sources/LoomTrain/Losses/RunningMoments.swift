/// Running mean and standard deviation of a stream of batches, for normalising PPO scores
/// (TRL's `RunningMoments`, after stable-baselines3's `RunningMeanStd`).
///
/// Each batch's mean and (population) variance are merged into the totals with Chan et al.'s
/// parallel update, so the result equals the statistics of all values seen, whatever the batch
/// sizes. State is kept in `Double`. The prior is TRL's: mean 0, variance 1, with a weight of
/// 1e-24 values, which makes the first batch's statistics the running ones.
///
///     var moments = RunningMoments()
///     moments.update(scores)
///     let normalised = moments.normalize(scores)
import Foundation

public struct RunningMoments: Codable, Equatable, Sendable {
    public private(set) var mean: Double = 0
    /// The population variance of everything seen.
    public private(set) var variance: Double = 1
    /// The sample (Bessel-corrected) standard deviation of everything seen.
    public private(set) var std: Double = 1
    public private(set) var count: Double = 1e-24

    public init() {}

    /// Merges a batch; returns the batch's own mean and sample standard deviation (as TRL).
    @discardableResult
    public mutating func update(_ batch: [Float]) -> (mean: Float, std: Float) {
        guard !batch.isEmpty else { return (0, 0) }
        let n = Double(batch.count)
        var total: Double = 0
        for x in batch { total += Double(x) }
        let batchMean = total / n
        var squares: Double = 0
        for x in batch { squares += (Double(x) - batchMean) * (Double(x) - batchMean) }
        let batchVariance = squares / n

        let delta = batchMean - mean
        let newCount = count + n
        let merged = variance * count + delta * delta * count * n / newCount + batchVariance * n
        mean += delta * n / newCount
        variance = merged / newCount
        std = (variance * newCount / (newCount - 1)).squareRoot()
        count = newCount
        let batchStd = batch.count > 1 ? (batchVariance * n / (n - 1)).squareRoot() : 0
        return (Float(batchMean), Float(batchStd))
    }

    /// (x − mean)/(std + ε), or x/(std + ε) without `shiftMean` (TRL's score scaling, ε = Float.ulpOfOne).
    public func normalize(_ values: [Float], shiftMean: Bool = true) -> [Float] {
        let scale = 1 / (std + Double(Float.ulpOfOne))
        return values.map { Float(((shiftMean ? Double($0) - mean : Double($0))) * scale) }
    }
}
