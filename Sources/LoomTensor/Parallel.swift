import CLoomCPU
import Dispatch
import Foundation
import COpenBLAS

/// How many threads Loom's kernels use. OpenBLAS itself is kept single-threaded: Loom
/// splits every product and every kernel across its own threads, so that the two never
/// compete for the same cores and small products do not pay OpenBLAS's thread wake-up.
public enum Threading {
    nonisolated(unsafe) public private(set) static var threadCount = 1

    /// Sets Loom's thread count (1 per MPI rank is typical) and pins OpenBLAS to one thread.
    public static func configure(threads: Int) {
        threadCount = Swift.max(1, threads)
        // LOOM_THREAD_POOL=0 leaves the pool without workers: libdispatch runs everything.
        let poolDisabled = ProcessInfo.processInfo.environment["LOOM_THREAD_POOL"] == "0"
        loom_pool_configure(poolDisabled ? 1 : Int32(Swift.min(threadCount, 256)))
        _ = BLASLibrary.shared
        loom_openblas_set_num_threads(1)
        keepFreedMemory()
    }

    /// A training step allocates and frees the same large activation buffers every time.
    /// By default glibc serves blocks above 32 MB (the logits of a batch, for one) with
    /// mmap and returns them to the kernel on free, so every step pays page faults and
    /// kernel zeroing for them again. Raising the mmap and trim thresholds keeps freed
    /// blocks in the heap for the next step.
    static func keepFreedMemory() {
        #if os(Linux)
        _ = glibcMallopt(-3 /* M_MMAP_THRESHOLD */, 1 << 30)
        _ = glibcMallopt(-1 /* M_TRIM_THRESHOLD */, Int32.max)
        #endif
    }
}

/// Runs `body(i)` for `i` in `0..<count` on Loom's worker threads (LoomThreadPool.h: persistent
/// threads that stay awake between the short calls of a decoding step), or with libdispatch
/// when the pool is taken (another thread's job, or a call nested inside a job).
@inline(__always)
func runConcurrently(_ count: Int, _ body: (Int) -> Void) {
    let ran = withoutActuallyEscaping(body) { escapable -> Int32 in
        var closure = escapable
        return withUnsafeMutablePointer(to: &closure) { pointer in
            loom_pool_run(count, { context, index in
                context!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(index)
            }, pointer)
        }
    }
    if ran == 0 { DispatchQueue.concurrentPerform(iterations: count) { body($0) } }
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
    runConcurrently(count, body)
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
    runConcurrently(chunks) { c in
        let start = count * c / chunks
        let end = count * (c + 1) / chunks
        if start < end { body(start..<end) }
    }
}

#if os(Linux)
/// glibc's `mallopt` (declared in <malloc.h>, which the Glibc module does not export).
@_silgen_name("mallopt")
private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif
