import Foundation
import LoomTensor

/// The ranks' gradients averaged while the backward pass still runs (as PyTorch's DDP does):
/// the parameters are cut into buckets in reverse order (the order in which the backward pass
/// finishes their gradients), and a bucket's all-reduce starts (`MPI_Iallreduce`) as soon as the
/// tape reports every gradient in it final (`Tape.watchGradients`). `finish` waits for all of
/// them and divides by the number of ranks, before clipping and the optimizer step.
///
/// The sums are the same element-wise sums as `DataParallel.averageGradients` makes, only in
/// other pieces, so both give the same gradients (bit for bit with 2 ranks, where a sum has one
/// order).
public final class OverlappedGradientReduction {
    public let parallel: DataParallel
    public let parameters: ParameterStore
    /// Each bucket's range of the flat gradient buffer: whole parameters, contiguous, the last
    /// parameters first.
    public let buckets: [Range<Int>]
    private let bucketOfParameter: [Int]
    private var waitingIn: [Int] = []
    private var inFlight: [PendingReduction] = []
    private var armed = false

    /// `bucketElements`: the floats a bucket holds at least (all that is left for the last one),
    /// unless one parameter alone is larger.
    public init(parallel: DataParallel, parameters: ParameterStore, bucketElements: Int) {
        precondition(bucketElements > 0, "OverlappedGradientReduction: bucket size must be positive")
        self.parallel = parallel; self.parameters = parameters
        var buckets: [Range<Int>] = [], bucketOf = [Int](repeating: 0, count: parameters.entries.count)
        var upper: Int? = nil, lower = 0
        for (i, entry) in parameters.entries.enumerated().reversed() {
            if upper == nil { upper = entry.offset + entry.tensor.count }
            lower = entry.offset
            bucketOf[i] = buckets.count
            if upper! - lower >= bucketElements {
                buckets.append(lower..<upper!)
                upper = nil
            }
        }
        if let upper { buckets.append(lower..<upper) }
        self.buckets = buckets
        bucketOfParameter = bucketOf
    }

    /// Whether a backward pass was watched and its reductions await `finish`.
    public var isArmed: Bool { armed }

    /// Has `tape`'s next backward pass start each bucket's reduction once its gradients are
    /// final. Call it before recording the forward pass whose backward completes the step's
    /// gradients (the last micro-batch under gradient accumulation).
    public func watch(_ tape: Tape) {
        precondition(!armed, "OverlappedGradientReduction: the previous step's reductions were not finished")
        armed = true
        waitingIn = buckets.map { _ in 0 }
        for b in bucketOfParameter { waitingIn[b] += 1 }
        inFlight = []
        tape.watchGradients(of: parameters.entries.map(\.tensor)) { [unowned self] parameter in
            let bucket = bucketOfParameter[parameter]
            waitingIn[bucket] -= 1
            // Every rank starts the buckets in the same order (the same ops in the same order).
            if waitingIn[bucket] == 0 { start(bucket) }
        }
    }

    private func start(_ bucket: Int) {
        let range = buckets[bucket]
        inFlight.append(parallel.communicator.startAllReduceSum(
            UnsafeMutableBufferPointer(start: parameters.gradients.pointer + range.lowerBound, count: range.count)))
        // Open MPI moves a non-blocking collective on only inside MPI calls: testing the
        // reductions in flight lets the earlier ones progress while the backward pass goes on.
        for pending in inFlight { _ = pending.test() }
    }

    /// Waits for every bucket's reduction (starting any the backward pass did not complete, which
    /// happens only when it did not run), then divides by the number of ranks.
    public func finish() {
        precondition(armed, "OverlappedGradientReduction.finish without a watched backward pass")
        armed = false
        for bucket in buckets.indices where waitingIn[bucket] > 0 {
            waitingIn[bucket] = 0
            start(bucket)
        }
        Profiler.time("allreduce wait", phase: .optimizer) {
            for pending in inFlight { pending.wait() }
        }
        inFlight = []
        let scale = 1 / Float(parallel.size), g = parameters.gradients.pointer
        for i in 0..<parameters.count { g[i] *= scale }
    }
}
