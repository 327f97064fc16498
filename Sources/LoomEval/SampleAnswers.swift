import Foundation
import LoomData
import LoomInference
import LoomTokenizer
import LoomTrain

/// The model's own answers to chat prompts: its greedy answer (when `greedy`) and `samples`
/// answers sampled at `temperature`, seeded, in batches with the KV cache. `result[p]` lists the
/// answers to `prompts[p]` in that order (greedy first). The same model, prompts and seed give the
/// same answers. Used for on-policy preference data: self-rejected DPO pairs, and rankings that
/// hold the SFT model's graded samples.
///
///     let answers = sampleAnswers(model: sft, tokenizer: tokenizer, prompts: ["Is 7 odd or even?"], samples: 2, seed: 1)
public func sampleAnswers(model: LlamaModel, tokenizer: ByteLevelBPETokenizer, prompts: [String], greedy: Bool = true, samples: Int,
                          temperature: Float = 1, seed: UInt64, maxTokens: Int = 16, batchSize: Int = 64) -> [[String]] {
    precondition(samples >= 0 && batchSize >= 1, "samples must not be negative and batchSize must be positive")
    let encoder = ChatEncoder(tokenizer: tokenizer)
    let generator = Generator(model: model, stopTokens: encoder.stopTokens)
    let inputs = prompts.map { encoder.prompt($0) }
    var answers = [[String]](repeating: [], count: prompts.count)
    let settings: [SamplingParameters] = (greedy ? [.greedy] : [])
        + (0..<samples).map { SamplingParameters(temperature: temperature, seed: seed &+ UInt64($0 + 1) &* 1_000_003) }
    for sampling in settings {
        for start in stride(from: 0, to: prompts.count, by: batchSize) {
            let end = min(start + batchSize, prompts.count)
            var batchSampling = sampling
            batchSampling.seed = sampling.seed &+ UInt64(start)
            let outputs = generator.generateBatch(prompts: Array(inputs[start..<end]), maxTokens: maxTokens, sampling: batchSampling)
            for (i, output) in outputs.enumerated() { answers[start + i].append(encoder.text(output.tokens)) }
        }
    }
    return answers
}

/// How often an answer *sampled* at `temperature` is right: `samples` answers per prompt (chat
/// format, seeded), each checked by the task verifier, averaged over all of them. This is the
/// quantity policy-gradient training raises (its rollouts are sampled); `exactMatchAccuracy`
/// measures the greedy answer, which only changes once the right answer becomes the most likely one.
public func sampledExactMatchAccuracy(model: LlamaModel, tokenizer: ByteLevelBPETokenizer, prompts: [PromptExample], temperature: Float = 1,
                                      samples: Int = 4, seed: UInt64 = 0, maxTokens: Int = 16) -> Double {
    precondition(samples >= 1, "sampledExactMatchAccuracy needs at least one sample per prompt")
    let answers = sampleAnswers(model: model, tokenizer: tokenizer, prompts: prompts.map(\.prompt), greedy: false, samples: samples,
                                temperature: temperature, seed: seed, maxTokens: maxTokens)
    var right = 0, total = 0
    for (p, list) in zip(prompts, answers) {
        for answer in list {
            total += 1
            if InstructionTasks.verify(response: answer, answer: p.answer ?? "") { right += 1 }
        }
    }
    return Double(right) / Double(max(total, 1))
}
