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

/// The long-lived flat buffers (parameters, gradients, optimizer moments): mapped on their own,
/// 2 MiB aligned for huge pages, zero without being written.
final class LongLivedStorageTests: XCTestCase {
    func testLargeBuffersAreAlignedZeroAndCostNothingUntilTouched() throws {
        #if os(Linux)
        let count = 64 << 20 / MemoryLayout<Float>.size + 5
        let large = Storage(count: count, longLived: true)
        XCTAssertEqual(Int(bitPattern: large.pointer) % (2 << 20), 0)
        // No page is resident before one is touched: a model loaded for inference pays nothing
        // for its gradient buffer.
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        let pages = (count * 4 + pageSize - 1) / pageSize
        var residency = [UInt8](repeating: 0, count: pages)
        XCTAssertEqual(mincore(large.pointer, count * 4, &residency), 0)
        XCTAssertEqual(residency.filter { $0 & 1 != 0 }.count, 0, "pages resident before any write")
        large.pointer[count - 1] = 1   // the whole requested range is writable
        XCTAssertEqual(mincore(large.pointer, count * 4, &residency), 0)
        XCTAssertGreaterThan(residency.filter { $0 & 1 != 0 }.count, 0)
        XCTAssertTrue(stride(from: 0, to: count - 1, by: 1021).allSatisfy { large.pointer[$0] == 0 })
        #endif
        // Below 2 MiB, and without the request, ordinary zero-filled 64-byte-aligned memory.
        for storage in [Storage(count: 1000, longLived: true), Storage(count: 1 << 20)] {
            XCTAssertEqual(Int(bitPattern: storage.pointer) % 64, 0)
            XCTAssertTrue(storage.buffer.allSatisfy { $0 == 0 })
        }
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
        XCTAssertEqual(slabs.census.ownMappings, 1)
        memset(large, 7, 16 << 20)
        slabs.release(large)
        XCTAssertEqual(slabs.census.ownMappings, 0)
        for pointer in buffers.prefix(6) { slabs.release(pointer) }
        XCTAssertEqual(slabs.census.slabs, 2)
        for pointer in buffers.dropFirst(6) { slabs.release(pointer) }
        XCTAssertEqual(slabs.census.slabs, 0)
        XCTAssertEqual(slabs.census.buffers, 0)
    }
}
