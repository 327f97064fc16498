import Foundation
import LoomNN
import LoomTensor

/// Σ log π(continuation | context) for several continuations of each context, the context run
/// once: the multiple-choice scoring of few-shot benchmarks (lm-evaluation-harness's
/// log-likelihood requests), where a long prompt has a few short candidate answers.
///
/// Each context is prefilled once with the KV cache; its keys and values are then copied to one
/// cache slot per continuation, which runs only its own tokens. The first token of every
/// continuation is scored from the context's last logits. That is about one forward pass of the
/// prompt instead of one per candidate, and no padding. The result equals
/// `PromptResponseBatch.sequenceLogProbs` over every (context, continuation) pair up to float
/// rounding, and, as there, a context too long for the model with its longest continuation loses
/// its beginning.
///
///     let scores = continuationLogLikelihoods(model: model, contexts: [question],
///                                             continuations: [[yes, no, maybe]])   // [[Float]]: 3 scores
///
/// `rowsPerBatch` bounds the continuations run together (the cache holds that many sequences).
public func continuationLogLikelihoods(model: LlamaModel, contexts: [[Int32]], continuations: [[[Int32]]],
                                       rowsPerBatch: Int = 32) -> [[Float]] {
    precondition(contexts.count == continuations.count, "one list of continuations per context")
    precondition(contexts.allSatisfy { !$0.isEmpty }, "a context needs at least one token")
    precondition(continuations.allSatisfy { $0.allSatisfy { !$0.isEmpty } }, "a continuation needs at least one token")
    let positions = model.configuration.maxPositionEmbeddings
    // As PromptResponseBatch: keep each continuation (up to positions − 1 tokens) and the end of
    // the context that fits before the longest of them.
    let kept: [(context: [Int32], continuations: [[Int32]])] = zip(contexts, continuations).map { context, options in
        let options = options.map { Array($0.prefix(positions - 1)) }
        let longest = options.map(\.count).max() ?? 0
        return (Array(context.suffix(max(1, positions - longest))), options)
    }
    var result = [[Float]](repeating: [], count: contexts.count)
    var start = 0
    while start < kept.count {
        // Contexts in this batch: as many as keep the rows within rowsPerBatch (at least one).
        var end = start, rows = 0
        while end < kept.count && (end == start || rows + kept[end].continuations.count <= rowsPerBatch) {
            rows += kept[end].continuations.count; end += 1
        }
        let chunk = Array(kept[start..<end])
        let capacity = chunk.map { $0.context.count + ($0.continuations.map(\.count).max() ?? 0) }.max() ?? 1
        // 1. One prefill per context; its last logits score each continuation's first token.
        let prefill = KVCache(model: model, batch: chunk.count, capacity: capacity)
        let last = model.forward(newTokens: chunk.map(\.context), cache: prefill)
        let vocabulary = last.shape[1]
        // 2. One slot per continuation, a copy of its context's cache, runs all but its last token.
        var owners: [(context: Int, option: Int)] = []
        for (c, entry) in chunk.enumerated() { for o in entry.continuations.indices { owners.append((c, o)) } }
        if rows > 0 {
            let cache = KVCache(model: model, batch: rows, capacity: capacity)
            for (row, owner) in owners.enumerated() { cache.copySequence(owner.context, of: prefill, into: row) }
            let inputs = owners.map { chunk[$0.context].continuations[$0.option].dropLast() }.map(Array.init)
            // First tokens: each owner's row of the context's last logits, one gather.
            let firstLogits = Tensor(uninitialized: [rows, vocabulary])
            for (r, owner) in owners.enumerated() {
                (firstLogits.data + r * vocabulary).update(from: last.data + owner.context * vocabulary, count: vocabulary)
            }
            var scores = withoutGradients {
                logSoftmaxGather(logits: firstLogits, targets: owners.map { chunk[$0.context].continuations[$0.option][0] }).scalars
            }
            if inputs.contains(where: { !$0.isEmpty }) {
                // The rest: logits row of token t predicts token t + 1, rows in slot order.
                let logits = model.forward(newTokens: inputs, cache: cache, allLogits: true)
                let targets = owners.flatMap { chunk[$0.context].continuations[$0.option].dropFirst() }
                let logProbs = withoutGradients { logSoftmaxGather(logits: logits, targets: Array(targets)).scalars }
                var row = 0
                for (r, owner) in owners.enumerated() {
                    for _ in 1..<max(1, chunk[owner.context].continuations[owner.option].count) {
                        scores[r] += logProbs[row]
                        row += 1
                    }
                }
            }
            for (r, owner) in owners.enumerated() { result[start + owner.context].append(scores[r]) }
        }
        start = end
    }
    return result
}
