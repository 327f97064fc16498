/// Reductions: over all elements, or over the last axis (one value per row).

/// Sum of all elements, shape [1].
public func sum(_ x: Tensor) -> Tensor {
    let out = Tensor(zeros: [1])
    let n = x.count, px = x.data
    var total: Double = 0
    for i in 0..<n { total += Double(px[i]) }
    out.data[0] = Float(total)
    out.requiresGrad = Tape.recordIfNeeded("sum", inputs: [x]) {
        guard let g = out.gradIfPresent?.pointer[0] else { return }
        let gx = x.grad.pointer
        for i in 0..<n { gx[i] += g }
    }
    return out
}

/// Mean of all elements, shape [1].
public func mean(_ x: Tensor) -> Tensor { scale(sum(x), 1 / Float(Swift.max(x.count, 1))) }

/// Sum over the last axis: `[..., c]` → `[...]` (a 1-D input gives [1]).
public func sumLastAxis(_ x: Tensor) -> Tensor {
    let columns = x.lastDimension, rows = x.rows
    let out = Tensor(zeros: x.rank > 1 ? Array(x.shape.dropLast()) : [1])
    let px = x.data, po = out.data
    for r in 0..<rows {
        var s: Float = 0
        for c in 0..<columns { s += px[r * columns + c] }
        po[r] = s
    }
    out.requiresGrad = Tape.recordIfNeeded("sumLastAxis", inputs: [x]) {
        guard let g = out.gradIfPresent?.pointer else { return }
        let gx = x.grad.pointer
        for r in 0..<rows { for c in 0..<columns { gx[r * columns + c] += g[r] } }
    }
    return out
}

/// Mean over the last axis: `[..., c]` → `[...]`.
public func meanLastAxis(_ x: Tensor) -> Tensor { scale(sumLastAxis(x), 1 / Float(Swift.max(x.lastDimension, 1))) }
