/// The linear layer of a LoRA-adapted weight in one op: y = x·Wᵀ + scale·((x ⊙ mask)·Aᵀ)·Bᵀ,
/// with W `[out, in]`, A `[rank, in]`, B `[out, rank]` and an optional dropout mask shaped like x.
///
/// Composed from `linear`, `scale` and `add` the adapter would keep three more `[rows, out]`
/// activations per adapted layer (B's output, its scaled copy, the sum); here the op keeps only
/// the `[rows, rank]` product u = (x ⊙ mask)·Aᵀ (and the mask), which is what makes a LoRA step's
/// memory small.
///
/// Backward, with du = scale·dy·B:
/// dB += scale·dyᵀ·u, dA += duᵀ·(x ⊙ mask), dx += dy·W + (du·A) ⊙ mask, dW += dyᵀ·x (if W is trained).
public func loraLinear(_ x: Tensor, weight: Tensor, a: Tensor, b: Tensor, scale: Float, dropoutMask: Tensor? = nil) -> Tensor {
    precondition(weight.rank == 2 && a.rank == 2 && b.rank == 2, "loraLinear: W, A and B must be 2-D")
    let outFeatures = weight.shape[0], inFeatures = weight.shape[1], rank = a.shape[0]
    precondition(x.lastDimension == inFeatures && a.shape[1] == inFeatures && b.shape == [outFeatures, rank],
                 "loraLinear: x \(x.shape), W \(weight.shape), A \(a.shape), B \(b.shape) do not fit")
    precondition(dropoutMask.map { $0.count == x.count } ?? true, "loraLinear: the dropout mask must be shaped like x")
    let n = x.rows
    /// x ⊙ mask, or x itself.
    func maskedInput() -> Tensor {
        guard let mask = dropoutMask else { return x }
        let masked = Tensor(uninitialized: x.shape)
        for i in 0..<x.count { masked.data[i] = x.data[i] * mask.data[i] }
        return masked
    }
    let u = Tensor(uninitialized: [n, rank])
    let y = Tensor(uninitialized: Array(x.shape.dropLast()) + [outFeatures])
    Profiler.time("loraLinear", phase: .forward) {
        let input = maskedInput()
        parallelSgemm(transposeA: false, transposeB: true, m: n, n: rank, k: inFeatures,
                      a: input.data, lda: inFeatures, b: a.data, ldb: inFeatures, beta: 0, c: u.data, ldc: rank)
        parallelSgemm(transposeA: false, transposeB: true, m: n, n: outFeatures, k: inFeatures,
                      a: x.data, lda: inFeatures, b: weight.data, ldb: inFeatures, beta: 0, c: y.data, ldc: outFeatures)
        parallelSgemm(transposeA: false, transposeB: true, m: n, n: outFeatures, k: rank, alpha: scale,
                      a: u.data, lda: rank, b: b.data, ldb: rank, beta: 1, c: y.data, ldc: outFeatures)
    }
    y.requiresGrad = Tape.recordIfNeeded("loraLinear", inputs: [x, weight, a, b]) {
        guard let dy = y.gradIfPresent else { return }
        if b.requiresGrad {
            parallelSgemm(transposeA: true, transposeB: false, m: outFeatures, n: rank, k: n, alpha: scale,
                          a: dy.pointer, lda: outFeatures, b: u.data, ldb: rank, beta: 1, c: b.grad.pointer, ldc: rank)
        }
        let du = Tensor(uninitialized: [n, rank])
        parallelSgemm(transposeA: false, transposeB: false, m: n, n: rank, k: outFeatures, alpha: scale,
                      a: dy.pointer, lda: outFeatures, b: b.data, ldb: rank, beta: 0, c: du.data, ldc: rank)
        if a.requiresGrad {
            let input = maskedInput()
            parallelSgemm(transposeA: true, transposeB: false, m: rank, n: inFeatures, k: n,
                          a: du.data, lda: rank, b: input.data, ldb: inFeatures, beta: 1, c: a.grad.pointer, ldc: inFeatures)
        }
        if x.requiresGrad {
            let dx = x.grad.pointer
            parallelSgemm(transposeA: false, transposeB: false, m: n, n: inFeatures, k: outFeatures,
                          a: dy.pointer, lda: outFeatures, b: weight.data, ldb: inFeatures, beta: 1, c: dx, ldc: inFeatures)
            if let mask = dropoutMask {
                let adapterPart = Tensor(uninitialized: x.shape)
                parallelSgemm(transposeA: false, transposeB: false, m: n, n: inFeatures, k: rank,
                              a: du.data, lda: rank, b: a.data, ldb: inFeatures, beta: 0, c: adapterPart.data, ldc: inFeatures)
                for i in 0..<x.count { dx[i] += adapterPart.data[i] * mask.data[i] }
            } else {
                parallelSgemm(transposeA: false, transposeB: false, m: n, n: inFeatures, k: rank,
                              a: du.data, lda: rank, b: a.data, ldb: inFeatures, beta: 1, c: dx, ldc: inFeatures)
            }
        }
        if weight.requiresGrad {
            parallelSgemm(transposeA: true, transposeB: false, m: outFeatures, n: inFeatures, k: n,
                          a: dy.pointer, lda: outFeatures, b: x.data, ldb: inFeatures, beta: 1, c: weight.grad.pointer, ldc: inFeatures)
        }
    }
    return y
}
