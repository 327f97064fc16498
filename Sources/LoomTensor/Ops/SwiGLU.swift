import Foundation

/// SwiGLU gate of the Llama MLP: silu(gate) · up, elementwise, with silu(g) = g·σ(g).
///
/// Backward: d gate = dy·up·σ(g)·(1 + g·(1 − σ(g))), d up = dy·silu(g).
public func swiglu(gate: Tensor, up: Tensor) -> Tensor {
    precondition(gate.shape == up.shape, "swiglu: gate \(gate.shape) and up \(up.shape) differ")
    let n = gate.count
    let out = Tensor(uninitialized: gate.shape)
    let pg = gate.data, pu = up.data, po = out.data
    Profiler.time("swiglu", phase: .forward) {
        parallelRanges(n, minimumChunk: 4096) { range in
            for i in range {
                let g = pg[i]
                po[i] = g / (1 + Foundation.exp(-g)) * pu[i]
            }
        }
    }
    out.requiresGrad = Tape.recordIfNeeded("swiglu", inputs: [gate, up]) {
        guard let dy = out.gradIfPresent?.pointer else { return }
        let dg: UnsafeMutablePointer<Float>? = gate.requiresGrad ? gate.grad.pointer : nil
        let du: UnsafeMutablePointer<Float>? = up.requiresGrad ? up.grad.pointer : nil
        parallelRanges(n, minimumChunk: 4096) { range in
            for i in range {
                let g = pg[i], s = 1 / (1 + Foundation.exp(-g))
                if let dg { dg[i] += dy[i] * pu[i] * s * (1 + g * (1 - s)) }
                if let du { du[i] += dy[i] * g * s }
            }
        }
    }
    return out
}
