import Foundation
import LoomData
import LoomInference
import LoomTokenizer

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

/// Answers sampled at one temperature, graded: how many of the `samplesPerPrompt` answers to
/// each prompt the task verifier accepts.
public struct SampledExactMatch: Equatable, Sendable {
    /// `correct[p]`: right answers among the samples for prompt `p`.
    public var correct: [Int]
    public var samplesPerPrompt: Int

    public init(correct: [Int], samplesPerPrompt: Int) {
        precondition(samplesPerPrompt >= 1 && correct.allSatisfy { (0...samplesPerPrompt).contains($0) }, "correct counts must lie in 0...samplesPerPrompt")
        self.correct = correct
        self.samplesPerPrompt = samplesPerPrompt
    }

    /// The share of all sampled answers that are right: the expected accuracy of one sample.
    public var accuracy: Double {
        Double(correct.reduce(0, +)) / Double(max(correct.count * samplesPerPrompt, 1))
    }

    /// pass@k: the chance that at least one of k answers (k ≤ samples per prompt) is right,
    /// averaged over prompts, with the unbiased estimator of Chen et al. (2021),
    /// 1 − C(n − c, k) / C(n, k) for c right answers out of n. pass@n is the share of prompts with
    /// any right answer; pass@1 equals `accuracy`. The gap between pass@k and the greedy accuracy
    /// is what reinforcement learning from samples can find and reinforce.
    public func passAt(_ k: Int) -> Double {
        precondition((1...samplesPerPrompt).contains(k), "pass@k needs 1 ≤ k ≤ \(samplesPerPrompt), got \(k)")
        guard !correct.isEmpty else { return 0 }
        let n = samplesPerPrompt
        var total = 0.0
        for c in correct {
            if n - c < k { total += 1; continue }
            // C(n − c, k) / C(n, k) = Π_{i = n − c + 1}^{n} (1 − k / i)
            var allWrong = 1.0
            if c > 0 { for i in (n - c + 1)...n { allWrong *= 1 - Double(k) / Double(i) } }
            total += 1 - allWrong
        }
        return total / Double(correct.count)
    }
}

/// How often an answer *sampled* at `temperature` is right: `samples` answers per prompt (chat
/// format, seeded), each checked by the task verifier. `accuracy` is the quantity policy-gradient
/// training raises (its rollouts are sampled); `exactMatchAccuracy` measures the greedy answer,
/// which only changes once the right answer becomes the most likely one; `passAt(samples)` bounds
/// what sampling can find at all.
public func sampledExactMatch(model: LlamaModel, tokenizer: ByteLevelBPETokenizer, prompts: [PromptExample], temperature: Float = 1,
                              samples: Int = 4, seed: UInt64 = 0, maxTokens: Int = 16) -> SampledExactMatch {
    precondition(samples >= 1, "sampledExactMatch needs at least one sample per prompt")
    let answers = sampleAnswers(model: model, tokenizer: tokenizer, prompts: prompts.map(\.prompt), greedy: false, samples: samples,
                                temperature: temperature, seed: seed, maxTokens: maxTokens)
    let correct = zip(prompts, answers).map { p, list in
        list.filter { InstructionTasks.verify(response: $0, answer: p.answer ?? "") }.count
    }
    return SampledExactMatch(correct: correct, samplesPerPrompt: samples)
}
