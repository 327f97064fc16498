import XCTest
@testable import LoomTensor

/// Central finite differences against the tape's backward.
///
/// The checked scalar is L = Σ_i w_i · f(x)_i with fixed random weights w, accumulated in
/// Double, so every output element's gradient path is exercised with a different factor.
/// The comparison is norm-wise relative: ‖analytic − numeric‖ / max(‖numeric‖, tiny). A
/// backward that is off by a transpose, a sign or a factor of 2 gives an error of order 1;
/// float rounding in the forward gives about 1e-3 at step 1e-2.
func checkGradients(
    _ name: String,
    inputs: [Tensor],
    step: Float = 1e-2,
    tolerance: Double = 1e-2,
    file: StaticString = #filePath, line: UInt = #line,
    _ function: ([Tensor]) -> Tensor
) {
    for x in inputs { x.requiresGrad = true; x.gradientSlot.storage = nil }
    var rng = SeededRandom(seed: 99)
    let probe = function(inputs)
    let weights = (0..<probe.count).map { _ in Double(rng.nextNormal()) }

    func objective() -> Double {
        let out = withoutGradients { function(inputs) }
        var total = 0.0
        for i in 0..<out.count { total += weights[i] * Double(out.data[i]) }
        return total
    }

    let tape = Tape()
    let out = tape.record { function(inputs) }
    let seed = out.grad.pointer
    for i in 0..<out.count { seed[i] = Float(weights[i]) }
    tape.runBackward()

    for (k, x) in inputs.enumerated() {
        let analytic = x.gradScalars ?? [Float](repeating: 0, count: x.count)
        var numeric = [Double](repeating: 0, count: x.count)
        for i in 0..<x.count {
            let original = x.data[i]
            x.data[i] = original + step
            let plus = objective()
            x.data[i] = original - step
            let minus = objective()
            x.data[i] = original
            numeric[i] = (plus - minus) / (2 * Double(step))
        }
        var diff = 0.0, norm = 0.0
        for i in 0..<x.count {
            diff += (Double(analytic[i]) - numeric[i]) * (Double(analytic[i]) - numeric[i])
            norm += numeric[i] * numeric[i]
        }
        let relative = diff.squareRoot() / max(norm.squareRoot(), 1e-6)
        XCTAssertGreaterThan(norm, 0, "\(name): input \(k) has a zero numeric gradient; the check would be vacuous", file: file, line: line)
        XCTAssertLessThan(relative, tolerance, "\(name): input \(k) gradient relative error \(relative)", file: file, line: line)
    }
}

func random(_ shape: [Int], seed: UInt64, std: Float = 1, offset: Float = 0) -> Tensor {
    var rng = SeededRandom(seed: seed)
    let t = Tensor.randomNormal(shape, std: std, rng: &rng)
    if offset != 0 { for i in 0..<t.count { t.data[i] += offset } }
    return t
}
