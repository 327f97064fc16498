/// A contiguous block of `Float`s. A storage either owns its memory or is a view into
/// another storage (it then keeps the parent alive). Parameters, gradients and optimizer
/// moments are views into one flat storage each, so the optimizer and a checkpoint see
/// one buffer.
public final class Storage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int
    private let parent: Storage?

    /// Allocates `count` floats, zero-filled. With `hugePages`, a buffer of at least 2 MiB is
    /// aligned to 2 MiB and offered to the kernel's transparent huge pages (Linux, see
    /// `Storage.hugePagesEnabled`): the flat parameter, gradient and optimizer buffers, which a
    /// decoding step or an optimizer step streams from front to back. With 4 KiB pages such a
    /// stream crosses a page, and misses the TLB, every 4 KiB.
    public init(count: Int, hugePages: Bool = false) {
        precondition(count >= 0, "Storage count must be non-negative")
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        let raw = Storage.allocate(bytes: bytes, hugePages: hugePages)
        memset(raw, 0, bytes)
        self.pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        self.count = count
        self.parent = nil
    }

    /// Whether `init(count:hugePages: true)` asks for huge pages: yes unless the environment
    /// sets `LOOM_HUGE_PAGES=0`. Whether the kernel grants them is its own setting
    /// (`/sys/kernel/mm/transparent_hugepage/enabled`: `always` or `madvise` grant them,
    /// `never` does not); the memory is the same either way.
    public static let hugePagesEnabled = ProcessInfo.processInfo.environment["LOOM_HUGE_PAGES"] != "0"

    static let hugePageBytes = 2 << 20

    /// `bytes` of memory that `free` releases: 64-byte aligned, so that SIMD loads stay on one
    /// cache line, or 2 MiB aligned and advised for huge pages (before any page is touched).
    static func allocate(bytes: Int, hugePages: Bool) -> UnsafeMutableRawPointer {
        var raw: UnsafeMutableRawPointer? = nil
        if hugePages && hugePagesEnabled && bytes >= hugePageBytes {
            let rounded = (bytes + hugePageBytes - 1) / hugePageBytes * hugePageBytes
            if posix_memalign(&raw, hugePageBytes, rounded) == 0, let raw {
                #if os(Linux)
                _ = madvise(raw, rounded, 14 /* MADV_HUGEPAGE */)
                #endif
                return raw
            }
        }
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else { fatalError("out of memory allocating \(bytes) bytes") }
        return raw
    }

    /// Allocates `count` floats without zero-filling (the caller writes every element).
    public init(uninitializedCount count: Int) {
        let raw = Storage.allocate(bytes: max(count, 1) * MemoryLayout<Float>.stride, hugePages: false)
        self.pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        self.count = count
        self.parent = nil
    }

    /// A view of `count` floats starting at `offset` in `parent`.
    public init(viewOf parent: Storage, offset: Int, count: Int) {
        precondition(offset >= 0 && offset + count <= parent.count, "Storage view out of bounds")
        self.pointer = parent.pointer + offset
        self.count = count
        self.parent = parent
    }

    deinit {
        if parent == nil { free(pointer) }
    }

    public func zero() { memset(pointer, 0, count * MemoryLayout<Float>.stride) }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }
}

import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
