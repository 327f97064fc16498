// Runs Loom's AVX-512 kernels on a CPU without AVX-512: the kernel sources are compiled here
// with SIMDe's portable implementations of the AVX-512 intrinsics (its "native aliases" map
// each _mm512_* name to its implementation), and every result is compared bit for bit with the
// portable C version on random inputs. This checks the kernels' logic (lane layout, shuffles,
// masks, tails, tiling), not the hardware; on a CPU with AVX-512 the Swift tests run the real
// instructions too (QuantizedKernelTests, RowInvariantTests).
//
//   cc -O1 -mavx2 -mfma -mf16c -ffp-contract=off -Wno-psabi -I Sources/CLoomQuant/include \
//      -I Sources/CLoomCPU/include Tests/Emulated/check_avx512_kernels.c \
//      Tests/Emulated/emulated_row_invariant.c Tests/Emulated/emulated_bf16.c -lm -o check && ./check
//
// Prints "avx512 emulated: N passed, F failed" and exits non-zero on any failure.
#include <immintrin.h>
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#include "simde_avx512_shims.h"

#define LOOM_EMULATE_AVX512 1
#include "../../Sources/CLoomQuant/quant_kernels.c"

#include "LoomRowInvariant.h"
#include "LoomBF16.h"
#include <string.h>
#include <stdio.h>
#include <stdlib.h>

static int passed = 0, failed = 0;

static uint64_t state = 0x9E3779B97F4A7C15ull;
static uint32_t next_random(void) {
    state ^= state << 13; state ^= state >> 7; state ^= state << 17;
    return (uint32_t)(state >> 16);
}
static float uniform(float lo, float hi) { return lo + (hi - lo) * (float)(next_random() % 1000000) / 1e6f; }

/// A half with a finite, moderate value (random sign, exponent 5 … 16, random mantissa).
static uint16_t random_half(void) {
    uint16_t sign = (uint16_t)((next_random() & 1) << 15), exponent = (uint16_t)(5 + next_random() % 12);
    return (uint16_t)(sign | (exponent << 10) | (next_random() & 0x3ff));
}

static void check(int ok, const char *what, int type, int rows, int blocks, int xRows, int begin, int end) {
    if (ok) { passed++; return; }
    failed++;
    fprintf(stderr, "FAIL %s: type %d, %d rows x %d blocks, %d activation rows, rows [%d, %d)\n", what, type, rows, blocks, xRows, begin, end);
}

static void check_quantized(int type, int rows, int blocks, int xRows, int begin, int end, int accumulate) {
    const size_t bytes = type == LOOM_QUANT_Q8_0 ? 34 : type == LOOM_QUANT_Q4_0 ? 18 : 20;
    uint8_t *w = malloc(bytes * rows * blocks), *scratch = malloc(4 * bytes * blocks);
    for (int i = 0; i < rows * blocks; i++) {
        uint8_t *block = w + i * bytes;
        for (size_t j = 0; j < bytes; j++) block[j] = (uint8_t)next_random();
        uint16_t d = random_half(), m = random_half();
        memcpy(block, &d, 2);
        if (type == LOOM_QUANT_Q4_1) memcpy(block + 2, &m, 2);
        if (type == LOOM_QUANT_Q8_0 && i % 5 == 0) block[2 + i % 32] = 0x80;   // -128: valid in files
    }
    loom_quant_interleave(type, w, rows, blocks, scratch);
    float *xf = malloc(sizeof(float) * 32 * blocks * xRows);
    for (int i = 0; i < 32 * blocks * xRows; i++) xf[i] = uniform(-2, 2);
    for (int i = 0; i < 32; i++) xf[i] = 0;   // a zero block: scale 0
    LoomActivationBlock *x = malloc(sizeof(LoomActivationBlock) * blocks * xRows);
    loom_quantize_activations_scalar(xf, x, blocks * xRows);
    const size_t ldy = rows + 3;
    float *expected = malloc(sizeof(float) * ldy * xRows), *got = malloc(sizeof(float) * ldy * xRows);
    for (size_t i = 0; i < ldy * xRows; i++) expected[i] = got[i] = uniform(-1, 1);
    loom_quant_matmul_scalar(type, w, rows, blocks, begin, end, x, xRows, expected, ldy, accumulate);
    loom_quant_matmul_avx512vnni(type, w, rows, blocks, begin, end, x, xRows, got, ldy, accumulate);
    check(memcmp(expected, got, sizeof(float) * ldy * xRows) == 0, accumulate ? "quantized matmul (accumulate)" : "quantized matmul",
          type, rows, blocks, xRows, begin, end);
    free(w); free(scratch); free(xf); free(x); free(expected); free(got);
}

/// The batch-invariant product at the AVX-512 level against the AVX2 level (bit-equal by
/// design), for `m` rows (8-row tiles, then the AVX2 tiles for the rest) over columns [j0, j1).
static void check_row_invariant(long m, long n, long k, long j0, long j1, int accumulate, int streamed) {
    const long ldx = k + 1, ldw = k + 2, ldy = n + 3;
    float *x = malloc(sizeof(float) * m * ldx), *w = malloc(sizeof(float) * n * ldw);
    float *expected = malloc(sizeof(float) * m * ldy), *got = malloc(sizeof(float) * m * ldy);
    for (long i = 0; i < m * ldx; i++) x[i] = uniform(-1, 1);
    for (long i = 0; i < n * ldw; i++) w[i] = uniform(-1, 1);
    for (long i = 0; i < m * ldy; i++) expected[i] = got[i] = uniform(-1, 1);
    loom_rowinv_gemm_nt(LOOM_KERNELS_AVX2, m, j0, j1, k, x, ldx, w, ldw, expected, ldy, accumulate, streamed);
    loom_rowinv_gemm_nt(LOOM_KERNELS_AVX512, m, j0, j1, k, x, ldx, w, ldw, got, ldy, accumulate, streamed);
    if (memcmp(expected, got, sizeof(float) * m * ldy) == 0) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "FAIL batch-invariant product: m %ld, n %ld, k %ld, columns [%ld, %ld), accumulate %d, streamed %d\n",
                m, n, k, j0, j1, accumulate, streamed);
    }
    free(x); free(w); free(expected); free(got);
}

// The bf16 product of the vdpbf16ps kernel (emulated_bf16.c) against the portable code, which
// computes the definition in LoomBF16.h directly: bit for bit, with C's padding untouched.
long emulated_bf16_rounding_mismatches(void);  // emulated_bf16.c

static void check_bf16(long m, long n, long k, int transA, int transB, float alpha, float beta) {
    long lda = (transA ? m : k) + 1, ldb = (transB ? k : n) + 2, ldc = n + 3;
    long aCount = (transA ? k : m) * lda + 1, bCount = (transB ? n : k) * ldb + 1;
    float *a = malloc(sizeof(float) * aCount), *b = malloc(sizeof(float) * bCount);
    float *expected = malloc(sizeof(float) * m * ldc), *got = malloc(sizeof(float) * m * ldc);
    for (long i = 0; i < aCount; i++) a[i] = uniform(-2, 2);
    for (long i = 0; i < bCount; i++) b[i] = uniform(-2, 2);
    for (long i = 0; i < m * ldc; i++) expected[i] = got[i] = uniform(-1, 1);
    float *split = malloc(sizeof(float) * m * ldc);
    memcpy(split, got, sizeof(float) * m * ldc);
    float *avx2 = malloc(sizeof(float) * m * ldc), *columns = malloc(sizeof(float) * m * ldc);
    memcpy(avx2, got, sizeof(float) * m * ldc);
    memcpy(columns, got, sizeof(float) * m * ldc);
    int ok = loom_bf16_gemm(LOOM_BF16_EMULATED_PORTABLE, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, expected, ldc) == 0
          && loom_bf16_gemm(LOOM_BF16_NATIVE, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, got, ldc) == 0
          && memcmp(expected, got, sizeof(float) * m * ldc) == 0
          // The AVX2 code too: it reads the native packers' pairs, taking each apart in its tiles.
          && loom_bf16_gemm(LOOM_BF16_EMULATED_AVX2, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, avx2, ldc) == 0
          && memcmp(expected, avx2, sizeof(float) * m * ldc) == 0;
    free(avx2);
    // B packed once, C computed in two row blocks (as a product split over threads is).
    const void *packed = loom_bf16_pack_b(LOOM_BF16_NATIVE, transB, n, k, b, ldb);
    long half = m / 2;
    ok = ok && packed
         && loom_bf16_gemm_packed(LOOM_BF16_NATIVE, transA, half, n, k, alpha, a, lda, packed, beta, split, ldc) == 0
         && loom_bf16_gemm_packed(LOOM_BF16_NATIVE, transA, m - half, n, k, alpha, transA ? a + half : a + half * lda, lda,
                                  packed, beta, split + half * ldc, ldc) == 0
         && memcmp(expected, split, sizeof(float) * m * ldc) == 0;
    free(split);
    // B packed once into memory kept by the caller, C computed in two column blocks split at a
    // panel boundary (a product of a few rows split over threads, its weights packed once).
    long width = loom_bf16_panel_width(LOOM_BF16_NATIVE), column = (n / 2) / width * width;
    void *kept = aligned_alloc(64, (loom_bf16_packed_b_size(LOOM_BF16_NATIVE, n, k) + 63) / 64 * 64);
    ok = ok && kept;
    if (kept) {
        loom_bf16_pack_b_into(LOOM_BF16_NATIVE, transB, n, k, b, ldb, kept);
        ok = ok && loom_bf16_gemm_packed(LOOM_BF16_NATIVE, transA, m, column, k, alpha, a, lda, kept, beta, columns, ldc) == 0
             && loom_bf16_gemm_packed(LOOM_BF16_NATIVE, transA, m, n - column, k, alpha, a, lda,
                                      loom_bf16_packed_b_columns(LOOM_BF16_NATIVE, kept, k, column), beta, columns + column, ldc) == 0
             && memcmp(expected, columns, sizeof(float) * m * ldc) == 0;
    }
    free(kept);
    free(columns);
    if (ok) passed++;
    else {
        failed++;
        fprintf(stderr, "FAIL bf16: m %ld n %ld k %ld transA %d transB %d alpha %g beta %g\n", m, n, k, transA, transB, alpha, beta);
    }
    free(a); free(b); free(expected); free(got);
}

int main(void) {
    const long ks[4] = {8, 13, 64, 77};
    for (long m = 1; m <= 19; m++)
        for (int ki = 0; ki < 4; ki++) {
            check_row_invariant(m, 11, ks[ki], 0, 11, (int)(m % 2), 0);
            check_row_invariant(m, 10, ks[ki], 2, 9, 0, (int)(m % 3 == 0));
        }
    const int types[3] = {LOOM_QUANT_Q8_0, LOOM_QUANT_Q4_0, LOOM_QUANT_Q4_1};
    const int rowCounts[5] = {4, 7, 12, 37, 64};
    for (int t = 0; t < 3; t++)
        for (int rc = 0; rc < 5; rc++)
            for (int xRows = 1; xRows <= 9; xRows++) {
                const int rows = rowCounts[rc], blocks = 1 + (rc + xRows) % 6;
                check_quantized(types[t], rows, blocks, xRows, 0, rows, xRows % 2);
                // A thread's share that starts and ends inside groups.
                if (rows > 6) check_quantized(types[t], rows, blocks, xRows, 1, rows - 2, 0);
            }
    // Row tiles of 8, 4, 2 and 1; panels of 48 columns and a partial one; odd k (a half pair);
    // packing's 8×8 blocks with edges on both sides, and more than 256 rows of op(A) (one block of them).
    const long bf16Shapes[11][3] = {{1, 1, 1}, {8, 48, 2}, {15, 49, 7}, {3, 100, 33}, {21, 17, 64}, {9, 96, 1}, {2, 5, 0},
                                    {13, 150, 40}, {70, 53, 35}, {19, 60, 37}, {300, 20, 18}};
    for (int s = 0; s < 11; s++)
        for (int t = 0; t < 4; t++)
            check_bf16(bf16Shapes[s][0], bf16Shapes[s][1], bf16Shapes[s][2], t & 1, t >> 1, t == 3 ? -0.5f : 1.0f, t % 2 ? 1.0f : 0.0f);
    long mismatches = emulated_bf16_rounding_mismatches();
    if (mismatches == 0) passed++;
    else {
        failed++;
        fprintf(stderr, "FAIL bf16 vector rounding: %ld of 2^32 float bit patterns differ from loom_bf16_from_float\n", mismatches);
    }
    printf("avx512 emulated: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
