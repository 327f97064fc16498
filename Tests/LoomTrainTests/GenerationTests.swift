import XCTest
@testable import LoomInference

final class GenerationTests: XCTestCase {
    func makeModel() -> LlamaModel { tinyRandomLlama(vocabulary: 50, seed: 5) }

    func testGreedyGenerationMatchesArgmaxOfFullRecomputation() {
        let model = makeModel()
        let prompt: [Int32] = [3, 14, 15, 9, 2]
        let result = Generator(model: model, stopTokens: []).generate(prompt: prompt, maxTokens: 10, sampling: .greedy)
        XCTAssertEqual(result.tokens.count, 10)
        XCTAssertEqual(result.finishReason, .length)
        var sequence = prompt
        for expected in result.tokens {
            let logits = withoutGradients { model.logits(tokens: sequence, batch: 1, sequence: sequence.count) }
            let last = logits.data + (sequence.count - 1) * 50
            var best = 0
            for v in 0..<50 where last[v] > last[best] { best = v }
            XCTAssertEqual(Int32(best), expected)
            sequence.append(expected)
        }
    }

    func testBatchedGenerationEqualsOneByOne() {
        let model = makeModel()
        let prompts: [[Int32]] = [[1, 2, 3], [7], [4, 4, 4, 4, 4, 9]]
        let sampling = SamplingParameters(temperature: 0.9, topK: 20, topP: 0.95, seed: 11)
        let generator = Generator(model: model, stopTokens: [0])
        let batched = generator.generateBatch(prompts: prompts, maxTokens: 8, sampling: sampling)
        for (i, prompt) in prompts.enumerated() {
            var single = sampling
            single.seed = sampling.seed + UInt64(i)
            let alone = generator.generate(prompt: prompt, maxTokens: 8, sampling: single)
            XCTAssertEqual(batched[i].tokens, alone.tokens, "prompt \(i)")
            XCTAssertEqual(batched[i].finishReason, alone.finishReason)
        }
    }

    func testSamplingIsSeededAndFiltersApply() {
        var logits = [Float](repeating: -10, count: 10)
        logits[3] = 5; logits[7] = 4.9; logits[1] = 1
        func draws(_ p: SamplingParameters) -> [Int32] {
            var s = Sampler(p)
            return (0..<200).map { _ in s.sample(logits: logits, vocabulary: 10, context: []) }
        }
        XCTAssertEqual(draws(.init(temperature: 1, seed: 3)), draws(.init(temperature: 1, seed: 3)))
        XCTAssertEqual(Set(draws(.init(temperature: 1, topK: 2, seed: 4))), [3, 7])
        XCTAssertEqual(Set(draws(.init(temperature: 1, topP: 0.4, seed: 4))), [3])
        XCTAssertEqual(Set(draws(.greedy)), [3])
        // The penalty pushes token 3 below token 7.
        var penalised = Sampler(.init(temperature: 0, repetitionPenalty: 2))
        XCTAssertEqual(penalised.sample(logits: logits, vocabulary: 10, context: [3]), 7)
    }

    func testStopTokenEndsGeneration() {
        let model = makeModel()
        let free = Generator(model: model, stopTokens: []).generate(prompt: [5, 6], maxTokens: 6, sampling: .greedy)
        let stopAt = free.tokens[2]
        let stopped = Generator(model: model, stopTokens: [stopAt]).generate(prompt: [5, 6], maxTokens: 6, sampling: .greedy)
        XCTAssertEqual(stopped.finishReason, .stop)
        XCTAssertEqual(stopped.tokens, Array(free.tokens.prefix(while: { $0 != stopAt })))
    }
}
