import Foundation

/// The token id that `crossEntropy` skips (PyTorch's default `ignore_index`).
public let ignoredTarget: Int32 = -100

/// Log-sum-exp of each row of `[rows, columns]` logits.
@inline(__always)
func rowLogSumExp(_ row: UnsafePointer<Float>, _ columns: Int) -> Float {
    let maxValue = FastMath.maximum(row, count: columns)
    return maxValue + Foundation.log(FastMath.expSum(row, shift: -maxValue, count: columns))
}

/// Forward shared by `crossEntropy` and `logSoftmaxGather`: for every row with a counted
/// target, the row's log-sum-exp (kept for backward) and log softmax(row)[target].
private func gatherTargetLogProbs(_ logits: UnsafeMutablePointer<Float>, vocab: Int, targets: [Int32],
                                  logSumExp: Storage, into logProbs: UnsafeMutablePointer<Float>) {
    targets.withUnsafeBufferPointer { tp in
        parallelRanges(targets.count, minimumChunk: 8) { range in
            for r in range where tp[r] != ignoredTarget {
                let row = logits + r * vocab
                let lse = rowLogSumExp(row, vocab)
                logSumExp.pointer[r] = lse
                logProbs[r] = row[Int(tp[r])] - lse
            }
        }
    }
}

/// Backward shared by both: dlogits_r += w_r · (softmax_r − onehot(target_r)) for every counted
/// row, with the softmax recomputed from the saved log-sum-exp (one scratch row per thread),
/// so no `[rows, vocab]` probability matrix is kept.
private func accumulateSoftmaxGradient(_ logits: UnsafeMutablePointer<Float>, vocab: Int, targets: [Int32],
                                       logSumExp: Storage, into gradient: UnsafeMutablePointer<Float>,
                                       weight: (Int) -> Float) {
    targets.withUnsafeBufferPointer { tp in
        parallelRanges(targets.count, minimumChunk: 8) { range in
            let probabilities = UnsafeMutablePointer<Float>.allocate(capacity: vocab)
            defer { probabilities.deallocate() }
            for r in range where tp[r] != ignoredTarget {
                let w = weight(r)
                if w == 0 { continue }
                let drow = gradient + r * vocab
                FastMath.exp(logits + r * vocab, shift: -logSumExp.pointer[r], into: probabilities, count: vocab)
                for c in 0..<vocab { drow[c] += w * probabilities[c] }
                drow[Int(tp[r])] -= w
            }
        }
    }
}

/// Mean cross-entropy of `logits` (`[rows, vocab]`) against one target per row; rows whose
/// target is `ignoredTarget` are not counted. With no counted row the loss is 0 (PyTorch
/// returns NaN there; 0 lets a fully masked micro-batch pass through accumulation).
///
/// Backward: dlogits = (softmax − onehot(target)) · dloss / counted.
public func crossEntropy(logits: Tensor, targets: [Int32]) -> Tensor {
    let vocab = logits.lastDimension, rows = logits.rows
    precondition(targets.count == rows, "crossEntropy: \(targets.count) targets for \(rows) rows of logits")
    var counted = 0
    for (i, t) in targets.enumerated() where t != ignoredTarget {
        precondition(t >= 0 && Int(t) < vocab, "crossEntropy: target \(t) at row \(i) outside vocabulary of \(vocab)")
        counted += 1
    }
    let logSumExp = Storage(uninitializedCount: rows)
    let logProbs = Storage(count: rows)
    Profiler.time("crossEntropy", phase: .forward) {
        gatherTargetLogProbs(logits.data, vocab: vocab, targets: targets, logSumExp: logSumExp, into: logProbs.pointer)
    }
    var total: Double = 0
    for r in 0..<rows { total -= Double(logProbs.pointer[r]) }
    let out = Tensor(shape: [1], values: [counted > 0 ? Float(total / Double(counted)) : 0])
    out.requiresGrad = Tape.recordIfNeeded("crossEntropy", inputs: [logits]) {
        guard let g = out.gradIfPresent?.pointer[0], counted > 0 else { return }
        let factor = g / Float(counted)
        accumulateSoftmaxGradient(logits.data, vocab: vocab, targets: targets, logSumExp: logSumExp,
                                  into: logits.grad.pointer) { _ in factor }
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
    Profiler.time("logSoftmaxGather", phase: .forward) {
        gatherTargetLogProbs(logits.data, vocab: vocab, targets: targets, logSumExp: logSumExp, into: out.data)
    }
    out.requiresGrad = Tape.recordIfNeeded("logSoftmaxGather", inputs: [logits]) {
        guard let g = out.gradIfPresent?.pointer else { return }
        accumulateSoftmaxGradient(logits.data, vocab: vocab, targets: targets, logSumExp: logSumExp,
                                  into: logits.grad.pointer) { -g[$0] }
    }
    return out
}

/// Entropy of softmax(logits) per row (no gradient; for logging policy entropy):
/// H = lse − Σ p·x.
public func softmaxEntropy(logits: Tensor) -> [Float] {
    let vocab = logits.lastDimension, rows = logits.rows
    var result = [Float](repeating: 0, count: rows)
    result.withUnsafeMutableBufferPointer { out in
        parallelRanges(rows, minimumChunk: 8) { range in
            let probabilities = UnsafeMutablePointer<Float>.allocate(capacity: vocab)
            defer { probabilities.deallocate() }
            for r in range {
                let row = logits.data + r * vocab
                let lse = rowLogSumExp(row, vocab)
                FastMath.exp(row, shift: -lse, into: probabilities, count: vocab)
                var expected: Float = 0
                for c in 0..<vocab { expected += probabilities[c] * row[c] }
                out[r] = lse - expected
            }
        }
    }
    return result
}
