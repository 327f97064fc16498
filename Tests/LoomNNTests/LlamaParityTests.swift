import XCTest
import Foundation
@testable import LoomNN

/// Parity with Hugging Face `transformers` on the same weights: the reference files are
/// produced by `Tests/Reference/make_llama_reference.py` (a random `LlamaForCausalLM` with
/// grouped-query attention) and committed; CI regenerates them and checks they still agree.
final class LlamaParityTests: XCTestCase {
    var referenceRoot: URL { Bundle.module.url(forResource: "Reference", withExtension: nil)! }

    override func setUp() { Threading.configure(threads: 2) }

    struct Reference {
        let model: LlamaModel
        let tensors: [String: Tensor]
        let tokens: [Int32]
        let targets: [Int32]
        let batch: Int
        let sequence: Int
    }

    func loadReference(_ name: String) throws -> Reference {
        let dir = referenceRoot.appendingPathComponent(name)
        let model = try LlamaModel.load(directory: dir)
        let tensors = try SafeTensors.load(dir.appendingPathComponent("reference.safetensors"))
        let ids = tensors["input_ids"]!
        let batch = ids.shape[0], sequence = ids.shape[1]
        let tokens = ids.scalars.map { Int32($0) }
        // transformers shifts labels inside the loss: position t predicts token t + 1.
        var targets = [Int32](repeating: ignoredTarget, count: tokens.count)
        for b in 0..<batch { for t in 0..<(sequence - 1) { targets[b * sequence + t] = tokens[b * sequence + t + 1] } }
        return Reference(model: model, tensors: tensors, tokens: tokens, targets: targets, batch: batch, sequence: sequence)
    }

    /// ‖a − b‖ / ‖b‖ over a whole tensor.
    func relativeError(_ a: Tensor, _ b: Tensor) -> Double {
        XCTAssertEqual(a.count, b.count)
        var diff = 0.0, norm = 0.0
        for i in 0..<a.count {
            let d = Double(a.data[i]) - Double(b.data[i])
            diff += d * d
            norm += Double(b.data[i]) * Double(b.data[i])
        }
        return diff.squareRoot() / max(norm.squareRoot(), 1e-30)
    }

    func checkForwardAndGradients(_ name: String) throws {
        let r = try loadReference(name)
        let tape = Tape()
        let logits = tape.record { r.model.logits(tokens: r.tokens, batch: r.batch, sequence: r.sequence) }
        let expectedLogits = r.tensors["logits"]!
        var maxError: Float = 0
        for i in 0..<logits.count { maxError = max(maxError, abs(logits.data[i] - expectedLogits.data[i])) }
        XCTAssertLessThanOrEqual(maxError, 1e-4, "\(name): logits max abs error")

        let loss = tape.record { crossEntropy(logits: logits, targets: r.targets) }
        let expectedLoss = r.tensors["loss"]!.item
        XCTAssertLessThanOrEqual(abs(loss.item - expectedLoss) / expectedLoss, 1e-5, "\(name): loss \(loss.item) vs \(expectedLoss)")

        tape.backward(from: loss)
        var checked = 0
        for entry in r.model.parameters.entries {
            guard let expected = r.tensors["grad.\(entry.name)"] else {
                XCTFail("\(name): reference has no gradient for \(entry.name)"); continue
            }
            let gradient = Tensor(storage: entry.tensor.grad, shape: entry.shape)
            XCTAssertLessThanOrEqual(relativeError(gradient, expected), 1e-3, "\(name): gradient of \(entry.name)")
            checked += 1
        }
        XCTAssertEqual(checked, r.model.parameters.entries.count)
    }

    func testUntiedModelMatchesTransformers() throws { try checkForwardAndGradients("llama-tiny") }

    func testTiedModelMatchesTransformers() throws {
        let r = try loadReference("llama-tiny-tied")
        XCTAssertTrue(r.model.configuration.tieWordEmbeddings)
        XCTAssertFalse(r.model.parameters.contains("lm_head.weight"))
        try checkForwardAndGradients("llama-tiny-tied")
    }

    /// RoPE scaling from config.json (transformers 5's rope_parameters): Llama 3.1's and linear
    /// position interpolation, each against transformers on the same weights; and the same weights
    /// with plain RoPE give logits far from the reference, so a scaling left unapplied fails.
    func testRopeScalingMatchesTransformers() throws {
        for (name, expected) in [("llama-tiny-rope-llama3", RopeScaling.llama3(factor: 4, lowFrequencyFactor: 1, highFrequencyFactor: 4, originalMaxPositions: 8)),
                                 ("llama-tiny-rope-linear", RopeScaling.linear(factor: 2))] {
            let r = try loadReference(name)
            XCTAssertEqual(r.model.configuration.ropeScaling, expected, name)
            try checkForwardAndGradients(name)

            var plain = r.model.configuration
            plain.ropeScaling = nil
            let unscaled = LlamaModel(configuration: plain, heads: r.model.heads)
            unscaled.parameters.copyValues(from: r.model.parameters)
            let logits = unscaled.logits(tokens: r.tokens, batch: r.batch, sequence: r.sequence)
            let reference = r.tensors["logits"]!
            var largest: Float = 0
            for i in 0..<logits.count { largest = max(largest, abs(logits.data[i] - reference.data[i])) }
            XCTAssertGreaterThan(largest, 1e-2, "\(name): plain RoPE should not match the scaled reference")

            // Saved and loaded again, the scaling survives (as rope_scaling, which transformers 4.45+ and 5 read).
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("loom-rope-\(UUID())")
            defer { try? FileManager.default.removeItem(at: dir) }
            try r.model.save(directory: dir)
            let saved = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("config.json"))) as! [String: Any]
            XCTAssertNotNil(saved["rope_scaling"] as? [String: Any], name)
            XCTAssertEqual(try LlamaModel.load(directory: dir).configuration, r.model.configuration, name)
        }
    }

    func testSaveLoadRoundTripIsBitExact() throws {
        let r = try loadReference("llama-tiny")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("loom-roundtrip-\(UUID())")
        defer { try? FileManager.default.removeItem(at: dir) }
        try r.model.save(directory: dir)
        let again = try LlamaModel.load(directory: dir)
        XCTAssertEqual(again.configuration, r.model.configuration)
        XCTAssertEqual(again.parameters.names, r.model.parameters.names)
        XCTAssertEqual(memcmp(again.parameters.values.pointer, r.model.parameters.values.pointer, r.model.parameters.count * 4), 0)
    }

    /// A checkpoint in shards with `model.safetensors.index.json` (Hugging Face's layout above its
    /// shard size) loads bit for bit like the single file; an index that disagrees with its shards
    /// is refused with the shard, tensor or entry named.
    func testShardedCheckpointLoadsLikeTheSingleFile() throws {
        let r = try loadReference("llama-tiny")
        let single = referenceRoot.appendingPathComponent("llama-tiny")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("loom-sharded-\(UUID())")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: single.appendingPathComponent("config.json"), to: dir.appendingPathComponent("config.json"))
        let entries = r.model.parameters.entries
        let shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
        var weightMap: [String: String] = [:]
        for (i, shard) in shards.enumerated() {
            let part = entries.enumerated().filter { $0.offset % 2 == i }.map { (name: $0.element.name, tensor: $0.element.tensor) }
            try SafeTensors.save(part, metadata: ["format": "pt"], to: dir.appendingPathComponent(shard))
            for entry in part { weightMap[entry.name] = shard }
        }
        func writeIndex(_ map: [String: Any]) throws {
            let index: [String: Any] = ["metadata": ["total_size": r.model.parameters.count * 4], "weight_map": map]
            try JSONSerialization.data(withJSONObject: index).write(to: dir.appendingPathComponent(LlamaModel.shardIndexFileName))
        }
        try writeIndex(weightMap)
        let loaded = try LlamaModel.load(directory: dir)
        XCTAssertEqual(loaded.parameters.names, r.model.parameters.names)
        XCTAssertEqual(memcmp(loaded.parameters.values.pointer, r.model.parameters.values.pointer, r.model.parameters.count * 4), 0)

        func assertRefused(_ fragments: [String], line: UInt = #line) {
            XCTAssertThrowsError(try LlamaModel.load(directory: dir), line: line) { error in
                for fragment in fragments { XCTAssertTrue("\(error)".contains(fragment), "\"\(error)\" lacks \"\(fragment)\"", line: line) }
            }
        }
        let moved = entries[0].name
        try writeIndex(weightMap.merging([moved: shards[1]]) { $1 })
        assertRefused([shards[0], moved, "places it in \(shards[1])"])
        try writeIndex(weightMap.filter { $0.key != moved })
        assertRefused([shards[0], moved, "not in model.safetensors.index.json's weight_map"])
        try writeIndex(weightMap.merging(["model.extra.weight": shards[0]]) { $1 })
        assertRefused([shards[0], "model.extra.weight", "is missing"])
        try writeIndex(weightMap.merging([moved: "../\(shards[0])"]) { $1 })
        assertRefused([LlamaModel.shardIndexFileName, moved, "not a file name"])
        try writeIndex(weightMap.merging([moved: "model-00003-of-00002.safetensors"]) { $1 })
        assertRefused(["model-00003-of-00002.safetensors", "file not found"])
        try Data("{\"weight_map\": []}".utf8).write(to: dir.appendingPathComponent(LlamaModel.shardIndexFileName))
        assertRefused([LlamaModel.shardIndexFileName, "weight_map"])
        // A single model.safetensors beside the shards is the one read, as transformers does.
        try FileManager.default.copyItem(at: single.appendingPathComponent("model.safetensors"), to: dir.appendingPathComponent("model.safetensors"))
        XCTAssertNoThrow(try LlamaModel.load(directory: dir))
    }

    func testMisshapedCheckpointNamesTheTensor() throws {
        let r = try loadReference("llama-tiny")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("loom-misshaped-\(UUID())")
        defer { try? FileManager.default.removeItem(at: dir) }
        try r.model.save(directory: dir)
        var config = r.model.configuration
        config.intermediateSize = 100
        try config.save(dir.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try LlamaModel.load(directory: dir)) { error in
            XCTAssertTrue("\(error)".contains("gate_proj"), "\(error)")
            XCTAssertTrue("\(error)".contains("model.safetensors"), "\(error)")
        }
    }

    func testKVCacheLogitsEqualFullRecomputation() throws {
        let r = try loadReference("llama-tiny")
        let sequence = Array(r.tokens[0..<r.sequence])
        let full = withoutGradients { r.model.logits(tokens: sequence, batch: 1, sequence: r.sequence) }
        let cache = KVCache(model: r.model, batch: 1)
        // A 5-token prompt, then one token at a time.
        let prompt = r.model.forward(newTokens: [Array(sequence[0..<5])], cache: cache, allLogits: true)
        var rows: [[Float]] = (0..<5).map { Array(UnsafeBufferPointer(start: prompt.data + $0 * 97, count: 97)) }
        for t in 5..<r.sequence {
            let step = r.model.forward(newTokens: [[sequence[t]]], cache: cache)
            rows.append(step.scalars)
        }
        for t in 0..<r.sequence { for v in 0..<97 {
            XCTAssertEqual(rows[t][v], full.data[t * 97 + v], accuracy: 2e-5, "position \(t)")
        } }
    }
}

