import Foundation

/// RMSNorm as in Llama: y = x / sqrt(mean(x²) + eps) · weight, over the last axis.
///
/// Backward, with x̂ = x·r (r = 1/rms) and ĝ = dy·w:
/// dw += Σ_rows dy·x̂;  dx = r·(ĝ − x̂·mean(ĝ·x̂)).
public func rmsNorm(_ x: Tensor, weight: Tensor, eps: Float) -> Tensor {
    let columns = x.lastDimension, rows = x.rows
    precondition(weight.count == columns, "rmsNorm: weight has \(weight.count) elements, input rows have \(columns)")
    let out = Tensor(uninitialized: x.shape)
    let inverseRMS = Storage(uninitializedCount: rows)
    let px = x.data, pw = weight.data, po = out.data
    Profiler.time("rmsNorm", phase: .forward) {
        let pr = inverseRMS.pointer
        parallelRanges(rows, minimumChunk: 16) { range in
            for r in range {
                let row = px + r * columns, dst = po + r * columns
                var sumSquares: Float = 0
                for c in 0..<columns { sumSquares += row[c] * row[c] }
                let inv = 1 / (sumSquares / Float(columns) + eps).squareRoot()
                pr[r] = inv
                for c in 0..<columns { dst[c] = row[c] * inv * pw[c] }
            }
        }
    }
    out.requiresGrad = Tape.recordIfNeeded("rmsNorm", inputs: [x, weight]) {
        guard let g = out.gradIfPresent?.pointer else { return }
        let pr = inverseRMS.pointer   // captures the storage, keeping it alive until backward
        let chunks = Swift.max(1, Swift.min(Threading.threadCount, rows / 16))
        // Each thread sums its rows' weight gradient privately; the partial sums are added at the end.
        let partialWeightGrad = Storage(count: chunks * columns)
        let gx: UnsafeMutablePointer<Float>? = x.requiresGrad ? x.grad.pointer : nil
        parallelFor(chunks) { chunk in
            let dw = partialWeightGrad.pointer + chunk * columns
            for r in (rows * chunk / chunks)..<(rows * (chunk + 1) / chunks) {
                let row = px + r * columns, grow = g + r * columns, inv = pr[r]
                var dot: Float = 0
                for c in 0..<columns {
                    let normalized = row[c] * inv
                    dw[c] += grow[c] * normalized
                    dot += grow[c] * pw[c] * normalized
                }
                if let gx {
                    let meanDot = dot / Float(columns), dst = gx + r * columns
                    for c in 0..<columns {
                        dst[c] += inv * (grow[c] * pw[c] - row[c] * inv * meanDot)
                    }
                }
            }
        }
        if weight.requiresGrad {
            let gw = weight.grad.pointer
            for chunk in 0..<chunks {
                let dw = partialWeightGrad.pointer + chunk * columns
                for c in 0..<columns { gw[c] += dw[c] }
            }
        }
    }
    return out
}
