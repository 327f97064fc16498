import XCTest
import Foundation
@testable import LoomNN

/// The GGUF reader against the `gguf` Python package: `Tests/Reference/make_gguf_reference.py`
/// writes `Reference/gguf/reference.gguf` with one tensor per type and its dequantisation by
/// `gguf.quants.dequantize`; CI regenerates the file and checks it is unchanged. Crafted files
/// check that bad input fails with an error naming the file and the key or tensor.
final class GGUFTests: XCTestCase {
    var referenceURL: URL {
        Bundle.module.url(forResource: "Reference", withExtension: nil)!.appendingPathComponent("gguf/reference.gguf")
    }

    func testMetadataOfEveryValueType() throws {
        let file = try GGUFFile(contentsOf: referenceURL)
        XCTAssertEqual(file.version, 3)
        XCTAssertEqual(file.alignment, 64)
        XCTAssertEqual(file.dataOffset % 64, 0)
        XCTAssertEqual(file["test.uint8"], .uint8(200))
        XCTAssertEqual(file["test.int8"], .int8(-100))
        XCTAssertEqual(file["test.uint16"], .uint16(60000))
        XCTAssertEqual(file["test.int16"], .int16(-30000))
        XCTAssertEqual(file["test.uint32"], .uint32(4_000_000_000))
        XCTAssertEqual(file["test.int32"], .int32(-2_000_000_000))
        XCTAssertEqual(file["test.float32"], .float32(0.1))
        XCTAssertEqual(file["test.uint64"], .uint64(18_000_000_000_000_000_000))
        XCTAssertEqual(file["test.int64"], .int64(-9_000_000_000_000_000_000))
        XCTAssertEqual(file["test.float64"], .float64(2.718281828459045))
        XCTAssertEqual(file["test.bool"], .bool(true))
        XCTAssertEqual(try file.string("test.string"), "héllo, 世界 🌍")
        XCTAssertEqual(try file.integerArray("test.array.int32"), [1, -2, 3])
        XCTAssertEqual(try file.stringArray("test.array.string"), ["a", "", "ç"])
        XCTAssertEqual(file["test.array.float32"], .array(.float32, [.float32(0.5), .float32(-1.5)]))
        XCTAssertEqual(file["test.array.nested"], .array(.array, [.array(.int32, [.int32(1), .int32(2)]), .array(.int32, [.int32(3)])]))
        XCTAssertEqual(try file.string("general.architecture"), "llama")
        XCTAssertThrowsError(try file.integer("test.string")) { error in
            XCTAssertTrue("\(error)".contains("test.string") && "\(error)".contains("expected an integer"), "\(error)")
        }
        XCTAssertThrowsError(try file.integer("llama.block_count")) { error in
            XCTAssertTrue("\(error)".contains("llama.block_count") && "\(error)".contains("missing"), "\(error)")
        }
    }

    /// Every type, each tensor on its own type, equal bit for bit to `gguf.quants.dequantize`.
    func testDequantisationEqualsTheGGUFPackageBitForBit() throws {
        let file = try GGUFFile(contentsOf: referenceURL)
        for type in GGMLType.allCases {
            let quantised = try XCTUnwrap(file.info(named: "quant.\(type.name)"), "quant.\(type.name)")
            XCTAssertEqual(quantised.type, type)
            let expectedInfo = try XCTUnwrap(file.info(named: "expected.\(type.name)"))
            XCTAssertEqual(expectedInfo.type, .f32)
            XCTAssertEqual(quantised.shape, expectedInfo.shape, type.name)
            let actual = file.tensor(quantised), expected = file.tensor(expectedInfo)
            XCTAssertEqual(actual.shape, quantised.shape)
            var mismatches = 0
            for i in 0 ..< expected.count where actual.data[i].bitPattern != expected.data[i].bitPattern {
                if mismatches < 3 { XCTFail("\(type.name)[\(i)]: \(actual.data[i]) != \(expected.data[i])") }
                mismatches += 1
            }
            XCTAssertEqual(mismatches, 0, "\(type.name): \(mismatches) of \(expected.count) elements differ")
            // A non-trivial reference: not all zeros.
            XCTAssertTrue((0 ..< expected.count).contains { expected.data[$0] != 0 }, type.name)
        }
        XCTAssertEqual(file.info(named: "quant.Q6_K")?.shape, [2, 2, 256])
        XCTAssertEqual(file.info(named: "quant.Q6_K")?.dimensions, [256, 2, 2])
    }

    func testVersionTwoReadsAndOtherVersionsAreRejected() throws {
        var bytes = try Data(contentsOf: referenceURL)
        bytes[4] = 2
        let file = try GGUFFile(data: bytes, path: "v2.gguf")
        XCTAssertEqual(file.version, 2)
        XCTAssertEqual(file.tensors.count, 2 * GGMLType.allCases.count)
        bytes[4] = 1
        assertError(bytes, ["v.gguf", "version 1", "versions 2 and 3"])
    }

    /// Every prefix of a valid file fails cleanly (no crash), naming the file.
    func testTruncatedFilesFailWithAnError() throws {
        let bytes = try Data(contentsOf: referenceURL)
        let file = try GGUFFile(data: bytes, path: "whole.gguf")
        var cuts = Array(stride(from: 0, to: file.dataOffset, by: 7))
        cuts += [bytes.count - 1, file.dataOffset + 100]
        for cut in cuts {
            XCTAssertThrowsError(try GGUFFile(data: bytes.prefix(cut), path: "cut.gguf"), "cut at \(cut)") { error in
                XCTAssertTrue("\(error)".hasPrefix("cut.gguf: "), "\(error)")
            }
        }
        assertError(bytes.prefix(bytes.count - 1), ["tensor \"expected.Q6_K\"", "runs past the end", "truncated"])
    }

    func testBadMagicUnknownTypeAndBadShapes() throws {
        assertError(Data("GGML0000".utf8) + Data(count: 32), ["not a GGUF file"])
        assertError(CraftedGGUF(tensorType: 10).bytes, ["tensor \"w\"", "type 10 (Q2_K)", "does not read"])
        assertError(CraftedGGUF(tensorType: 99).bytes, ["tensor \"w\"", "type 99"])
        // 40 elements per row is not a whole number of 32-element Q8_0 blocks.
        assertError(CraftedGGUF(dimensions: [40, 2], tensorType: 8).bytes, ["tensor \"w\"", "not a multiple", "Q8_0"])
        assertError(CraftedGGUF(dimensions: [1 << 40]).bytes, ["tensor \"w\"", "absurd dimension"])
        assertError(CraftedGGUF(dimensions: [Int(Int32.max), Int(Int32.max), Int(Int32.max)]).bytes, ["tensor \"w\"", "larger than the file"])
        assertError(CraftedGGUF(dimensions: [4, 1, 1, 1, 1]).bytes, ["tensor \"w\"", "5 dimensions"])
        assertError(CraftedGGUF(offset: 8).bytes, ["tensor \"w\"", "not a multiple of the alignment 32"])
        assertError(CraftedGGUF(offset: 1 << 20).bytes, ["tensor \"w\"", "runs past the end"])
        assertError(CraftedGGUF(alignment: .uint32(3)).bytes, ["general.alignment", "power of two"])
        assertError(CraftedGGUF(alignment: .string("64")).bytes, ["general.alignment"])
    }

    /// Counts and lengths from the file never size an allocation unchecked.
    func testAbsurdCountsAreRejectedBeforeAllocating() throws {
        assertError(CraftedGGUF(tensorCount: 1 << 60).bytes, ["1152921504606846976 tensors"])
        assertError(CraftedGGUF(keyValueCount: UInt64.max).bytes, ["metadata entries"])
        var huge = CraftedGGUF()
        huge.rawMetadata = { builder in
            builder.string("big.array"); builder.u32(9); builder.u32(4); builder.u64(1 << 61)
        }
        assertError(huge.bytes, ["big.array", "array of 2305843009213693952 elements"])
        var longString = CraftedGGUF()
        longString.rawMetadata = { builder in builder.u64(UInt64(Int64.max)) }
        assertError(longString.bytes, ["string of 9223372036854775807 bytes"])
        var badType = CraftedGGUF()
        badType.rawMetadata = { builder in builder.string("odd.key"); builder.u32(13) }
        assertError(badType.bytes, ["odd.key", "unknown value type 13"])
    }

    func assertError(_ bytes: Data, _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try GGUFFile(data: bytes, path: "v.gguf"), file: file, line: line) { error in
            XCTAssertTrue(error is GGUFError, "\(error)", file: file, line: line)
            for fragment in fragments {
                XCTAssertTrue("\(error)".contains(fragment), "\"\(error)\" lacks \"\(fragment)\"", file: file, line: line)
            }
        }
    }
}

/// Little-endian GGUF bytes built field by field, for files the writer would never produce.
struct GGUFBytes {
    var data = Data()
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    mutating func string(_ s: String) { u64(UInt64(s.utf8.count)); data.append(contentsOf: Array(s.utf8)) }
}

/// A one-tensor GGUF ("w", F32 by default) whose fields a test can set to bad values.
struct CraftedGGUF {
    var dimensions = [8, 2]
    var tensorType: UInt32 = 0
    var offset: UInt64 = 0
    var alignment: GGUFValue? = nil
    var tensorCount: UInt64 = 1
    var keyValueCount: UInt64? = nil
    var rawMetadata: ((inout GGUFBytes) -> Void)? = nil

    var bytes: Data {
        var b = GGUFBytes()
        b.data.append(contentsOf: Array("GGUF".utf8))
        b.u32(3)
        b.u64(tensorCount)
        let metadataCount: UInt64 = (alignment == nil ? 0 : 1) + (rawMetadata == nil ? 0 : 1)
        b.u64(keyValueCount ?? metadataCount)
        if let alignment {
            b.string("general.alignment")
            switch alignment {
            case .uint32(let v): b.u32(4); b.u32(v)
            case .string(let s): b.u32(8); b.string(s)
            default: fatalError("unused")
            }
        }
        rawMetadata?(&b)
        b.string("w")
        b.u32(UInt32(dimensions.count))
        for d in dimensions { b.u64(UInt64(d)) }
        b.u32(tensorType)
        b.u64(offset)
        while b.data.count % 32 != 0 { b.data.append(0) }
        b.data.append(Data(count: 64))
        return b.data
    }
}
