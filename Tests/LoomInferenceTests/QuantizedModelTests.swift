import XCTest
import Foundation
import LoomInference
@testable import LoomNN
import LoomTokenizer

/// Quantized model directories end to end on a tiny random model: `QuantizedModelDirectory`
/// writes them, `ModelDirectory.load` keeps them quantized and generates with them, training
/// loads get float32, a GGUF imported with its blocks kept equals the same quantization, a
/// sequence's logits do not depend on the batch it is decoded in, and bad requests are refused.
final class QuantizedModelTests: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("loom-quant-\(getpid())-\(UInt32.random(in: 0 ... .max))")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        Threading.configure(threads: 2)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: scratch)
        Threading.configure(threads: 1)
    }

    static let texts = ["the cat sat on the mat, and the dog sat on the log.", "機械学習と言語モデル 123 + 456 = 579", "def f(x): return x * 2"]

    /// A tiny tied model (hidden 64, intermediate 96, 4 heads, 2 KV heads) with its tokenizer.
    func makeModelDirectory(tied: Bool = true) throws -> (URL, LlamaModel, ByteLevelBPETokenizer) {
        let tokenizer = ByteLevelBPETokenizer.train(texts: Self.texts, vocabSize: 300)
        let configuration = LlamaConfiguration(vocabularySize: tokenizer.vocabularySize, hiddenSize: 64, intermediateSize: 96, layerCount: 2,
                                               headCount: 4, kvHeadCount: 2, maxPositionEmbeddings: 128, rmsNormEps: 1e-5,
                                               ropeTheta: 10000, tieWordEmbeddings: tied, eosTokenID: tokenizer.endOfTextID)
        let model = LlamaModel(configuration: configuration)
        model.initializeWeights(seed: 7, standardDeviation: 0.1)
        let directory = scratch.appendingPathComponent("f32")
        try model.save(directory: directory)
        try tokenizer.save(to: directory)
        return (directory, model, tokenizer)
    }

    func lastLogits(_ model: LlamaModel, _ prompt: [Int32]) -> [Float] {
        let cache = KVCache(model: model, batch: 1, capacity: 64)
        return model.forward(newTokens: [prompt], cache: cache).scalars
    }

    func testQuantizedDirectoriesLoadQuantizedGenerateAndTrainDequantized() throws {
        let (directory, dense, tokenizer) = try makeModelDirectory()
        let prompt = tokenizer.encode("the cat sat on").map(Int32.init)
        let reference = lastLogits(dense, prompt)
        let spread = reference.max()! - reference.min()!
        for type in BlockQuantization.allCases {
            let output = scratch.appendingPathComponent(type.flagName)
            let summary = try QuantizedModelDirectory.quantize(directory: directory, type: type, to: output)
            // 2 layers × 7 matrices + the tied embedding quantized; 5 norms float32.
            XCTAssertEqual(summary.tensorTypes["F32"], 5)
            XCTAssertEqual(summary.tensorTypes[type.rawValue, default: 0] + (type == .q8_0 ? 0 : summary.tensorTypes["Q8_0", default: 0]), 15)
            XCTAssertFalse(FileManager.default.fileExists(atPath: output.appendingPathComponent("model.safetensors").path))

            let (model, loadedTokenizer) = try ModelDirectory.load(output)
            XCTAssertTrue(model.isQuantized)
            XCTAssertEqual(model.quantizedWeights.count, 15)
            XCTAssertEqual(model.quantizedWeights["model.layers.0.mlp.up_proj.weight"]?.type, type)
            XCTAssertEqual(model.quantizedWeights["model.embed_tokens.weight"]?.type, .q8_0)
            XCTAssertEqual(loadedTokenizer.encode("the cat"), tokenizer.encode("the cat"))
            // The stored blocks are the quantization of the float32 weights, row order included.
            let q = try XCTUnwrap(model.quantizedWeights["model.layers.1.self_attn.q_proj.weight"])
            let expected = QuantizedMatrix(quantizing: dense.parameters["model.layers.1.self_attn.q_proj.weight"], as: type)
            XCTAssertEqual(q.plainBytes(), expected.plainBytes(), "\(type) q_proj blocks")

            let logits = lastLogits(model, prompt)
            let worst = zip(logits, reference).map { abs($0 - $1) }.max()!
            print("QuantizedModelTests: \(type.rawValue) max |Δlogit| \(worst) (logit spread \(spread))")
            XCTAssertLessThan(worst, (type == .q8_0 ? 0.03 : 0.25) * spread, "\(type) logits")

            let result = Generator(model: model, stopTokens: []).generate(prompt: prompt, maxTokens: 12, sampling: .greedy) { _ in true }
            XCTAssertEqual(result.tokens.count, 12)
            XCTAssertTrue(result.tokens.allSatisfy { $0 >= 0 && Int($0) < model.configuration.vocabularySize })

            // Training stages load the same directory dequantized: plain float32 parameters.
            let (trainable, _) = try ModelDirectory.load(output, heads: .languageModel, keepQuantized: false)
            XCTAssertFalse(trainable.isQuantized)
            let up = trainable.parameters["model.layers.0.mlp.up_proj.weight"]
            XCTAssertEqual(up.scalars, model.quantizedWeights["model.layers.0.mlp.up_proj.weight"]!.dequantized().scalars)
            let reward = try LlamaModel.load(directory: output, heads: .score)
            XCTAssertNotNil(reward.scoreWeight)
        }
    }

    func testASequenceDecodedInABatchOfEightEqualsItDecodedAlone() throws {
        let (directory, _, tokenizer) = try makeModelDirectory()
        let output = scratch.appendingPathComponent("q4_1")
        try QuantizedModelDirectory.quantize(directory: directory, type: .q4_1, to: output)
        let (model, _) = try ModelDirectory.load(output)
        let prompts = (0 ..< 8).map { i in tokenizer.encode(Self.texts[i % 3] + String(repeating: " x", count: i)).map(Int32.init) }
        let steps: [[Int32]] = (0 ..< 8).map { [Int32($0 + 10)] }
        let vocabulary = model.configuration.vocabularySize
        // The plain forward (BLAS attention) and the server's batch-invariant one.
        for batchInvariant in [false, true] {
            let batch = KVCache(model: model, batch: 8, capacity: 96)
            var together = model.forward(newTokens: prompts, cache: batch, batchInvariant: batchInvariant).scalars
            together += model.forward(newTokens: steps, cache: batch, batchInvariant: batchInvariant).scalars
            for (i, prompt) in prompts.enumerated() {
                let cache = KVCache(model: model, batch: 1, capacity: 96)
                let alone = model.forward(newTokens: [prompt], cache: cache, batchInvariant: batchInvariant).scalars
                    + model.forward(newTokens: [steps[i]], cache: cache, batchInvariant: batchInvariant).scalars
                let inBatch = Array(together[i * vocabulary ..< (i + 1) * vocabulary]) + Array(together[(8 + i) * vocabulary ..< (9 + i) * vocabulary])
                XCTAssertEqual(alone.map(\.bitPattern), inBatch.map(\.bitPattern),
                               "sequence \(i) (batchInvariant \(batchInvariant)): logits differ between batch 8 and batch 1")
            }
        }
    }

    func testImportKeepingBlocksEqualsQuantizingTheSameWeights() throws {
        let (directory, _, _) = try makeModelDirectory(tied: false)
        let gguf = scratch.appendingPathComponent("model.q8_0.gguf")
        try GGUFExport.export(directory: directory, to: gguf, type: .q8_0)
        let imported = scratch.appendingPathComponent("imported")
        let summary = try GGUFImport.importModel(from: gguf, to: imported, keepQuantized: true)
        XCTAssertEqual(summary.storedTypes?["Q8_0"], 16)
        let quantized = scratch.appendingPathComponent("quantized")
        try QuantizedModelDirectory.quantize(directory: directory, type: .q8_0, to: quantized)
        let a = try LlamaModel.load(directory: imported, keepQuantized: true), b = try LlamaModel.load(directory: quantized, keepQuantized: true)
        XCTAssertEqual(Set(a.quantizedWeights.keys), Set(b.quantizedWeights.keys))
        for (name, matrix) in a.quantizedWeights {
            XCTAssertEqual(matrix.plainBytes(), b.quantizedWeights[name]!.plainBytes(), name)
        }
    }

    func testBadRequestsAreRefusedWithTheDirectoryNamed() throws {
        let (directory, _, _) = try makeModelDirectory()
        let output = scratch.appendingPathComponent("q8")
        try QuantizedModelDirectory.quantize(directory: directory, type: .q8_0, to: output)
        func message(_ body: () throws -> Void) -> String {
            do { try body(); return "no error" } catch { return "\(error)" }
        }
        let quantizedModel = try LlamaModel.load(directory: output, keepQuantized: true)
        XCTAssertTrue(message { try quantizedModel.save(directory: self.scratch.appendingPathComponent("again")) }.contains("quantized"))
        XCTAssertTrue(message { _ = try LlamaModel.load(directory: output, heads: .score, keepQuantized: true) }.contains("score head"))
        // Quantizing into a float32 model directory would leave two weight files.
        XCTAssertTrue(message { try QuantizedModelDirectory.quantize(directory: directory, type: .q4_0, to: directory) }.contains("model.safetensors"))
        try FileManager.default.copyItem(at: directory.appendingPathComponent("model.safetensors"), to: output.appendingPathComponent("model.safetensors"))
        let both = message { _ = try ModelDirectory.load(output) }
        XCTAssertTrue(both.contains(output.path) && both.contains("model.gguf"), both)
        try FileManager.default.removeItem(at: output.appendingPathComponent("model.safetensors"))
        // A block scale of infinity is refused, naming the tensor.
        let weights = output.appendingPathComponent("model.gguf")
        var corrupted = try Data(contentsOf: weights)
        let file = try GGUFFile(contentsOf: weights)
        let info = try XCTUnwrap(file.info(named: "blk.0.ffn_up.weight"))
        corrupted[file.dataOffset + info.offset + 1] = 0x7C   // half 0x7C00 = +inf
        corrupted[file.dataOffset + info.offset] = 0x00
        try corrupted.write(to: weights)
        let infinite = message { _ = try ModelDirectory.load(output) }
        XCTAssertTrue(infinite.contains("blk.0.ffn_up.weight") && infinite.contains("non-finite"), infinite)
        // A truncated model.gguf is a clear error naming the file.
        let bytes = try Data(contentsOf: weights)
        try bytes.prefix(bytes.count / 2).write(to: weights)
        let truncated = message { _ = try ModelDirectory.load(output) }
        XCTAssertTrue(truncated.contains("model.gguf"), truncated)
    }
}
