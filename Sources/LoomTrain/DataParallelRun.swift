import Foundation
import LoomDistributed

/// What the trainers share to run data-parallel (see `DataParallel`): a run's start (the same
/// launch on every rank, rank 0's weights and moments everywhere) and the batch sizes of a
/// signature, which name the global batch so that a run resumes on another number of ranks.
extension DataParallel {
    /// Refuses a launch whose ranks differ (settings, data, checkpoint step, model size), then
    /// copies rank 0's parameters and AdamW moments to every rank (sharded moments stay: each
    /// rank restored its own block from the same checkpoint).
    func startTogether(model: LlamaModel, optimizer: AdamW, shardedMoments: Bool, step: Int, launch: [String: String]) throws {
        guard isDistributed else { return }
        var description = launch
        description["launch.step"] = String(step)
        description["launch.adamStep"] = String(optimizer.step)
        description["launch.parameters"] = String(model.parameters.count)
        try checkSameLaunch(description)
        broadcastFromPrimary(model.parameters.values)
        guard !shardedMoments else { return }
        broadcastFromPrimary(optimizer.firstMoment)
        broadcastFromPrimary(optimizer.secondMoment)
    }

    /// `signature` with the batch size under the first of `keys` it holds replaced by the global
    /// batch (per-rank batch × ranks): what shapes the run is the global batch, so one process
    /// with batch 2B and two ranks with batch B write and resume the same run.
    func withGlobalBatch(_ signature: [String: String], keys: [String], perRank: Int) -> [String: String] {
        guard isDistributed, let key = keys.first(where: { signature[$0] != nil }) else { return signature }
        var result = signature
        result[key] = String(perRank * size)
        return result
    }
}

extension StageRun {
    /// The examples per optimizer step over all ranks (`settings.batchSize` per rank).
    public var globalBatchSize: Int { settings.batchSize * parallel.size }

    /// This rank's share of a global batch (all of it in a single process).
    public func localBatch<T>(_ globalBatch: [T]) throws -> [T] {
        do { return try parallel.localSlice(globalBatch) }
        catch {
            let cut = globalBatch.count < globalBatchSize ? ", cut to the \(globalBatch.count) examples the data holds" : ""
            throw TrainingError("\(stage): \(error) (--batch-size is per rank: \(settings.batchSize) × \(parallel.size) ranks = \(globalBatchSize)\(cut))")
        }
    }
}
