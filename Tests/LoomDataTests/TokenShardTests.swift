import Foundation
import XCTest
@testable import LoomData

final class TokenShardTests: XCTestCase {
    func testRoundTripUInt16AcrossShards() throws {
        let dir = try makeTemporaryDirectory(self)
        let tokens = (0..<1000).map { ($0 * 7919) % 65_536 }
        let writer = try ShardWriter(directory: dir, split: "train", dtype: .uint16, tokensPerShard: 300)
        try writer.append(tokens[..<500])
        try writer.append(tokens[500...])
        let shards = try writer.finish()
        XCTAssertEqual(shards.map(\.file), ["train_000.bin", "train_001.bin", "train_002.bin", "train_003.bin"])
        XCTAssertEqual(shards.map(\.tokens), [300, 300, 300, 100])

        let first = try TokenShard(url: dir.appendingPathComponent("train_000.bin"))
        XCTAssertEqual(first.dtype, .uint16)
        XCTAssertEqual(first.count, 300)
        XCTAssertEqual(first[299], tokens[299])
        let size = try FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent("train_000.bin").path)[.size] as! NSNumber
        XCTAssertEqual(size.intValue, 24 + 300 * 2)

        let dataset = try TokenDataset(directory: dir, split: "train")  // no manifest: files by name
        XCTAssertEqual(dataset.count, 1000)
        XCTAssertEqual((0..<1000).map { dataset[$0] }, tokens)
        XCTAssertEqual(dataset.window(from: 250, count: 400).map(Int.init), Array(tokens[250..<650]))
        XCTAssertEqual(dataset.window(from: 0, count: 1000).map(Int.init), tokens)
    }

    func testRoundTripUInt32() throws {
        let dir = try makeTemporaryDirectory(self)
        let tokens = [0, 1, 65_535, 65_536, 100_000, 4_000_000_000]
        let writer = try ShardWriter(directory: dir, split: "val", dtype: .uint32)
        try writer.append(tokens)
        try writer.finish()
        let shard = try TokenShard(url: dir.appendingPathComponent("val_000.bin"))
        XCTAssertEqual(shard.dtype, .uint32)
        XCTAssertEqual((0..<shard.count).map { shard[$0] }, tokens)
        XCTAssertEqual(shard.tokens(from: 1, count: 3), [1, 65_535, 65_536])
        XCTAssertEqual(TokenDType.forVocabulary(size: 65_536), .uint16)
        XCTAssertEqual(TokenDType.forVocabulary(size: 65_537), .uint32)
    }

    func testEmptySplitStillWritesAShardAndTooLargeTokenIsRejected() throws {
        let dir = try makeTemporaryDirectory(self)
        let writer = try ShardWriter(directory: dir, split: "val", dtype: .uint16)
        XCTAssertEqual(try writer.finish(), [ShardInfo(file: "val_000.bin", tokens: 0)])
        XCTAssertEqual(try TokenShard(url: dir.appendingPathComponent("val_000.bin")).count, 0)
        let other = try ShardWriter(directory: dir, split: "x", dtype: .uint16)
        assertDataError(["70000", "uint16"]) { try other.append([70_000]) }
    }

    func testBadHeadersNameTheFileAndTheProblem() throws {
        let dir = try makeTemporaryDirectory(self)
        let good = TokenShardFormat.header(dtype: .uint16, count: 4) + [1, 0, 2, 0, 3, 0, 4, 0]

        let badMagic = dir.appendingPathComponent("magic.bin")
        try Data(Array("NOTLOOM!".utf8) + good[8...]).write(to: badMagic)
        assertDataError(["magic.bin", "bad magic", "NOTLOOM!"]) { _ = try TokenShard(url: badMagic) }

        let truncated = dir.appendingPathComponent("truncated.bin")
        try Data(good.dropLast(3)).write(to: truncated)
        assertDataError(["truncated.bin", "truncated", "4 tokens"]) { _ = try TokenShard(url: truncated) }

        let tiny = dir.appendingPathComponent("tiny.bin")
        try Data(good.prefix(10)).write(to: tiny)
        assertDataError(["tiny.bin", "truncated", "10 bytes"]) { _ = try TokenShard(url: tiny) }

        var dtype = good
        dtype[12] = 3
        let badType = dir.appendingPathComponent("dtype.bin")
        try Data(dtype).write(to: badType)
        assertDataError(["dtype.bin", "unknown dtype 3"]) { _ = try TokenShard(url: badType) }

        var version = good
        version[8] = 9
        let badVersion = dir.appendingPathComponent("version.bin")
        try Data(version).write(to: badVersion)
        assertDataError(["version.bin", "version 9"]) { _ = try TokenShard(url: badVersion) }

        assertDataError(["missing.bin", "no such file"]) { _ = try TokenShard(url: dir.appendingPathComponent("missing.bin")) }
    }
}
