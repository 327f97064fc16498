#ifndef LOOM_QUANT_H
#define LOOM_QUANT_H
#include <stddef.h>
#include <stdint.h>

/// Weight block formats (llama.cpp's layouts, 32 elements per block; the codes are ggml's).
enum {
    LOOM_QUANT_Q4_0 = 2,   ///< 18 bytes: half d, 16 bytes of nibbles; value d·(q − 8)
    LOOM_QUANT_Q4_1 = 3,   ///< 20 bytes: half d, half m, 16 bytes of nibbles; value d·q + m
    LOOM_QUANT_Q8_0 = 8,   ///< 34 bytes: half d, 32 signed bytes; value d·q
};

/// 32 activations quantized to 8 bits: x ≈ d·q, with `sum` = d·Σq (the term a Q4_1 block's
/// minimum multiplies). Like llama.cpp's q8_1 activations, but with float scales.
typedef struct {
    float d;
    float sum;
    int8_t q[32];
} LoomActivationBlock;

/// Quantizes `blocks` blocks of 32 floats. The AVX2 and the portable version give the same bits.
void loom_quantize_activations_avx2(const float *x, LoomActivationBlock *out, int blocks);
void loom_quantize_activations_scalar(const float *x, LoomActivationBlock *out, int blocks);

/// y[r·ldy + o] (+)= Σ_blocks  weight row o · activation row r, for output rows o in
/// [rowBegin, rowEnd) and activation rows r in [0, xRows). Weight row o starts at
/// w + o·rowBytes and holds `blocksPerRow` blocks of `type`; activation row r starts at
/// x + r·blocksPerRow.
///
/// Each output is accumulated in the same order whatever `xRows` is, and the AVX2 version
/// performs exactly the operations of the portable one (8 integer lanes per block, each
/// scaled into its own float lane with a fused multiply-add, the lanes summed in one fixed
/// tree), so results are equal bit for bit across batch sizes and between the two versions.
void loom_quant_matmul_avx2(int type, const uint8_t *w, size_t rowBytes, int blocksPerRow, int rowBegin, int rowEnd,
                            const LoomActivationBlock *x, int xRows, float *y, size_t ldy, int accumulate);
void loom_quant_matmul_scalar(int type, const uint8_t *w, size_t rowBytes, int blocksPerRow, int rowBegin, int rowEnd,
                              const LoomActivationBlock *x, int xRows, float *y, size_t ldy, int accumulate);

/// The 8 integer lane sums of one weight block against one activation block (lane i covers
/// elements 4i … 4i+3): the exact integer part of the dot product, for tests.
void loom_quant_block_lanes_scalar(int type, const uint8_t *block, const int8_t *q, int32_t lanes[8]);

/// IEEE half precision to float (exact).
float loom_half_to_float(uint16_t h);

#endif
