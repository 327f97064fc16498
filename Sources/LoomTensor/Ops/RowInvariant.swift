import CLoomCPU

/// Batch-invariant products for serving: a row's result is bit-identical whether it is
/// computed alone or among other rows (see `LoomRowInvariant.h` for the scheme). BLAS sgemm
/// is not: it picks blockings, kernels and a matrix–vector path by the product's shape, so a
/// request's logits would change with the number of requests decoded beside it.
///
/// The cost: a hand-written register-tiled kernel instead of OpenBLAS's packed sgemm, about
/// the same for decoding steps (both stream the weights once) and slower for long prompts.
public enum RowInvariant {
    /// The kernels' instruction set (`KernelLevel.current`): AVX-512 and AVX2 give the same bits.
    public static let level = KernelLevel.current
    /// The widest level this CPU runs: a wider one asked for is narrowed to it.
    static let widest = KernelLevel.widest(for: .current)

    /// `y (=|+=) x · wᵀ` for row-major `x` `[m, k]` and `w` `[n, k]`, split by columns of `y`
    /// across Loom's threads (a split that never changes how an element is summed); with
    /// `threaded: false` on the calling thread only (for callers that are themselves one of
    /// several parallel tasks). `streamed` says the weights come from memory, not the cache
    /// (see `LlamaModel.streamsWeightsFromMemory`): a decoding step then reads them as one
    /// sequential stream. Neither changes a single bit of the result. `level` (for tests) picks
    /// another instruction set than the process's, at most the widest the CPU runs.
    public static func gemmNT(m: Int, n: Int, k: Int, x: UnsafePointer<Float>, ldx: Int,
                              w: UnsafePointer<Float>, ldw: Int, y: UnsafeMutablePointer<Float>, ldy: Int,
                              accumulate: Bool, threaded: Bool = true, streamed: Bool = false, level: KernelLevel = RowInvariant.level) {
        if m == 0 || n == 0 { return }
        let work = m * n * k
        let code = Int32(Swift.min(level, widest).rawValue)
        let body: (Range<Int>) -> Void = { columns in
            loom_rowinv_gemm_nt(code, m, columns.lowerBound, columns.upperBound, k, x, ldx, w, ldw, y, ldy,
                                accumulate ? 1 : 0, streamed ? 1 : 0)
        }
        if work < 1 << 15 || !threaded { body(0..<n) } else { parallelRanges(n, minimumChunk: 24, body) }
    }

    /// `out = Σₜ p[t] · v[t]` over `n` rows of `v` (`width` wide, `ldv` apart), in increasing t.
    public static func weightedRows(n: Int, width: Int, p: UnsafePointer<Float>, v: UnsafePointer<Float>, ldv: Int,
                                    out: UnsafeMutablePointer<Float>) {
        loom_weighted_rows(Int32(level.rawValue), n, width, p, v, ldv, out)
    }
}

/// `x · weightᵀ` with a batch-invariant kernel (no backward: serving only).
public func rowInvariantLinear(_ x: Tensor, _ weight: Tensor, streamed: Bool = false) -> Tensor {
    precondition(weight.rank == 2 && x.lastDimension == weight.shape[1],
                 "rowInvariantLinear: input \(x.shape) does not match weight \(weight.shape)")
    let out = weight.shape[0], k = weight.shape[1]
    let y = Tensor(uninitialized: Array(x.shape.dropLast()) + [out])
    Profiler.time("linear", phase: .forward) {
        RowInvariant.gemmNT(m: x.rows, n: out, k: k, x: x.data, ldx: k, w: weight.data, ldw: k, y: y.data, ldy: out,
                            accumulate: false, streamed: streamed)
    }
    return y
}

/// `y += x · weightᵀ` with a batch-invariant kernel.
public func rowInvariantLinearAccumulate(_ x: Tensor, _ weight: Tensor, into y: Tensor, streamed: Bool = false) {
    precondition(weight.rank == 2 && x.lastDimension == weight.shape[1] && y.lastDimension == weight.shape[0]
                 && x.rows == y.rows, "rowInvariantLinearAccumulate: \(x.shape) · \(weight.shape)ᵀ does not fit \(y.shape)")
    let out = weight.shape[0], k = weight.shape[1]
    Profiler.time("linear", phase: .forward) {
        RowInvariant.gemmNT(m: x.rows, n: out, k: k, x: x.data, ldx: k, w: weight.data, ldw: k, y: y.data, ldy: out,
                            accumulate: true, streamed: streamed)
    }
}
