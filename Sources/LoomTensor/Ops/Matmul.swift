/// Matrix products. Forward and backward are BLAS calls split across Loom's threads.

/// `x · weightᵀ`: the linear layer with the Hugging Face `[out, in]` weight layout.
/// `x` is `[..., in]`; the result is `[..., out]`.
///
/// Backward: dx += dy · W, dW += dyᵀ · x.
public func linear(_ x: Tensor, _ weight: Tensor) -> Tensor {
    precondition(weight.rank == 2, "linear: weight must be 2-D, got \(weight.shape)")
    let outFeatures = weight.shape[0], inFeatures = weight.shape[1]
    precondition(x.lastDimension == inFeatures,
                 "linear: input \(x.shape) does not match weight \(weight.shape)\(weight.name.map { " (\($0))" } ?? "")")
    let n = x.rows
    let y = Tensor(uninitialized: Array(x.shape.dropLast()) + [outFeatures])
    Profiler.time("linear", phase: .forward) {
        if MatrixProducts.precision == .bf16, let cache = PackedWeights.active {
            bf16LinearWithPackedWeight(cache, m: n, n: outFeatures, k: inFeatures, a: x.data, weight: weight, beta: 0, c: y.data)
        } else {
            parallelSgemm(transposeA: false, transposeB: true, m: n, n: outFeatures, k: inFeatures,
                          a: x.data, lda: inFeatures, b: weight.data, ldb: inFeatures, beta: 0, c: y.data, ldc: outFeatures)
        }
    }
    y.requiresGrad = Tape.recordIfNeeded("linear", inputs: [x, weight]) {
        guard let dy = y.gradIfPresent else { return }
        if x.requiresGrad {
            parallelSgemm(transposeA: false, transposeB: false, m: n, n: inFeatures, k: outFeatures,
                          a: dy.pointer, lda: outFeatures, b: weight.data, ldb: inFeatures,
                          beta: 1, c: x.grad.pointer, ldc: inFeatures)
        }
        if weight.requiresGrad {
            parallelSgemm(transposeA: true, transposeB: false, m: outFeatures, n: inFeatures, k: n,
                          a: dy.pointer, lda: outFeatures, b: x.data, ldb: inFeatures,
                          beta: 1, c: weight.grad.pointer, ldc: inFeatures)
        }
    }
    return y
}

/// Batched `op(a) · op(b)` over matching leading dimensions: `a` is `[..., m, k]` (or
/// `[..., k, m]` when `transposeA`), `b` is `[..., k, n]` (or `[..., n, k]`).
///
/// Backward, with C = op(A)·op(B):
/// dA += dC·op(B)ᵀ (or op(B)·dCᵀ when A is transposed); dB += op(A)ᵀ·dC (or dCᵀ·op(A)).
public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
    precondition(a.rank >= 2 && b.rank >= 2, "matmul needs rank ≥ 2, got \(a.shape) and \(b.shape)")
    let batchA = Array(a.shape.dropLast(2)), batchB = Array(b.shape.dropLast(2))
    precondition(batchA == batchB, "matmul: batch dimensions differ: \(a.shape) vs \(b.shape)")
    let aRows = a.shape[a.rank - 2], aCols = a.shape[a.rank - 1]
    let bRows = b.shape[b.rank - 2], bCols = b.shape[b.rank - 1]
    let m = transposeA ? aCols : aRows, k = transposeA ? aRows : aCols
    let kB = transposeB ? bCols : bRows, n = transposeB ? bRows : bCols
    precondition(k == kB, "matmul: inner dimensions differ: \(a.shape)\(transposeA ? "ᵀ" : "") · \(b.shape)\(transposeB ? "ᵀ" : "")")
    let batch = batchA.reduce(1, *)
    let c = Tensor(uninitialized: batchA + [m, n])
    let aStride = aRows * aCols, bStride = bRows * bCols, cStride = m * n
    Profiler.time("matmul", phase: .forward) {
        for i in 0..<batch {
            parallelSgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                          a: a.data + i * aStride, lda: aCols, b: b.data + i * bStride, ldb: bCols,
                          beta: 0, c: c.data + i * cStride, ldc: n)
        }
    }
    c.requiresGrad = Tape.recordIfNeeded("matmul", inputs: [a, b]) {
        guard let dc = c.gradIfPresent else { return }
        for i in 0..<batch {
            let dC = dc.pointer + i * cStride
            if a.requiresGrad {
                let dA = a.grad.pointer + i * aStride
                if !transposeA {
                    // dA[m,k] += dC[m,n] · op(B)ᵀ[n,k]
                    parallelSgemm(transposeA: false, transposeB: !transposeB, m: m, n: k, k: n,
                                  a: dC, lda: n, b: b.data + i * bStride, ldb: bCols, beta: 1, c: dA, ldc: aCols)
                } else {
                    // dA[k,m] += op(B)[k,n] · dCᵀ[n,m]
                    parallelSgemm(transposeA: transposeB, transposeB: true, m: k, n: m, k: n,
                                  a: b.data + i * bStride, lda: bCols, b: dC, ldb: n, beta: 1, c: dA, ldc: aCols)
                }
            }
            if b.requiresGrad {
                let dB = b.grad.pointer + i * bStride
                if !transposeB {
                    // dB[k,n] += op(A)ᵀ[k,m] · dC[m,n]
                    parallelSgemm(transposeA: !transposeA, transposeB: false, m: k, n: n, k: m,
                                  a: a.data + i * aStride, lda: aCols, b: dC, ldb: n, beta: 1, c: dB, ldc: bCols)
                } else {
                    // dB[n,k] += dCᵀ[n,m] · op(A)[m,k]
                    parallelSgemm(transposeA: true, transposeB: transposeA, m: n, n: k, k: m,
                                  a: dC, lda: n, b: a.data + i * aStride, ldb: aCols, beta: 1, c: dB, ldc: bCols)
                }
            }
        }
    }
    return c
}

/// `y += x · weightᵀ` in place, without recording a backward: the residual connections of
/// decoding, where adding the projection straight into the stream saves a tensor and a pass.
public func linearAccumulate(_ x: Tensor, _ weight: Tensor, into y: Tensor) {
    precondition(weight.rank == 2 && x.lastDimension == weight.shape[1] && y.lastDimension == weight.shape[0]
                 && x.rows == y.rows, "linearAccumulate: \(x.shape) · \(weight.shape)ᵀ does not fit \(y.shape)")
    precondition(Tape.current == nil || !(x.requiresGrad || weight.requiresGrad || y.requiresGrad),
                 "linearAccumulate records no backward: use y + linear(x, weight) while recording gradients")
    let outFeatures = weight.shape[0], inFeatures = weight.shape[1]
    Profiler.time("linear", phase: .forward) {
        if MatrixProducts.precision == .bf16, let cache = PackedWeights.active {
            bf16LinearWithPackedWeight(cache, m: x.rows, n: outFeatures, k: inFeatures, a: x.data, weight: weight, beta: 1, c: y.data)
        } else {
            parallelSgemm(transposeA: false, transposeB: true, m: x.rows, n: outFeatures, k: inFeatures,
                          a: x.data, lda: inFeatures, b: weight.data, ldb: inFeatures, beta: 1, c: y.data, ldc: outFeatures)
        }
    }
}
