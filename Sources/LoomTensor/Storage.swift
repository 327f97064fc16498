/// A contiguous block of `Float`s. A storage either owns its memory or is a view into
/// another storage (it then keeps the parent alive). Parameters, gradients and optimizer
/// moments are views into one flat storage each, so the optimizer and a checkpoint see
/// one buffer.
public final class Storage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int
    private let parent: Storage?

    /// Allocates `count` floats, zero-filled.
    public init(count: Int) {
        precondition(count >= 0, "Storage count must be non-negative")
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        // 64-byte alignment keeps SIMD loads on one cache line.
        var raw: UnsafeMutableRawPointer? = nil
        posix_memalign(&raw, 64, bytes)
        guard let raw else { fatalError("out of memory allocating \(count) floats") }
        memset(raw, 0, bytes)
        self.pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        self.count = count
        self.parent = nil
    }

    /// Allocates `count` floats without zero-filling (the caller writes every element).
    public init(uninitializedCount count: Int) {
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        var raw: UnsafeMutableRawPointer? = nil
        posix_memalign(&raw, 64, bytes)
        guard let raw else { fatalError("out of memory allocating \(count) floats") }
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

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
