/// Selects rows of a `[rows, columns]` tensor: `[indices.count, columns]`. Used to take the
/// last token's hidden state for a reward score. Backward scatter-adds into the chosen rows.
public func gatherRows(_ x: Tensor, indices: [Int]) -> Tensor {
    let columns = x.lastDimension, rows = x.rows
    let out = Tensor(uninitialized: [indices.count, columns])
    for (i, r) in indices.enumerated() {
        precondition(r >= 0 && r < rows, "gatherRows: index \(r) outside 0..<\(rows)")
        (out.data + i * columns).update(from: x.data + r * columns, count: columns)
    }
    out.requiresGrad = Tape.recordIfNeeded("gatherRows", inputs: [x]) {
        guard let g = out.gradIfPresent?.pointer else { return }
        let gx = x.grad.pointer
        for (i, r) in indices.enumerated() {
            for c in 0..<columns { gx[r * columns + c] += g[i * columns + c] }
        }
    }
    return out
}
