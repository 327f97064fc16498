import Foundation

/// Memory for many long-lived buffers that are each smaller than a huge page — a quantized
/// model's matrices (SmolLM2-135M in Q8_0: 211 of them, most under 1 MiB) — carved from 32 MiB
/// slabs mapped on transparent huge pages (`Storage.mapPages`), so that a decoding step, which
/// streams every matrix, crosses a TLB entry every 2 MiB rather than every 4 KiB. A slab is
/// unmapped when its last buffer is released and it is no longer the one being filled; a
/// buffer of half a slab or more gets a mapping of its own. With `LOOM_HUGE_PAGES=0` every
/// buffer is its own 64-byte-aligned `malloc` block.
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
    /// The mapping length of each buffer mapped on its own.
    private var mappedLength: [UnsafeMutableRawPointer: Int] = [:]

    /// `bytes` of 64-byte-aligned memory, released with `release`.
    public func allocate(bytes: Int) -> UnsafeMutableRawPointer {
        let size = Swift.max(bytes, 1)
        guard Storage.hugePagesEnabled else { return Storage.allocate(bytes: size) }
        lock.lock(); defer { lock.unlock() }
        if size >= HugePageSlabs.slabBytes / 2 {
            guard let (pointer, length) = Storage.mapPages(bytes: size) else { return Storage.allocate(bytes: size) }
            mappedLength[pointer] = length
            return pointer
        }
        let rounded = (size + 63) & ~63
        let slab: Slab
        if let current = filling, current.used + rounded <= HugePageSlabs.slabBytes {
            slab = current
        } else {
            if let full = filling, full.live == 0 { munmap(full.base, HugePageSlabs.slabBytes) }
            filling = nil
            guard let (base, _) = Storage.mapPages(bytes: HugePageSlabs.slabBytes) else { return Storage.allocate(bytes: size) }
            slab = Slab(base: base)
            filling = slab
        }
        let pointer = slab.base + slab.used
        slab.used += rounded
        slab.live += 1
        slabOf[pointer] = slab
        return pointer
    }

    /// Gives back a buffer from `allocate`.
    public func release(_ pointer: UnsafeMutableRawPointer) {
        lock.lock(); defer { lock.unlock() }
        if let length = mappedLength.removeValue(forKey: pointer) { munmap(pointer, length); return }
        guard let slab = slabOf.removeValue(forKey: pointer) else { free(pointer); return }
        slab.live -= 1
        if slab.live == 0 && slab !== filling { munmap(slab.base, HugePageSlabs.slabBytes) }
    }

    /// Slabs holding at least one buffer, and buffers carved from slabs (for tests).
    var census: (slabs: Int, buffers: Int, ownMappings: Int) {
        lock.lock(); defer { lock.unlock() }
        return (Set(slabOf.values.map(ObjectIdentifier.init)).count, slabOf.count, mappedLength.count)
    }
}
