import XCTest
import Foundation
import LoomInference
import LoomNN
import LoomTokenizer

/// Loom's LoRA against the `peft` package: `Tests/Reference/check_peft_parity.py` builds a random
/// Llama and a peft adapter, writes their logits, loss and adapter gradients into a temporary
/// directory and runs this test with `LOOM_PEFT_REFERENCE` pointing there (then checks, in Python,
/// that peft loads the adapter this test writes with Loom's logits); without it the test is skipped.
final class LoRAPEFTParityTests: XCTestCase {
    func referenceDirectory() throws -> URL {
        guard let path = ProcessInfo.processInfo.environment["LOOM_PEFT_REFERENCE"] else {
            throw XCTSkip("LOOM_PEFT_REFERENCE is not set; Tests/Reference/check_peft_parity.py runs this test")
        }
        return URL(fileURLWithPath: path)
    }

    func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
        XCTAssertEqual(a.count, b.count)
        return zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
    }

    func testLogitsLossAndGradientsEqualPEFTAndLoomAdapterForPEFT() throws {
        let root = try referenceDirectory()
        Threading.configure(threads: 2)
        let reference = try SafeTensors.load(root.appendingPathComponent("reference.safetensors"))
        let ids = reference["input_ids"]!
        let batch = ids.shape[0], sequence = ids.shape[1]
        let tokens = ids.scalars.map { Int32($0) }
        // transformers shifts labels inside the loss: position t predicts token t + 1.
        var targets = [Int32](repeating: ignoredTarget, count: tokens.count)
        for b in 0..<batch { for t in 0..<(sequence - 1) { targets[b * sequence + t] = tokens[b * sequence + t + 1] } }

        let base = root.appendingPathComponent("base")
        let model = try LlamaModel.load(directory: base)
        let adapters = try LoRAAdapters.load(root.appendingPathComponent("peft-adapter"), for: model)
        XCTAssertEqual(adapters.settings, LoRASettings(rank: 4, alpha: 8, dropout: 0, targets: LoRATarget.allCases))
        model.attach(adapters)
        model.parameters.freeze()
        adapters.parameters.zeroGradients()
        let tape = Tape()
        let (logits, loss) = tape.record { () -> (Tensor, Tensor) in
            let logits = model.logits(tokens: tokens, batch: batch, sequence: sequence)
            return (logits, crossEntropy(logits: logits, targets: targets))
        }
        tape.backward(from: loss)
        let logitDifference = maxDifference(logits.scalars, reference["logits"]!.scalars)
        print("LoRAPEFT: max |logit difference| \(logitDifference), loss \(loss.item) vs \(reference["loss"]!.item)")
        XCTAssertLessThan(logitDifference, 1e-4)
        XCTAssertEqual(loss.item, reference["loss"]!.item, accuracy: 1e-5)
        var checked = 0, worst: Float = 0
        for entry in adapters.parameters.entries {
            guard let expected = reference["grad." + entry.name] else { XCTFail("no reference gradient for \(entry.name)"); continue }
            let scale = max(expected.scalars.map(abs).max()!, 1e-6)
            let difference = maxDifference(entry.tensor.gradScalars ?? [], expected.scalars) / scale
            worst = max(worst, difference)
            XCTAssertLessThan(difference, 1e-3, entry.name)
            checked += 1
        }
        print("LoRAPEFT: \(checked) adapter gradients, worst max |difference| / max |gradient| \(worst)")
        XCTAssertEqual(checked, 2 * 7 * model.configuration.layerCount)

        // An adapter of Loom's own for peft to load, with the logits Loom computes with it.
        let own = LoRAAdapters(settings: LoRASettings(rank: 3, alpha: 5, targets: [.q, .v, .o, .down]), model: model, seed: 11,
                               baseModel: base.standardizedFileURL.path)
        var rng = SeededRandom(seed: 12)
        for entry in own.parameters.entries where entry.name.hasSuffix("lora_B.weight") { entry.tensor.fillNormal(std: 0.3, rng: &rng) }
        model.attach(own)
        let ownLogits = withoutGradients { model.logits(tokens: tokens, batch: batch, sequence: sequence) }
        try own.save(to: root.appendingPathComponent("loom-adapter"))
        try SafeTensors.save([("logits", ownLogits)], to: root.appendingPathComponent("loom-logits.safetensors"))
        // `loom merge` reads a model directory, tokenizer included; the random model has none.
        let tokenizer = ByteLevelBPETokenizer.train(texts: ["a tokenizer for a random model, nothing more"], vocabSize: 280)
        XCTAssertLessThanOrEqual(tokenizer.vocabularySize, model.configuration.vocabularySize)
        try tokenizer.save(to: base)
    }
}
