// Dot products of quantized weight rows (llama.cpp's Q8_0, Q4_0, Q4_1 blocks) with activation
// rows quantized to 8 bits per block of 32. Every output is built from exact integer lane
// sums, one fused multiply-add per lane per block and a fixed summation tree, so that the
// AVX2 and the portable versions agree bit for bit, and a row's result does not depend on
// how many rows are multiplied with it (the server batches requests' rows together).
//
// Built with -ffp-contract=off: the compiler must not fuse any other multiply and add, or
// the two versions would round differently.
#include "CLoomQuant.h"
#include <math.h>
#include <string.h>

enum { ACTIVATION_BLOCK = 32 };

float loom_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
    uint32_t bits;
    if (exponent == 0x1f) {
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else if (exponent != 0) {
        bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {
        bits = sign;
    } else {
        // Subnormal half: normalise the mantissa.
        int shift = 0;
        while ((mantissa & 0x400) == 0) { mantissa <<= 1; shift++; }
        mantissa &= 0x3ff;
        bits = sign | ((uint32_t)(113 - shift) << 23) | (mantissa << 13);
    }
    float result;
    memcpy(&result, &bits, 4);
    return result;
}

static inline uint16_t load_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static inline size_t block_bytes(int type) {
    switch (type) {
    case LOOM_QUANT_Q8_0: return 34;
    case LOOM_QUANT_Q4_0: return 18;
    default: return 20;
    }
}

// MARK: - Portable versions (the reference the AVX2 versions must equal)

void loom_quantize_activations_scalar(const float *x, LoomActivationBlock *out, int blocks) {
    for (int b = 0; b < blocks; b++) {
        const float *v = x + b * ACTIVATION_BLOCK;
        float largest = 0;
        for (int i = 0; i < ACTIVATION_BLOCK; i++) largest = fmaxf(largest, fabsf(v[i]));
        float d = largest / 127.0f, inverse = d != 0 ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int i = 0; i < ACTIVATION_BLOCK; i++) {
            int q = (int)nearbyintf(v[i] * inverse);
            out[b].q[i] = (int8_t)q;
            sum += q;
        }
        out[b].d = d;
        out[b].sum = d * (float)sum;
    }
}

void loom_quant_block_lanes_scalar(int type, const uint8_t *block, const int8_t *q, int32_t lanes[8]) {
    int values[32];
    switch (type) {
    case LOOM_QUANT_Q8_0:
        for (int j = 0; j < 32; j++) values[j] = (int8_t)block[2 + j];
        break;
    case LOOM_QUANT_Q4_0:
        for (int j = 0; j < 16; j++) {
            values[j] = (block[2 + j] & 15) - 8;
            values[j + 16] = (block[2 + j] >> 4) - 8;
        }
        break;
    default:
        for (int j = 0; j < 16; j++) {
            values[j] = block[4 + j] & 15;
            values[j + 16] = block[4 + j] >> 4;
        }
    }
    for (int i = 0; i < 8; i++) {
        int32_t s = 0;
        for (int j = 4 * i; j < 4 * i + 4; j++) s += values[j] * q[j];
        lanes[i] = s;
    }
}

/// The fixed summation tree of 8 lanes: (a0+a4 + a2+a6) + (a1+a5 + a3+a7).
static inline float sum_lanes(const float a[8]) {
    float t0 = a[0] + a[4], t1 = a[1] + a[5], t2 = a[2] + a[6], t3 = a[3] + a[7];
    return (t0 + t2) + (t1 + t3);
}

static float dot_scalar(int type, const uint8_t *row, int blocks, const LoomActivationBlock *x) {
    float acc[8] = {0}, minimumTerm = 0;
    size_t bytes = block_bytes(type);
    for (int b = 0; b < blocks; b++) {
        const uint8_t *block = row + b * bytes;
        int32_t lanes[8];
        loom_quant_block_lanes_scalar(type, block, x[b].q, lanes);
        float scale = loom_half_to_float(load_u16(block)) * x[b].d;
        for (int i = 0; i < 8; i++) acc[i] = fmaf(scale, (float)lanes[i], acc[i]);
        if (type == LOOM_QUANT_Q4_1) minimumTerm = fmaf(loom_half_to_float(load_u16(block + 2)), x[b].sum, minimumTerm);
    }
    float total = sum_lanes(acc);
    return type == LOOM_QUANT_Q4_1 ? total + minimumTerm : total;
}

void loom_quant_matmul_scalar(int type, const uint8_t *w, size_t rowBytes, int blocksPerRow, int rowBegin, int rowEnd,
                              const LoomActivationBlock *x, int xRows, float *y, size_t ldy, int accumulate) {
    for (int o = rowBegin; o < rowEnd; o++) {
        for (int r = 0; r < xRows; r++) {
            float value = dot_scalar(type, w + (size_t)o * rowBytes, blocksPerRow, x + (size_t)r * blocksPerRow);
            float *out = y + (size_t)r * ldy + o;
            *out = accumulate ? *out + value : value;
        }
    }
}

// MARK: - AVX2

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma,f16c")))

AVX2 void loom_quantize_activations_avx2(const float *x, LoomActivationBlock *out, int blocks) {
    const __m256 signBit = _mm256_set1_ps(-0.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int b = 0; b < blocks; b++) {
        const float *v = x + b * ACTIVATION_BLOCK;
        __m256 v0 = _mm256_loadu_ps(v), v1 = _mm256_loadu_ps(v + 8), v2 = _mm256_loadu_ps(v + 16), v3 = _mm256_loadu_ps(v + 24);
        __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(signBit, v0), _mm256_andnot_ps(signBit, v1)),
                                 _mm256_max_ps(_mm256_andnot_ps(signBit, v2), _mm256_andnot_ps(signBit, v3)));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        float largest = _mm_cvtss_f32(m4);
        float d = largest / 127.0f, inverse = d != 0 ? 1.0f / d : 0.0f;
        const __m256 scale = _mm256_set1_ps(inverse);
        __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        __m256i sums = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sums), _mm256_extracti128_si256(sums, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
        int sum = _mm_cvtsi128_si32(s4);
        // packs interleave 128-bit halves; the permutation puts the 32 bytes back in order.
        __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
        packed = _mm256_permutevar8x32_epi32(packed, order);
        _mm256_storeu_si256((__m256i *)out[b].q, packed);
        out[b].d = d;
        out[b].sum = d * (float)sum;
    }
}

/// The 32 weights of a block as bytes: signed for Q8_0 and Q4_0, unsigned nibbles for Q4_1.
static inline __attribute__((always_inline)) AVX2 __m256i load_weights(int type, const uint8_t *block) {
    if (type == LOOM_QUANT_Q8_0) return _mm256_loadu_si256((const __m256i *)(block + 2));
    const __m128i mask = _mm_set1_epi8(15);
    __m128i packed = _mm_loadu_si128((const __m128i *)(block + (type == LOOM_QUANT_Q4_0 ? 2 : 4)));
    __m128i low = _mm_and_si128(packed, mask), high = _mm_and_si128(_mm_srli_epi16(packed, 4), mask);
    __m256i values = _mm256_set_m128i(high, low);
    if (type == LOOM_QUANT_Q4_0) values = _mm256_sub_epi8(values, _mm256_set1_epi8(8));
    return values;
}

/// Eight int32 lanes, lane i = Σ w·q over elements 4i … 4i+3 (exact: no pair of products
/// exceeds the int16 range, as |q| ≤ 127).
static inline __attribute__((always_inline)) AVX2 __m256i block_lanes(int type, __m256i weights, __m256i q) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i pairs;
    if (type == LOOM_QUANT_Q4_1) {
        pairs = _mm256_maddubs_epi16(weights, q);
    } else {
        pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(weights, weights), _mm256_sign_epi8(q, weights));
    }
    return _mm256_madd_epi16(pairs, ones);
}

static inline __attribute__((always_inline)) AVX2 float sum_lanes_avx2(__m256 a) {
    __m128 t = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));   // t_i = a_i + a_{i+4}
    __m128 u = _mm_add_ps(t, _mm_movehl_ps(t, t));                                      // u0 = t0+t2, u1 = t1+t3
    return _mm_cvtss_f32(_mm_add_ss(u, _mm_movehdup_ps(u)));                            // u0 + u1
}

/// `wrows` weight rows (1, 2 or 4) against `xrows` activation rows (1 … 4, at most 8 pairs):
/// each weight block is unpacked once for all activation rows, each activation block loaded once
/// for all weight rows, and the independent accumulators hide the latency of the fused
/// multiply-adds. Every output's own arithmetic is the same as if it were computed alone.
static inline __attribute__((always_inline)) AVX2 void dot_tile(int type, const uint8_t *w, size_t rowBytes, int wrows, int blocks,
                                                                 const LoomActivationBlock *x, int xrows, float out[4][4]) {
    __m256 acc[4][4];
    float minimumTerm[4][4];
    for (int i = 0; i < wrows; i++)
        for (int r = 0; r < xrows; r++) { acc[i][r] = _mm256_setzero_ps(); minimumTerm[i][r] = 0; }
    const size_t bytes = block_bytes(type);
    for (int b = 0; b < blocks; b++) {
        __m256i weights[4];
        float dw[4], mw[4];
        for (int i = 0; i < wrows; i++) {
            const uint8_t *block = w + (size_t)i * rowBytes + b * bytes;
            dw[i] = _cvtsh_ss(load_u16(block));
            mw[i] = type == LOOM_QUANT_Q4_1 ? _cvtsh_ss(load_u16(block + 2)) : 0;
            weights[i] = load_weights(type, block);
        }
        for (int r = 0; r < xrows; r++) {
            const LoomActivationBlock *xb = x + (size_t)r * blocks + b;
            __m256i q = _mm256_loadu_si256((const __m256i *)xb->q);
            for (int i = 0; i < wrows; i++) {
                __m256i lanes = block_lanes(type, weights[i], q);
                float scale = dw[i] * xb->d;
                acc[i][r] = _mm256_fmadd_ps(_mm256_set1_ps(scale), _mm256_cvtepi32_ps(lanes), acc[i][r]);
                if (type == LOOM_QUANT_Q4_1) minimumTerm[i][r] = fmaf(mw[i], xb->sum, minimumTerm[i][r]);
            }
        }
    }
    for (int i = 0; i < wrows; i++) {
        for (int r = 0; r < xrows; r++) {
            float total = sum_lanes_avx2(acc[i][r]);
            out[i][r] = type == LOOM_QUANT_Q4_1 ? total + minimumTerm[i][r] : total;
        }
    }
}

static inline __attribute__((always_inline)) AVX2 void matmul_typed(int type, const uint8_t *w, size_t rowBytes, int blocks,
                                                                      int rowBegin, int rowEnd, const LoomActivationBlock *x,
                                                                      int xRows, float *y, size_t ldy, int accumulate) {
    // Decoding (one activation row): 4 weight rows at a time; otherwise 2 × up to 4.
    const int wideRows = xRows == 1 ? 4 : 2;
    for (int o = rowBegin; o < rowEnd;) {
        int wrows = rowEnd - o >= wideRows ? wideRows : 1;
        const uint8_t *rows = w + (size_t)o * rowBytes;
        for (int r0 = 0; r0 < xRows; r0 += 4) {
            int xrows = xRows - r0 < 4 ? xRows - r0 : 4;
            float values[4][4];
            const LoomActivationBlock *xr = x + (size_t)r0 * blocks;
            // Constant tile sizes let the compiler keep the accumulators in registers.
            if (wrows == 4) {
                dot_tile(type, rows, rowBytes, 4, blocks, xr, 1, values);
            } else if (wrows == 2) {
                switch (xrows) {
                case 4: dot_tile(type, rows, rowBytes, 2, blocks, xr, 4, values); break;
                case 3: dot_tile(type, rows, rowBytes, 2, blocks, xr, 3, values); break;
                case 2: dot_tile(type, rows, rowBytes, 2, blocks, xr, 2, values); break;
                default: dot_tile(type, rows, rowBytes, 2, blocks, xr, 1, values); break;
                }
            } else {
                switch (xrows) {
                case 4: dot_tile(type, rows, rowBytes, 1, blocks, xr, 4, values); break;
                case 3: dot_tile(type, rows, rowBytes, 1, blocks, xr, 3, values); break;
                case 2: dot_tile(type, rows, rowBytes, 1, blocks, xr, 2, values); break;
                default: dot_tile(type, rows, rowBytes, 1, blocks, xr, 1, values); break;
                }
            }
            for (int i = 0; i < wrows; i++) {
                for (int r = 0; r < xrows; r++) {
                    float *out = y + (size_t)(r0 + r) * ldy + o + i;
                    *out = accumulate ? *out + values[i][r] : values[i][r];
                }
            }
        }
        o += wrows;
    }
}

AVX2 void loom_quant_matmul_avx2(int type, const uint8_t *w, size_t rowBytes, int blocksPerRow, int rowBegin, int rowEnd,
                                 const LoomActivationBlock *x, int xRows, float *y, size_t ldy, int accumulate) {
    switch (type) {
    case LOOM_QUANT_Q8_0: matmul_typed(LOOM_QUANT_Q8_0, w, rowBytes, blocksPerRow, rowBegin, rowEnd, x, xRows, y, ldy, accumulate); break;
    case LOOM_QUANT_Q4_0: matmul_typed(LOOM_QUANT_Q4_0, w, rowBytes, blocksPerRow, rowBegin, rowEnd, x, xRows, y, ldy, accumulate); break;
    default: matmul_typed(LOOM_QUANT_Q4_1, w, rowBytes, blocksPerRow, rowBegin, rowEnd, x, xRows, y, ldy, accumulate); break;
    }
}

#else

// Not x86-64: the portable versions stand in (CPUFeatures reports no AVX2, so these are not chosen).
void loom_quantize_activations_avx2(const float *x, LoomActivationBlock *out, int blocks) {
    loom_quantize_activations_scalar(x, out, blocks);
}
void loom_quant_matmul_avx2(int type, const uint8_t *w, size_t rowBytes, int blocksPerRow, int rowBegin, int rowEnd,
                            const LoomActivationBlock *x, int xRows, float *y, size_t ldy, int accumulate) {
    loom_quant_matmul_scalar(type, w, rowBytes, blocksPerRow, rowBegin, rowEnd, x, xRows, y, ldy, accumulate);
}

#endif
