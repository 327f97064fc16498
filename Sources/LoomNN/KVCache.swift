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

    /// Bytes of keys and values this cache holds (all sequences, all positions).
    public var byteCount: Int { (keys.count + values.count) * batch * capacity * width * MemoryLayout<Float>.stride }

    /// Writes zeros over every position, so that the operating system gives the cache all its
    /// pages now. A server calls this at start: its memory is then what it will stay, instead of
    /// growing for minutes as sequences first reach each slot's later positions.
    public func commitMemory() {
        for storage in keys + values { storage.pointer.update(repeating: 0, count: storage.count) }
    }

    /// Forgets sequence `b` (its slot can take a new prompt).
    public func reset(_ b: Int) { lengths[b] = 0 }
    /// Keeps the first `length` positions of sequence `b` (a prompt cache reusing a prefix).
    public func truncate(_ b: Int, to length: Int) {
        precondition(length >= 0 && length <= lengths[b], "truncate: \(length) is not within sequence \(b)'s \(lengths[b]) positions")
        lengths[b] = length
    }
    public func resetAll() { lengths = [Int](repeating: 0, count: batch) }
    func advance(_ b: Int, by n: Int) { lengths[b] += n }

    /// Makes sequence `slot` a copy of sequence `source` of `other` (its keys, values and
    /// length), so that several continuations of one prompt share its prefill. `other` must come
    /// from the same model.
    public func copySequence(_ source: Int, of other: KVCache, into slot: Int) {
        let n = other.lengths[source]
        precondition(other.width == width && other.keys.count == keys.count, "copySequence: caches of different models")
        precondition(n <= capacity, "copySequence: \(n) positions do not fit a cache of \(capacity)")
        for l in keys.indices {
            (keys[l].pointer + slot * capacity * width).update(from: other.keys[l].pointer + source * other.capacity * width, count: n * width)
            (values[l].pointer + slot * capacity * width).update(from: other.values[l].pointer + source * other.capacity * width, count: n * width)
        }
        lengths[slot] = n
    }
}

extension LlamaModel {
    /// Runs new tokens through the model using and extending `cache`, without gradients.
    /// `newTokens[b]` are appended to sequence `b` (empty arrays skip a sequence). Returns the
    /// logits of the last new token of each non-empty sequence, in order, as `[k, vocab]`;
    /// with `allLogits` the logits of every new token (rows concatenated in sequence order).
    ///
    /// With `batchInvariant`, every product uses the `RowInvariant` kernels, so a sequence's
    /// logits are bit-identical whatever the other sequences of the batch are (the server's
    /// continuous batching needs that; OpenBLAS's results depend on the product's shape).
    public func forward(newTokens: [[Int32]], cache: KVCache, allLogits: Bool = false, batchInvariant: Bool = false) -> Tensor {
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
        // Quantized weights go to the quantized kernels (batch-invariant by construction); see QuantizedWeights.swift.
        // A step of at most three rows (decoding) also takes the row-invariant products: they
        // read each block of weight rows once for all rows, like BLAS's matrix-vector path,
        // and were faster than it on AMD EPYC (SmolLM2 F32 decode, 3 alternating runs: 1
        // thread 13.1-16.1 → 14.2-15.3 tok/s, 2 threads 22.4-23.8 → 25.1-27.3 tok/s). Those fast
        // paths are float32: while a stage trains with bf16 products (`--precision bf16`), its
        // rollouts decode with bf16 products at every step, also once only a few sequences are
        // left running, so they sample from the model being trained.
        let float32Decoding = MatrixProducts.precision == .fp32
        let rowInvariantProducts = batchInvariant || (rows <= 3 && float32Decoding)
        let project = { (x: Tensor, weight: Tensor) in self.project(x, weight, batchInvariant: rowInvariantProducts) }
        let projectAdding = { (x: Tensor, weight: Tensor, y: Tensor) in self.projectAccumulate(x, weight, into: y, batchInvariant: rowInvariantProducts) }
        // The batch-invariant end of one query row's attention: its `valid` scores in `row`
        // scaled, softmax, then the weighted sum of the value rows into `out`.
        func weighValues(_ row: UnsafeMutablePointer<Float>, valid: Int, values: UnsafePointer<Float>,
                         into out: UnsafeMutablePointer<Float>) {
            for c in 0..<valid { row[c] *= scale }
            softmaxCausalRow(row, valid: valid, width: valid)
            RowInvariant.weightedRows(n: valid, width: D, p: row, v: values, ldv: width, out: out)
        }
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
                if newTokens.allSatisfy({ $0.count <= 1 }) && (batchInvariant || float32Decoding) {
                    // A decoding step. The `group` query heads that share a key/value head have
                    // adjacent query rows: one batch-invariant product reads that head's cached
                    // keys once for all of them. Each score and output is computed exactly as on
                    // the per-head path below (so a step and a one-row prefill agree bit for bit),
                    // and for one row these loops cost less than BLAS's matrix–vector calls.
                    // With bf16 products (a training stage's rollouts) a step takes the per-head
                    // path, whose products are bf16 like the training forward pass's.
                    let tasks = newTokens.indices.flatMap { b in newTokens[b].isEmpty ? [] : (0..<KV).map { (b, $0) } }
                    parallelFor(tasks.count) { t in
                        let (b, kvHead) = tasks[t]
                        let total = cache.lengths[b] + 1
                        let keyBase = cache.keys[l].pointer + b * cache.capacity * width + kvHead * D
                        let valueBase = cache.values[l].pointer + b * cache.capacity * width + kvHead * D
                        let queries = q.data + rowStart[b] * H * D + kvHead * group * D
                        let output = attended.data + rowStart[b] * H * D + kvHead * group * D
                        withUnsafeTemporaryAllocation(of: Float.self, capacity: group * total) { scratch in
                            let scores = scratch.baseAddress!
                            RowInvariant.gemmNT(m: group, n: total, k: D, x: queries, ldx: D,
                                                w: keyBase, ldw: width, y: scores, ldy: total, accumulate: false,
                                                threaded: false)
                            for r in 0..<group {
                                weighValues(scores + r * total, valid: total, values: valueBase, into: output + r * D)
                            }
                        }
                    }
                } else {
                    let tasks = newTokens.indices.flatMap { b in newTokens[b].isEmpty ? [] : (0..<H).map { (b, $0) } }
                    parallelFor(tasks.count) { t in
                        let (b, head) = tasks[t]
                        let n = newTokens[b].count, past = cache.lengths[b], total = past + n
                        let keyBase = cache.keys[l].pointer + b * cache.capacity * width + (head / group) * D
                        let valueBase = cache.values[l].pointer + b * cache.capacity * width + (head / group) * D
                        // Scratch on the stack for a few rows; the heap for a long prefill.
                        withUnsafeTemporaryAllocation(of: Float.self, capacity: n * total) { scratch in
                            let scores = scratch.baseAddress!
                            let queries = q.data + rowStart[b] * H * D + head * D
                            let output = attended.data + rowStart[b] * H * D + head * D
                            if batchInvariant {
                                // Row by row over the positions each row sees, so that a row's
                                // result does not depend on how many rows the prefill has.
                                for r in 0..<n {
                                    let row = scores + r * total, valid = past + r + 1
                                    RowInvariant.gemmNT(m: 1, n: valid, k: D, x: queries + r * H * D, ldx: D,
                                                        w: keyBase, ldw: width, y: row, ldy: valid, accumulate: false,
                                                        threaded: false)
                                    weighValues(row, valid: valid, values: valueBase, into: output + r * H * D)
                                }
                                return
                            }
                            sgemm(transposeA: false, transposeB: true, m: n, n: total, k: D, alpha: scale,
                                  a: queries, lda: H * D, b: keyBase, ldb: width,
                                  beta: 0, c: scores, ldc: total)
                            for r in 0..<n { softmaxCausalRow(scores + r * total, valid: past + r + 1, width: total) }
                            sgemm(transposeA: false, transposeB: false, m: n, n: D, k: total,
                                  a: scores, lda: total, b: valueBase, ldb: width,
                                  beta: 0, c: output, ldc: H * D)
                        }
                    }
                }
                // Residual connections: the projections add straight into the stream.
                projectAdding(attended, layer.o, x)
                let h2 = rmsNorm(x, weight: layer.postNorm, eps: c.rmsNormEps)
                projectAdding(swiglu(gate: project(h2, layer.gate), up: project(h2, layer.up)), layer.down, x)
            }
            for (b, seq) in newTokens.enumerated() { cache.advance(b, by: seq.count) }
            let hidden = rmsNorm(x, weight: finalNorm, eps: c.rmsNormEps)
            let head = { (rows: Tensor) -> Tensor in
                guard let outputProjection = self.outputProjection else { return self.logits(hidden: rows) }
                return self.project(rows, outputProjection, batchInvariant: rowInvariantProducts)
            }
            if allLogits { return head(hidden) }
            let lastRows = newTokens.indices.filter { !newTokens[$0].isEmpty }.map { rowStart[$0] + newTokens[$0].count - 1 }
            return head(gatherRows(hidden, indices: lastRows))
        }
    }
}
