import Dispatch
import COpenBLAS

/// How many threads Loom's kernels use. OpenBLAS itself is kept single-threaded: Loom
/// splits every product and every kernel across its own threads, so that the two never
/// compete for the same cores and small products do not pay OpenBLAS's thread wake-up.
public enum Threading {
    nonisolated(unsafe) public private(set) static var threadCount = 1

    /// Sets Loom's thread count (1 per MPI rank is typical) and pins OpenBLAS to one thread.
    public static func configure(threads: Int) {
        threadCount = Swift.max(1, threads)
        openblas_set_num_threads(1)
    }
}

/// Runs `body(i)` for `i` in `0..<count`, spread over `Threading.threadCount` threads.
/// Use for coarse tasks (each at least tens of microseconds).
@inline(__always)
public func parallelFor(_ count: Int, _ body: (Int) -> Void) {
    if count <= 0 { return }
    if Threading.threadCount == 1 || count == 1 {
        for i in 0..<count { body(i) }
        return
    }
    DispatchQueue.concurrentPerform(iterations: count) { body($0) }
}

/// Splits `0..<count` into one contiguous range per thread (each at least `minimumChunk`
/// long) and runs `body` on each range concurrently.
@inline(__always)
public func parallelRanges(_ count: Int, minimumChunk: Int = 1, _ body: (Range<Int>) -> Void) {
    if count <= 0 { return }
    let threads = Threading.threadCount
    let chunks = Swift.min(threads, Swift.max(1, count / Swift.max(minimumChunk, 1)))
    if chunks <= 1 {
        body(0..<count)
        return
    }
    DispatchQueue.concurrentPerform(iterations: chunks) { c in
        let start = count * c / chunks
        let end = count * (c + 1) / chunks
        if start < end { body(start..<end) }
    }
}
