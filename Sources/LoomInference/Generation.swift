import Foundation
import LoomTokenizer

/// Why generation stopped.
public enum FinishReason: String, Codable, Sendable {
    case stop      // produced a stop token (end of text / end of turn)
    case length    // reached the token limit
}

public struct GenerationResult: Sendable {
    /// Generated tokens, without the prompt and without the stop token.
    public var tokens: [Int32]
    public var finishReason: FinishReason
    public var promptTokens: Int
    public var promptSeconds: Double
    public var decodeSeconds: Double
    public var promptTokensPerSecond: Double { Double(promptTokens) / max(promptSeconds, 1e-9) }
    public var decodeTokensPerSecond: Double { Double(tokens.count) / max(decodeSeconds, 1e-9) }
}

/// Autoregressive decoding with a KV cache: the prompt is run once (prefill), then each
/// new token costs one single-row forward pass.
///
///     let generator = Generator(model: model, stopTokens: [tokenizer.endOfTextID])
///     let result = generator.generate(prompt: ids, maxTokens: 64, sampling: .greedy) { token in
///         print(tokenizer.decode([Int(token)]), terminator: "")
///         return true   // keep going
///     }
public struct Generator {
    public let model: LlamaModel
    public var stopTokens: Set<Int32>
    /// Run every product through the batch-invariant kernels, as `loom serve` does (a
    /// sequence's tokens then do not depend on the others of the batch); the benchmark uses it
    /// to measure what that costs.
    public var batchInvariant = false

    /// The ids at which a model's text ends: the tokenizer's end of text, ChatML's `<|im_end|>`
    /// when the vocabulary has it, and every `eos_token_id` of config.json (one id or a list),
    /// as transformers' generate stops. `loom generate` and `loom serve` stop at these.
    public static func endTokens(of model: LlamaModel, tokenizer: ByteLevelBPETokenizer) -> Set<Int32> {
        var stops: Set<Int32> = [Int32(tokenizer.endOfTextID)]
        if let end = tokenizer.tokenID("<|im_end|>") { stops.insert(Int32(end)) }
        for eos in model.configuration.endTokenIDs { stops.insert(Int32(eos)) }
        return stops
    }

    public init(model: LlamaModel, stopTokens: Set<Int32>) {
        self.model = model
        self.stopTokens = stopTokens
    }

    /// Generates up to `maxTokens` after `prompt`. `onToken` sees each token as it is made
    /// (not stop tokens) and may return false to stop early.
    /// While a training stage runs with bf16 products (PPO's and GRPO's rollouts), each weight
    /// is packed for them once per generation rather than at every step (`PackedWeights`).
    public func generate(prompt: [Int32], maxTokens: Int, sampling: SamplingParameters,
                         onToken: (Int32) -> Bool = { _ in true }) -> GenerationResult {
        PackedWeights.during { decode(prompt: prompt, maxTokens: maxTokens, sampling: sampling, onToken: onToken) }
    }

    private func decode(prompt: [Int32], maxTokens: Int, sampling: SamplingParameters,
                        onToken: (Int32) -> Bool) -> GenerationResult {
        precondition(!prompt.isEmpty, "generate: empty prompt")
        // A prompt longer than the context window keeps its most recent tokens; generation
        // then stops at the window's end with finish reason `length`.
        let window = model.configuration.maxPositionEmbeddings
        let context = Array(prompt.suffix(window - 1))
        let capacity = min(window, context.count + maxTokens)
        let cache = KVCache(model: model, batch: 1, capacity: capacity)
        var sampler = Sampler(sampling)
        let vocabulary = model.configuration.vocabularySize
        let t0 = DispatchTime.now().uptimeNanoseconds
        var logits = model.forward(newTokens: [context], cache: cache, batchInvariant: batchInvariant)
        let t1 = DispatchTime.now().uptimeNanoseconds
        var history = context, generated: [Int32] = [], reason = FinishReason.length
        while generated.count < maxTokens {
            let token = sampler.sample(logits: logits.data, vocabulary: vocabulary, context: history)
            if stopTokens.contains(token) { reason = .stop; break }
            generated.append(token)
            history.append(token)
            if !onToken(token) { reason = .stop; break }
            if cache.lengths[0] >= cache.capacity || generated.count == maxTokens { break }
            logits = model.forward(newTokens: [[token]], cache: cache, batchInvariant: batchInvariant)
        }
        let t2 = DispatchTime.now().uptimeNanoseconds
        return GenerationResult(tokens: generated, finishReason: reason, promptTokens: context.count,
                                promptSeconds: Double(t1 - t0) * 1e-9, decodeSeconds: Double(t2 - t1) * 1e-9)
    }

    /// Generates for several prompts at once: one batched forward pass per step over the
    /// sequences still running (their prompts may differ in length). Each sequence uses its
    /// own sampler seeded with `sampling.seed + index`, so results do not depend on the
    /// batch composition.
    public func generateBatch(prompts: [[Int32]], maxTokens: Int, sampling: SamplingParameters) -> [GenerationResult] {
        PackedWeights.during { decodeBatch(prompts: prompts, maxTokens: maxTokens, sampling: sampling) }
    }

    private func decodeBatch(prompts: [[Int32]], maxTokens: Int, sampling: SamplingParameters) -> [GenerationResult] {
        precondition(prompts.allSatisfy { !$0.isEmpty }, "generateBatch: empty prompt")
        let window = model.configuration.maxPositionEmbeddings
        let contexts = prompts.map { Array($0.suffix(window - 1)) }
        let capacity = min(window, (contexts.map(\.count).max() ?? 0) + maxTokens)
        let cache = KVCache(model: model, batch: prompts.count, capacity: capacity)
        var samplers = prompts.indices.map { i -> Sampler in
            var p = sampling
            p.seed = sampling.seed &+ UInt64(i)
            return Sampler(p)
        }
        let vocabulary = model.configuration.vocabularySize
        let t0 = DispatchTime.now().uptimeNanoseconds
        var logits = model.forward(newTokens: contexts, cache: cache, batchInvariant: batchInvariant)
        let t1 = DispatchTime.now().uptimeNanoseconds
        var histories = contexts
        var generated = [[Int32]](repeating: [], count: prompts.count)
        var reasons = [FinishReason](repeating: .length, count: prompts.count)
        var running = Array(prompts.indices)     // row r of `logits` belongs to running[r]
        while !running.isEmpty {
            var next = [[Int32]](repeating: [], count: prompts.count)
            var stillRunning: [Int] = []
            for (row, i) in running.enumerated() {
                let token = samplers[i].sample(logits: logits.data + row * vocabulary, vocabulary: vocabulary, context: histories[i])
                if stopTokens.contains(token) { reasons[i] = .stop; continue }
                generated[i].append(token)
                histories[i].append(token)
                if generated[i].count >= maxTokens || cache.lengths[i] >= cache.capacity { continue }
                next[i] = [token]
                stillRunning.append(i)
            }
            running = stillRunning
            if running.isEmpty { break }
            logits = model.forward(newTokens: next, cache: cache, batchInvariant: batchInvariant)
        }
        let t2 = DispatchTime.now().uptimeNanoseconds
        return prompts.indices.map { i in
            GenerationResult(tokens: generated[i], finishReason: reasons[i], promptTokens: contexts[i].count,
                             promptSeconds: Double(t1 - t0) * 1e-9, decodeSeconds: Double(t2 - t1) * 1e-9)
        }
    }
}
