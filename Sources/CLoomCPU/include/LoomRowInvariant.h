#ifndef LOOM_ROW_INVARIANT_H
#define LOOM_ROW_INVARIANT_H

/// Matrix products whose every output element is computed the same way whatever the number of
/// rows in the product: the server decodes many requests in one product, and a request's
/// tokens must not depend on what else is running. Each element y[r][j] is one dot product of
/// x's row r and w's row j, accumulated in 8 lanes over k (lane l takes k ≡ l mod 8, in
/// increasing k, with fused multiply-adds), the lanes summed in a fixed tree, then the k mod 8
/// tail added in increasing k. Tiles of several rows and columns share loads (the weights
/// are read once per tile, not once per row) but never change that order.
///
/// `level` selects the code (the caller checks the processor): the AVX-512 code puts two rows'
/// eight lanes in one register and is bit-equal to the AVX2/FMA code, which it uses for the
/// rows past the last multiple of 8; the portable code follows the same scheme with separate
/// multiplies and adds, so its results are invariant in the same way but not bit-equal to
/// the vector ones.
enum { LOOM_KERNELS_PORTABLE = 0, LOOM_KERNELS_AVX2 = 1, LOOM_KERNELS_AVX512 = 2 };

/// y[r·ldy + j] = Σₖ x[r·ldx + k] · w[j·ldw + k] for r < m and columnStart ≤ j < columnEnd,
/// or y += that when `accumulate` is nonzero. `streamed` (nonzero when the caller's weights do
/// not fit in the cache) reads the rows past the last multiple of 4 one weight row at a time, a
/// single sequential stream, instead of in tiles of eight; the results are the same bits.
void loom_rowinv_gemm_nt(int level, long m, long columnStart, long columnEnd, long k,
                         const float *x, long ldx, const float *w, long ldw,
                         float *y, long ldy, int accumulate, int streamed);

/// out[d] = Σ_{t < n} p[t] · v[t·ldv + d] for d < width, t in increasing order: attention's
/// weighted sum of value rows, for one query row.
void loom_weighted_rows(int level, long n, long width, const float *p, const float *v, long ldv, float *out);

#endif
