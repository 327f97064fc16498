import Foundation
import LoomTensor

/// A launch that cannot train data-parallel (a batch that does not divide by the number of
/// ranks, ranks started with different settings or data).
public struct DistributedError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Data parallelism over a `Communicator`: every rank holds the whole model, trains on its own
/// slice of each global batch, and the ranks' gradients are averaged before every optimizer
/// step, so that N ranks with batch B take the same steps as one process with batch N·B.
///
/// Trainers call it unconditionally: with a `SingleProcessCommunicator` every method is the
/// identity (the slice is the whole batch, the average of one gradient is itself).
public final class DataParallel {
    public let communicator: Communicator
    /// Floats per all-reduce call: the flat gradient buffer is reduced in buckets of this size,
    /// so no temporary copy of the whole buffer is needed and a huge model never exceeds MPI's
    /// 32-bit counts (16 MiB per bucket).
    public var bucketElements = 1 << 22

    public init(_ communicator: Communicator) { self.communicator = communicator }

    public var rank: Int { communicator.rank }
    public var size: Int { communicator.size }
    public var isPrimary: Bool { communicator.rank == 0 }
    public var isDistributed: Bool { communicator.size > 1 }

    /// Rows `rank·B ..< (rank+1)·B` of a global batch of `globalBatch` = B·size rows: the
    /// ranks' slices are disjoint and, in rank order, make the global batch.
    public func localRows(globalBatch: Int) throws -> Range<Int> {
        guard globalBatch % size == 0 else {
            throw DistributedError("a global batch of \(globalBatch) does not divide by \(size) ranks; choose a batch size that does")
        }
        let perRank = globalBatch / size
        return (rank * perRank)..<((rank + 1) * perRank)
    }

    /// This rank's slice of the items of a global batch (see `localRows`).
    public func localSlice<T>(_ globalBatch: [T]) throws -> [T] {
        Array(globalBatch[try localRows(globalBatch: globalBatch.count)])
    }

    /// Copies rank 0's values into every rank's `storage` (initial weights, restored moments),
    /// so that all ranks start from the same state whatever each of them loaded.
    public func broadcastFromPrimary(_ storage: Storage) {
        guard isDistributed else { return }
        for start in stride(from: 0, to: storage.count, by: bucketElements) {
            let n = min(bucketElements, storage.count - start)
            communicator.broadcast(UnsafeMutableBufferPointer(start: storage.pointer + start, count: n), root: 0)
        }
    }

    /// Averages every rank's gradients, in place, bucket by bucket over the flat buffer.
    public func averageGradients(_ parameters: ParameterStore) {
        guard isDistributed else { return }
        let gradients = parameters.gradients
        Profiler.time("allreduce", phase: .optimizer) {
            for start in stride(from: 0, to: gradients.count, by: bucketElements) {
                let n = min(bucketElements, gradients.count - start)
                communicator.allReduce(UnsafeMutableBufferPointer(start: gradients.pointer + start, count: n), .average)
            }
        }
    }

    /// Every rank's `local` values concatenated in rank order, on every rank (the counts may
    /// differ between ranks): how the ranks share what each computed for its slice of a batch
    /// (rollouts), so that what follows is computed on the whole batch, as one process would.
    public func gathered(_ local: [Float]) -> [Float] {
        guard isDistributed else { return local }
        var counts = [Double](repeating: 0, count: size)
        counts[rank] = Double(local.count)
        counts = summed(counts)
        var start = 0
        let blocks = counts.map { count -> Range<Int> in
            defer { start += Int(count) }
            return start..<(start + Int(count))
        }
        var whole = [Float](repeating: 0, count: start)
        whole.replaceSubrange(blocks[rank], with: local)
        whole.withUnsafeMutableBufferPointer { communicator.allGather($0, blocks: blocks) }
        return whole
    }

    /// Rows of varying lengths from every rank, concatenated in rank order (see `gathered`).
    public func gathered(rows local: [[Float]]) -> [[Float]] {
        guard isDistributed else { return local }
        let lengths = gathered(local.map { Float($0.count) }).map { Int($0) }
        let flat = gathered(local.flatMap { $0 })
        var offset = 0
        return lengths.map { length in
            defer { offset += length }
            return Array(flat[offset..<(offset + length)])
        }
    }

    /// Token ids of varying lengths from every rank, in rank order (ids below 2^24 travel as
    /// floats exactly).
    public func gathered(tokens local: [[Int32]]) -> [[Int32]] {
        guard isDistributed else { return local }
        precondition(local.allSatisfy { $0.allSatisfy { $0 >= 0 && $0 < 1 << 24 } }, "gathered(tokens:): ids outside 0..<2^24")
        return gathered(rows: local.map { $0.map(Float.init) }).map { $0.map { Int32($0) } }
    }

    /// Means of per-rank statistics whose ranks weigh the same (equal slices of a batch).
    public func averaged(_ values: [Double]) -> [Double] {
        isDistributed ? communicator.allReduced(values, .average) : values
    }

    /// Sums of per-rank counts and totals.
    public func summed(_ values: [Double]) -> [Double] {
        isDistributed ? communicator.allReduced(values, .sum) : values
    }

    /// The backward seed for a loss that is a mean over `localCount` units (tokens) of this
    /// rank's slice, so that after `averageGradients` the gradient is that of the mean over
    /// every rank's units together: size · local / global. With slices of unequal token counts
    /// (padding, masks) a plain average of per-rank means would weigh tokens unequally.
    /// Returns the weight and the global count.
    public func meanWeight(localCount: Int) -> (weight: Float, globalCount: Int) {
        guard isDistributed else { return (1, localCount) }
        let global = Int(summed([Double(localCount)])[0])
        guard global > 0 else { return (0, 0) }
        return (Float(Double(size) * Double(localCount) / Double(global)), global)
    }
}
