// What packing costs the bf16 kernel: the time to pack op(A) and op(B) of a training product as
// the vdpbf16ps code does (bfloat16 pairs: pack_a_pairs, pack_b_pairs in
// Sources/CLoomCPU/bf16_gemm.c, which run on any CPU with AVX2), beside OpenBLAS's fp32 sgemm of
// the same product on one thread, in the same run. For bf16 to be faster than fp32 the packing
// must be a small part of that product's time. Built and run by Benchmarks/bf16_packing.sh.
#include <cblas.h>
#include <stdio.h>
#include <time.h>
#include "../Sources/CLoomCPU/bf16_gemm.c"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(void) {
    // Products of one training step of configs/small.json and configs/tiny.json (4,096 tokens a
    // step), and one decoding step of a PPO/GRPO rollout of 8 sequences.
    const struct { const char *name; long m, n, k; int transA, transB; } shapes[] = {
        {"small: MLP up, x.W^T", 4096, 1376, 512, 0, 1},
        {"small: MLP down dX, dY.W", 4096, 512, 1376, 0, 0},
        {"small: MLP down dW, dY^T.X", 1376, 512, 4096, 1, 0},
        {"small: LM head, x.E^T", 4096, 8192, 512, 0, 1},
        {"tiny: MLP up, x.W^T", 4096, 688, 256, 0, 1},
        {"tiny: MLP down dW, dY^T.X", 688, 256, 4096, 1, 0},
        {"rollout of 8: MLP up, x.W^T", 8, 1376, 512, 0, 1},
    };
    printf("%-30s %5s %5s %5s | %9s %7s | %9s %7s | %10s | %9s\n", "product", "m", "n", "k", "pack A ms", "ns/el",
           "pack B ms", "ns/el", "sgemm ms", "pack/sgemm");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        long m = shapes[s].m, n = shapes[s].n, k = shapes[s].k;
        int transA = shapes[s].transA, transB = shapes[s].transB;
        long lda = transA ? m : k, ldb = transB ? k : n;
        float *a = malloc(sizeof(float) * (size_t)(m * k)), *b = malloc(sizeof(float) * (size_t)(n * k));
        float *c = malloc(sizeof(float) * (size_t)(m * n));
        uint32_t *ap = aligned_alloc(64, sizeof(uint32_t) * (size_t)(m * ((k + 1) / 2)) + 64);
        uint32_t *bp = aligned_alloc(64, loom_bf16_packed_b_size(LOOM_BF16_NATIVE, n, k) + 64);
        if (!a || !b || !c || !ap || !bp) { fprintf(stderr, "bf16_packing: out of memory\n"); return 1; }
        for (long i = 0; i < m * k; i++) a[i] = (float)((i * 7919) % 1000) * 0.001f - 0.5f;
        for (long i = 0; i < n * k; i++) b[i] = (float)((i * 104729) % 1000) * 0.001f - 0.5f;
        double packA = 1e9, packB = 1e9, product = 1e9;  // best of 5 each
        for (int r = 0; r < 5; r++) {
            double t0 = now();
            pack_a_pairs(ap, a, lda, transA, m, k);
            double t1 = now();
            pack_b_pairs(bp, b, ldb, transB, n, k);
            double t2 = now();
            cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                        (int)m, (int)n, (int)k, 1.0f, a, (int)lda, b, (int)ldb, 0.0f, c, (int)n);
            double t3 = now();
            if (t1 - t0 < packA) packA = t1 - t0;
            if (t2 - t1 < packB) packB = t2 - t1;
            if (t3 - t2 < product) product = t3 - t2;
        }
        printf("%-30s %5ld %5ld %5ld | %9.3f %7.2f | %9.3f %7.2f | %10.3f | %8.1f%%\n", shapes[s].name, m, n, k,
               packA * 1e3, packA * 1e9 / (double)(m * k), packB * 1e3, packB * 1e9 / (double)(n * k), product * 1e3,
               100 * (packA + packB) / product);
        free(a); free(b); free(c); free(ap); free(bp);
    }
    return 0;
}
