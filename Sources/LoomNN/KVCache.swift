import Foundation

/// Keys and values of past positions for incremental decoding, for `batch` independent
/// sequences of up to `capacity` positions each. Layout per layer: `[batch, capacity, kvHeads·headDim]`,
/// so appending a position writes one contiguous row.
public final class KVCache {
    public let batch: Int
    public let capacity: Int
    let width: Int
    let keys: [Storage]
    let values: [Storage]
    /// Positions filled so far, per sequence.
    public private(set) var lengths: [Int]

    public init(model: LlamaModel, batch: Int, capacity: Int? = nil) {
        let c = model.configuration
        self.batch = batch
        let positions = Swift.min(capacity ?? c.maxPositionEmbeddings, c.maxPositionEmbeddings)
        let width = c.kvHeadCount * c.headDim
        self.capacity = positions
        self.width = width
        keys = (0..<c.layerCount).map { _ in Storage(uninitializedCount: batch * positions * width) }
        values = (0..<c.layerCount).map { _ in Storage(uninitializedCount: batch * positions * width) }
        lengths = [Int](repeating: 0, count: batch)
    }

    /// Forgets sequence `b` (its slot can take a new prompt).
    public func reset(_ b: Int) { lengths[b] = 0 }
    public func resetAll() { lengths = [Int](repeating: 0, count: batch) }
    func advance(_ b: Int, by n: Int) { lengths[b] += n }
}

extension LlamaModel {
    /// Runs new tokens through the model using and extending `cache`, without gradients.
    /// `newTokens[b]` are appended to sequence `b` (empty arrays skip a sequence). Returns the
    /// logits of the last new token of each non-empty sequence, in order, as `[k, vocab]`;
    /// with `allLogits` the logits of every new token (rows concatenated in sequence order).
    public func forward(newTokens: [[Int32]], cache: KVCache, allLogits: Bool = false) -> Tensor {
        precondition(newTokens.count == cache.batch, "forward: \(newTokens.count) sequences for a cache of \(cache.batch)")
        let c = configuration
        let H = c.headCount, KV = c.kvHeadCount, D = c.headDim, width = KV * D, group = H / KV
        var tokens: [Int32] = [], positions: [Int32] = [], rowStart: [Int] = []
        for (b, seq) in newTokens.enumerated() {
            rowStart.append(tokens.count)
            precondition(cache.lengths[b] + seq.count <= cache.capacity,
                         "sequence \(b) would reach \(cache.lengths[b] + seq.count) positions; the cache holds \(cache.capacity)")
            tokens += seq
            positions += (0..<seq.count).map { Int32(cache.lengths[b] + $0) }
        }
        let rows = tokens.count
        precondition(rows > 0, "forward: no new tokens")
        let scale = 1 / Float(D).squareRoot()
        return withoutGradients {
            let x = embed(tokens)
            for (l, layer) in layers.enumerated() {
                let h = rmsNorm(x, weight: layer.inputNorm, eps: c.rmsNormEps)
                let q = rope(project(h, layer.q), table: rotary, positions: positions)
                let k = rope(project(h, layer.k), table: rotary, positions: positions)
                let v = project(h, layer.v)
                // Append this step's keys and values to each sequence's cache rows.
                for (b, seq) in newTokens.enumerated() where !seq.isEmpty {
                    let dst = (cache.lengths[b] + b * cache.capacity) * width
                    (cache.keys[l].pointer + dst).update(from: k.data + rowStart[b] * width, count: seq.count * width)
                    (cache.values[l].pointer + dst).update(from: v.data + rowStart[b] * width, count: seq.count * width)
                }
                let attended = Tensor(uninitialized: [rows, H * D])
                let tasks = newTokens.indices.flatMap { b in newTokens[b].isEmpty ? [] : (0..<H).map { (b, $0) } }
                parallelFor(tasks.count) { t in
                    let (b, head) = tasks[t]
                    let n = newTokens[b].count, past = cache.lengths[b], total = past + n
                    let keyBase = cache.keys[l].pointer + b * cache.capacity * width + (head / group) * D
                    let valueBase = cache.values[l].pointer + b * cache.capacity * width + (head / group) * D
                    // Scratch on the stack for a decoding step's few rows; the heap for a long prefill.
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: n * total) { scratch in
                        let scores = scratch.baseAddress!
                        sgemm(transposeA: false, transposeB: true, m: n, n: total, k: D, alpha: scale,
                              a: q.data + rowStart[b] * H * D + head * D, lda: H * D, b: keyBase, ldb: width,
                              beta: 0, c: scores, ldc: total)
                        for r in 0..<n { softmaxCausalRow(scores + r * total, valid: past + r + 1, width: total) }
                        sgemm(transposeA: false, transposeB: false, m: n, n: D, k: total,
                              a: scores, lda: total, b: valueBase, ldb: width,
                              beta: 0, c: attended.data + rowStart[b] * H * D + head * D, ldc: H * D)
                    }
                }
                // Residual connections: the projections add straight into the stream.
                projectAccumulate(attended, layer.o, into: x)
                let h2 = rmsNorm(x, weight: layer.postNorm, eps: c.rmsNormEps)
                projectAccumulate(swiglu(gate: project(h2, layer.gate), up: project(h2, layer.up)), layer.down, into: x)
            }
            for (b, seq) in newTokens.enumerated() { cache.advance(b, by: seq.count) }
            let hidden = rmsNorm(x, weight: finalNorm, eps: c.rmsNormEps)
            if allLogits { return logits(hidden: hidden) }
            let lastRows = newTokens.indices.filter { !newTokens[$0].isEmpty }.map { rowStart[$0] + newTokens[$0].count - 1 }
            return logits(hidden: gatherRows(hidden, indices: lastRows))
        }
    }
}
