import CMPI
import Foundation

/// `Communicator` over Open MPI's `MPI_COMM_WORLD`. Created once per process by
/// `World` (after `MPI_Init_thread`); collectives are called from one thread only
/// (`MPI_THREAD_FUNNELED`). MPI's default error handler stays in place: a failed collective
/// (a peer that died, a broken link) ends the whole job with Open MPI's message instead of
/// leaving the other ranks waiting.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    private let communicator = loom_mpi_comm_world()

    init() {
        var rank: Int32 = 0, size: Int32 = 0
        MPI_Comm_rank(communicator, &rank)
        MPI_Comm_size(communicator, &size)
        self.rank = Int(rank); self.size = Int(size)
    }

    private static func mpiOperation(_ operation: ReduceOperation) -> MPI_Op {
        switch operation {
        case .sum, .average: return loom_mpi_sum()
        case .max: return loom_mpi_max()
        case .min: return loom_mpi_min()
        }
    }

    /// MPI counts are 32-bit: long buffers go in chunks.
    private static let chunk = Int(Int32.max / 2)

    public func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>, _ operation: ReduceOperation) {
        allReduceInPlace(buffer, datatype: loom_mpi_float(), operation)
        if operation == .average, let base = buffer.baseAddress {
            let scale = 1 / Float(size)
            for i in 0..<buffer.count { base[i] *= scale }
        }
    }

    public func allReduce(_ buffer: UnsafeMutableBufferPointer<Double>, _ operation: ReduceOperation) {
        allReduceInPlace(buffer, datatype: loom_mpi_double(), operation)
        if operation == .average, let base = buffer.baseAddress {
            for i in 0..<buffer.count { base[i] /= Double(size) }
        }
    }

    /// `MPI_Allreduce` in place over `buffer`, chunk by chunk (an average is summed here; the
    /// callers divide, each in its own precision).
    private func allReduceInPlace<Element>(_ buffer: UnsafeMutableBufferPointer<Element>, datatype: MPI_Datatype,
                                           _ operation: ReduceOperation) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        for start in stride(from: 0, to: buffer.count, by: Self.chunk) {
            let n = min(Self.chunk, buffer.count - start)
            MPI_Allreduce(loom_mpi_in_place(), base + start, Int32(n), datatype, Self.mpiOperation(operation), communicator)
        }
    }

    /// Each block is reduced onto its rank (`MPI_Reduce`, in place there) in chunks of at most
    /// `reduceChunk` elements, rather than by one `MPI_Reduce_scatter`: that needs a receive
    /// buffer of the block's size and, inside Open MPI, temporaries as large as the whole
    /// buffer — the very memory ZeRO-1 sets out to save. The chunks bound both.
    public func reduceScatter(_ buffer: UnsafeMutableBufferPointer<Float>, blocks: [Range<Int>], _ operation: ReduceOperation) {
        precondition(blocks.count == size && blocks.first?.lowerBound == 0 && blocks.last?.upperBound == buffer.count,
                     "reduceScatter: \(blocks.count) blocks for \(size) ranks over \(buffer.count) elements")
        guard let base = buffer.baseAddress else { return }
        for (owner, block) in blocks.enumerated() {
            for start in stride(from: block.lowerBound, to: block.upperBound, by: Self.reduceChunk) {
                let n = min(Self.reduceChunk, block.upperBound - start)
                if owner == rank {
                    MPI_Reduce(loom_mpi_in_place(), base + start, Int32(n), loom_mpi_float(), Self.mpiOperation(operation), Int32(owner), communicator)
                } else {
                    MPI_Reduce(base + start, nil, Int32(n), loom_mpi_float(), Self.mpiOperation(operation), Int32(owner), communicator)
                }
            }
        }
        if operation == .average {
            let scale = 1 / Float(size)
            for i in blocks[rank] { base[i] *= scale }
        }
    }

    /// Elements per `MPI_Reduce` of `reduceScatter` (16 MiB of floats).
    static let reduceChunk = 1 << 22

    public func allGather(_ buffer: UnsafeMutableBufferPointer<Float>, blocks: [Range<Int>]) {
        precondition(blocks.count == size, "allGather: \(blocks.count) blocks for \(size) ranks")
        precondition(buffer.count <= Int(Int32.max), "allGather: buffers over 2^31 elements are not supported")
        guard let base = buffer.baseAddress else { return }
        let counts = blocks.map { Int32($0.count) }, displacements = blocks.map { Int32($0.lowerBound) }
        MPI_Allgatherv(loom_mpi_in_place(), 0, loom_mpi_float(), base, counts, displacements, loom_mpi_float(), communicator)
    }

    public func gather(_ block: UnsafeMutableBufferPointer<Float>, into whole: UnsafeMutableBufferPointer<Float>?, blocks: [Range<Int>], root: Int) {
        precondition(blocks.count == size && block.count == blocks[rank].count, "gather: block of \(block.count) for blocks \(blocks)")
        precondition((blocks.last?.upperBound ?? 0) <= Int(Int32.max), "gather: buffers over 2^31 elements are not supported")
        let counts = blocks.map { Int32($0.count) }, displacements = blocks.map { Int32($0.lowerBound) }
        if rank == root {
            precondition(whole != nil, "gather: the root needs a buffer for the whole")
            MPI_Gatherv(block.baseAddress, Int32(block.count), loom_mpi_float(), whole!.baseAddress, counts, displacements,
                        loom_mpi_float(), Int32(root), communicator)
        } else {
            MPI_Gatherv(block.baseAddress, Int32(block.count), loom_mpi_float(), nil, nil, nil, loom_mpi_float(), Int32(root), communicator)
        }
    }

    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        for start in stride(from: 0, to: buffer.count, by: Self.chunk) {
            let n = min(Self.chunk, buffer.count - start)
            MPI_Bcast(base + start, Int32(n), loom_mpi_byte(), Int32(root), communicator)
        }
    }

    public func barrier() { MPI_Barrier(communicator) }

    public func startAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) -> PendingReduction {
        precondition(buffer.count <= Int(Int32.max), "startAllReduceSum: buffers over 2^31 elements are not supported")
        let pending = MPIPendingReduction()
        guard let base = buffer.baseAddress, buffer.count > 0 else { return pending }
        loom_mpi_iallreduce_sum_in_place(base, Int32(buffer.count), communicator, &pending.request)
        return pending
    }

    /// Ends every rank of the job (`MPI_Abort`): what a rank that hits an error calls, so the
    /// others stop at once instead of waiting in their next collective.
    public func abort(exitCode: Int32) -> Never {
        MPI_Abort(communicator, exitCode)
        exit(exitCode)
    }
}

/// An `MPI_Iallreduce` in flight.
final class MPIPendingReduction: PendingReduction {
    var request: MPI_Request? = loom_mpi_request_null()
    private var done = false

    func test() -> Bool {
        if !done { done = loom_mpi_test(&request) != 0 }
        return done
    }

    func wait() {
        guard !done else { return }
        loom_mpi_wait(&request)
        done = true
    }
}
