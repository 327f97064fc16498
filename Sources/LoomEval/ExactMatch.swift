import Foundation
import LoomData
import LoomTokenizer
import LoomTrain

/// How a model is asked a question.
public enum PromptFormat: Sendable {
    /// The chat template: one user turn, the answer is the assistant's turn (SFT and later).
    case chat
    /// In-context examples in plain text ("Question: …\nAnswer: …"), for a base model that
    /// has never seen the chat template; the answer is the generated line.
    case fewShot([PromptExample])
}

public struct ExactMatchResult: Sendable {
    public struct Sample: Sendable {
        public var prompt: String
        public var answer: String
        public var response: String
        public var correct: Bool
    }
    public var correct: Int
    public var total: Int
    public var samples: [Sample]
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
}

/// Greedy answers to held-out prompts, checked by the task verifier (exact match after
/// trimming). Prompts are decoded in batches with the KV cache.
public func exactMatchAccuracy(model: LlamaModel, tokenizer: ByteLevelBPETokenizer, prompts: [PromptExample],
                               format: PromptFormat, maxTokens: Int = 16, batchSize: Int = 32) -> ExactMatchResult {
    let encoder = ChatEncoder(tokenizer: tokenizer)
    var stops = encoder.stopTokens
    let inputs: [[Int32]] = prompts.map { p in
        switch format {
        case .chat:
            return encoder.prompt(p.prompt)
        case .fewShot(let shots):
            let context = shots.map { "Question: \($0.prompt)\nAnswer: \($0.answer ?? "")\n\n" }.joined()
            return tokenizer.encode(context + "Question: \(p.prompt)\nAnswer:", allowSpecialTokens: false).map(Int32.init)
        }
    }
    if case .fewShot = format, let newline = tokenizer.encode("\n", allowSpecialTokens: false).first { stops.insert(Int32(newline)) }
    let generator = Generator(model: model, stopTokens: stops)
    var result = ExactMatchResult(correct: 0, total: 0, samples: [])
    for start in stride(from: 0, to: prompts.count, by: batchSize) {
        let end = min(start + batchSize, prompts.count)
        let outputs = generator.generateBatch(prompts: Array(inputs[start..<end]), maxTokens: maxTokens, sampling: .greedy)
        for (i, output) in outputs.enumerated() {
            let p = prompts[start + i]
            var text = encoder.text(output.tokens)
            if case .fewShot = format { text = String(text.split(separator: "\n", omittingEmptySubsequences: false).first ?? "") }
            let ok = InstructionTasks.verify(response: text, answer: p.answer ?? "")
            result.total += 1
            if ok { result.correct += 1 }
            result.samples.append(.init(prompt: p.prompt, answer: p.answer ?? "", response: text, correct: ok))
        }
    }
    return result
}
