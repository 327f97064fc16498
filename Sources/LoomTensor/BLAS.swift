import COpenBLAS

/// Row-major single-precision GEMM: C = alpha · op(A) · op(B) + beta · C, where op(A) is
/// m×k and op(B) is k×n. Thin wrapper over `cblas_sgemm`.
@inline(__always)
public func sgemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    if m == 0 || n == 0 { return }
    cblas_sgemm(
        CblasRowMajor,
        transposeA ? CblasTrans : CblasNoTrans,
        transposeB ? CblasTrans : CblasNoTrans,
        Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// The same product split across `Threading.threadCount` threads: by rows of C when there
/// are enough of them, otherwise by columns. Each thread runs a single-threaded sgemm on its
/// block, so the result equals the unsplit product up to the order of no sums (each
/// element of C is still computed by one dot product).
public func parallelSgemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    let threads = Threading.threadCount
    let work = m * n * k
    if threads == 1 || work < 1 << 18 {
        sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
              a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        return
    }
    if m >= n || m >= 64 * threads {
        // Split rows of C: rows of op(A) are rows of A (no transpose) or columns of A.
        parallelRanges(m, minimumChunk: 16) { rows in
            let aBlock = transposeA ? a + rows.lowerBound : a + rows.lowerBound * lda
            sgemm(transposeA: transposeA, transposeB: transposeB, m: rows.count, n: n, k: k, alpha: alpha,
                  a: aBlock, lda: lda, b: b, ldb: ldb, beta: beta, c: c + rows.lowerBound * ldc, ldc: ldc)
        }
    } else {
        // Split columns of C: columns of op(B) are columns of B (no transpose) or rows of B.
        parallelRanges(n, minimumChunk: 16) { cols in
            let bBlock = transposeB ? b + cols.lowerBound * ldb : b + cols.lowerBound
            sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: cols.count, k: k, alpha: alpha,
                  a: a, lda: lda, b: bBlock, ldb: ldb, beta: beta, c: c + cols.lowerBound, ldc: ldc)
        }
    }
}
