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

/// The kernels' weight layout ("interleaved"): rows in groups of four; for each group and
/// block index b, one super-block holds the four rows' block b as
///   Q8_0: 4 half scales, then 4 × 32 signed bytes            (136 bytes = 4 × 34)
///   Q4_0: 4 half scales, then 4 × 16 bytes of nibbles        ( 72 bytes = 4 × 18)
///   Q4_1: 4 half scales, 4 half minimums, 4 × 16 nibble bytes ( 80 bytes = 4 × 20)
/// super-blocks in block order, groups in row order. The rows after the last whole group
/// (rows mod 4) follow in llama.cpp's plain row layout. The size equals the plain layout's.
///
/// Rearranges `rows` rows of `blocks` blocks each from the plain layout into the interleaved
/// one, in place; `scratch` holds 4 rows (4 · blocks · block bytes).
void loom_quant_interleave(int type, uint8_t *w, int rows, int blocks, uint8_t *scratch);

/// Block `block` of row `row` of an interleaved matrix, in the plain block layout (34, 18 or 20 bytes).
void loom_quant_copy_block(int type, const uint8_t *w, int rows, int blocks, int row, int block, uint8_t *out);

/// y[r·ldy + o] (+)= Σ_blocks  weight row o · activation row r, for output rows o in
/// [rowBegin, rowEnd) and activation rows r in [0, xRows). `w` holds `rows` rows of
/// `blocksPerRow` blocks of `type` in the interleaved layout; activation row r starts at
/// x + r·blocksPerRow. Ranges that start at a multiple of 4 run fastest.
///
/// Each output is accumulated in the same order whatever `xRows` or the range is, and the AVX2
/// version performs exactly the operations of the portable one (8 integer lanes per block, each
/// scaled into its own float lane with a fused multiply-add, the lanes summed in one fixed
/// tree), so results are equal bit for bit across batch sizes and between the two versions.
void loom_quant_matmul_avx2(int type, const uint8_t *w, int rows, int blocksPerRow, int rowBegin, int rowEnd,
                            const LoomActivationBlock *x, int xRows, float *y, size_t ldy, int accumulate);
/// The same with AVX-512 (F, BW, DQ, VL) and VNNI, two weight rows per 512-bit register: bit-equal
/// to the other two. Call only where the CPU has these (CPUFeatures).
void loom_quant_matmul_avx512vnni(int type, const uint8_t *w, int rows, int blocksPerRow, int rowBegin, int rowEnd,
                                  const LoomActivationBlock *x, int xRows, float *y, size_t ldy, int accumulate);
void loom_quant_matmul_scalar(int type, const uint8_t *w, int rows, int blocksPerRow, int rowBegin, int rowEnd,
                              const LoomActivationBlock *x, int xRows, float *y, size_t ldy, int accumulate);

/// The 8 integer lane sums of one weight block against one activation block (lane i covers
/// elements 4i … 4i+3): the exact integer part of the dot product, for tests.
void loom_quant_block_lanes_scalar(int type, const uint8_t *block, const int8_t *q, int32_t lanes[8]);

/// IEEE half precision to float (exact).
float loom_half_to_float(uint16_t h);

#endif
