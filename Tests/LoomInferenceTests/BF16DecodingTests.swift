import XCTest
@testable import LoomTensor
@testable import LoomNN
@testable import LoomInference

/// `--precision bf16` covers decoding too (PPO's and GRPO's rollouts): every step's products are
/// bf16 whatever its number of rows, as under PyTorch's autocast. A bf16 product is row-invariant
/// by its definition (each element one dot product in increasing k), so a sequence decodes to the
/// same logits alone as beside others.
final class BF16DecodingTests: XCTestCase {
    let vocabulary = 97
    let level: KernelLevel = KernelLevel.widest(for: .current) >= .avx2 ? .avx2 : .portable

    /// A random 2-layer model (4 heads, 2 key/value heads, tied head) of `hidden` width.
    func randomModel(hidden: Int = 64, intermediate: Int = 96, seed: UInt64, standardDeviation: Float = 0.3) -> LlamaModel {
        let config = LlamaConfiguration(vocabularySize: vocabulary, hiddenSize: hidden, intermediateSize: intermediate,
                                        layerCount: 2, headCount: 4, kvHeadCount: 2, maxPositionEmbeddings: 64)
        let model = LlamaModel(configuration: config)
        model.initializeWeights(seed: seed, standardDeviation: standardDeviation)
        return model
    }

    func testDecodingStepsUseBF16ProductsWhateverTheRowCount() {
        let model = randomModel(seed: 5)
        var rng = SeededRandom(seed: 9)
        let prompts = (0..<5).map { _ in (0..<6).map { _ in Int32(rng.nextInt(below: vocabulary)) } }
        let next: [Int32] = [3, 14, 15, 92, 65]
        // The first sequence's logits after its prompt and one decoding step, decoded with others.
        func firstSequenceLogits(decodedWith count: Int) -> [Float] {
            withoutGradients {
                let cache = KVCache(model: model, batch: count)
                _ = model.forward(newTokens: Array(prompts[0..<count]), cache: cache)
                let logits = model.forward(newTokens: (0..<count).map { [next[$0]] }, cache: cache)
                return Array(UnsafeBufferPointer(start: logits.data, count: vocabulary))
            }
        }
        let (alone, together) = MatrixProducts.with(bf16: .emulated(level)) {
            (firstSequenceLogits(decodedWith: 1), firstSequenceLogits(decodedWith: 5))
        }
        XCTAssertEqual(alone.map(\.bitPattern), together.map(\.bitPattern), "a 1-row decoding step against a 5-row one")
        // They are bf16's logits: float32 products give others.
        XCTAssertNotEqual(alone, firstSequenceLogits(decodedWith: 1))
    }

    /// Decoding steps (a 5-token prompt, then one token at a time through the KV cache) give the
    /// logits of the training forward pass over the whole sequence, both with bf16 products: the
    /// attention of a step too, not only its projections. Float32 attention in the steps would
    /// differ by bf16's rounding of the queries and keys (about 1e-3 here).
    func testDecodingStepsMatchTheBF16ForwardPass() {
        let length = 9
        let model = randomModel(seed: 6)
        var rng = SeededRandom(seed: 10)
        let sequence = (0..<length).map { _ in Int32(rng.nextInt(below: vocabulary)) }
        MatrixProducts.with(bf16: .emulated(level)) {
            withoutGradients {
                let full = model.logits(tokens: sequence, batch: 1, sequence: length)
                let cache = KVCache(model: model, batch: 1)
                _ = model.forward(newTokens: [Array(sequence[0..<5])], cache: cache)
                for t in 5..<length {
                    let step = model.forward(newTokens: [[sequence[t]]], cache: cache)
                    for v in 0..<vocabulary {
                        XCTAssertEqual(step.data[v], full.data[t * vocabulary + v], accuracy: 2e-5, "position \(t), token \(v)")
                    }
                }
            }
        }
    }

    /// Generation under bf16 packs each weight once (`PackedWeights`) and computes the same bits
    /// as packing it at every product: prefill (split by rows over 2 threads), 5-row steps (split
    /// by columns at panel boundaries), then a 1-row step; and it is wired into `Generator`.
    func testGenerationPacksEachWeightOnceWithTheSameBits() {
        let model = randomModel(hidden: 256, intermediate: 384, seed: 8, standardDeviation: 0.05)
        let weightCount = 2 * 7 + 1  // q, k, v, o, gate, up, down per layer, and the tied head
        var rng = SeededRandom(seed: 12)
        let prompts = (0..<5).map { _ in (0..<30).map { _ in Int32(rng.nextInt(below: vocabulary)) } }
        func steps() -> [[UInt32]] {
            withoutGradients {
                let cache = KVCache(model: model, batch: 5)
                var logits = [model.forward(newTokens: prompts, cache: cache).scalars.map(\.bitPattern)]
                for t in 0..<3 {
                    logits.append(model.forward(newTokens: (0..<5).map { [Int32(($0 * 7 + t) % vocabulary)] }, cache: cache)
                        .scalars.map(\.bitPattern))
                }
                logits.append(model.forward(newTokens: [[11], [], [], [], []], cache: cache).scalars.map(\.bitPattern))
                return logits
            }
        }
        for threads in [1, 2] {
            Threading.configure(threads: threads)
            defer { Threading.configure(threads: 1) }
            MatrixProducts.with(bf16: .emulated(level)) {
                let everyProduct = steps()
                let once = PackedWeights.during { steps() }
                XCTAssertEqual(once, everyProduct, "\(threads) thread(s)")
                XCTAssertEqual(PackedWeights.lastPackings, weightCount, "\(threads) thread(s)")
                // A weight changed between two generations (as LoRA's merge does) is packed anew.
                let q = model.parameters["model.layers.0.self_attn.q_proj.weight"]
                let saved = q.scalars
                for i in 0..<q.count { q.data[i] *= 1.5 }
                defer { q.data.update(from: saved, count: saved.count) }
                XCTAssertEqual(PackedWeights.during { steps() }, steps(), "after a weight changed, \(threads) thread(s)")
                XCTAssertNotEqual(steps(), everyProduct)
            }
        }
        MatrixProducts.with(bf16: .emulated(level)) {
            PackedWeights.lastPackings = 0
            _ = Generator(model: model, stopTokens: []).generateBatch(prompts: Array(prompts[0..<2]), maxTokens: 3, sampling: .greedy)
            XCTAssertEqual(PackedWeights.lastPackings, weightCount, "Generator.generateBatch")
        }
    }
}
