import Foundation
import XCTest
@testable import LoomData

final class InflateTests: XCTestCase {
    /// Text with long repeats (back-references), Chinese, and a stretch of random bytes
    /// (which gzip may store or code with dynamic Huffman tables).
    private func sampleBytes() -> [UInt8] {
        var bytes = Array(String(repeating: "To be, or not to be, that is the question.\n", count: 200).utf8)
        bytes += Array("床前明月光，疑是地上霜。举头望明月，低头思故乡。\n".utf8)
        var rng = SeededGenerator(seed: 7)
        for _ in 0..<70_000 { bytes.append(UInt8(truncatingIfNeeded: rng.next())) }
        bytes += Array(String(repeating: "abcabcabd", count: 1000).utf8)
        return bytes
    }

    func testReadsFileMadeByGzip() throws {
        let dir = try makeTemporaryDirectory(self)
        let original = sampleBytes()
        for level in ["-1", "-6", "-9"] {
            let file = dir.appendingPathComponent("sample\(level).bin")
            try Data(original).write(to: file)
            XCTAssertEqual(try runProcess("/bin/gzip", [level, "-k", "-f", file.path]), 0)
            let gz = URL(fileURLWithPath: file.path + ".gz")
            XCTAssertEqual(try TextFiles.readBytes(gz), original, "gzip \(level)")
        }
    }

    func testEmptyAndConcatenatedMembers() throws {
        let dir = try makeTemporaryDirectory(self)
        let a = dir.appendingPathComponent("a.txt"), b = dir.appendingPathComponent("b.txt")
        try Data("first member\n".utf8).write(to: a)
        try Data().write(to: b)
        XCTAssertEqual(try runProcess("/bin/gzip", ["-f", a.path, b.path]), 0)
        let joined = try Data(contentsOf: URL(fileURLWithPath: a.path + ".gz")) + Data(contentsOf: URL(fileURLWithPath: b.path + ".gz"))
            + Data(contentsOf: URL(fileURLWithPath: a.path + ".gz"))
        XCTAssertEqual(String(decoding: try Gzip.decompress([UInt8](joined)), as: UTF8.self), "first member\nfirst member\n")
    }

    func testCorruptDataIsAnError() throws {
        let dir = try makeTemporaryDirectory(self)
        let file = dir.appendingPathComponent("c.txt")
        try Data(String(repeating: "hello gzip ", count: 100).utf8).write(to: file)
        XCTAssertEqual(try runProcess("/bin/gzip", ["-f", file.path]), 0)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file.path + ".gz")))
        bytes[bytes.count - 6] ^= 0xFF  // inside the CRC-32
        assertDataError(["c.txt.gz", "CRC-32"]) { _ = try Gzip.decompress(bytes, path: file.path + ".gz") }
        assertDataError(["x.gz", "truncated"]) { _ = try Gzip.decompress(Array(bytes.prefix(20)), path: "x.gz") }
        assertDataError(["y.gz", "magic"]) { _ = try Gzip.decompress(Array(repeating: 65, count: 40), path: "y.gz") }
    }

    func testCRC32KnownValue() {
        XCTAssertEqual(CRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926)
    }
}
