import Foundation

/// How the second operand of a binary op lines up with the first (`[rows, columns]`).
enum Broadcast {
    case same      // b has a's shape
    case row       // b is one row of `columns` values, repeated for every row of a
    case column    // b has one value per row of a (shape [rows, 1] or [rows])
    case scalar    // b has one value

    init(_ a: Tensor, _ b: Tensor, op: String) {
        if b.count == a.count && (b.shape == a.shape || b.rank == 1 || a.rank == 1) { self = .same }
        else if b.count == 1 { self = .scalar }
        else if b.count == a.lastDimension && b.lastDimension == a.lastDimension { self = .row }
        else if b.count == a.rows && b.lastDimension == 1 || (b.rank == 1 && b.count == a.rows) { self = .column }
        else { preconditionFailure("\(op): cannot broadcast \(b.shape) onto \(a.shape)") }
    }

}

/// Calls `body(i, j)` for every element i of a and its partner j in b. The switch sits
/// outside the loops so that each loop is a plain, vectorisable one.
@inline(__always)
private func forEachPair(_ mode: Broadcast, count n: Int, columns: Int, _ body: (Int, Int) -> Void) {
    switch mode {
    case .same: for i in 0..<n { body(i, i) }
    case .scalar: for i in 0..<n { body(i, 0) }
    case .row:
        for r in 0..<(n / columns) { let base = r * columns; for c in 0..<columns { body(base + c, c) } }
    case .column:
        for r in 0..<(n / columns) { let base = r * columns; for c in 0..<columns { body(base + c, r) } }
    }
}

/// The binary ops differ only in the forward formula and the two partial derivatives.
@inline(__always)
private func binary(
    _ op: StaticString, _ a: Tensor, _ b: Tensor,
    forward: (Float, Float) -> Float,
    dA: @escaping (Float, Float, Float) -> Float,   // (a, b, out) → ∂out/∂a
    dB: @escaping (Float, Float, Float) -> Float    // (a, b, out) → ∂out/∂b
) -> Tensor {
    let mode = Broadcast(a, b, op: "\(op)")
    let columns = a.lastDimension
    let out = Tensor(uninitialized: a.shape)
    let n = a.count
    let pa = a.data, pb = b.data, po = out.data
    Profiler.time(op, phase: .forward) {
        forEachPair(mode, count: n, columns: columns) { i, j in po[i] = forward(pa[i], pb[j]) }
    }
    out.requiresGrad = Tape.recordIfNeeded(op, inputs: [a, b]) {
        guard let g = out.gradIfPresent?.pointer else { return }
        if a.requiresGrad {
            let ga = a.grad.pointer
            forEachPair(mode, count: n, columns: columns) { i, j in ga[i] += g[i] * dA(pa[i], pb[j], po[i]) }
        }
        if b.requiresGrad {
            let gb = b.grad.pointer
            forEachPair(mode, count: n, columns: columns) { i, j in gb[j] += g[i] * dB(pa[i], pb[j], po[i]) }
        }
    }
    return out
}

/// The unary ops differ only in the formula and its derivative.
@inline(__always)
private func unary(
    _ op: StaticString, _ x: Tensor,
    forward: (Float) -> Float,
    derivative: @escaping (Float, Float) -> Float   // (x, out) → ∂out/∂x
) -> Tensor {
    let out = Tensor(uninitialized: x.shape)
    let n = x.count, px = x.data, po = out.data
    Profiler.time(op, phase: .forward) {
        for i in 0..<n { po[i] = forward(px[i]) }
    }
    out.requiresGrad = Tape.recordIfNeeded(op, inputs: [x]) {
        guard let g = out.gradIfPresent?.pointer else { return }
        let gx = x.grad.pointer
        for i in 0..<n { gx[i] += g[i] * derivative(px[i], po[i]) }
    }
    return out
}

// MARK: Binary ops (b broadcasts over a: same shape, one row, one value per row, or a scalar)

public func add(_ a: Tensor, _ b: Tensor) -> Tensor {
    guard a.shape == b.shape else {
        return binary("add", a, b, forward: { $0 + $1 }, dA: { _, _, _ in 1 }, dB: { _, _, _ in 1 })
    }
    // Same shapes (the residual stream): the output's gradient passes through unchanged, so
    // an input that has no gradient yet takes the output's gradient buffer itself instead
    // of a zeroed copy plus an accumulation pass. Safe because ops run backward in reverse
    // order: when this backward runs, every consumer of `out` has already added into it.
    let n = a.count, out = Tensor(uninitialized: a.shape)
    let pa = a.data, pb = b.data, po = out.data
    Profiler.time("add", phase: .forward) {
        parallelRanges(n, minimumChunk: 1 << 16) { range in for i in range { po[i] = pa[i] + pb[i] } }
    }
    out.requiresGrad = Tape.recordIfNeeded("add", inputs: [a, b]) {
        guard let g = out.gradIfPresent else { return }
        var targets = [a, b].filter(\.requiresGrad)
        if let i = targets.firstIndex(where: { $0.gradIfPresent == nil && $0.gradientSlot !== out.gradientSlot }) {
            targets[i].gradientSlot.storage = g
            targets.remove(at: i)
        }
        for t in targets {
            let gt = t.grad.pointer, pg = g.pointer
            parallelRanges(n, minimumChunk: 1 << 16) { range in for i in range { gt[i] += pg[i] } }
        }
    }
    return out
}
public func sub(_ a: Tensor, _ b: Tensor) -> Tensor {
    binary("sub", a, b, forward: { $0 - $1 }, dA: { _, _, _ in 1 }, dB: { _, _, _ in -1 })
}
public func mul(_ a: Tensor, _ b: Tensor) -> Tensor {
    binary("mul", a, b, forward: { $0 * $1 }, dA: { _, b, _ in b }, dB: { a, _, _ in a })
}
public func div(_ a: Tensor, _ b: Tensor) -> Tensor {
    binary("div", a, b, forward: { $0 / $1 }, dA: { _, b, _ in 1 / b }, dB: { a, b, _ in -a / (b * b) })
}
/// Elementwise minimum; the gradient goes to the smaller operand (to `a` on ties).
public func minimum(_ a: Tensor, _ b: Tensor) -> Tensor {
    binary("minimum", a, b, forward: { Swift.min($0, $1) },
           dA: { a, b, _ in a <= b ? 1 : 0 }, dB: { a, b, _ in a <= b ? 0 : 1 })
}
/// Elementwise maximum; the gradient goes to the larger operand (to `a` on ties).
public func maximum(_ a: Tensor, _ b: Tensor) -> Tensor {
    binary("maximum", a, b, forward: { Swift.max($0, $1) },
           dA: { a, b, _ in a >= b ? 1 : 0 }, dB: { a, b, _ in a >= b ? 0 : 1 })
}

public func + (a: Tensor, b: Tensor) -> Tensor { add(a, b) }
public func - (a: Tensor, b: Tensor) -> Tensor { sub(a, b) }
public func * (a: Tensor, b: Tensor) -> Tensor { mul(a, b) }
public func / (a: Tensor, b: Tensor) -> Tensor { div(a, b) }
public func * (a: Tensor, s: Float) -> Tensor { scale(a, s) }
public func + (a: Tensor, s: Float) -> Tensor { addScalar(a, s) }
public prefix func - (a: Tensor) -> Tensor { scale(a, -1) }

// MARK: Unary ops

public func scale(_ x: Tensor, _ s: Float) -> Tensor {
    unary("scale", x, forward: { $0 * s }, derivative: { _, _ in s })
}
public func addScalar(_ x: Tensor, _ s: Float) -> Tensor {
    unary("addScalar", x, forward: { $0 + s }, derivative: { _, _ in 1 })
}
public func exp(_ x: Tensor) -> Tensor {
    unary("exp", x, forward: { Foundation.exp($0) }, derivative: { _, y in y })
}
public func log(_ x: Tensor) -> Tensor {
    unary("log", x, forward: { Foundation.log($0) }, derivative: { x, _ in 1 / x })
}
public func sigmoid(_ x: Tensor) -> Tensor {
    unary("sigmoid", x, forward: { stableSigmoid($0) }, derivative: { _, y in y * (1 - y) })
}
/// log σ(x), computed without overflow for large |x|: −softplus(−x).
public func logSigmoid(_ x: Tensor) -> Tensor {
    unary("logSigmoid", x, forward: { stableLogSigmoid($0) }, derivative: { x, _ in 1 - stableSigmoid(x) })
}
/// Clamps to [lower, upper]; the gradient is zero where the value was clipped.
public func clamp(_ x: Tensor, min lower: Float = -.infinity, max upper: Float = .infinity) -> Tensor {
    unary("clamp", x, forward: { Swift.min(Swift.max($0, lower), upper) },
          derivative: { x, _ in (x >= lower && x <= upper) ? 1 : 0 })
}
public func square(_ x: Tensor) -> Tensor {
    unary("square", x, forward: { $0 * $0 }, derivative: { x, _ in 2 * x })
}

/// Picks `a` where `condition` is true, else `b` (same shapes); gradients follow the pick.
public func where_(_ condition: [Bool], _ a: Tensor, _ b: Tensor) -> Tensor {
    precondition(condition.count == a.count && a.shape == b.shape,
                 "where: condition (\(condition.count)) and operands \(a.shape), \(b.shape) must match")
    let out = Tensor(uninitialized: a.shape)
    let n = a.count, pa = a.data, pb = b.data, po = out.data
    for i in 0..<n { po[i] = condition[i] ? pa[i] : pb[i] }
    out.requiresGrad = Tape.recordIfNeeded("where", inputs: [a, b]) {
        guard let g = out.gradIfPresent?.pointer else { return }
        if a.requiresGrad { let ga = a.grad.pointer; for i in 0..<n where condition[i] { ga[i] += g[i] } }
        if b.requiresGrad { let gb = b.grad.pointer; for i in 0..<n where !condition[i] { gb[i] += g[i] } }
    }
    return out
}

@inline(__always) public func stableSigmoid(_ x: Float) -> Float {
    x >= 0 ? 1 / (1 + Foundation.exp(-x)) : { let e = Foundation.exp(x); return e / (1 + e) }()
}
@inline(__always) public func stableLogSigmoid(_ x: Float) -> Float {
    // log σ(x) = min(x, 0) − log(1 + e^{−|x|})
    Swift.min(x, 0) - Foundation.log1p(Foundation.exp(-Swift.abs(x)))
}
