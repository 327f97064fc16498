import Foundation
import LoomDistributed

/// The optimizer step of data-parallel training, with or without ZeRO stage 1 (Rajbhandari et
/// al. 2020: the optimizer state partitioned across ranks).
///
/// Without sharding every rank averages the whole gradient (all-reduce), clips it and runs
/// AdamW over every parameter, holding both moments in full. With `zeroStage` 1 the flat
/// parameter buffer is cut into one block per rank (`evenBlocks`): gradients are
/// reduce-scattered (each rank receives the average of its block only), the global norm for
/// clipping is summed from the blocks, each rank runs AdamW on its block with moments for that
/// block alone (2/N of the moments' memory per rank instead of 2 full copies), and the updated
/// blocks are all-gathered into every rank's parameters. The arithmetic per element is the same,
/// so both give the same parameters to float rounding. Checkpoints hold the full state
/// (`gatheredState`), so a run resumes on any number of ranks, sharded or not.
final class DataParallelOptimizer {
    let parallel: DataParallel
    let parameters: ParameterStore
    let zeroStage: Int
    /// Each rank's block of the flat parameter buffer, in rank order.
    let blocks: [Range<Int>]
    /// AdamW over this rank's block (ZeRO-1) or over every parameter.
    let optimizer: AdamW
    /// The all-reduce overlapped with the backward pass (data-parallel without sharding, unless
    /// `LOOM_GRADIENT_BUCKET_MB=0`); nil otherwise.
    let overlap: OverlappedGradientReduction?

    /// Megabytes of gradients per overlapped all-reduce (`LOOM_GRADIENT_BUCKET_MB`, default 4;
    /// 0 reduces after the backward pass instead). Every rank must be started with the same value.
    static func overlapBucketElements(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Int {
        guard let text = environment["LOOM_GRADIENT_BUCKET_MB"] else { return 1 << 20 }
        guard let megabytes = Double(text), megabytes >= 0, megabytes.isFinite else {
            throw TrainingError("LOOM_GRADIENT_BUCKET_MB must be a number of megabytes ≥ 0 (0: no overlap), got \"\(text)\"")
        }
        return Int(megabytes * 1_048_576 / Double(MemoryLayout<Float>.size))
    }

    init(parameters: ParameterStore, hyperparameters: AdamW.Hyperparameters, parallel: DataParallel, zeroStage: Int) throws {
        guard zeroStage == 0 || zeroStage == 1 else {
            throw TrainingError("--zero must be 0 (no sharding) or 1 (optimizer state sharded across ranks), got \(zeroStage)")
        }
        self.parallel = parallel; self.parameters = parameters; self.zeroStage = zeroStage
        blocks = evenBlocks(count: parameters.count, parts: parallel.size)
        let sharded = zeroStage == 1 && parallel.isDistributed
        optimizer = AdamW(parameters: parameters, hyperparameters: hyperparameters, shard: sharded ? blocks[parallel.rank] : nil)
        let bucketElements = try Self.overlapBucketElements()
        overlap = parallel.isDistributed && !sharded && bucketElements > 0
            ? OverlappedGradientReduction(parallel: parallel, parameters: parameters, bucketElements: bucketElements) : nil
    }

    /// An optimizer that neither averages across ranks nor shards: `clipCheckUpdate` is clip,
    /// check, AdamW on this process's gradients. PPO's critic uses it and averages its
    /// gradients itself first (the critic is replicated on every rank).
    convenience init(singleProcess parameters: ParameterStore, hyperparameters: AdamW.Hyperparameters) throws {
        try self.init(parameters: parameters, hyperparameters: hyperparameters, parallel: DataParallel(SingleProcessCommunicator()), zeroStage: 0)
    }

    /// Has `tape`'s backward pass start reducing the gradients as they become final (when the
    /// run overlaps); call it before recording the forward pass of the step's last backward.
    func watchGradients(_ tape: Tape) { overlap?.watch(tape) }

    var isSharded: Bool { optimizer.shard.count != parameters.count }

    /// Averages the ranks' gradients (under ZeRO-1: this rank's block of them) and clips them
    /// to `maxNorm` by their global L2 norm; returns the norm before clipping.
    func reduceAndClip(maxNorm: Float) -> Float {
        guard isSharded else {
            if let overlap, overlap.isArmed { overlap.finish() } else { parallel.averageGradients(parameters) }
            return clipGradientNorm(parameters, maxNorm: maxNorm)
        }
        let g = parameters.gradients.pointer, mine = optimizer.shard
        Profiler.time("reduce-scatter", phase: .optimizer) {
            parallel.communicator.reduceScatter(parameters.gradients.buffer, blocks: blocks, .average)
        }
        var local: Double = 0
        for i in mine { local += Double(g[i]) * Double(g[i]) }
        let norm = Float(parallel.summed([local])[0].squareRoot())
        if maxNorm > 0 && norm > maxNorm {
            let factor = maxNorm / (norm + 1e-6)
            for i in mine { g[i] *= factor }
        }
        return norm
    }

    /// The end of every optimizer step, the same in every stage: average and clip the gradients
    /// (`reduceAndClip`), stop when their norm is not finite — before the parameters are touched,
    /// so the last checkpoint stays valid — with the error `nonFinite(norm)`, else update.
    /// Returns the norm before clipping.
    func clipCheckUpdate(maxNorm: Float, learningRate: Float, nonFinite: (Float) -> Error) throws -> Float {
        let norm = reduceAndClip(maxNorm: maxNorm)
        guard norm.isFinite else { throw nonFinite(norm) }
        update(learningRate: learningRate)
        return norm
    }

    /// AdamW on this rank's parameters, then (ZeRO-1) every rank's updated block to every rank.
    func update(learningRate: Float) {
        optimizer.update(learningRate: learningRate)
        guard isSharded else { return }
        Profiler.time("all-gather", phase: .optimizer) {
            parallel.communicator.allGather(parameters.values.buffer, blocks: blocks)
        }
    }

    /// The whole optimizer state, for rank 0 to write in a checkpoint. Under ZeRO-1 every rank
    /// must call it: the moments' blocks are gathered into a full-size optimizer on rank 0 only,
    /// for the duration of the save (the other ranks never hold more than their block, and get
    /// their own optimizer back, which they do not write).
    func gatheredState() -> AdamW {
        guard isSharded else { return optimizer }
        let full = parallel.isPrimary ? AdamW(parameters: parameters, hyperparameters: optimizer.hyperparameters) : nil
        for (block, whole) in [(optimizer.firstMoment, full?.firstMoment), (optimizer.secondMoment, full?.secondMoment)] {
            parallel.communicator.gather(block.buffer, into: whole?.buffer, blocks: blocks, root: 0)
        }
        full?.restore(step: optimizer.step)
        return full ?? optimizer
    }

    /// A full-size optimizer for `Checkpoint.restore` to fill (the optimizer itself unless
    /// sharded); `adoptRestored` then keeps this rank's block of it.
    func restoreTarget() -> AdamW {
        isSharded ? AdamW(parameters: parameters, hyperparameters: optimizer.hyperparameters) : optimizer
    }

    func adoptRestored(_ full: AdamW) {
        guard full !== optimizer else { return }
        let shard = optimizer.shard
        optimizer.firstMoment.pointer.update(from: full.firstMoment.pointer + shard.lowerBound, count: shard.count)
        optimizer.secondMoment.pointer.update(from: full.secondMoment.pointer + shard.lowerBound, count: shard.count)
        optimizer.restore(step: full.step)
    }
}
