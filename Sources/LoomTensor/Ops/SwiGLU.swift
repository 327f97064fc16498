/// SwiGLU gate of the Llama MLP: silu(gate) · up, elementwise, with silu(g) = g·σ(g).
///
/// Backward: d gate = dy·up·σ(g)·(1 + g·(1 − σ(g))), d up = dy·silu(g).
public func swiglu(gate: Tensor, up: Tensor) -> Tensor {
    precondition(gate.shape == up.shape, "swiglu: gate \(gate.shape) and up \(up.shape) differ")
    let n = gate.count
    let out = Tensor(uninitialized: gate.shape)
    let pg = gate.data, pu = up.data, po = out.data
    Profiler.time("swiglu", phase: .forward) {
        parallelRanges(n / 8, minimumChunk: 512) { range in
            for block in range {
                let i = block * 8
                let g = load8(pg + i)
                store8(g * FastMath.sigmoid(g) * load8(pu + i), po + i)
            }
        }
        for i in (n / 8 * 8)..<n { po[i] = pg[i] * scalarSigmoid(pg[i]) * pu[i] }
    }
    out.requiresGrad = Tape.recordIfNeeded("swiglu", inputs: [gate, up]) {
        guard let dy = out.gradIfPresent?.pointer else { return }
        // Both gradients are allocated up front so the vector loop has no branches.
        let dg = gate.grad.pointer, du = up.grad.pointer
        parallelRanges(n / 8, minimumChunk: 512) { range in
            for block in range {
                let i = block * 8
                let g = load8(pg + i), u = load8(pu + i), d = load8(dy + i)
                let s = FastMath.sigmoid(g)
                store8(load8(dg + i) + d * u * s * (1 + g * (1 - s)), dg + i)
                store8(load8(du + i) + d * g * s, du + i)
            }
        }
        for i in (n / 8 * 8)..<n {
            let g = pg[i], s = scalarSigmoid(g)
            dg[i] += dy[i] * pu[i] * s * (1 + g * (1 - s))
            du[i] += dy[i] * g * s
        }
    }
    return out
}

@inline(__always) func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}
@inline(__always) func load8(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}
@inline(__always) func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}
@inline(__always) func scalarSigmoid(_ x: Float) -> Float { 1 / (1 + FastMath.exp(-x)) }
