import Foundation
import XCTest
import LoomNN

final class SafeTensorsTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("SafeTensorsTests-\(getpid())-\(UInt32.random(in: 0 ... .max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    private var referenceDirectory: URL {
        get throws {
            try XCTUnwrap(Bundle.module.url(forResource: "Reference", withExtension: nil), "test resources lack Reference/")
        }
    }

    /// A file from a hand-written header and buffer, exactly as given (no padding, no checks).
    private func rawFile(_ name: String, header: String, buffer: [UInt8] = [], headerLength: UInt64? = nil) throws -> URL {
        let headerBytes = Array(header.utf8)
        var bytes: [UInt8] = []
        let n = headerLength ?? UInt64(headerBytes.count)
        for i in 0 ..< 8 { bytes.append(UInt8((n >> (8 * UInt64(i))) & 0xFF)) }
        bytes += headerBytes + buffer
        let url = directory.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url
    }

    private func bytes<T>(of values: [T]) -> [UInt8] {
        values.withUnsafeBytes { Array($0) }
    }

    // MARK: - Round trip

    func testSaveLoadRoundTripIsBitExact() throws {
        let special: [Float] = [0, -0.0, 1, -1.5, .pi, .infinity, -.infinity, .nan,
                                Float.leastNonzeroMagnitude, Float.greatestFiniteMagnitude, 1e-30, -7.25]
        let matrix = Tensor(shape: [3, 4], values: special)
        let vector = Tensor(shape: [5], values: (0 ..< 5).map { Float($0) * 0.1 - 0.2 })
        let cube = Tensor(shape: [2, 3, 4], values: (0 ..< 24).map { sin(Float($0)) })
        let scalar = Tensor(shape: [], values: [42.5])
        let empty = Tensor(shape: [0, 3], values: [])
        let url = directory.appendingPathComponent("round trip.safetensors")
        let metadata = ["format": "pt", "note": "quote \" backslash \\ newline \n tab \t ünïcode 汉字"]

        try SafeTensors.save([(name: "z.cube", tensor: cube), (name: "a.matrix", tensor: matrix),
                              (name: "m.vector", tensor: vector), (name: "scalar", tensor: scalar),
                              (name: "empty", tensor: empty)],
                             metadata: metadata, to: url)

        let loaded = try SafeTensors.load(url)
        XCTAssertEqual(Set(loaded.keys), ["a.matrix", "m.vector", "z.cube", "scalar", "empty"])
        for (name, original) in [("a.matrix", matrix), ("m.vector", vector), ("z.cube", cube), ("scalar", scalar), ("empty", empty)] {
            let copy = try XCTUnwrap(loaded[name])
            XCTAssertEqual(copy.shape, original.shape, name)
            XCTAssertEqual(copy.scalars.map(\.bitPattern), original.scalars.map(\.bitPattern), name)
            XCTAssertEqual(copy.name, name)
        }

        let header = try SafeTensors.header(url)
        XCTAssertEqual(header.metadata, metadata)
        XCTAssertEqual(header.tensors["z.cube"]?.dtype, "F32")
        XCTAssertEqual(header.tensors["z.cube"]?.shape, [2, 3, 4])
        XCTAssertEqual(header.tensors["scalar"]?.shape, [])

        // The data buffer starts 8-byte aligned, and the tensors lie in name order.
        let file = try Data(contentsOf: url)
        let n = file.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        XCTAssertEqual((8 + n) % 8, 0)
        XCTAssertEqual(file.count, 8 + n + 4 * (12 + 5 + 24 + 1))
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: file[8 ..< 8 + n]) as? [String: Any])
        let offsets = try ["a.matrix", "empty", "m.vector", "scalar", "z.cube"].map { name in
            try XCTUnwrap((json[name] as? [String: Any])?["data_offsets"] as? [Int])
        }
        XCTAssertEqual(offsets, [[0, 48], [48, 48], [48, 68], [68, 72], [72, 168]])

        // Atomic write: no temporary file is left behind.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["round trip.safetensors"])
    }

    func testSaveReplacesAnExistingFile() throws {
        let url = directory.appendingPathComponent("replace.safetensors")
        try SafeTensors.save(["w": Tensor(shape: [2], values: [1, 2])], to: url)
        try SafeTensors.save(["v": Tensor(shape: [3], values: [3, 4, 5])], to: url)
        let loaded = try SafeTensors.load(url)
        XCTAssertEqual(Array(loaded.keys), ["v"])
        XCTAssertEqual(loaded["v"]?.scalars, [3, 4, 5])
    }

    func testSaveRejectsDuplicateAndReservedNames() throws {
        let url = directory.appendingPathComponent("dup.safetensors")
        let t = Tensor(shape: [1], values: [1])
        XCTAssertThrowsError(try SafeTensors.save([(name: "w", tensor: t), (name: "w", tensor: t)], to: url)) { error in
            XCTAssertTrue(String(describing: error).contains("dup.safetensors"), "\(error)")
            XCTAssertTrue(String(describing: error).contains("\"w\""), "\(error)")
        }
        XCTAssertThrowsError(try SafeTensors.save([(name: "__metadata__", tensor: t)], to: url))
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))
    }

    // MARK: - Files written by Python

    func testLoadsTheLlamaReferenceWrittenByTransformers() throws {
        for (caseName, tied) in [("llama-tiny", false), ("llama-tiny-tied", true)] {
            let dir = try referenceDirectory.appendingPathComponent(caseName)
            let configData = try Data(contentsOf: dir.appendingPathComponent("config.json"))
            let config = try XCTUnwrap(JSONSerialization.jsonObject(with: configData) as? [String: Any])
            let vocab = try XCTUnwrap(config["vocab_size"] as? Int)
            let hidden = try XCTUnwrap(config["hidden_size"] as? Int)
            let intermediate = try XCTUnwrap(config["intermediate_size"] as? Int)
            let layers = try XCTUnwrap(config["num_hidden_layers"] as? Int)
            let heads = try XCTUnwrap(config["num_attention_heads"] as? Int)
            let kvHeads = try XCTUnwrap(config["num_key_value_heads"] as? Int)
            XCTAssertEqual(config["tie_word_embeddings"] as? Bool, tied)
            let headDim = hidden / heads

            var expected: [String: [Int]] = [
                "model.embed_tokens.weight": [vocab, hidden],
                "model.norm.weight": [hidden],
            ]
            if !tied { expected["lm_head.weight"] = [vocab, hidden] }
            for layer in 0 ..< layers {
                let p = "model.layers.\(layer)."
                expected[p + "input_layernorm.weight"] = [hidden]
                expected[p + "post_attention_layernorm.weight"] = [hidden]
                expected[p + "self_attn.q_proj.weight"] = [heads * headDim, hidden]
                expected[p + "self_attn.k_proj.weight"] = [kvHeads * headDim, hidden]
                expected[p + "self_attn.v_proj.weight"] = [kvHeads * headDim, hidden]
                expected[p + "self_attn.o_proj.weight"] = [hidden, heads * headDim]
                expected[p + "mlp.gate_proj.weight"] = [intermediate, hidden]
                expected[p + "mlp.up_proj.weight"] = [intermediate, hidden]
                expected[p + "mlp.down_proj.weight"] = [hidden, intermediate]
            }

            let modelURL = dir.appendingPathComponent("model.safetensors")
            let weights = try SafeTensors.load(modelURL)
            XCTAssertEqual(Set(weights.keys), Set(expected.keys), caseName)
            for (name, shape) in expected {
                XCTAssertEqual(weights[name]?.shape, shape, "\(caseName) \(name)")
            }
            let header = try SafeTensors.header(modelURL)
            XCTAssertEqual(Set(header.tensors.keys), Set(expected.keys))
            XCTAssertTrue(header.tensors.values.allSatisfy { $0.dtype == "F32" })
            // Norm weights were drawn around 1; matrices around 0 with std 0.1.
            let norm = try XCTUnwrap(weights["model.norm.weight"]).scalars
            XCTAssertEqual(norm.reduce(0, +) / Float(norm.count), 1, accuracy: 0.05)

            // The reference loss is the mean cross entropy of the logits against the next token.
            let reference = try SafeTensors.load(dir.appendingPathComponent("reference.safetensors"))
            let ids = try XCTUnwrap(reference["input_ids"])
            let logits = try XCTUnwrap(reference["logits"])
            let loss = try XCTUnwrap(reference["loss"]).item
            XCTAssertEqual(logits.shape, ids.shape + [vocab])
            let (batch, time) = (ids.shape[0], ids.shape[1])
            var total: Double = 0
            for b in 0 ..< batch {
                for t in 0 ..< time - 1 {
                    let row = (0 ..< vocab).map { Double(logits.data[(b * time + t) * vocab + $0]) }
                    let maximum = row.max()!
                    let logSum = log(row.reduce(0) { $0 + exp($1 - maximum) }) + maximum
                    total += logSum - row[Int(ids.data[b * time + t + 1])]
                }
            }
            XCTAssertEqual(total / Double(batch * (time - 1)), Double(loss), accuracy: 1e-5, caseName)
            for name in expected.keys {
                XCTAssertEqual(reference["grad." + name]?.shape, expected[name], "\(caseName) grad.\(name)")
                if !tied { XCTAssertEqual(reference["adam2." + name]?.shape, expected[name], "\(caseName) adam2.\(name)") }
            }
        }
    }

    // MARK: - Other dtypes

    func testHalfPrecisionDecodes() throws {
        // 1, -2, 0.5, 65504 (largest half), 2^-24 (smallest subnormal), 2^-14 (smallest normal), +inf, -0, NaN
        let halves: [UInt16] = [0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001, 0x0400, 0x7C00, 0x8000, 0x7E00]
        let url = try rawFile("half.safetensors",
                              header: #"{"h":{"dtype":"F16","shape":[3,3],"data_offsets":[0,18]}}"#,
                              buffer: bytes(of: halves))
        let h = try XCTUnwrap(SafeTensors.load(url)["h"])
        XCTAssertEqual(h.shape, [3, 3])
        let v = h.scalars
        XCTAssertEqual(Array(v[0 ..< 8]), [1, -2, 0.5, 65504, 0x1p-24, 0x1p-14, .infinity, -0.0])
        XCTAssertEqual(v[7].sign, .minus)
        XCTAssertTrue(v[8].isNaN)
    }

    func testEveryHalfBitPatternMatchesFloat16() throws {
        #if !(os(macOS) && arch(x86_64))
        let all = (0 ... UInt16.max).map { $0 }
        let url = try rawFile("all-halves.safetensors",
                              header: #"{"all":{"dtype":"F16","shape":[65536],"data_offsets":[0,131072]}}"#,
                              buffer: bytes(of: all))
        let decoded = try XCTUnwrap(SafeTensors.load(url)["all"]).scalars
        var mismatches = 0
        for bits in all {
            let expected = Float(Float16(bitPattern: bits))
            let got = decoded[Int(bits)]
            let same = expected.isNaN ? (got.isNaN && got.sign == expected.sign) : got.bitPattern == expected.bitPattern
            if !same { mismatches += 1 }
        }
        XCTAssertEqual(mismatches, 0)
        #endif
    }

    func testBFloat16Decodes() throws {
        let values: [Float] = [1, -2.5, 3.140625, -0.0, .infinity, 1e30, -1e-30]
        // BF16 is the top half of a float: these values (truncated) decode back to those halves.
        let bf16 = values.map { UInt16($0.bitPattern >> 16) }
        let url = try rawFile("bf16.safetensors",
                              header: #"{"b":{"dtype":"BF16","shape":[7],"data_offsets":[0,14]}}"#,
                              buffer: bytes(of: bf16))
        let b = try XCTUnwrap(SafeTensors.load(url)["b"]).scalars
        XCTAssertEqual(b.map(\.bitPattern), values.map { $0.bitPattern & 0xFFFF_0000 })
        XCTAssertEqual(Array(b[0 ..< 5]), [1, -2.5, 3.140625, -0.0, .infinity])
    }

    func testFloat64AndMixedDTypesWithMetadata() throws {
        let doubles: [Double] = [1.0 / 3.0, -1e300, 2.5]
        let floats: [Float] = [7, 8]
        // An unaligned buffer: the header is not padded to 8 bytes, so loads must not assume alignment.
        let header = #"{"__metadata__":{"k":"v"},"d":{"dtype":"F64","shape":[3],"data_offsets":[0,24]},"#
            + #""f":{"dtype":"F32","shape":[1,2],"data_offsets":[24,32]}}"#
        let url = try rawFile("mixed.safetensors", header: header + " ", buffer: bytes(of: doubles) + bytes(of: floats))
        let loaded = try SafeTensors.load(url)
        XCTAssertEqual(loaded["d"]?.scalars, [Float(1.0 / 3.0), -.infinity, 2.5])
        XCTAssertEqual(loaded["f"]?.scalars, [7, 8])
        XCTAssertEqual(loaded["f"]?.shape, [1, 2])
        let h = try SafeTensors.header(url)
        XCTAssertEqual(h.metadata, ["k": "v"])
        XCTAssertEqual(h.tensors["d"]?.dtype, "F64")
    }

    // MARK: - Errors name the file and the tensor

    private func assertLoadFails(_ url: URL, mentioning fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
        for (label, call) in [("load", { _ = try SafeTensors.load(url) }), ("header", { _ = try SafeTensors.header(url) })] as [(String, () throws -> Void)] {
            XCTAssertThrowsError(try call(), label, file: file, line: line) { error in
                guard let error = error as? SafeTensorsError else {
                    return XCTFail("\(label): expected SafeTensorsError, got \(error)", file: file, line: line)
                }
                let text = error.description
                XCTAssertTrue(text.contains(url.lastPathComponent), "\(label): \(text)", file: file, line: line)
                for fragment in fragments {
                    XCTAssertTrue(text.contains(fragment), "\(label): \"\(fragment)\" not in: \(text)", file: file, line: line)
                }
            }
        }
    }

    func testTruncatedFile() throws {
        let url = directory.appendingPathComponent("truncated.safetensors")
        try Data([1, 2, 3]).write(to: url)
        assertLoadFails(url, mentioning: ["8-byte"])
    }

    func testHeaderLengthBeyondTheFile() throws {
        let url = try rawFile("long-header.safetensors", header: #"{"a":{}}"#, headerLength: 1 << 40)
        assertLoadFails(url, mentioning: ["past the end"])
        // A valid file cut off inside its data is caught by the offsets check.
        let good = directory.appendingPathComponent("cut.safetensors")
        try SafeTensors.save(["w": Tensor(shape: [4], values: [1, 2, 3, 4])], to: good)
        let data = try Data(contentsOf: good)
        try data.prefix(data.count - 4).write(to: good)
        assertLoadFails(good, mentioning: ["\"w\"", "outside"])
    }

    func testGarbageJSON() throws {
        assertLoadFails(try rawFile("garbage.safetensors", header: "{not json at all"), mentioning: ["not valid JSON"])
        assertLoadFails(try rawFile("array.safetensors", header: "[1, 2]"), mentioning: ["not an object"])
    }

    func testOffsetsThatDoNotMatchTheShape() throws {
        let url = try rawFile("mismatch.safetensors",
                              header: #"{"weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}"#,
                              buffer: [UInt8](repeating: 0, count: 16))
        assertLoadFails(url, mentioning: ["\"weight\"", "[0, 12]", "needs 16"])
    }

    func testOffsetsOutsideTheBuffer() throws {
        let url = try rawFile("outside.safetensors",
                              header: #"{"bias":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}"#,
                              buffer: [UInt8](repeating: 0, count: 16))
        assertLoadFails(url, mentioning: ["\"bias\"", "outside"])
    }

    func testMissingFieldsAndUnsupportedDType() throws {
        assertLoadFails(try rawFile("no-dtype.safetensors", header: #"{"x":{"shape":[1],"data_offsets":[0,4]}}"#,
                                    buffer: [0, 0, 0, 0]), mentioning: ["\"x\"", "dtype"])
        assertLoadFails(try rawFile("no-shape.safetensors", header: #"{"x":{"dtype":"F32","data_offsets":[0,4]}}"#,
                                    buffer: [0, 0, 0, 0]), mentioning: ["\"x\"", "shape"])
        assertLoadFails(try rawFile("no-offsets.safetensors", header: #"{"x":{"dtype":"F32","shape":[1]}}"#,
                                    buffer: [0, 0, 0, 0]), mentioning: ["\"x\"", "data_offsets"])
        assertLoadFails(try rawFile("negative.safetensors", header: #"{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#,
                                    buffer: [0, 0, 0, 0]), mentioning: ["\"x\"", "shape"])
        assertLoadFails(try rawFile("int64.safetensors", header: #"{"ids":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#,
                                    buffer: [UInt8](repeating: 0, count: 8)), mentioning: ["\"ids\"", "unsupported dtype I64"])
        assertLoadFails(try rawFile("bad-metadata.safetensors", header: #"{"__metadata__":{"n":3}}"#), mentioning: ["__metadata__"])
    }

    func testMissingFile() {
        assertLoadFails(directory.appendingPathComponent("does-not-exist.safetensors"), mentioning: ["cannot"])
    }
}
