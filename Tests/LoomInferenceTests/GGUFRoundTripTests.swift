import XCTest
import Foundation
import LoomInference
import LoomNN
import LoomTokenizer

/// `loom export gguf` then `loom import gguf` on a tiny random model: the weights come back
/// (exactly in F32, within the quantisation step otherwise), the tokenizer encodes alike, and
/// GGUF files that contradict themselves are refused with the key or tensor named.
final class GGUFRoundTripTests: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("loom-gguf-\(getpid())-\(UInt32.random(in: 0 ... .max))")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: scratch) }

    static let texts = ["the cat sat on the mat, and the dog sat on the log.", "機械学習と言語モデル 123 + 456 = 579", "def f(x): return x * 2"]

    /// A tiny untied model (hidden 64, 4 heads, 2 KV heads) with a tokenizer trained on a few lines.
    func makeModelDirectory(ropeScaling: RopeScaling? = nil, name: String = "model") throws -> (URL, LlamaModel, ByteLevelBPETokenizer) {
        let tokenizer = ByteLevelBPETokenizer.train(texts: Self.texts, vocabSize: 300)
        let configuration = LlamaConfiguration(vocabularySize: tokenizer.vocabularySize, hiddenSize: 64, intermediateSize: 96, layerCount: 2,
                                               headCount: 4, kvHeadCount: 2, maxPositionEmbeddings: 128, rmsNormEps: 1e-5,
                                               ropeTheta: 10000, tieWordEmbeddings: false, eosTokenID: tokenizer.endOfTextID,
                                               ropeScaling: ropeScaling)
        let model = LlamaModel(configuration: configuration)
        model.initializeWeights(seed: 7, standardDeviation: 0.1)
        let directory = scratch.appendingPathComponent(name)
        try model.save(directory: directory)
        try tokenizer.save(to: directory)
        return (directory, model, tokenizer)
    }

    func maximumDifference(_ a: LlamaModel, _ b: LlamaModel) -> (Float, String) {
        var worst: (Float, String) = (0, "")
        for (x, y) in zip(a.parameters.entries, b.parameters.entries) {
            XCTAssertEqual(x.name, y.name)
            for i in 0 ..< x.tensor.count {
                let d = abs(x.tensor.data[i] - y.tensor.data[i])
                if d > worst.0 { worst = (d, x.name) }
            }
        }
        return worst
    }

    func testExportThenImportGivesTheModelBack() throws {
        let (directory, model, tokenizer) = try makeModelDirectory()
        for (type, tolerance) in [(GGMLType.f32, Float(0)), (.f16, 1e-3), (.q8_0, 4e-3), (.q4_0, 0.06)] {
            let file = scratch.appendingPathComponent("model-\(type.name).gguf")
            try GGUFExport.export(directory: directory, to: file, type: type)
            let gguf = try GGUFFile(contentsOf: file)
            XCTAssertEqual(gguf.info(named: "blk.0.attn_q.weight")?.type, type)
            XCTAssertEqual(gguf.info(named: "blk.0.attn_norm.weight")?.type, .f32)
            let imported = scratch.appendingPathComponent("imported-\(type.name)")
            try GGUFImport.importModel(from: file, to: imported)
            let back = try LlamaModel.load(directory: imported)
            // The import also records the tokenizer's bos and pad ids, which the original config left out.
            var expected = model.configuration
            expected.bosTokenID = tokenizer.tokenID("<|endoftext|>")
            expected.padTokenID = tokenizer.padID
            XCTAssertEqual(back.configuration, expected, type.name)
            let (worst, name) = maximumDifference(model, back)
            XCTAssertLessThanOrEqual(worst, tolerance, "\(type.name): \(name)")
            let backTokenizer = try ByteLevelBPETokenizer(contentsOf: imported)
            for text in Self.texts { XCTAssertEqual(backTokenizer.encode(text), tokenizer.encode(text), text) }
            XCTAssertEqual(backTokenizer.chatTemplate.jinja, tokenizer.chatTemplate.jinja)
            XCTAssertEqual(backTokenizer.endOfTextID, tokenizer.endOfTextID)
        }
    }

    /// RoPE scaling goes out as llama.cpp reads it (linear: rope.scaling.*; Llama 3.1's: one
    /// factor per rotary pair in rope_freqs.weight) and comes back as the same frequencies: the
    /// imported model's logits equal the original's.
    func testRopeScalingRoundTrips() throws {
        // head_dim 16, θ 10⁴: wavelengths 6.3, 19.9, 62.8, 199, … With L = 256, low 1, high 16,
        // three pairs lie in the blended band, which fixes low and high; with L = 32, low 1,
        // high 4, only one does, and import picks other values that give the same frequencies.
        let cases: [(RopeScaling, exact: Bool)] = [
            (.llama3(factor: 8, lowFrequencyFactor: 1, highFrequencyFactor: 16, originalMaxPositions: 256), true),
            (.llama3(factor: 8, lowFrequencyFactor: 1, highFrequencyFactor: 4, originalMaxPositions: 32), false),
            (.linear(factor: 2), true),
        ]
        for (index, (scaling, exact)) in cases.enumerated() {
            let (directory, model, _) = try makeModelDirectory(ropeScaling: scaling, name: "rope-\(index)")
            let file = scratch.appendingPathComponent("rope-\(index).gguf")
            try GGUFExport.export(directory: directory, to: file, type: .f32)
            let gguf = try GGUFFile(contentsOf: file)
            if case .llama3 = scaling {
                let factors = try gguf.tensor(named: GGUFLlama.ropeFactorsTensor).scalars
                XCTAssertEqual(factors, GGUFLlama.ropeFactors(model.configuration))
                XCTAssertEqual(factors.first, 1)          // the shortest wavelength is kept
                XCTAssertEqual(factors.last, 8)           // the longest is divided by the factor
            } else {
                XCTAssertEqual(gguf["llama.rope.scaling.type"], .string("linear"))
                XCTAssertNil(gguf.info(named: GGUFLlama.ropeFactorsTensor))
            }
            let imported = scratch.appendingPathComponent("rope-imported-\(index)")
            try GGUFImport.importModel(from: file, to: imported)
            let back = try LlamaModel.load(directory: imported)
            if exact { XCTAssertEqual(back.configuration.ropeScaling, scaling) }
            for (a, b) in zip(back.configuration.rotaryInverseFrequencies, model.configuration.rotaryInverseFrequencies) {
                XCTAssertEqual(a, b, accuracy: 1e-6 * b, "\(scaling)")
            }
            let tokens: [Int32] = (0 ..< 40).map { Int32(($0 * 37 + 11) % 300) }
            let expected = model.logits(tokens: tokens, batch: 1, sequence: tokens.count)
            let got = back.logits(tokens: tokens, batch: 1, sequence: tokens.count)
            var worst: Float = 0
            for i in 0 ..< got.count { worst = max(worst, abs(got.data[i] - expected.data[i])) }
            XCTAssertLessThanOrEqual(worst, 1e-4, "\(scaling)")
        }
    }

    /// Factors that no Hugging Face rope_scaling describes, or scalings Loom does not implement, are refused.
    func testUnsupportedRopeScalingInGGUFIsRefused() throws {
        let (directory, _, _) = try makeModelDirectory()
        let file = scratch.appendingPathComponent("model.gguf")
        try GGUFExport.export(directory: directory, to: file, type: .f32)
        assertImportFails(try variant(of: file, metadata: set("llama.rope.scaling.type", .string("yarn"))), ["llama.rope.scaling.type", "yarn"])
        assertImportFails(try variant(of: file, metadata: set("llama.rope.scaling.type", .string("linear"))), ["llama.rope.scaling.factor"])
        func withFactors(_ factors: [Float]) throws -> URL {
            let url = try variant(of: file)
            let source = try GGUFFile(contentsOf: url)
            var writer = GGUFWriter()
            writer.metadata = source.metadata
            for info in source.tensors { writer.addTensor(name: info.name, dimensions: info.dimensions, type: info.type, bytes: source.withRawBytes(of: info) { Data($0) }) }
            writer.addTensor(name: GGUFLlama.ropeFactorsTensor, dimensions: [factors.count], type: .f32, bytes: factors.withUnsafeBufferPointer { Data(buffer: $0) })
            let out = scratch.appendingPathComponent("factors-\(UInt32.random(in: 0 ... .max)).gguf")
            try writer.write(to: out)
            return out
        }
        // Not monotone: no band of wavelengths explains it.
        assertImportFails(try withFactors([1, 4, 1, 8, 8, 8, 8, 8]), [GGUFLlama.ropeFactorsTensor, "neither"])
        assertImportFails(try withFactors([1, 2, 4]), [GGUFLlama.ropeFactorsTensor, "8 float32 factors"])
        assertImportFails(try withFactors([1, 1, 0, 8, 8, 8, 8, 8]), [GGUFLlama.ropeFactorsTensor, "positive"])
        // All equal: a uniform (linear) scaling.
        let uniform = scratch.appendingPathComponent("uniform")
        try GGUFImport.importModel(from: try withFactors([Float](repeating: 3, count: 8)), to: uniform)
        XCTAssertEqual(try LlamaModel.load(directory: uniform).configuration.ropeScaling, .linear(factor: 3))
    }

    /// Q/K rows: export interleaves them as llama.cpp does, import undoes it.
    func testRotaryRowPermutationRoundTrips() {
        let weight = Tensor(shape: [8, 3], values: (0 ..< 24).map(Float.init))
        let permuted = GGUFLlama.permuteRotaryRows(weight, heads: 2)
        // Head 0 has rows 0…3; llama.cpp's order is 0, 2, 1, 3.
        XCTAssertEqual(Array(permuted.scalars[0 ..< 12]), [0, 1, 2, 6, 7, 8, 3, 4, 5, 9, 10, 11])
        XCTAssertEqual(GGUFLlama.unpermuteRotaryRows(permuted, heads: 2).scalars, weight.scalars)
    }

    /// A GGUF rewritten with one metadata value or tensor changed.
    func variant(of file: URL, metadata change: ((inout [(key: String, value: GGUFValue)]) -> Void)? = nil,
                 dropTensor: String? = nil, renameTensor: (String, String)? = nil) throws -> URL {
        let source = try GGUFFile(contentsOf: file)
        var writer = GGUFWriter()
        writer.metadata = source.metadata
        change?(&writer.metadata)
        for info in source.tensors where info.name != dropTensor {
            let name = info.name == renameTensor?.0 ? renameTensor!.1 : info.name
            let bytes = source.withRawBytes(of: info) { Data($0) }
            writer.addTensor(name: name, dimensions: info.dimensions, type: info.type, bytes: bytes)
        }
        let url = scratch.appendingPathComponent("variant-\(UInt32.random(in: 0 ... .max)).gguf")
        try writer.write(to: url)
        return url
    }

    func assertImportFails(_ url: URL, _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try GGUFImport.importModel(from: url, to: scratch.appendingPathComponent("refused")), file: file, line: line) { error in
            for fragment in fragments + [url.lastPathComponent] {
                XCTAssertTrue("\(error)".contains(fragment), "\"\(error)\" lacks \"\(fragment)\"", file: file, line: line)
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.appendingPathComponent("refused/model.safetensors").path), file: file, line: line)
    }

    func set(_ key: String, _ value: GGUFValue) -> (inout [(key: String, value: GGUFValue)]) -> Void {
        { metadata in
            if let index = metadata.firstIndex(where: { $0.key == key }) { metadata[index].value = value } else { metadata.append((key, value)) }
        }
    }

    func testContradictoryOrUnsupportedFilesAreRefused() throws {
        let (directory, _, _) = try makeModelDirectory()
        let file = scratch.appendingPathComponent("model.gguf")
        try GGUFExport.export(directory: directory, to: file, type: .f32)
        assertImportFails(try variant(of: file, metadata: set("general.architecture", .string("gpt2"))),
                          ["general.architecture", "\"gpt2\" is not supported"])
        assertImportFails(try variant(of: file, metadata: set("llama.feed_forward_length", .uint32(128))),
                          ["tensor \"blk.0.ffn_gate.weight\"", "[96, 64]", "[128, 64]"])
        assertImportFails(try variant(of: file, metadata: set("llama.block_count", .uint32(3))), ["missing the tensor for model.layers.2"])
        assertImportFails(try variant(of: file, metadata: set("llama.block_count", .uint32(1))), ["blk.1.", "1 blocks"])
        assertImportFails(try variant(of: file, metadata: set("llama.attention.head_count", .uint32(5))), ["num_attention_heads"])
        assertImportFails(try variant(of: file, metadata: set("llama.rope.dimension_count", .uint32(8))), ["llama.rope.dimension_count", "16"])
        assertImportFails(try variant(of: file, metadata: set("llama.block_count", .string("two"))), ["llama.block_count", "expected an integer"])
        assertImportFails(try variant(of: file, metadata: set("tokenizer.ggml.pre", .string("deepseek-llm"))), ["tokenizer.ggml.pre \"deepseek-llm\""])
        assertImportFails(try variant(of: file, metadata: set("tokenizer.ggml.eos_token_id", .uint32(100_000))), ["eos_token_id 100000"])
        assertImportFails(try variant(of: file, dropTensor: "blk.1.ffn_up.weight"), ["model.layers.1.mlp.up_proj.weight"])
        assertImportFails(try variant(of: file, renameTensor: ("blk.1.ffn_up.weight", "blk.1.ffn_upp.weight")), ["blk.1.ffn_upp.weight", "not a Llama weight"])
        assertImportFails(try variant(of: file, metadata: { $0.removeAll { $0.key == "llama.embedding_length" } }), ["llama.embedding_length", "missing"])
    }
}
