#ifndef LOOM_BF16_H
#define LOOM_BF16_H

#include <stddef.h>
#include <stdint.h>

/// Matrix products with bfloat16 inputs and float32 accumulation, as PyTorch's CPU autocast
/// runs them: C = alpha · op(A) · op(B) + beta · C (row-major, op = transpose or not), where
/// every element of op(A) and op(B) is first rounded to bfloat16 (nearest, ties to even; a
/// result below bfloat16's smallest normal becomes a signed zero, as vdpbf16ps reads it).
///
/// Every element of C is one dot product accumulated in float32 in increasing k, one fused
/// multiply-add per k, starting from zero (a product of two bfloat16 values is exact in float32,
/// so each step rounds once); then c = alpha·acc when beta is 0, else fma(beta, c, alpha·acc).
/// The order does not depend on m, n, the tiling or the code below, so the three codes give the
/// same bits (the native one up to vdpbf16ps flushing a partial sum below 2⁻¹²⁶ to zero):
///
/// - LOOM_BF16_NATIVE: AVX512-BF16's vdpbf16ps on bfloat16 pairs. The instruction adds a pair's
///   odd element before its even one, so the pairs are packed with k in the odd (high) half and
///   k + 1 in the even half: the increasing-k order above.
/// - LOOM_BF16_EMULATED_AVX2: the native code's packed pairs, each taken apart into its two
///   rounded values as float32, with AVX2 fused multiply-adds (so it checks the native packers).
/// - LOOM_BF16_EMULATED_PORTABLE: the same in plain C.
enum { LOOM_BF16_EMULATED_PORTABLE = 0, LOOM_BF16_EMULATED_AVX2 = 1, LOOM_BF16_NATIVE = 2 };

/// Returns 0, or -1 when the packing buffers could not be allocated (C is then untouched).
/// Single-threaded; the packing buffers are per thread and kept for the next call.
int loom_bf16_gemm(int code, int transA, int transB, long m, long n, long k, float alpha,
                   const float *a, long lda, const float *b, long ldb, float beta, float *c, long ldc);

/// The same product in two steps, for a product split by rows over threads: op(B) (k×n) packed
/// once into the calling thread's buffer (NULL when it could not be allocated; valid until that
/// thread's next bf16 call), then any number of row blocks of C from it, on any threads, with the
/// same `code`. Each block equals the same rows of `loom_bf16_gemm`, bit for bit.
const void *loom_bf16_pack_b(int code, int transB, long n, long k, const float *b, long ldb);
int loom_bf16_gemm_packed(int code, int transA, long m, long n, long k, float alpha, const float *a, long lda,
                          const void *packedB, float beta, float *c, long ldc);

/// op(B) packed into memory the caller keeps (for weights used by many products, while they do
/// not change): `loom_bf16_packed_b_size` bytes, 64-byte aligned.
size_t loom_bf16_packed_b_size(int code, long n, long k);
void loom_bf16_pack_b_into(int code, int transB, long n, long k, const float *b, long ldb, void *packed);

/// Packed op(B) is a sequence of panels of `loom_bf16_panel_width(code)` columns: the columns
/// from `column` on (a multiple of that width) start at `loom_bf16_packed_b_columns`, so a
/// product split by columns of C at panel boundaries shares one packed B.
long loom_bf16_panel_width(int code);
const void *loom_bf16_packed_b_columns(int code, const void *packed, long k, long column);

/// x rounded to bfloat16 (nearest, ties to even; NaN stays NaN; below the smallest normal → ±0).
uint16_t loom_bf16_from_float(float x);
float loom_bf16_to_float(uint16_t h);

#endif
