// bf16 matrix products; the arithmetic is described in include/LoomBF16.h.
//
// Each code packs op(B) in panels of W columns (the last one padded with zeros) and op(A) row by
// row, then computes tiles of R rows × W columns: per k, the panel's W values are loaded once and
// each row's A element is broadcast, so one tile's R·W accumulators each take exactly one fused
// multiply-add per k, in increasing k. Panels are the outer loop: a panel stays in cache while
// every row tile passes over it. Packed B can be shared: a product split by rows over threads
// packs it once (loom_bf16_pack_b) and each thread packs only its rows of A.
//
// Packed layouts of op(B), by code: portable [n][k] floats (panels of one column); native and
// AVX2 panels of 48 columns, [pairs][48] bfloat16 pairs each (the AVX2 code takes each pair apart
// into two float32 values in its tiles).
#include "LoomBF16.h"
#include <stdlib.h>
#include <string.h>

uint16_t loom_bf16_from_float(float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x0040u);  // NaN, kept quiet
    uint32_t rounded = bits + 0x7fffu + ((bits >> 16) & 1u);  // nearest, ties to even; large values to ±inf
    uint16_t h = (uint16_t)(rounded >> 16);
    if ((h & 0x7f80u) == 0) h &= 0x8000u;  // subnormal: vdpbf16ps reads it as zero
    return h;
}

float loom_bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

static inline float rounded(float x) { return loom_bf16_to_float(loom_bf16_from_float(x)); }

// The result of one element from its accumulated dot product (one rounding each step).
static inline __attribute__((always_inline)) float finish(float acc, float alpha, float beta, float old) {
    float scaled = alpha * acc;
    return beta == 0.0f ? scaled : __builtin_fmaf(beta, old, scaled);
}

// Packing buffers per thread, grown as needed and kept: 0 for A, 1 for B.
static _Thread_local void *buffers[2];
static _Thread_local size_t capacities[2];

static void *buffer(int which, size_t bytes) {
    if (buffers[which] && bytes <= capacities[which]) return buffers[which];
    size_t size = bytes < 64 ? 64 : (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, size);
    if (!p) return NULL;
    free(buffers[which]);
    buffers[which] = p;
    capacities[which] = size;
    return p;
}

// The portable code's packing: op(A) rounded, row-major [m][k] (A transposed is read in blocks
// of 64 rows of op(A), so that both the reads and the 64 open rows written stay in cache), and
// op(B) rounded as [n][k] (each column of op(B) one row), read along B's rows.
static void pack_a(float *ap, const float *a, long lda, int transA, long m, long k) {
    if (!transA) {
        for (long i = 0; i < m; i++)
            for (long kk = 0; kk < k; kk++) ap[i * k + kk] = rounded(a[i * lda + kk]);
        return;
    }
    for (long i0 = 0; i0 < m; i0 += 64) {
        long i1 = i0 + 64 < m ? i0 + 64 : m;
        for (long kk = 0; kk < k; kk++)
            for (long i = i0; i < i1; i++) ap[i * k + kk] = rounded(a[kk * lda + i]);
    }
}

static void pack_b(float *bt, const float *b, long ldb, int transB, long n, long k) {
    if (transB) {
        for (long j = 0; j < n; j++)
            for (long kk = 0; kk < k; kk++) bt[j * k + kk] = rounded(b[j * ldb + kk]);
    } else {
        for (long kk = 0; kk < k; kk++)
            for (long j = 0; j < n; j++) bt[j * k + kk] = rounded(b[kk * ldb + j]);
    }
}

// Writes tile results (R rows × W columns of `acc`, row stride W) into C, columns [0, cols).
// Inlined into each code's target-attributed store below, where the fused multiply-add of
// `finish` is one instruction (and the loop vectorises) rather than a call to libm's fmaf.
#define STORE_TILE_BODY                                                                            \
    for (long r = 0; r < rows; r++)                                                                \
        for (long j = 0; j < cols; j++) c[r * ldc + j] = finish(acc[r * width + j], alpha, beta, c[r * ldc + j]);

// MARK: Portable

static int gemm_portable(int transA, long m, long n, long k, float alpha, const float *a, long lda,
                         const float *bt, float beta, float *c, long ldc) {
    float *ap = buffer(0, sizeof(float) * (size_t)m * (size_t)k);
    if (!ap) return -1;
    pack_a(ap, a, lda, transA, m, k);
    for (long i = 0; i < m; i++) {
        for (long j = 0; j < n; j++) {
            float acc = 0.0f;
            for (long kk = 0; kk < k; kk++) acc = __builtin_fmaf(ap[i * k + kk], bt[j * k + kk], acc);
            c[i * ldc + j] = finish(acc, alpha, beta, c[i * ldc + j]);
        }
    }
    return 0;
}

#if defined(__x86_64__)
#include <immintrin.h>
#define LOOM_AVX2 __attribute__((target("avx2,fma")))

// MARK: Packing with AVX2
//
// The packers of the AVX2 code and of the native one (every CPU with AVX512-BF16 has AVX2): the
// same values as rounded() and pair(), eight at a time. Where the packed layout runs across the
// source's rows (A or B transposed), 8×8 blocks are transposed in registers, so that both the
// reads and the writes are whole vectors; the edges past the last whole block use the scalar
// helpers. Packing is a pass over every operand of every product, so done one element at a time
// it would cost a large part of the product itself.

enum { W16 = 48 };  // the panel width: three 16-float registers

// A pair: k's value in the odd (high) half, which vdpbf16ps adds first, k + 1's in the even half.
static inline uint32_t pair(float first, float second) {
    return ((uint32_t)loom_bf16_from_float(first) << 16) | loom_bf16_from_float(second);
}

// The pair of x[2q·stride] and x[(2q + 1)·stride] (zero past k).
static inline uint32_t pair_along(const float *x, long stride, long q, long k) {
    return pair(x[2 * q * stride], 2 * q + 1 < k ? x[(2 * q + 1) * stride] : 0.0f);
}

#define LOOM_AVX2_INLINE static inline LOOM_AVX2 __attribute__((always_inline))

// x[0..8) rounded as loom_bf16_from_float does, each as its float32 bit pattern (the bfloat16
// in the high half, the low half zero).
LOOM_AVX2_INLINE __m256i round8(const float *x) {
    const __m256i bits = _mm256_loadu_si256((const __m256i *)x);
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
    const __m256i lowestKept = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_add_epi32(bits, _mm256_add_epi32(lowestKept, _mm256_set1_epi32(0x7fff)));
    r = _mm256_blendv_epi8(r, _mm256_or_si256(bits, _mm256_set1_epi32(0x00400000)), nan);  // NaN: quiet, not rounded
    r = _mm256_and_si256(r, _mm256_set1_epi32((int)0xffff0000u));
    const __m256i subnormal = _mm256_cmpeq_epi32(_mm256_and_si256(r, _mm256_set1_epi32(0x7f800000)), _mm256_setzero_si256());
    return _mm256_andnot_si256(_mm256_and_si256(subnormal, _mm256_set1_epi32(0x7fffffff)), r);  // → ±0
}

// Lane by lane, the pairs of two rounded vectors: first (k) in the high half.
LOOM_AVX2_INLINE __m256i pairs_of(__m256i first, __m256i second) {
    return _mm256_or_si256(first, _mm256_srli_epi32(second, 16));
}

// The 8 pairs of x[0..16): (x[0], x[1]), (x[2], x[3]), …
LOOM_AVX2_INLINE __m256i pairs16(const float *x) {
    __m256i lo = round8(x), hi = round8(x + 8);
    // In each 64-bit half the even element's bfloat16 is at bits 16–31; the odd one's goes to 0–15.
    lo = _mm256_or_si256(lo, _mm256_srli_epi64(lo, 48));
    hi = _mm256_or_si256(hi, _mm256_srli_epi64(hi, 48));
    // The pairs are the low 32 bits of each 64: lanes p0 p1 p4 p5 | p2 p3 p6 p7, then in order.
    const __m256 gathered = _mm256_shuffle_ps(_mm256_castsi256_ps(lo), _mm256_castsi256_ps(hi), _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_permute4x64_epi64(_mm256_castps_si256(gathered), _MM_SHUFFLE(3, 1, 2, 0));
}

// r[i][j] ↔ r[j][i] for an 8×8 block of 32-bit values.
LOOM_AVX2_INLINE void transpose8(__m256i r[8]) {
    __m256 t[8], s[8];
    for (int i = 0; i < 4; i++) {  // t[2i] = columns 0, 1 | 4, 5 of rows 2i and 2i + 1, interleaved; t[2i + 1] = 2, 3 | 6, 7
        t[2 * i] = _mm256_unpacklo_ps(_mm256_castsi256_ps(r[2 * i]), _mm256_castsi256_ps(r[2 * i + 1]));
        t[2 * i + 1] = _mm256_unpackhi_ps(_mm256_castsi256_ps(r[2 * i]), _mm256_castsi256_ps(r[2 * i + 1]));
    }
    for (int h = 0; h < 2; h++) {  // s[4h + j] = column j | j + 4 of rows 4h … 4h + 3
        s[4 * h] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], _MM_SHUFFLE(1, 0, 1, 0));
        s[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], _MM_SHUFFLE(3, 2, 3, 2));
        s[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], _MM_SHUFFLE(1, 0, 1, 0));
        s[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int j = 0; j < 4; j++) {
        r[j] = _mm256_castps_si256(_mm256_permute2f128_ps(s[j], s[4 + j], 0x20));
        r[j + 4] = _mm256_castps_si256(_mm256_permute2f128_ps(s[j], s[4 + j], 0x31));
    }
}

LOOM_AVX2_INLINE void store8(void *p, __m256i v) { _mm256_storeu_si256((__m256i *)p, v); }

// Rows of op(A) packed together when A is transposed: each row of A is read 1 KB at a time, so
// fewer pages are walked per element than with 64 rows' 256 bytes (the weight gradient's dYᵀ of
// the small config on AMD EPYC Zen 3: 1.3-1.8 ns an element with 256 rows, 2.1-2.3 with 64).
enum { ROWS_TRANSPOSED = 256 };

// op(A) as pairs, [m][pairs] (the native and AVX2 codes; the last pair of an odd k is padded with zero).
// A transposed: a pair joins two rows of A; 8×8 blocks of pairs, 256 rows of op(A) at a time.
static LOOM_AVX2 void pack_a_pairs(uint32_t *ap, const float *a, long lda, int transA, long m, long k) {
    long pairs = (k + 1) / 2, whole = k / 2;
    if (!transA) {
        for (long i = 0; i < m; i++) {
            const float *row = a + i * lda;
            long q = 0;
            for (; q + 8 <= whole; q += 8) store8(ap + i * pairs + q, pairs16(row + 2 * q));
            for (; q < pairs; q++) ap[i * pairs + q] = pair_along(row, 1, q, k);
        }
        return;
    }
    for (long i0 = 0; i0 < m; i0 += ROWS_TRANSPOSED) {
        long i1 = i0 + ROWS_TRANSPOSED < m ? i0 + ROWS_TRANSPOSED : m, iv = i0 + ((i1 - i0) & ~7L), q = 0;
        for (; q + 8 <= whole; q += 8)
            for (long i = i0; i < iv; i += 8) {
                __m256i r[8];
                for (int t = 0; t < 8; t++)
                    r[t] = pairs_of(round8(a + 2 * (q + t) * lda + i), round8(a + (2 * (q + t) + 1) * lda + i));
                transpose8(r);
                for (int t = 0; t < 8; t++) store8(ap + (i + t) * pairs + q, r[t]);
            }
        for (long u = q; u < pairs; u++)
            for (long i = i0; i < iv; i++) ap[i * pairs + u] = pair_along(a + i, lda, u, k);
        for (long u = 0; u < pairs; u++)
            for (long i = iv; i < i1; i++) ap[i * pairs + u] = pair_along(a + i, lda, u, k);
    }
}

// op(B) as pair panels of 48 columns, [pairs][48] each (the native and AVX2 codes). B not transposed: row
// q of every panel from rows 2q and 2q + 1 of B, read whole; transposed: 8 rows of B at a time,
// read whole, into 8 columns of one panel.
static LOOM_AVX2 void pack_b_pairs(uint32_t *bp, const float *b, long ldb, int transB, long n, long k) {
    long pairs = (k + 1) / 2, whole = k / 2, panels = (n + W16 - 1) / W16;
    if (!transB) {
        for (long q = 0; q < pairs; q++)
            for (long p = 0; p < panels; p++) {
                uint32_t *row = bp + (p * pairs + q) * W16;
                long j0 = p * W16, cols = n - j0 < W16 ? n - j0 : W16, cv = cols & ~7L, w = 0;
                const float *first = b + 2 * q * ldb + j0, *second = first + ldb;
                if (2 * q + 1 < k)
                    for (; w < cv; w += 8) store8(row + w, pairs_of(round8(first + w), round8(second + w)));
                else  // a half pair: (x, 0) is x's rounded bit pattern
                    for (; w < cv; w += 8) store8(row + w, round8(first + w));
                for (; w < cols; w++) row[w] = pair_along(b + j0 + w, ldb, q, k);
                for (; w < W16; w++) row[w] = 0u;
            }
        return;
    }
    long q8 = whole & ~7L;
    for (long p = 0; p < panels; p++) {
        uint32_t *panel = bp + p * pairs * W16;
        long j0 = p * W16, cols = n - j0 < W16 ? n - j0 : W16, cv = cols & ~7L;
        for (long w = 0; w < cv; w += 8)
            for (long q = 0; q < q8; q += 8) {
                __m256i r[8];
                for (int t = 0; t < 8; t++) r[t] = pairs16(b + (j0 + w + t) * ldb + 2 * q);
                transpose8(r);
                for (int t = 0; t < 8; t++) store8(panel + (q + t) * W16 + w, r[t]);
            }
        for (long u = q8; u < pairs; u++)
            for (long w = 0; w < cv; w++) panel[u * W16 + w] = pair_along(b + (j0 + w) * ldb, 1, u, k);
        for (long w = cv; w < W16; w++)
            for (long u = 0; u < pairs; u++) panel[u * W16 + w] = w < cols ? pair_along(b + (j0 + w) * ldb, 1, u, k) : 0u;
    }
}

// A vector code: its tiles of 8 (or none), 4, 2 and 1 rows, each over `depth` bfloat16 pairs
// (the last one half padding when k is odd), its store, and its panel width.
typedef void (*Tile)(long depth, long k, const void *ap, const void *panel, float *out);
typedef void (*Store)(const float *acc, long rows, long width, long cols, float alpha, float beta, float *c, long ldc);
typedef struct { Tile rows8, rows4, rows2, rows1; Store store; long width; } Code;

// C from packed A ([m][depth]) and packed panels of op(B) ([depth][width] each): panels
// outermost, rows in the largest tiles that fit.
static void run_panels(const Code *code, long m, long n, long k, long depth, const uint32_t *ap, const uint32_t *bp,
                       float alpha, float beta, float *c, long ldc) {
    float out[8 * 48];  // the largest tile: 8 rows × 48 columns
    long width = code->width, panels = (n + width - 1) / width;
    for (long p = 0; p < panels; p++) {
        const uint32_t *panel = bp + p * depth * width;
        long j0 = p * width, cols = n - j0 < width ? n - j0 : width, i = 0;
        if (code->rows8)
            for (; i + 8 <= m; i += 8) {
                code->rows8(depth, k, ap + i * depth, panel, out);
                code->store(out, 8, width, cols, alpha, beta, c + i * ldc + j0, ldc);
            }
        for (; i + 4 <= m; i += 4) {
            code->rows4(depth, k, ap + i * depth, panel, out);
            code->store(out, 4, width, cols, alpha, beta, c + i * ldc + j0, ldc);
        }
        if (i + 2 <= m) {
            code->rows2(depth, k, ap + i * depth, panel, out);
            code->store(out, 2, width, cols, alpha, beta, c + i * ldc + j0, ldc);
            i += 2;
        }
        if (i < m) {
            code->rows1(depth, k, ap + i * depth, panel, out);
            code->store(out, 1, width, cols, alpha, beta, c + i * ldc + j0, ldc);
        }
    }
}

// MARK: AVX2: the native layout, each pair taken apart into two float32 values

static LOOM_AVX2 void store_tile_avx2(const float *acc, long rows, long width, long cols, float alpha, float beta, float *c, long ldc) {
    STORE_TILE_BODY
}

// R rows × 48 columns, one half panel (24 columns, 3R accumulators) after the other: per pair,
// 3 loads of B pairs, each split into its first (k) and second (k + 1) values, then two fused
// multiply-adds per accumulator, k's first, as vdpbf16ps adds them. The padding half of an odd
// k's last pair is not added: 0·0 added to a partial sum that underflowed to −0 would make it +0.
#define DEFINE_TILE_AVX2(R)                                                                        \
static LOOM_AVX2 void tile_avx2_##R(long pairs, long k, const void *apv, const void *panelv, float *out) { \
    const uint32_t *ap = apv, *panel = panelv;                                                     \
    const __m256i high = _mm256_set1_epi32((int)0xffff0000u);                                      \
    for (int half = 0; half < 2; half++) {                                                         \
        __m256 acc[R][3];                                                                          \
        for (int r = 0; r < R; r++) for (int v = 0; v < 3; v++) acc[r][v] = _mm256_setzero_ps();   \
        for (long q = 0; q < pairs; q++) {                                                         \
            for (int v = 0; v < 3; v++) {                                                          \
                __m256i bv = _mm256_load_si256((const __m256i *)(panel + q * W16 + 24 * half + 8 * v)); \
                __m256 first = _mm256_castsi256_ps(_mm256_and_si256(bv, high));                    \
                __m256 second = _mm256_castsi256_ps(_mm256_slli_epi32(bv, 16));                    \
                for (int r = 0; r < R; r++) {                                                      \
                    uint32_t p = ap[r * pairs + q];                                                \
                    __m256 af = _mm256_castsi256_ps(_mm256_set1_epi32((int)(p & 0xffff0000u)));     \
                    __m256 as = _mm256_castsi256_ps(_mm256_set1_epi32((int)(p << 16)));             \
                    acc[r][v] = _mm256_fmadd_ps(af, first, acc[r][v]);                            \
                    if (2 * q + 1 < k) acc[r][v] = _mm256_fmadd_ps(as, second, acc[r][v]);         \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        for (int r = 0; r < R; r++) for (int v = 0; v < 3; v++)                                    \
            _mm256_storeu_ps(out + r * W16 + 24 * half + 8 * v, acc[r][v]);                        \
    }                                                                                              \
}
DEFINE_TILE_AVX2(4)
DEFINE_TILE_AVX2(2)
DEFINE_TILE_AVX2(1)

static const Code avx2 = {NULL, tile_avx2_4, tile_avx2_2, tile_avx2_1, store_tile_avx2, W16};

static int gemm_avx2(int transA, long m, long n, long k, float alpha, const float *a, long lda,
                     const uint32_t *bp, float beta, float *c, long ldc) {
    long pairs = (k + 1) / 2;
    uint32_t *ap = buffer(0, sizeof(uint32_t) * (size_t)m * (size_t)pairs);
    if (!ap) return -1;
    pack_a_pairs(ap, a, lda, transA, m, k);
    run_panels(&avx2, m, n, k, pairs, ap, bp, alpha, beta, c, ldc);
    return 0;
}

// MARK: AVX512-BF16: vdpbf16ps on pairs

// LOOM_EMULATE_AVX512 compiles this part for AVX2, for the harness that runs it with SIMDe's
// portable AVX-512 intrinsics and a vdpbf16ps written from Intel's definition
// (Tests/Emulated/check_avx512_kernels.c).
#ifdef LOOM_EMULATE_AVX512
#define LOOM_BF16_TARGET LOOM_AVX2
#else
#define LOOM_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")))
static inline LOOM_BF16_TARGET __attribute__((always_inline)) __m512 dot_pairs(__m512 acc, __m512i a, __m512i b) {
    return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b);
}
#endif

static LOOM_BF16_TARGET void store_tile_bf16(const float *acc, long rows, long width, long cols, float alpha, float beta,
                                             float *c, long ldc) {
    STORE_TILE_BODY
}

// R rows × 48 columns: 3R accumulators, 3 loads and R broadcasts per pair of k.
#define DEFINE_TILE_BF16(R)                                                                        \
static LOOM_BF16_TARGET void tile_bf16_##R(long pairs, long k, const void *apv, const void *panelv, float *out) { \
    (void)k;  /* vdpbf16ps adds the padding product too, as the hardware defines it */            \
    const uint32_t *ap = apv, *panel = panelv;                                                     \
    __m512 acc[R][3];                                                                              \
    for (int r = 0; r < R; r++) for (int v = 0; v < 3; v++) acc[r][v] = _mm512_setzero_ps();       \
    for (long q = 0; q < pairs; q++) {                                                             \
        __m512i bv[3];                                                                             \
        for (int v = 0; v < 3; v++) bv[v] = _mm512_load_si512((const void *)(panel + q * W16 + 16 * v)); \
        for (int r = 0; r < R; r++) {                                                              \
            __m512i av = _mm512_set1_epi32((int)ap[r * pairs + q]);                                \
            for (int v = 0; v < 3; v++) acc[r][v] = dot_pairs(acc[r][v], av, bv[v]);               \
        }                                                                                          \
    }                                                                                              \
    for (int r = 0; r < R; r++) for (int v = 0; v < 3; v++) _mm512_storeu_ps(out + r * W16 + 16 * v, acc[r][v]); \
}
DEFINE_TILE_BF16(8)
DEFINE_TILE_BF16(4)
DEFINE_TILE_BF16(2)
DEFINE_TILE_BF16(1)

static const Code bf16 = {tile_bf16_8, tile_bf16_4, tile_bf16_2, tile_bf16_1, store_tile_bf16, W16};

static int gemm_bf16(int transA, long m, long n, long k, float alpha, const float *a, long lda,
                     const uint32_t *bp, float beta, float *c, long ldc) {
    long pairs = (k + 1) / 2;
    uint32_t *ap = buffer(0, sizeof(uint32_t) * (size_t)m * (size_t)pairs);
    if (!ap) return -1;
    pack_a_pairs(ap, a, lda, transA, m, k);
    run_panels(&bf16, m, n, k, pairs, ap, bp, alpha, beta, c, ldc);
    return 0;
}
#endif

// MARK: Entry points

size_t loom_bf16_packed_b_size(int code, long n, long k) {
#if defined(__x86_64__)
    if (code == LOOM_BF16_NATIVE || code == LOOM_BF16_EMULATED_AVX2)
        return sizeof(uint32_t) * (size_t)((n + W16 - 1) / W16) * (size_t)((k + 1) / 2) * W16;
#endif
    return sizeof(float) * (size_t)n * (size_t)k;
}

void loom_bf16_pack_b_into(int code, int transB, long n, long k, const float *b, long ldb, void *packed) {
#if defined(__x86_64__)
    if (code == LOOM_BF16_NATIVE || code == LOOM_BF16_EMULATED_AVX2) { pack_b_pairs(packed, b, ldb, transB, n, k); return; }
#endif
    pack_b(packed, b, ldb, transB, n, k);
}

const void *loom_bf16_pack_b(int code, int transB, long n, long k, const float *b, long ldb) {
    void *bp = buffer(1, loom_bf16_packed_b_size(code, n, k));
    if (bp) loom_bf16_pack_b_into(code, transB, n, k, b, ldb, bp);
    return bp;
}

long loom_bf16_panel_width(int code) {
#if defined(__x86_64__)
    if (code == LOOM_BF16_NATIVE || code == LOOM_BF16_EMULATED_AVX2) return W16;
#endif
    return 1;
}

const void *loom_bf16_packed_b_columns(int code, const void *packed, long k, long column) {
    // Panels of `width` columns follow one another, each loom_bf16_packed_b_size(code, width, k) long.
    long width = loom_bf16_panel_width(code);
    return (const char *)packed + (size_t)(column / width) * loom_bf16_packed_b_size(code, width, k);
}

int loom_bf16_gemm_packed(int code, int transA, long m, long n, long k, float alpha, const float *a, long lda,
                          const void *packedB, float beta, float *c, long ldc) {
    if (m <= 0 || n <= 0) return 0;
#if defined(__x86_64__)
    if (code == LOOM_BF16_NATIVE) return gemm_bf16(transA, m, n, k, alpha, a, lda, packedB, beta, c, ldc);
    if (code == LOOM_BF16_EMULATED_AVX2) return gemm_avx2(transA, m, n, k, alpha, a, lda, packedB, beta, c, ldc);
#endif
    return gemm_portable(transA, m, n, k, alpha, a, lda, packedB, beta, c, ldc);
}

int loom_bf16_gemm(int code, int transA, int transB, long m, long n, long k, float alpha,
                   const float *a, long lda, const float *b, long ldb, float beta, float *c, long ldc) {
    if (m <= 0 || n <= 0) return 0;
    const void *packedB = loom_bf16_pack_b(code, transB, n, k, b, ldb);
    if (!packedB) return -1;
    return loom_bf16_gemm_packed(code, transA, m, n, k, alpha, a, lda, packedB, beta, c, ldc);
}
