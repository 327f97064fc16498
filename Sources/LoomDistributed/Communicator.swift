import Foundation

/// How `allReduce` and `reduceScatter` combine the ranks' values.
public enum ReduceOperation: Sendable {
    case sum
    /// The sum divided by the number of ranks.
    case average
    case max
    case min
}

/// A group of processes that train together (data parallelism): every collective is called
/// by every rank in the same order with buffers of the same size, and returns when this rank's
/// part is done. `MPICommunicator` runs over Open MPI; `SingleProcessCommunicator` is the group
/// of one, where every collective leaves its buffer as it is.
///
///     let world = World.communicator
///     gradients.withUnsafeMutableBufferPointer { world.allReduce($0, .average) }
public protocol Communicator: AnyObject {
    /// This process's index in the group, 0..<size.
    var rank: Int { get }
    /// Number of processes in the group.
    var size: Int { get }
    /// Combines `buffer` element-wise over the ranks, in place: every rank ends with the result.
    func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>, _ operation: ReduceOperation)
    func allReduce(_ buffer: UnsafeMutableBufferPointer<Double>, _ operation: ReduceOperation)
    /// Combines `buffer` element-wise over the ranks, but each rank receives only its own block:
    /// `blocks[rank]` of `buffer` holds the result there (other blocks are left unspecified).
    /// `blocks` cut `buffer` into `size` consecutive ranges, in rank order.
    func reduceScatter(_ buffer: UnsafeMutableBufferPointer<Float>, blocks: [Range<Int>], _ operation: ReduceOperation)
    /// Each rank contributes `blocks[rank]` of `buffer`; every rank ends with every block.
    func allGather(_ buffer: UnsafeMutableBufferPointer<Float>, blocks: [Range<Int>])
    /// Each rank sends `block` (`blocks[rank].count` elements); `root` receives every rank's
    /// block at its place in `whole` (nil on the other ranks, which need no room for the whole).
    func gather(_ block: UnsafeMutableBufferPointer<Float>, into whole: UnsafeMutableBufferPointer<Float>?, blocks: [Range<Int>], root: Int)
    /// Copies `root`'s bytes to every rank.
    func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int)
    /// Returns when every rank has called it.
    func barrier()
    /// Starts an in-place sum of `buffer` over the ranks and returns at once; the result is
    /// there after the returned reduction's `wait()`. Every rank starts the same reductions in
    /// the same order; `buffer` must stay untouched until then.
    func startAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) -> PendingReduction
}

/// A collective in flight (`Communicator.startAllReduceSum`).
public protocol PendingReduction: AnyObject {
    /// Lets the transport progress; true once the reduction is complete.
    func test() -> Bool
    /// Returns when the reduction is complete.
    func wait()
}

/// A reduction that was complete when it started (a group of one).
final class CompletedReduction: PendingReduction {
    func test() -> Bool { true }
    func wait() {}
}

extension Communicator {
    public var isPrimary: Bool { rank == 0 }

    /// Copies `root`'s floats to every rank.
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) {
        broadcast(UnsafeMutableRawBufferPointer(buffer), root: root)
    }

    /// The element-wise reduction of small arrays of statistics (losses, counts, accuracies).
    public func allReduced(_ values: [Double], _ operation: ReduceOperation) -> [Double] {
        var copy = values
        copy.withUnsafeMutableBufferPointer { allReduce($0, operation) }
        return copy
    }
}

/// `count` elements cut into `parts` consecutive ranges whose sizes differ by at most one
/// (the first `count % parts` ranges hold one more): the shards of ZeRO-1 and of a
/// reduce-scatter.
public func evenBlocks(count: Int, parts: Int) -> [Range<Int>] {
    precondition(parts >= 1, "evenBlocks: at least one part")
    let base = count / parts, extra = count % parts
    var start = 0
    return (0..<parts).map { part in
        let length = base + (part < extra ? 1 : 0)
        defer { start += length }
        return start..<(start + length)
    }
}

/// The group of one process: a plain `loom pretrain` (no `mpirun`). Every collective is the
/// identity, so the trainers call them unconditionally.
public final class SingleProcessCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>, _ operation: ReduceOperation) {}
    public func allReduce(_ buffer: UnsafeMutableBufferPointer<Double>, _ operation: ReduceOperation) {}
    public func reduceScatter(_ buffer: UnsafeMutableBufferPointer<Float>, blocks: [Range<Int>], _ operation: ReduceOperation) {}
    public func allGather(_ buffer: UnsafeMutableBufferPointer<Float>, blocks: [Range<Int>]) {}
    public func gather(_ block: UnsafeMutableBufferPointer<Float>, into whole: UnsafeMutableBufferPointer<Float>?, blocks: [Range<Int>], root: Int) {
        guard let whole, let source = block.baseAddress, let target = whole.baseAddress?.advanced(by: blocks[0].lowerBound), source != target else { return }
        target.update(from: source, count: block.count)
    }
    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) {}
    public func barrier() {}
    public func startAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) -> PendingReduction { CompletedReduction() }
}
