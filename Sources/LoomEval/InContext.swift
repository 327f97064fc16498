import Foundation
import LoomData
import LoomTokenizer

/// How in-context examples are shown to a model.
public enum InContextFormat: String, Sendable, CaseIterable {
    /// Plain text, `Question: …\nAnswer: …` blocks: a base model, which has never seen the chat
    /// template (the GPT-3 paper's few-shot prompts).
    case plain
    /// The chat template, each example a user turn and an assistant turn before the question.
    case chat
}

/// In-context learning at one number of examples (`shots`).
public struct InContextResult: Equatable, Sendable {
    public var shots: Int
    /// Greedy exact match (`InstructionTasks.verify`).
    public var exactMatch: Double
    /// Multiple choice: the share of prompts whose answer has the highest log-likelihood among
    /// its `choices` (lm-evaluation-harness's `acc`); nil when no prompt has choices.
    public var multipleChoice: Double?
    /// The same with each candidate's log-likelihood divided by its length in UTF-8 bytes
    /// (lm-evaluation-harness's `acc_norm`), which does not favour short candidates.
    public var multipleChoiceNormalized: Double?
    public var prompts: Int
    /// Prompts that had choices (the denominator of the multiple-choice figures).
    public var multipleChoicePrompts: Int
    /// The greedy answers behind `exactMatch`, one per prompt in order (for paired comparisons).
    public var greedy: ExactMatchResult
}

/// k-shot evaluation for every k in `shots`, as the few-shot benchmarks of the GPT-3 paper and
/// lm-evaluation-harness do it: for each prompt, k examples drawn (seeded, without the prompt
/// itself) from `examples` — training problems — come first; the model then answers greedily
/// (exact match) and, where the prompt lists `choices`, the candidate with the highest
/// log-likelihood is its multiple-choice answer. The same examples are drawn for a prompt at
/// every k (the first k of one seeded draw), so the curve over k compares like with like.
///
///     let curve = inContextEvaluation(model: base, tokenizer: tokenizer, prompts: test, examples: train,
///                                     shots: [0, 1, 5], format: .plain)
///
/// `multipleChoice: false` skips the log-likelihood scoring (its figures are then nil): it costs
/// a forward pass per candidate, more than the greedy answers on a slow machine.
public func inContextEvaluation(model: LlamaModel, tokenizer: ByteLevelBPETokenizer, prompts: [PromptExample], examples: [PromptExample],
                                shots: [Int], format: InContextFormat, seed: UInt64 = 0, maxTokens: Int = 16,
                                batchSize: Int = 32, multipleChoice: Bool = true) -> [InContextResult] {
    let pool = examples.filter { $0.answer != nil }
    let maxShots = shots.max() ?? 0
    precondition(shots.allSatisfy { $0 >= 0 } && (maxShots == 0 || pool.count > maxShots), "need more in-context examples than shots")
    var rng = SeededRandom(seed: seed)
    let drawn: [[PromptExample]] = prompts.map { prompt in
        var chosen: [PromptExample] = [], used = Set<Int>()
        while chosen.count < maxShots {
            let i = Int.random(in: 0..<pool.count, using: &rng)
            guard !used.contains(i), pool[i].prompt != prompt.prompt else { continue }
            used.insert(i); chosen.append(pool[i])
        }
        return chosen
    }
    let encoder = ChatEncoder(tokenizer: tokenizer)
    let context = model.configuration.maxPositionEmbeddings
    func input(_ prompt: PromptExample, _ shown: ArraySlice<PromptExample>) -> [Int32] {
        switch format {
        case .plain:
            let text = shown.map { "Question: \($0.prompt)\nAnswer: \($0.answer ?? "")\n\n" }.joined() + "Question: \(prompt.prompt)\nAnswer:"
            return tokenizer.encode(text, allowSpecialTokens: false).map(Int32.init)
        case .chat:
            var messages: [ChatMessage] = []
            for example in shown {
                messages.append(ChatMessage(role: "user", content: example.prompt))
                messages.append(ChatMessage(role: "assistant", content: example.answer ?? ""))
            }
            messages.append(ChatMessage(role: "user", content: prompt.prompt))
            return tokenizer.chatTemplate.encodePrompt(messages, tokenizer: tokenizer).map(Int32.init)
        }
    }
    func continuation(_ choice: String) -> [Int32] {
        switch format {
        case .plain: return tokenizer.encode(" " + choice, allowSpecialTokens: false).map(Int32.init)
        case .chat: return encoder.response(choice)
        }
    }
    return shots.map { k in
        // A context longer than the model's keeps its end (the question), as generation does.
        let inputs = prompts.indices.map { Array(input(prompts[$0], drawn[$0].prefix(k)).suffix(context - maxTokens)) }
        let greedy = greedyExactMatch(model: model, tokenizer: tokenizer, inputs: inputs, prompts: prompts, firstLineOnly: format == .plain,
                                      maxTokens: maxTokens, batchSize: batchSize)
        // Multiple choice: each prompt's candidates scored after one prefill of the prompt.
        let scored = prompts.indices.filter { multipleChoice && prompts[$0].choices != nil && prompts[$0].answer != nil }
        let logLikelihoods = continuationLogLikelihoods(model: model, contexts: scored.map { inputs[$0] },
                                                        continuations: scored.map { prompts[$0].choices!.map(continuation) },
                                                        rowsPerBatch: batchSize)
        var best: [Int: (choice: Int, value: Float)] = [:], bestNormalized: [Int: (choice: Int, value: Float)] = [:]
        for (p, values) in zip(scored, logLikelihoods) {
            for (c, value) in values.enumerated() {
                if best[p].map({ value > $0.value }) ?? true { best[p] = (c, value) }
                let normalized = value / Float(max(1, prompts[p].choices![c].utf8.count))
                if bestNormalized[p].map({ normalized > $0.value }) ?? true { bestNormalized[p] = (c, normalized) }
            }
        }
        func accuracy(_ picks: [Int: (choice: Int, value: Float)]) -> Double? {
            guard !picks.isEmpty else { return nil }
            let right = picks.filter { p, pick in prompts[p].choices![pick.choice] == prompts[p].answer }.count
            return Double(right) / Double(picks.count)
        }
        return InContextResult(shots: k, exactMatch: greedy.accuracy, multipleChoice: accuracy(best),
                               multipleChoiceNormalized: accuracy(bestNormalized), prompts: prompts.count, multipleChoicePrompts: best.count,
                               greedy: greedy)
    }
}
