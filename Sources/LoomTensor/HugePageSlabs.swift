import Foundation

/// Memory for many long-lived buffers that are each smaller than a huge page — a quantized
/// model's matrices (SmolLM2-135M in Q8_0: 211 of them, most under 1 MiB) — carved from 32 MiB
/// slabs on transparent huge pages (`Storage.allocate(bytes:hugePages:)`), so that a decoding
/// step, which streams every matrix, crosses a TLB entry every 2 MiB rather than every 4 KiB.
/// A slab is released when its last buffer is and it is no longer the one being filled;
/// buffers of half a slab or more get their own allocation. With `LOOM_HUGE_PAGES=0` every
/// buffer is its own 64-byte-aligned allocation.
public final class HugePageSlabs: @unchecked Sendable {
    public static let shared = HugePageSlabs()
    static let slabBytes = 32 << 20

    private final class Slab {
        let base: UnsafeMutableRawPointer
        var used = 0
        var live = 0
        init(base: UnsafeMutableRawPointer) { self.base = base }
    }

    private let lock = NSLock()
    private var filling: Slab?
    /// The slab of each buffer carved from one (keyed by the buffer's address).
    private var slabOf: [UnsafeMutableRawPointer: Slab] = [:]

    /// `bytes` of 64-byte-aligned memory, released with `release`.
    public func allocate(bytes: Int) -> UnsafeMutableRawPointer {
        let size = Swift.max(bytes, 1)
        if !Storage.hugePagesEnabled || size >= HugePageSlabs.slabBytes / 2 {
            return Storage.allocate(bytes: size, hugePages: true)
        }
        let rounded = (size + 63) & ~63
        lock.lock(); defer { lock.unlock() }
        if filling == nil || filling!.used + rounded > HugePageSlabs.slabBytes {
            if let full = filling, full.live == 0 { free(full.base) }
            filling = Slab(base: Storage.allocate(bytes: HugePageSlabs.slabBytes, hugePages: true))
        }
        let slab = filling!
        let pointer = slab.base + slab.used
        slab.used += rounded
        slab.live += 1
        slabOf[pointer] = slab
        return pointer
    }

    /// Gives back a buffer from `allocate`.
    public func release(_ pointer: UnsafeMutableRawPointer) {
        lock.lock(); defer { lock.unlock() }
        guard let slab = slabOf.removeValue(forKey: pointer) else { free(pointer); return }
        slab.live -= 1
        if slab.live == 0 && slab !== filling { free(slab.base) }
    }

    /// Slabs holding at least one buffer, and buffers carved from slabs (for tests).
    var census: (slabs: Int, buffers: Int) {
        lock.lock(); defer { lock.unlock() }
        return (Set(slabOf.values.map(ObjectIdentifier.init)).count, slabOf.count)
    }
}
