import Foundation

/// Cosines and sines of the rotary position embedding (Hugging Face Llama convention:
/// the head vector is split into halves, not interleaved pairs), for positions
/// `0..<maxPositions`. Pair i < headDim/2 turns by position · frequency_i; plain RoPE has
/// frequency_i = theta^(−2i/headDim), and a RoPE scaling (linear, Llama 3) changes the
/// frequencies only.
public final class RotaryTable: @unchecked Sendable {
    public let headDim: Int
    public let maxPositions: Int
    /// frequency_i for each pair, as float32 (the precision Hugging Face computes angles in).
    public let inverseFrequencies: [Float]
    let cosines: Storage   // [maxPositions, headDim/2]
    let sines: Storage

    /// Plain RoPE's frequency of each pair: theta^(−2i/headDim), i < headDim/2, in double
    /// precision (a scaling changes them before they are rounded to float32).
    public static func plainFrequencies(headDim: Int, theta: Double) -> [Double] {
        (0..<headDim / 2).map { 1.0 / Foundation.pow(theta, Double(2 * $0) / Double(headDim)) }
    }

    /// Plain RoPE with base `theta`.
    public convenience init(headDim: Int, maxPositions: Int, theta: Double) {
        self.init(headDim: headDim, maxPositions: maxPositions,
                  inverseFrequencies: Self.plainFrequencies(headDim: headDim, theta: theta).map(Float.init))
    }

    public init(headDim: Int, maxPositions: Int, inverseFrequencies: [Float]) {
        precondition(headDim % 2 == 0, "rotary embedding needs an even head dimension, got \(headDim)")
        precondition(inverseFrequencies.count == headDim / 2, "rotary embedding needs \(headDim / 2) frequencies, got \(inverseFrequencies.count)")
        self.headDim = headDim
        self.maxPositions = maxPositions
        self.inverseFrequencies = inverseFrequencies
        let half = headDim / 2
        cosines = Storage(uninitializedCount: maxPositions * half)
        sines = Storage(uninitializedCount: maxPositions * half)
        for (i, inverseFrequency) in inverseFrequencies.enumerated() {
            // Hugging Face computes the angle in float32.
            for p in 0..<maxPositions {
                let angle = Float(p) * inverseFrequency
                cosines.pointer[p * half + i] = Foundation.cos(angle)
                sines.pointer[p * half + i] = Foundation.sin(angle)
            }
        }
    }
}

/// Rotates every head of `x` (`[rows, heads·headDim]`) by the angle of its row's position.
/// For i < half: y_i = x_i·cos − x_{i+half}·sin, y_{i+half} = x_{i+half}·cos + x_i·sin.
///
/// Backward is the inverse rotation (the transpose): dx_i = dy_i·cos + dy_{i+half}·sin,
/// dx_{i+half} = dy_{i+half}·cos − dy_i·sin.
public func rope(_ x: Tensor, table: RotaryTable, positions: [Int32]) -> Tensor {
    let width = x.lastDimension, rows = x.rows, headDim = table.headDim, half = headDim / 2
    precondition(width % headDim == 0, "rope: row width \(width) is not a multiple of head dim \(headDim)")
    precondition(positions.count == rows, "rope: \(positions.count) positions for \(rows) rows")
    let heads = width / headDim
    if let bad = positions.first(where: { $0 < 0 || Int($0) >= table.maxPositions }) {
        preconditionFailure("rope: position \(bad) outside 0..<\(table.maxPositions) (max_position_embeddings)")
    }
    let out = Tensor(uninitialized: x.shape)
    let px = x.data, po = out.data, cosines = table.cosines.pointer, sines = table.sines.pointer
    func rotate(_ src: UnsafeMutablePointer<Float>, _ dst: UnsafeMutablePointer<Float>, direction: Float) {
        positions.withUnsafeBufferPointer { pos in
            parallelRanges(rows, minimumChunk: 32) { range in
                for r in range {
                    let c = cosines + Int(pos[r]) * half, s = sines + Int(pos[r]) * half
                    for h in 0..<heads {
                        let a = src + r * width + h * headDim, y = dst + r * width + h * headDim
                        for i in 0..<half {
                            let x1 = a[i], x2 = a[i + half], sn = s[i] * direction
                            y[i] += x1 * c[i] - x2 * sn
                            y[i + half] += x2 * c[i] + x1 * sn
                        }
                    }
                }
            }
        }
    }
    Profiler.time("rope", phase: .forward) {
        out.storage.zero()
        rotate(px, po, direction: 1)
    }
    out.requiresGrad = Tape.recordIfNeeded("rope", inputs: [x]) {
        guard let g = out.gradIfPresent?.pointer else { return }
        withExtendedLifetime(table) { rotate(g, x.grad.pointer, direction: -1) }
    }
    return out
}
