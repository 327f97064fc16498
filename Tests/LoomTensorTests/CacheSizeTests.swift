import Foundation
import XCTest
@testable import LoomTensor

/// The last-level cache size that decides whether decoding streams the weights from memory.
final class CacheSizeTests: XCTestCase {
    func testSysfsSizesParse() {
        XCTAssertEqual(CPUFeatures.cacheSizeBytes("32768K"), 32 << 20)
        XCTAssertEqual(CPUFeatures.cacheSizeBytes("1M"), 1 << 20)
        XCTAssertEqual(CPUFeatures.cacheSizeBytes("512"), 512)
        for bad in ["", "K", "-4K", "0K", "12Q", "3.5M", "99999999999999G"] {
            XCTAssertNil(CPUFeatures.cacheSizeBytes(bad), bad)
        }
    }

    /// An AMD EPYC guest as seen from sysfs: the core's own L3 slice (32 MiB), whatever the
    /// socket holds in all; instruction caches and unreadable entries are skipped.
    func testTheHighestDataOrUnifiedLevelIsTheLastLevel() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loom-cache-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let entries: [(String, String, String)] = [("1", "Data", "32K"), ("1", "Instruction", "32K"),
                                                   ("2", "Unified", "512K"), ("3", "Unified", "32768K"),
                                                   ("4", "Instruction", "999M"), ("5", "Unified", "garbled")]
        for (index, (level, type, size)) in entries.enumerated() {
            let entry = directory.appendingPathComponent("index\(index)")
            try FileManager.default.createDirectory(at: entry, withIntermediateDirectories: true)
            try "\(level)\n".write(to: entry.appendingPathComponent("level"), atomically: true, encoding: .utf8)
            try "\(type)\n".write(to: entry.appendingPathComponent("type"), atomically: true, encoding: .utf8)
            try "\(size)\n".write(to: entry.appendingPathComponent("size"), atomically: true, encoding: .utf8)
        }
        XCTAssertEqual(CPUFeatures.lastLevelCacheBytes(sysfsCacheDirectory: directory.path), 32 << 20)
        XCTAssertNil(CPUFeatures.lastLevelCacheBytes(sysfsCacheDirectory: directory.path + "-missing"))
    }
}

/// The long-lived flat buffers (parameters, gradients, optimizer moments) on huge pages.
final class HugePageStorageTests: XCTestCase {
    func testLargeBuffersAreAlignedForHugePagesAndZeroFilled() throws {
        try XCTSkipUnless(Storage.hugePagesEnabled, "LOOM_HUGE_PAGES=0 is set")
        let count = 3 << 20 / MemoryLayout<Float>.size + 5
        let large = Storage(count: count, hugePages: true)
        XCTAssertEqual(Int(bitPattern: large.pointer) % (2 << 20), 0)
        XCTAssertTrue(large.buffer.allSatisfy { $0 == 0 })
        large.pointer[count - 1] = 1   // the whole requested range is writable
        // Below one huge page, and without the request, the usual 64-byte alignment.
        let small = Storage(count: 1000, hugePages: true)
        XCTAssertEqual(Int(bitPattern: small.pointer) % 64, 0)
        XCTAssertTrue(small.buffer.allSatisfy { $0 == 0 })
        let store = ParameterStore([("w", [1024, 1024])])
        XCTAssertEqual(Int(bitPattern: store.values.pointer) % (2 << 20), 0)
        XCTAssertEqual(Int(bitPattern: store.gradients.pointer) % (2 << 20), 0)
    }
}

/// Small long-lived buffers (quantized matrices) carved from huge-page slabs.
final class HugePageSlabTests: XCTestCase {
    func testBuffersAreAlignedDisjointAndReleased() throws {
        try XCTSkipUnless(Storage.hugePagesEnabled, "LOOM_HUGE_PAGES=0 is set")
        let slabs = HugePageSlabs()
        // 5 MiB buffers of odd sizes: six fit in a 32 MiB slab, so 14 of them fill three slabs.
        let sizes = (0..<14).map { 5 << 20 + 3 * $0 + 1 }
        let buffers = sizes.map { slabs.allocate(bytes: $0) }
        XCTAssertEqual(slabs.census.slabs, 3)
        XCTAssertEqual(slabs.census.buffers, 14)
        for (index, (pointer, size)) in zip(buffers, sizes).enumerated() {
            XCTAssertEqual(Int(bitPattern: pointer) % 64, 0)
            memset(pointer, Int32(index + 1), size)
        }
        for (index, (pointer, size)) in zip(buffers, sizes).enumerated() {
            let bytes = pointer.assumingMemoryBound(to: UInt8.self)
            let probes = Array(stride(from: 0, to: size, by: 4093)) + [size - 1]   // every page, both ends
            XCTAssertTrue(probes.allSatisfy { bytes[$0] == UInt8(index + 1) }, "buffer \(index) was overwritten by a neighbour")
        }
        // A buffer of half a slab or more is an allocation of its own.
        let large = slabs.allocate(bytes: 16 << 20)
        XCTAssertEqual(slabs.census.buffers, 14)
        slabs.release(large)
        for pointer in buffers.prefix(6) { slabs.release(pointer) }
        XCTAssertEqual(slabs.census.slabs, 2)
        for pointer in buffers.dropFirst(6) { slabs.release(pointer) }
        XCTAssertEqual(slabs.census.slabs, 0)
        XCTAssertEqual(slabs.census.buffers, 0)
    }
}
