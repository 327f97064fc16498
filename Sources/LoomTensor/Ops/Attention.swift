import Foundation

/// The sizes of one attention call.
public struct AttentionShape: Sendable, Equatable {
    public var batch: Int
    public var sequence: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int

    public init(batch: Int, sequence: Int, heads: Int, kvHeads: Int, headDim: Int) {
        precondition(heads % kvHeads == 0, "attention: \(heads) query heads are not a multiple of \(kvHeads) key/value heads")
        self.batch = batch; self.sequence = sequence; self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim
    }
}

/// Rows of the score matrix processed per BLAS call. Causal blocks skip the keys after the
/// block's last row, which saves about 40 % of the score and value products at T = 256.
private let attentionRowBlock = 64

/// Keys each query row of `causalAttention` multiplies with, on average, for a sequence of
/// `sequence` positions: the kernel computes whole row blocks up to each block's last row,
/// so this lies between (sequence + 1) / 2 (an exact causal count) and sequence (no skipping).
/// 160 of 256 at T = 256. FLOP counts use it to count the work the kernel does.
public func causalAttentionKeysPerRow(sequence: Int) -> Double {
    guard sequence > 0 else { return 0 }
    var computed = 0, start = 0
    while start < sequence {
        let end = Swift.min(start + attentionRowBlock, sequence)
        computed += (end - start) * end
        start = end
    }
    return Double(computed) / Double(sequence)
}

/// Fused causal self-attention with grouped-query heads.
///
/// `q` is `[batch·sequence, heads·headDim]`, `k` and `v` are `[batch·sequence, kvHeads·headDim]`
/// (the layout the projections produce, so no transposes are needed); query head h reads
/// key/value head h / (heads / kvHeads). Returns `[batch·sequence, heads·headDim]`.
///
/// Memory: while recording gradients the softmax probabilities are kept for backward:
/// batch × heads × sequence² floats per call (16 MB for the tiny configuration, 64 MB for
/// small), released when the tape is.
///
/// Backward, per head with P = softmax(QKᵀ·s) and O = PV:
/// dV += Pᵀ dO;  dP = dO Vᵀ;  dS = P ⊙ (dP − rowsum(dO ⊙ O));  dQ += s·dS K;  dK += s·dSᵀ Q.
public func causalAttention(q: Tensor, k: Tensor, v: Tensor, shape: AttentionShape) -> Tensor {
    let B = shape.batch, T = shape.sequence, H = shape.heads, KV = shape.kvHeads, D = shape.headDim
    let qStride = H * D, kvStride = KV * D, group = H / KV
    precondition(q.count == B * T * qStride, "attention: q \(q.shape) is not [\(B * T), \(qStride)]")
    precondition(k.count == B * T * kvStride && v.count == B * T * kvStride,
                 "attention: k \(k.shape) / v \(v.shape) are not [\(B * T), \(kvStride)]")
    let scale = 1 / Float(D).squareRoot()
    let recording = Tape.current != nil && (q.requiresGrad || k.requiresGrad || v.requiresGrad)
    let out = Tensor(uninitialized: [B * T, qStride])
    // Kept for backward when recording; otherwise each task takes its own scratch block.
    let probabilities: Storage? = recording ? Storage(uninitializedCount: B * H * T * T) : nil
    let pq = q.data, pk = k.data, pv = v.data, po = out.data

    Profiler.time("attention", phase: .forward) {
        parallelFor(B * H) { task in
            let b = task / H, h = task % H, g = h / group
            let qBase = pq + b * T * qStride + h * D
            let kBase = pk + b * T * kvStride + g * D
            let vBase = pv + b * T * kvStride + g * D
            let oBase = po + b * T * qStride + h * D
            let scratch: Storage? = probabilities == nil ? Storage(uninitializedCount: T * T) : nil
            let pBase = probabilities.map { $0.pointer + task * T * T } ?? scratch!.pointer
            var i0 = 0
            while i0 < T {
                let i1 = Swift.min(i0 + attentionRowBlock, T), rowCount = i1 - i0
                sgemm(transposeA: false, transposeB: true, m: rowCount, n: i1, k: D, alpha: scale,
                      a: qBase + i0 * qStride, lda: qStride, b: kBase, ldb: kvStride, beta: 0, c: pBase + i0 * T, ldc: T)
                for r in i0..<i1 { softmaxCausalRow(pBase + r * T, valid: r + 1, width: i1) }
                sgemm(transposeA: false, transposeB: false, m: rowCount, n: D, k: i1,
                      a: pBase + i0 * T, lda: T, b: vBase, ldb: kvStride, beta: 0, c: oBase + i0 * qStride, ldc: qStride)
                i0 = i1
            }
        }
    }
    guard let probabilities else { return out }
    out.requiresGrad = Tape.recordIfNeeded("attention", inputs: [q, k, v]) {
        guard let gOut = out.gradIfPresent?.pointer else { return }
        let dq = q.grad.pointer, dk = k.grad.pointer, dv = v.grad.pointer
        // One task per (batch, kv head): the query heads sharing a kv head accumulate into
        // the same dK/dV rows, so they run in one task, in turn.
        parallelFor(B * KV) { task in
            let b = task / KV, g = task % KV
            let kBase = pk + b * T * kvStride + g * D, vBase = pv + b * T * kvStride + g * D
            let dkBase = dk + b * T * kvStride + g * D, dvBase = dv + b * T * kvStride + g * D
            let scores = Storage(uninitializedCount: attentionRowBlock * T)
            let rowDot = Storage(uninitializedCount: T)
            for h in (g * group)..<((g + 1) * group) {
                let qBase = pq + b * T * qStride + h * D, oBase = po + b * T * qStride + h * D
                let dqBase = dq + b * T * qStride + h * D, doBase = gOut + b * T * qStride + h * D
                let pBase = probabilities.pointer + (b * H + h) * T * T
                for r in 0..<T {
                    var s: Float = 0
                    let o = oBase + r * qStride, d = doBase + r * qStride
                    for c in 0..<D { s += o[c] * d[c] }
                    rowDot.pointer[r] = s
                }
                var i0 = 0
                while i0 < T {
                    let i1 = Swift.min(i0 + attentionRowBlock, T), rowCount = i1 - i0
                    let dS = scores.pointer   // [rowCount, i1], leading dimension i1
                    // dP = dO · Vᵀ
                    sgemm(transposeA: false, transposeB: true, m: rowCount, n: i1, k: D,
                          a: doBase + i0 * qStride, lda: qStride, b: vBase, ldb: kvStride, beta: 0, c: dS, ldc: i1)
                    // dV += Pᵀ · dO
                    sgemm(transposeA: true, transposeB: false, m: i1, n: D, k: rowCount,
                          a: pBase + i0 * T, lda: T, b: doBase + i0 * qStride, ldb: qStride, beta: 1, c: dvBase, ldc: kvStride)
                    for r in 0..<rowCount {
                        let p = pBase + (i0 + r) * T, row = dS + r * i1, dot = rowDot.pointer[i0 + r]
                        let valid = i0 + r + 1
                        for c in 0..<valid { row[c] = p[c] * (row[c] - dot) }
                        for c in valid..<i1 { row[c] = 0 }
                    }
                    if q.requiresGrad {
                        sgemm(transposeA: false, transposeB: false, m: rowCount, n: D, k: i1, alpha: scale,
                              a: dS, lda: i1, b: kBase, ldb: kvStride, beta: 1, c: dqBase + i0 * qStride, ldc: qStride)
                    }
                    if k.requiresGrad {
                        sgemm(transposeA: true, transposeB: false, m: i1, n: D, k: rowCount, alpha: scale,
                              a: dS, lda: i1, b: qBase + i0 * qStride, ldb: qStride, beta: 1, c: dkBase, ldc: kvStride)
                    }
                    i0 = i1
                }
            }
        }
    }
    return out
}

/// Softmax over the first `valid` entries of a row in place; entries `valid..<width` become 0.
@inline(__always)
public func softmaxCausalRow(_ row: UnsafeMutablePointer<Float>, valid: Int, width: Int) {
    let maxValue = FastMath.maximum(row, count: valid)
    let inverse = 1 / FastMath.exp(row, shift: -maxValue, into: row, count: valid)
    for c in 0..<valid { row[c] *= inverse }
    for c in valid..<width { row[c] = 0 }
}
