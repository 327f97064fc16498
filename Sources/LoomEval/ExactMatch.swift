import Foundation
import LoomTensor
import LoomData
import LoomTokenizer

/// How a model is asked a question.
public enum PromptFormat: Sendable {
    /// The chat template: one user turn, the answer is the assistant's turn (SFT and later).
    case chat
    /// In-context examples in plain text ("Question: …\nAnswer: …"), for a base model that
    /// has never seen the chat template; the answer is the generated line.
    case fewShot([PromptExample])
}

public struct ExactMatchResult: Equatable, Sendable {
    public struct Sample: Equatable, Sendable {
        public var prompt: String
        public var answer: String
        public var response: String
        public var correct: Bool

        public init(prompt: String, answer: String, response: String, correct: Bool) {
            self.prompt = prompt; self.answer = answer; self.response = response; self.correct = correct
        }
    }
    public var correct: Int
    public var total: Int
    public var samples: [Sample]

    public init(correct: Int, total: Int, samples: [Sample]) {
        self.correct = correct; self.total = total; self.samples = samples
    }
    public var accuracy: Double { Double(correct) / Double(max(total, 1)) }

    /// Accuracy per group: `groups[i]` names the group of `samples[i]` (e.g. the task kind);
    /// samples without a group are left out.
    public func accuracyByGroup(_ groups: [String?]) -> [String: Double] {
        precondition(groups.count == samples.count, "one group per sample")
        var counts: [String: (correct: Int, total: Int)] = [:]
        for (sample, group) in zip(samples, groups) {
            guard let group else { continue }
            counts[group, default: (0, 0)].total += 1
            if sample.correct { counts[group, default: (0, 0)].correct += 1 }
        }
        return counts.mapValues { Double($0.correct) / Double($0.total) }
    }

    /// This result's accuracy minus `baseline`'s on the same problems, with a paired bootstrap
    /// 95 % interval: the problems are resampled with replacement `resamples` times (seeded) and
    /// the difference recomputed on each resample. When the interval holds 0, the two models are
    /// not told apart by these problems.
    public func difference(from baseline: ExactMatchResult, resamples: Int = 2000, seed: UInt64 = 0) -> PairedDifference {
        precondition(samples.count == baseline.samples.count && resamples >= 1, "a paired difference needs the same problems")
        precondition(zip(samples, baseline.samples).allSatisfy { $0.prompt == $1.prompt }, "a paired difference needs the same problems in the same order")
        let deltas = zip(samples, baseline.samples).map { ($0.correct ? 1 : 0) - ($1.correct ? 1 : 0) }
        let n = deltas.count
        guard n > 0 else { return PairedDifference(difference: 0, low: 0, high: 0, onlyBaseline: 0, onlyThis: 0) }
        var rng = SeededRandom(seed: seed)
        var means: [Double] = []
        means.reserveCapacity(resamples)
        for _ in 0..<resamples {
            var sum = 0
            for _ in 0..<n { sum += deltas[Int.random(in: 0..<n, using: &rng)] }
            means.append(Double(sum) / Double(n))
        }
        means.sort()
        let last = Double(resamples - 1)
        return PairedDifference(difference: Double(deltas.reduce(0, +)) / Double(n),
                                low: means[Int((0.025 * last).rounded(.down))], high: means[Int((0.975 * last).rounded(.up))],
                                onlyBaseline: deltas.filter { $0 < 0 }.count, onlyThis: deltas.filter { $0 > 0 }.count)
    }
}

/// The accuracy difference of two models on the same problems (`ExactMatchResult.difference`).
public struct PairedDifference: Equatable, Sendable {
    /// Accuracy of this model minus the baseline's, as a fraction.
    public var difference: Double
    /// The paired bootstrap 95 % interval of `difference`.
    public var low: Double
    public var high: Double
    /// Problems only the baseline answers right, and only this model.
    public var onlyBaseline: Int
    public var onlyThis: Int

    public init(difference: Double, low: Double, high: Double, onlyBaseline: Int, onlyThis: Int) {
        self.difference = difference; self.low = low; self.high = high; self.onlyBaseline = onlyBaseline; self.onlyThis = onlyThis
    }
}

/// Greedy answers to held-out prompts, checked by the task verifier (exact match after
/// trimming). Prompts are decoded in batches with the KV cache.
public func exactMatchAccuracy(model: LlamaModel, tokenizer: ByteLevelBPETokenizer, prompts: [PromptExample],
                               format: PromptFormat, maxTokens: Int = 16, batchSize: Int = 32) -> ExactMatchResult {
    let encoder = ChatEncoder(tokenizer: tokenizer)
    let inputs: [[Int32]] = prompts.map { p in
        switch format {
        case .chat:
            return encoder.prompt(p.prompt)
        case .fewShot(let shots):
            let context = shots.map { "Question: \($0.prompt)\nAnswer: \($0.answer ?? "")\n\n" }.joined()
            return tokenizer.encode(context + "Question: \(p.prompt)\nAnswer:", allowSpecialTokens: false).map(Int32.init)
        }
    }
    var isFewShot = false
    if case .fewShot = format { isFewShot = true }
    return greedyExactMatch(model: model, tokenizer: tokenizer, inputs: inputs, prompts: prompts, firstLineOnly: isFewShot,
                            maxTokens: maxTokens, batchSize: batchSize)
}

/// Greedy answers to already-encoded `inputs` (one per prompt), graded against each prompt's
/// answer. `firstLineOnly` (plain-text prompting): generation also stops at a newline and the
/// answer is the first line; else it stops at the end of the turn.
func greedyExactMatch(model: LlamaModel, tokenizer: ByteLevelBPETokenizer, inputs: [[Int32]], prompts: [PromptExample],
                      firstLineOnly: Bool, maxTokens: Int, batchSize: Int) -> ExactMatchResult {
    let encoder = ChatEncoder(tokenizer: tokenizer)
    var stops = encoder.stopTokens
    if firstLineOnly, let newline = tokenizer.encode("\n", allowSpecialTokens: false).first { stops.insert(Int32(newline)) }
    let generator = Generator(model: model, stopTokens: stops)
    var result = ExactMatchResult(correct: 0, total: 0, samples: [])
    for start in stride(from: 0, to: prompts.count, by: batchSize) {
        let end = min(start + batchSize, prompts.count)
        let outputs = generator.generateBatch(prompts: Array(inputs[start..<end]), maxTokens: maxTokens, sampling: .greedy)
        for (i, output) in outputs.enumerated() {
            let p = prompts[start + i]
            var text = encoder.text(output.tokens)
            if firstLineOnly { text = String(text.split(separator: "\n", omittingEmptySubsequences: false).first ?? "") }
            let ok = InstructionTasks.verify(response: text, answer: p.answer ?? "")
            result.total += 1
            if ok { result.correct += 1 }
            result.samples.append(.init(prompt: p.prompt, answer: p.answer ?? "", response: text, correct: ok))
        }
    }
    return result
}
