// Batch-invariant matrix products; the scheme is described in include/LoomRowInvariant.h.
#include "LoomRowInvariant.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define LOOM_AVX2 __attribute__((target("avx2,fma")))

// The fixed reduction tree: (l0+l4, l1+l5, l2+l6, l3+l7), then (a0+a2, a1+a3), then (b0+b1).
static inline LOOM_AVX2 __attribute__((always_inline)) float sum_lanes(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0x55));
    return _mm_cvtss_f32(s);
}

// The k mod 8 tail, one shared out-of-line copy so that every tile adds it the same way.
__attribute__((noinline)) static float finish_dot(float sum, const float *x, const float *w, long from, long to) {
    for (long i = from; i < to; i++) sum = __builtin_fmaf(x[i], w[i], sum);
    return sum;
}

__attribute__((noinline)) static void store(float value, float *y, int accumulate) {
    if (accumulate) *y += value; else *y = value;
}

// A tile of R rows × C columns: R·C accumulators, R + C loads per 8 k.
#define DEFINE_TILE(R, C)                                                                         \
static LOOM_AVX2 void tile_##R##x##C(long k, const float *x, long ldx, const float *w, long ldw,  \
                                     float *y, long ldy, int accumulate) {                       \
    __m256 acc[R][C];                                                                             \
    for (int r = 0; r < R; r++) for (int c = 0; c < C; c++) acc[r][c] = _mm256_setzero_ps();      \
    long k8 = k & ~7L;                                                                            \
    for (long i = 0; i < k8; i += 8) {                                                            \
        __m256 wv[C];                                                                             \
        for (int c = 0; c < C; c++) wv[c] = _mm256_loadu_ps(w + c * ldw + i);                     \
        for (int r = 0; r < R; r++) {                                                             \
            __m256 xv = _mm256_loadu_ps(x + r * ldx + i);                                         \
            for (int c = 0; c < C; c++) acc[r][c] = _mm256_fmadd_ps(xv, wv[c], acc[r][c]);        \
        }                                                                                         \
    }                                                                                             \
    for (int r = 0; r < R; r++) for (int c = 0; c < C; c++) {                                     \
        float s = finish_dot(sum_lanes(acc[r][c]), x + r * ldx, w + c * ldw, k8, k);             \
        store(s, y + r * ldy + c, accumulate);                                                    \
    }                                                                                             \
}
DEFINE_TILE(4, 3)
DEFINE_TILE(4, 1)
DEFINE_TILE(1, 8)

// One element, x · w over k: a 1x1 tile's arithmetic (one accumulator, the tree, the tail),
// inlined where it is called; the tail call is skipped when there is no tail.
static inline LOOM_AVX2 __attribute__((always_inline)) float dot_row(long k, const float *x, const float *w) {
    __m256 acc = _mm256_setzero_ps();
    long k8 = k & ~7L;
    for (long i = 0; i < k8; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(w + i), acc);
    float s = sum_lanes(acc);
    return k8 < k ? finish_dot(s, x, w, k8, k) : s;
}

static LOOM_AVX2 void tile_1x1(long k, const float *x, long ldx, const float *w, long ldw, float *y, long ldy,
                               int accumulate) {
    (void)ldx; (void)ldw; (void)ldy;
    store(dot_row(k, x, w), y, accumulate);
}

typedef void (*Tile)(long k, const float *x, long ldx, const float *w, long ldw, float *y, long ldy, int accumulate);

// Rows [0, rows) in tiles of `tileRows` (rows a multiple of it), columns [j0, j1) three at a time
// with `three`, the rest with `one`. Column blocks outermost: a block of weight rows stays in
// cache for all row tiles.
static void tile_columns(Tile three, Tile one, long tileRows, long rows, long j0, long j1, long k, const float *x,
                         long ldx, const float *w, long ldw, float *y, long ldy, int accumulate) {
    long j = j0;
    for (; j + 3 <= j1; j += 3)
        for (long r = 0; r < rows; r += tileRows)
            three(k, x + r * ldx, ldx, w + j * ldw, ldw, y + r * ldy + j, ldy, accumulate);
    for (; j < j1; j++)
        for (long r = 0; r < rows; r += tileRows)
            one(k, x + r * ldx, ldx, w + j * ldw, ldw, y + r * ldy + j, ldy, accumulate);
}

static LOOM_AVX2 void gemm_avx2(long m, long j0, long j1, long k, const float *x, long ldx,
                                const float *w, long ldw, float *y, long ldy, int accumulate, int streamed) {
    long m4 = m & ~3L;
    if (m4 > 0) tile_columns(tile_4x3, tile_4x1, 4, m4, j0, j1, k, x, ldx, w, ldw, y, ldy, accumulate);
    // The last m mod 4 rows (all of them for a decoding step): columns outermost here too,
    // so that each weight row is read from memory once for all of these rows (the query heads
    // that share a key head, or a few requests decoded together).
    long j = j0;
    if (streamed) {
        // Weights read from memory: one weight row after another, a single sequential stream
        // the hardware prefetcher follows. SmolLM2 F32 decoding on AMD EPYC (1 thread, three
        // alternating runs): 16.2-18.1 tok/s against 13.1-16.0 with 1x8 tiles (eight streams).
        // Each element through dot_row inlined, not a tile_1x1 call: the calls per element cost
        // 8-13 % of SmolLM2's decoding products (k = 576) in a harness.
        for (; j < j1; j++)
            for (long r = m4; r < m; r++) {
                float s = dot_row(k, x + r * ldx, w + j * ldw);
                if (accumulate) y[r * ldy + j] += s; else y[r * ldy + j] = s;
            }
        return;
    }
    // Weights in cache (a small model): 1x8 tiles, eight independent accumulators instead of
    // one chain of dependent fused multiply-adds (the tiny model decodes about 20 % faster so).
    for (; j + 8 <= j1; j += 8)
        for (long r = m4; r < m; r++)
            tile_1x8(k, x + r * ldx, ldx, w + j * ldw, ldw, y + r * ldy + j, ldy, accumulate);
    for (; j < j1; j++)
        for (long r = m4; r < m; r++)
            tile_1x1(k, x + r * ldx, ldx, w + j * ldw, ldw, y + r * ldy + j, ldy, accumulate);
}

// MARK: AVX-512: two rows per register, the same arithmetic

// LOOM_EMULATE_AVX512 compiles this part for AVX2, for the harness that runs it with SIMDe's
// portable AVX-512 intrinsics (Tests/Emulated/check_avx512_kernels.c).
#ifdef LOOM_EMULATE_AVX512
#define LOOM_AVX512 LOOM_AVX2
#else
#define LOOM_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")))
#endif

// A tile of 8 rows × C columns. Lanes 0-7 of a register hold an even row's eight lane sums,
// lanes 8-15 the next row's: each element gets exactly the fused multiply-adds of the AVX2
// tiles (lane l takes k ≡ l mod 8), then the same tree and tail, so the two are bit-equal.
// Per 8 k: C broadcast loads of weights, 4 paired loads of x, 4·C 512-bit FMAs.
#define DEFINE_TILE_AVX512(C)                                                                     \
static LOOM_AVX512 void tile512_8x##C(long k, const float *x, long ldx, const float *w, long ldw,  \
                                      float *y, long ldy, int accumulate) {                      \
    __m512 acc[4][C];                                                                             \
    for (int p = 0; p < 4; p++) for (int c = 0; c < C; c++) acc[p][c] = _mm512_setzero_ps();      \
    long k8 = k & ~7L;                                                                            \
    for (long i = 0; i < k8; i += 8) {                                                            \
        __m512 wv[C];                                                                             \
        for (int c = 0; c < C; c++) wv[c] = _mm512_broadcast_f32x8(_mm256_loadu_ps(w + c * ldw + i)); \
        for (int p = 0; p < 4; p++) {                                                             \
            __m512 xv = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(x + 2 * p * ldx + i)), \
                                           _mm256_loadu_ps(x + (2 * p + 1) * ldx + i), 1);        \
            for (int c = 0; c < C; c++) acc[p][c] = _mm512_fmadd_ps(xv, wv[c], acc[p][c]);        \
        }                                                                                         \
    }                                                                                             \
    for (int p = 0; p < 4; p++) for (int c = 0; c < C; c++) {                                     \
        const float *even = x + 2 * p * ldx, *odd = x + (2 * p + 1) * ldx;                        \
        float first = finish_dot(sum_lanes(_mm512_castps512_ps256(acc[p][c])), even, w + c * ldw, k8, k); \
        float second = finish_dot(sum_lanes(_mm512_extractf32x8_ps(acc[p][c], 1)), odd, w + c * ldw, k8, k); \
        store(first, y + 2 * p * ldy + c, accumulate);                                            \
        store(second, y + (2 * p + 1) * ldy + c, accumulate);                                    \
    }                                                                                             \
}
DEFINE_TILE_AVX512(3)
DEFINE_TILE_AVX512(1)

static LOOM_AVX512 void gemm_avx512(long m, long j0, long j1, long k, const float *x, long ldx,
                                    const float *w, long ldw, float *y, long ldy, int accumulate, int streamed) {
    long m8 = m & ~7L;
    if (m8 > 0) tile_columns(tile512_8x3, tile512_8x1, 8, m8, j0, j1, k, x, ldx, w, ldw, y, ldy, accumulate);
    // The last m mod 8 rows: the AVX2 tiles (4-row tiles, then single rows as a decoding step
    // reads them; a memory-bound product gains nothing from wider registers).
    if (m > m8) gemm_avx2(m - m8, j0, j1, k, x + m8 * ldx, ldx, w, ldw, y + m8 * ldy, ldy, accumulate, streamed);
}

static LOOM_AVX2 void weighted_rows_avx2(long n, long width, const float *p, const float *v, long ldv, float *out) {
    long d = 0;
    // 64 outputs at a time in eight accumulators, each value row read once from front to back
    // (a row-by-row walk; reading a column strip of all rows per 8 outputs missed the cache).
    // Each output is still the same chain of fused multiply-adds over increasing t.
    for (; d + 64 <= width; d += 64) {
        __m256 acc[8];
        for (int c = 0; c < 8; c++) acc[c] = _mm256_setzero_ps();
        for (long t = 0; t < n; t++) {
            const __m256 weight = _mm256_set1_ps(p[t]);
            const float *row = v + t * ldv + d;
            for (int c = 0; c < 8; c++) acc[c] = _mm256_fmadd_ps(weight, _mm256_loadu_ps(row + 8 * c), acc[c]);
        }
        for (int c = 0; c < 8; c++) _mm256_storeu_ps(out + d + 8 * c, acc[c]);
    }
    for (; d + 8 <= width; d += 8) {
        __m256 acc = _mm256_setzero_ps();
        for (long t = 0; t < n; t++) acc = _mm256_fmadd_ps(_mm256_set1_ps(p[t]), _mm256_loadu_ps(v + t * ldv + d), acc);
        _mm256_storeu_ps(out + d, acc);
    }
    for (; d < width; d++) {
        float acc = 0;
        for (long t = 0; t < n; t++) acc = __builtin_fmaf(p[t], v[t * ldv + d], acc);
        out[d] = acc;
    }
}
#endif

// Portable code: the same lanes and tree with separate multiplies and adds (this file is
// compiled without -mfma, and each product is its own statement, so nothing is fused).
static void gemm_portable(long m, long j0, long j1, long k, const float *x, long ldx,
                          const float *w, long ldw, float *y, long ldy, int accumulate) {
    long k8 = k & ~7L;
    for (long r = 0; r < m; r++) {
        for (long j = j0; j < j1; j++) {
            const float *xr = x + r * ldx, *wj = w + j * ldw;
            float l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            for (long i = 0; i < k8; i += 8)
                for (int q = 0; q < 8; q++) { float product = xr[i + q] * wj[i + q]; l[q] = l[q] + product; }
            float a0 = l[0] + l[4], a1 = l[1] + l[5], a2 = l[2] + l[6], a3 = l[3] + l[7];
            float s = (a0 + a2) + (a1 + a3);
            for (long i = k8; i < k; i++) { float product = xr[i] * wj[i]; s = s + product; }
            if (accumulate) y[r * ldy + j] += s; else y[r * ldy + j] = s;
        }
    }
}

void loom_rowinv_gemm_nt(int level, long m, long columnStart, long columnEnd, long k,
                         const float *x, long ldx, const float *w, long ldw,
                         float *y, long ldy, int accumulate, int streamed) {
    if (m <= 0 || columnEnd <= columnStart) return;
#if defined(__x86_64__)
    if (level >= LOOM_KERNELS_AVX512) { gemm_avx512(m, columnStart, columnEnd, k, x, ldx, w, ldw, y, ldy, accumulate, streamed); return; }
    if (level >= LOOM_KERNELS_AVX2) { gemm_avx2(m, columnStart, columnEnd, k, x, ldx, w, ldw, y, ldy, accumulate, streamed); return; }
#endif
    gemm_portable(m, columnStart, columnEnd, k, x, ldx, w, ldw, y, ldy, accumulate);
}

void loom_weighted_rows(int level, long n, long width, const float *p, const float *v, long ldv, float *out) {
#if defined(__x86_64__)
    if (level >= LOOM_KERNELS_AVX2) { weighted_rows_avx2(n, width, p, v, ldv, out); return; }
#endif
    for (long d = 0; d < width; d++) {
        float acc = 0;
        for (long t = 0; t < n; t++) { float product = p[t] * v[t * ldv + d]; acc = acc + product; }
        out[d] = acc;
    }
}
