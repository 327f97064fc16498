/// Token embedding lookup: `table` is `[vocab, hidden]`, `ids` one token id per row.
/// Returns `[ids.count, hidden]`.
///
/// Backward scatter-adds each row's gradient into the table row of its id. Threads split
/// the hidden dimension, so two rows with the same id never race.
public func embedding(_ table: Tensor, ids: [Int32]) -> Tensor {
    precondition(table.rank == 2, "embedding: table must be 2-D, got \(table.shape)")
    let vocab = table.shape[0], hidden = table.shape[1], n = ids.count
    for (i, id) in ids.enumerated() where id < 0 || Int(id) >= vocab {
        preconditionFailure("embedding: token id \(id) at position \(i) is outside the vocabulary of \(vocab)")
    }
    let out = Tensor(uninitialized: [n, hidden])
    Profiler.time("embedding", phase: .forward) {
        ids.withUnsafeBufferPointer { idp in
            for r in 0..<n {
                (out.data + r * hidden).update(from: table.data + Int(idp[r]) * hidden, count: hidden)
            }
        }
    }
    out.requiresGrad = Tape.recordIfNeeded("embedding", inputs: [table]) {
        guard let g = out.gradIfPresent?.pointer else { return }
        let gt = table.grad.pointer
        ids.withUnsafeBufferPointer { idp in
            parallelRanges(hidden, minimumChunk: 32) { cols in
                for r in 0..<n {
                    let src = g + r * hidden, dst = gt + Int(idp[r]) * hidden
                    for c in cols { dst[c] += src[c] }
                }
            }
        }
    }
    return out
}
