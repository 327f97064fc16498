import Foundation

/// A contiguous block of `Float`s. A storage either owns its memory or is a view into
/// another storage (it then keeps the parent alive). Parameters, gradients and optimizer
/// moments are views into one flat storage each, so the optimizer and a checkpoint see
/// one buffer.
public final class Storage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int
    private let parent: Storage?
    /// The length of this storage's own memory mapping (`Storage.mapPages`), or 0 for memory
    /// from `malloc`.
    private let mappedBytes: Int

    /// Allocates `count` floats, zero-filled. With `longLived` (the flat parameter, gradient and
    /// optimizer buffers), a buffer of 2 MiB or more is mapped from the kernel on its own
    /// (`Storage.mapPages`): aligned to 2 MiB and offered to transparent huge pages, because a
    /// decoding or optimizer step streams it from front to back and with 4 KiB pages such a
    /// stream misses the TLB every 4 KiB; and zero without being written, so a page nobody
    /// touches costs no memory (a model loaded only for inference never touches its gradients).
    public init(count: Int, longLived: Bool = false) {
        precondition(count >= 0, "Storage count must be non-negative")
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        if longLived, let (raw, length) = Storage.mapPages(bytes: bytes) {
            pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
            mappedBytes = length
        } else {
            let raw = Storage.allocate(bytes: bytes)
            memset(raw, 0, bytes)
            pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
            mappedBytes = 0
        }
        self.count = count
        self.parent = nil
    }

    /// Whether `mapPages` asks for huge pages: yes unless the environment sets
    /// `LOOM_HUGE_PAGES=0`. Whether the kernel grants them is its own setting
    /// (`/sys/kernel/mm/transparent_hugepage/enabled`: `always` or `madvise` grant them,
    /// `never` does not); the values are the same either way.
    public static let hugePagesEnabled = ProcessInfo.processInfo.environment["LOOM_HUGE_PAGES"] != "0"

    static let hugePageBytes = 2 << 20

    /// `bytes` of 64-byte-aligned memory (SIMD loads stay on one cache line) that `free` releases.
    static func allocate(bytes: Int) -> UnsafeMutableRawPointer {
        var raw: UnsafeMutableRawPointer? = nil
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else { fatalError("out of memory allocating \(bytes) bytes") }
        return raw
    }

    /// Zero-filled memory of at least `bytes` (2 MiB or more) mapped from the kernel, aligned to
    /// 2 MiB and advised for huge pages unless `LOOM_HUGE_PAGES=0`; `munmap(pointer, length)`
    /// releases it. Nil below 2 MiB, off Linux, or when the mapping fails.
    static func mapPages(bytes: Int) -> (pointer: UnsafeMutableRawPointer, length: Int)? {
        #if os(Linux)
        guard bytes >= hugePageBytes else { return nil }
        let length = (bytes + hugePageBytes - 1) / hugePageBytes * hugePageBytes
        // Map one huge page more than needed, then give back the unaligned head and tail.
        guard let raw = mmap(nil, length + hugePageBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              raw != MAP_FAILED else { return nil }
        let address = Int(bitPattern: raw)
        let head = (hugePageBytes - address % hugePageBytes) % hugePageBytes
        if head > 0 { munmap(raw, head) }
        if hugePageBytes - head > 0 { munmap(raw + head + length, hugePageBytes - head) }
        let aligned = raw + head
        if hugePagesEnabled { _ = madvise(aligned, length, 14 /* MADV_HUGEPAGE */) }
        return (aligned, length)
        #else
        return nil
        #endif
    }

    /// Allocates `count` floats without zero-filling (the caller writes every element).
    public init(uninitializedCount count: Int) {
        let raw = Storage.allocate(bytes: max(count, 1) * MemoryLayout<Float>.stride)
        self.pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        self.count = count
        self.parent = nil
        self.mappedBytes = 0
    }

    /// A view of `count` floats starting at `offset` in `parent`.
    public init(viewOf parent: Storage, offset: Int, count: Int) {
        precondition(offset >= 0 && offset + count <= parent.count, "Storage view out of bounds")
        self.pointer = parent.pointer + offset
        self.count = count
        self.parent = parent
        self.mappedBytes = 0
    }

    deinit {
        if mappedBytes > 0 {
            munmap(pointer, mappedBytes)
        } else if parent == nil {
            free(pointer)
        }
    }

    public func zero() { memset(pointer, 0, count * MemoryLayout<Float>.stride) }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
