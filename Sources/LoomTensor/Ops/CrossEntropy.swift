import Foundation

/// The token id that `crossEntropy` skips (PyTorch's default `ignore_index`).
public let ignoredTarget: Int32 = -100

/// Log-sum-exp of each row of `[rows, columns]` logits.
@inline(__always)
func rowLogSumExp(_ row: UnsafePointer<Float>, _ columns: Int) -> Float {
    let maxValue = FastMath.maximum(row, count: columns)
    return maxValue + Foundation.log(FastMath.expSum(row, shift: -maxValue, count: columns))
}

/// Mean cross-entropy of `logits` (`[rows, vocab]`) against one target per row; rows whose
/// target is `ignoredTarget` are not counted. With no counted row the loss is 0 (PyTorch
/// returns NaN there; 0 lets a fully masked micro-batch pass through accumulation).
///
/// Backward: dlogits = (softmax − onehot(target)) · dloss / counted, recomputed from the
/// saved log-sum-exp so no `[rows, vocab]` probability matrix is kept.
public func crossEntropy(logits: Tensor, targets: [Int32]) -> Tensor {
    let vocab = logits.lastDimension, rows = logits.rows
    precondition(targets.count == rows, "crossEntropy: \(targets.count) targets for \(rows) rows of logits")
    let logSumExp = Storage(uninitializedCount: rows)
    let rowLoss = Storage(count: rows)
    let pl = logits.data
    var counted = 0
    for (i, t) in targets.enumerated() {
        if t == ignoredTarget { continue }
        precondition(t >= 0 && Int(t) < vocab, "crossEntropy: target \(t) at row \(i) outside vocabulary of \(vocab)")
        counted += 1
    }
    Profiler.time("crossEntropy", phase: .forward) {
        targets.withUnsafeBufferPointer { tp in
            parallelRanges(rows, minimumChunk: 8) { range in
                for r in range where tp[r] != ignoredTarget {
                    let row = pl + r * vocab
                    let lse = rowLogSumExp(row, vocab)
                    logSumExp.pointer[r] = lse
                    rowLoss.pointer[r] = lse - row[Int(tp[r])]
                }
            }
        }
    }
    var total: Double = 0
    for r in 0..<rows { total += Double(rowLoss.pointer[r]) }
    let out = Tensor(shape: [1], values: [counted > 0 ? Float(total / Double(counted)) : 0])
    out.requiresGrad = Tape.recordIfNeeded("crossEntropy", inputs: [logits]) {
        guard let g = out.gradIfPresent?.pointer[0], counted > 0 else { return }
        let dl = logits.grad.pointer, factor = g / Float(counted)
        targets.withUnsafeBufferPointer { tp in
            parallelRanges(rows, minimumChunk: 8) { range in
                for r in range where tp[r] != ignoredTarget {
                    let row = pl + r * vocab, drow = dl + r * vocab, lse = logSumExp.pointer[r]
                    // softmax into the gradient row, then scale: two vector passes.
                    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: vocab)
                    FastMath.exp(row, shift: -lse, into: scratch, count: vocab)
                    for c in 0..<vocab { drow[c] += scratch[c] * factor }
                    scratch.deallocate()
                    drow[Int(tp[r])] -= factor
                }
            }
        }
    }
    return out
}

/// log softmax(logits)[target] for each row: `[rows, vocab]` → `[rows]`. The building block
/// of every policy loss (PPO, DPO, GRPO) and of sequence scoring. Rows whose target is
/// `ignoredTarget` give 0 and receive no gradient.
///
/// Backward: dlogits_r = g_r · (onehot(target_r) − softmax_r).
public func logSoftmaxGather(logits: Tensor, targets: [Int32]) -> Tensor {
    let vocab = logits.lastDimension, rows = logits.rows
    precondition(targets.count == rows, "logSoftmaxGather: \(targets.count) targets for \(rows) rows")
    for (i, t) in targets.enumerated() where t != ignoredTarget && (t < 0 || Int(t) >= vocab) {
        preconditionFailure("logSoftmaxGather: target \(t) at row \(i) outside vocabulary of \(vocab)")
    }
    let out = Tensor(zeros: [rows])
    let logSumExp = Storage(uninitializedCount: rows)
    let pl = logits.data, po = out.data
    Profiler.time("logSoftmaxGather", phase: .forward) {
        targets.withUnsafeBufferPointer { tp in
            parallelRanges(rows, minimumChunk: 8) { range in
                for r in range where tp[r] != ignoredTarget {
                    let row = pl + r * vocab
                    let lse = rowLogSumExp(row, vocab)
                    logSumExp.pointer[r] = lse
                    po[r] = row[Int(tp[r])] - lse
                }
            }
        }
    }
    out.requiresGrad = Tape.recordIfNeeded("logSoftmaxGather", inputs: [logits]) {
        guard let g = out.gradIfPresent?.pointer else { return }
        let dl = logits.grad.pointer
        targets.withUnsafeBufferPointer { tp in
            parallelRanges(rows, minimumChunk: 8) { range in
                for r in range where tp[r] != ignoredTarget && g[r] != 0 {
                    let row = pl + r * vocab, drow = dl + r * vocab, lse = logSumExp.pointer[r], gr = g[r]
                    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: vocab)
                    FastMath.exp(row, shift: -lse, into: scratch, count: vocab)
                    for c in 0..<vocab { drow[c] -= gr * scratch[c] }
                    scratch.deallocate()
                    drow[Int(tp[r])] += gr
                }
            }
        }
    }
    return out
}

/// Entropy of softmax(logits) per row (no gradient; for logging policy entropy).
public func softmaxEntropy(logits: Tensor) -> [Float] {
    let vocab = logits.lastDimension, rows = logits.rows
    var result = [Float](repeating: 0, count: rows)
    for r in 0..<rows {
        let row = logits.data + r * vocab
        let lse = rowLogSumExp(row, vocab)
        var h: Float = 0
        for c in 0..<vocab {
            let logp = row[c] - lse
            h -= Foundation.exp(logp) * logp
        }
        result[r] = h
    }
    return result
}
