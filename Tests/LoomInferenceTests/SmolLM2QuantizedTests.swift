import XCTest
import Foundation
import LoomInference
import LoomNN
import LoomTokenizer

/// SmolLM2-135M-Instruct imported with `--dtype keep` (its Q4_1 blocks multiplied directly, with
/// 8-bit activations) against `transformers` running the same GGUF dequantized to float32. Run by
/// Tests/Reference/check_smollm2_parity.py, which writes `model-keep` beside the references in
/// `LOOM_SMOLLM2_REFERENCE`; skipped without it.
final class SmolLM2QuantizedTests: XCTestCase {
    func testSmolLM2KeptQuantizedFollowsTransformers() throws {
        guard let path = ProcessInfo.processInfo.environment["LOOM_SMOLLM2_REFERENCE"] else {
            throw XCTSkip("LOOM_SMOLLM2_REFERENCE is not set; Tests/Reference/check_smollm2_parity.py runs this test")
        }
        let directory = URL(fileURLWithPath: path)
        let tensors = try SafeTensors.load(directory.appendingPathComponent("reference.safetensors"))
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("reference.json"))) as! [String: Any]
        Threading.configure(threads: 2)
        let (model, _) = try ModelDirectory.load(directory.appendingPathComponent("model-keep"))
        XCTAssertEqual(model.quantizedWeights.values.filter { $0.type == .q4_1 }.count, 210)
        XCTAssertEqual(model.quantizedWeights["model.embed_tokens.weight"]?.type, .q8_0)
        let vocabulary = model.configuration.vocabularySize
        for index in 0 ..< (json["prompts"] as! Int) {
            let prompt = (tensors["prompt.\(index).ids"]?.scalars ?? []).map { Int32($0) }
            let expected = try XCTUnwrap(tensors["prompt.\(index).logits"])
            let cache = KVCache(model: model, batch: 1, capacity: prompt.count + 16)
            let logits = model.forward(newTokens: [prompt], cache: cache, allLogits: true)
            XCTAssertEqual(logits.count, expected.count)
            var worst: Float = 0, agreeing = 0
            for position in 0 ..< prompt.count {
                let ours = logits.data + position * vocabulary, theirs = expected.data + position * vocabulary
                var oursBest = 0, theirsBest = 0
                for v in 0 ..< vocabulary {
                    worst = max(worst, abs(ours[v] - theirs[v]))
                    if ours[v] > ours[oursBest] { oursBest = v }
                    if theirs[v] > theirs[theirsBest] { theirsBest = v }
                }
                agreeing += oursBest == theirsBest ? 1 : 0
            }
            let greedy = Generator(model: model, stopTokens: []).generate(prompt: prompt, maxTokens: 16, sampling: .greedy) { _ in true }
            let expectedGreedy = (tensors["prompt.\(index).greedy"]?.scalars ?? []).prefix(16).map { Int32($0) }
            let sharedPrefix = zip(greedy.tokens, expectedGreedy).prefix { $0 == $1 }.count
            print("SmolLM2 Q4_1 kept (8-bit activations) prompt \(index): max |Δlogit| vs transformers \(worst), "
                  + "top-1 agreement \(agreeing)/\(prompt.count) positions, greedy identical for \(sharedPrefix)/16 tokens")
            XCTAssertGreaterThanOrEqual(Double(agreeing), 0.9 * Double(prompt.count), "prompt \(index): top-1 agreement")
            // Measured on the three prompts: max |Δlogit| 1.15–1.65 over the whole vocabulary (the
            // 8-bit activations), top-1 agreement 100%, greedy identical for 16/16 tokens.
            XCTAssertLessThan(worst, 3, "prompt \(index): logits drift")
            XCTAssertGreaterThanOrEqual(sharedPrefix, 12, "prompt \(index): greedy continuation")
        }
    }
}
