// bf16 matrix products; the arithmetic is described in include/LoomBF16.h.
//
// Each code packs op(B) in panels of W columns (the last one padded with zeros) and op(A) row by
// row, then computes tiles of R rows × W columns: per k, the panel's W values are loaded once and
// each row's A element is broadcast, so one tile's R·W accumulators each take exactly one fused
// multiply-add per k, in increasing k. Panels are the outer loop: a panel stays in cache while
// every row tile passes over it. Packed B can be shared: a product split by rows over threads
// packs it once (loom_bf16_pack_b) and each thread packs only its rows of A.
//
// Packed layouts of op(B), by code: portable [n][k] floats (panels of one column); AVX2 panels
// of 24 columns, [k][24] floats each; native panels of 48 columns, [pairs][48] pairs each.
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

// op(A) rounded, row-major [m][k]. A transposed is read in blocks of 64 rows of op(A) so that
// both the reads (rows of A) and the writes (64 open rows) stay in cache lines.
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

// op(B) rounded, in panels of `width` columns: panel p is [k][width], columns past n are zero.
// Each panel is filled in the order that reads B along its rows.
static void pack_b(float *bp, const float *b, long ldb, int transB, long n, long k, long width) {
    long panels = (n + width - 1) / width;
    for (long p = 0; p < panels; p++) {
        float *panel = bp + p * k * width;
        long j0 = p * width, cols = n - j0 < width ? n - j0 : width;
        if (transB) {
            for (long w = 0; w < cols; w++)
                for (long kk = 0; kk < k; kk++) panel[kk * width + w] = rounded(b[(j0 + w) * ldb + kk]);
        } else {
            for (long kk = 0; kk < k; kk++)
                for (long w = 0; w < cols; w++) panel[kk * width + w] = rounded(b[kk * ldb + j0 + w]);
        }
        for (long kk = 0; kk < k; kk++)
            for (long w = cols; w < width; w++) panel[kk * width + w] = 0.0f;
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

// A vector code: its tiles of 8 (or none), 4, 2 and 1 rows, each over `depth` steps of 4-byte
// values (floats, or bfloat16 pairs), its store, and its panel width.
typedef void (*Tile)(long depth, const void *ap, const void *panel, float *out);
typedef void (*Store)(const float *acc, long rows, long width, long cols, float alpha, float beta, float *c, long ldc);
typedef struct { Tile rows8, rows4, rows2, rows1; Store store; long width; } Code;

// C from packed A ([m][depth]) and packed panels of op(B) ([depth][width] each): panels
// outermost, rows in the largest tiles that fit.
static void run_panels(const Code *code, long m, long n, long depth, const uint32_t *ap, const uint32_t *bp,
                       float alpha, float beta, float *c, long ldc) {
    float out[8 * 48];  // the largest tile: 8 rows × 48 columns
    long width = code->width, panels = (n + width - 1) / width;
    for (long p = 0; p < panels; p++) {
        const uint32_t *panel = bp + p * depth * width;
        long j0 = p * width, cols = n - j0 < width ? n - j0 : width, i = 0;
        if (code->rows8)
            for (; i + 8 <= m; i += 8) {
                code->rows8(depth, ap + i * depth, panel, out);
                code->store(out, 8, width, cols, alpha, beta, c + i * ldc + j0, ldc);
            }
        for (; i + 4 <= m; i += 4) {
            code->rows4(depth, ap + i * depth, panel, out);
            code->store(out, 4, width, cols, alpha, beta, c + i * ldc + j0, ldc);
        }
        if (i + 2 <= m) {
            code->rows2(depth, ap + i * depth, panel, out);
            code->store(out, 2, width, cols, alpha, beta, c + i * ldc + j0, ldc);
            i += 2;
        }
        if (i < m) {
            code->rows1(depth, ap + i * depth, panel, out);
            code->store(out, 1, width, cols, alpha, beta, c + i * ldc + j0, ldc);
        }
    }
}

// MARK: AVX2: the rounded values as float32

enum { W2 = 24 };  // panel width: three 8-float registers

static LOOM_AVX2 void store_tile_avx2(const float *acc, long rows, long width, long cols, float alpha, float beta, float *c, long ldc) {
    STORE_TILE_BODY
}

// R rows × 24 columns: 3R accumulators, 3 loads and R broadcasts per k.
#define DEFINE_TILE_AVX2(R)                                                                        \
static LOOM_AVX2 void tile_avx2_##R(long k, const void *apv, const void *panelv, float *out) {    \
    const float *ap = apv, *panel = panelv;                                                        \
    __m256 acc[R][3];                                                                              \
    for (int r = 0; r < R; r++) for (int v = 0; v < 3; v++) acc[r][v] = _mm256_setzero_ps();       \
    for (long kk = 0; kk < k; kk++) {                                                              \
        __m256 bv[3];                                                                              \
        for (int v = 0; v < 3; v++) bv[v] = _mm256_load_ps(panel + kk * W2 + 8 * v);              \
        for (int r = 0; r < R; r++) {                                                              \
            __m256 av = _mm256_broadcast_ss(ap + r * k + kk);                                      \
            for (int v = 0; v < 3; v++) acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);        \
        }                                                                                          \
    }                                                                                              \
    for (int r = 0; r < R; r++) for (int v = 0; v < 3; v++) _mm256_storeu_ps(out + r * W2 + 8 * v, acc[r][v]); \
}
DEFINE_TILE_AVX2(4)
DEFINE_TILE_AVX2(2)
DEFINE_TILE_AVX2(1)

static const Code avx2 = {NULL, tile_avx2_4, tile_avx2_2, tile_avx2_1, store_tile_avx2, W2};

static int gemm_avx2(int transA, long m, long n, long k, float alpha, const float *a, long lda,
                     const float *bp, float beta, float *c, long ldc) {
    float *ap = buffer(0, sizeof(float) * (size_t)m * (size_t)k);
    if (!ap) return -1;
    pack_a(ap, a, lda, transA, m, k);
    run_panels(&avx2, m, n, k, (const uint32_t *)ap, (const uint32_t *)bp, alpha, beta, c, ldc);
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

enum { W16 = 48 };  // panel width: three 16-float registers

static LOOM_BF16_TARGET void store_tile_bf16(const float *acc, long rows, long width, long cols, float alpha, float beta,
                                             float *c, long ldc) {
    STORE_TILE_BODY
}

// A pair: k's value in the odd (high) half, which vdpbf16ps adds first, k + 1's in the even half.
static inline uint32_t pair(float first, float second) {
    return ((uint32_t)loom_bf16_from_float(first) << 16) | loom_bf16_from_float(second);
}

// op(A) as pairs, [m][pairs], in one pass (the last pair of an odd k is padded with zero);
// A transposed is read two rows at a time, in blocks of 64 rows of op(A).
static void pack_a_pairs(uint32_t *ap, const float *a, long lda, int transA, long m, long k) {
    long pairs = (k + 1) / 2, whole = k / 2;
    if (!transA) {
        for (long i = 0; i < m; i++) {
            const float *row = a + i * lda;
            for (long q = 0; q < whole; q++) ap[i * pairs + q] = pair(row[2 * q], row[2 * q + 1]);
            if (pairs > whole) ap[i * pairs + whole] = pair(row[k - 1], 0.0f);
        }
        return;
    }
    for (long i0 = 0; i0 < m; i0 += 64) {
        long i1 = i0 + 64 < m ? i0 + 64 : m;
        for (long q = 0; q < pairs; q++) {
            const float *first = a + 2 * q * lda, *second = 2 * q + 1 < k ? a + (2 * q + 1) * lda : NULL;
            for (long i = i0; i < i1; i++) ap[i * pairs + q] = pair(first[i], second ? second[i] : 0.0f);
        }
    }
}

// op(B) as pair panels of 48 columns, [pairs][48] each, in one pass, read along B's rows.
static void pack_b_pairs(uint32_t *bp, const float *b, long ldb, int transB, long n, long k) {
    long pairs = (k + 1) / 2, panels = (n + W16 - 1) / W16;
    for (long p = 0; p < panels; p++) {
        uint32_t *panel = bp + p * pairs * W16;
        long j0 = p * W16, cols = n - j0 < W16 ? n - j0 : W16;
        if (transB) {
            for (long w = 0; w < cols; w++) {
                const float *row = b + (j0 + w) * ldb;
                for (long q = 0; q < pairs; q++) panel[q * W16 + w] = pair(row[2 * q], 2 * q + 1 < k ? row[2 * q + 1] : 0.0f);
            }
        } else {
            for (long q = 0; q < pairs; q++) {
                const float *first = b + 2 * q * ldb + j0, *second = 2 * q + 1 < k ? b + (2 * q + 1) * ldb + j0 : NULL;
                for (long w = 0; w < cols; w++) panel[q * W16 + w] = pair(first[w], second ? second[w] : 0.0f);
            }
        }
        for (long q = 0; q < pairs; q++)
            for (long w = cols; w < W16; w++) panel[q * W16 + w] = 0u;
    }
}

// R rows × 48 columns: 3R accumulators, 3 loads and R broadcasts per pair of k.
#define DEFINE_TILE_BF16(R)                                                                        \
static LOOM_BF16_TARGET void tile_bf16_##R(long pairs, const void *apv, const void *panelv, float *out) { \
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
    run_panels(&bf16, m, n, pairs, ap, bp, alpha, beta, c, ldc);
    return 0;
}
#endif

// MARK: Entry points

static size_t packed_b_bytes(int code, long n, long k) {
#if defined(__x86_64__)
    if (code == LOOM_BF16_NATIVE) return sizeof(uint32_t) * (size_t)((n + W16 - 1) / W16) * (size_t)((k + 1) / 2) * W16;
    if (code == LOOM_BF16_EMULATED_AVX2) return sizeof(float) * (size_t)((n + W2 - 1) / W2) * (size_t)k * W2;
#endif
    return sizeof(float) * (size_t)n * (size_t)k;
}

const void *loom_bf16_pack_b(int code, int transB, long n, long k, const float *b, long ldb) {
    void *bp = buffer(1, packed_b_bytes(code, n, k));
    if (!bp) return NULL;
#if defined(__x86_64__)
    if (code == LOOM_BF16_NATIVE) { pack_b_pairs(bp, b, ldb, transB, n, k); return bp; }
    if (code == LOOM_BF16_EMULATED_AVX2) { pack_b(bp, b, ldb, transB, n, k, W2); return bp; }
#endif
    pack_b(bp, b, ldb, transB, n, k, 1);
    return bp;
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
