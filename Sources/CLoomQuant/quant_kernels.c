// Dot products of quantized weight rows (llama.cpp's Q8_0, Q4_0, Q4_1 blocks) with activation
// rows quantized to 8 bits per block of 32. Every output is built from exact integer lane
// sums, one fused multiply-add per lane per block and a fixed summation tree, so that the
// AVX2 and the portable versions agree bit for bit, and a row's result does not depend on
// how many rows are multiplied with it (the server batches requests' rows together).
//
// Weights are kept in an interleaved layout (see CLoomQuant.h): four rows' blocks side by side,
// their scales together, so that the kernel reads one sequential stream and converts four
// scales with one instruction; measured on a matrix larger than the caches (AMD EPYC, AVX2),
// about 2x the throughput of reading the four rows as four separate streams.
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

// MARK: - The interleaved layout

enum { GROUP_ROWS = 4 };

/// Bytes before the quantized values in a group's super-block: four scales, and for Q4_1 four minimums.
static inline size_t group_header_bytes(int type) { return type == LOOM_QUANT_Q4_1 ? 16 : 8; }
/// Bytes of one block's quantized values.
static inline size_t value_bytes(int type) { return type == LOOM_QUANT_Q8_0 ? 32 : 16; }

/// Where the fields of one weight row's blocks are: block b's scale at d + b·stride, its
/// minimum (Q4_1) at m + b·stride, its values at q + b·stride.
typedef struct {
    const uint8_t *d, *m, *q;
    size_t stride;
} RowView;

static inline RowView row_view(int type, const uint8_t *w, int rows, int blocks, int row) {
    const size_t bytes = block_bytes(type), rowBytes = bytes * (size_t)blocks;
    const int grouped = rows / GROUP_ROWS * GROUP_ROWS;
    RowView v;
    if (row < grouped) {
        const uint8_t *group = w + (size_t)(row / GROUP_ROWS) * GROUP_ROWS * rowBytes;
        const int i = row % GROUP_ROWS;
        v.d = group + 2 * i;
        v.m = group + 8 + 2 * i;
        v.q = group + group_header_bytes(type) + value_bytes(type) * i;
        v.stride = GROUP_ROWS * bytes;
    } else {
        const uint8_t *start = w + (size_t)row * rowBytes;   // the rows after the last whole group stay as they are
        v.d = start;
        v.m = start + 2;
        v.q = start + (type == LOOM_QUANT_Q4_1 ? 4 : 2);
        v.stride = bytes;
    }
    return v;
}

void loom_quant_interleave(int type, uint8_t *w, int rows, int blocks, uint8_t *scratch) {
    const size_t bytes = block_bytes(type), rowBytes = bytes * (size_t)blocks, header = group_header_bytes(type), values = value_bytes(type);
    const size_t valueOffset = type == LOOM_QUANT_Q4_1 ? 4 : 2;
    for (int g = 0; g < rows / GROUP_ROWS; g++) {
        uint8_t *group = w + (size_t)g * GROUP_ROWS * rowBytes;
        memcpy(scratch, group, GROUP_ROWS * rowBytes);
        for (int b = 0; b < blocks; b++) {
            uint8_t *super = group + (size_t)b * GROUP_ROWS * bytes;
            for (int i = 0; i < GROUP_ROWS; i++) {
                const uint8_t *block = scratch + (size_t)i * rowBytes + (size_t)b * bytes;
                memcpy(super + 2 * i, block, 2);
                if (type == LOOM_QUANT_Q4_1) memcpy(super + 8 + 2 * i, block + 2, 2);
                memcpy(super + header + values * i, block + valueOffset, values);
            }
        }
    }
}

void loom_quant_copy_block(int type, const uint8_t *w, int rows, int blocks, int row, int block, uint8_t *out) {
    RowView v = row_view(type, w, rows, blocks, row);
    const size_t at = (size_t)block * v.stride;
    memcpy(out, v.d + at, 2);
    if (type == LOOM_QUANT_Q4_1) memcpy(out + 2, v.m + at, 2);
    memcpy(out + (type == LOOM_QUANT_Q4_1 ? 4 : 2), v.q + at, value_bytes(type));
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

/// The lanes from a block's quantized values alone (`v`: 32 bytes for Q8_0, 16 of nibbles otherwise).
static void value_lanes(int type, const uint8_t *v, const int8_t *q, int32_t lanes[8]) {
    int values[32];
    switch (type) {
    case LOOM_QUANT_Q8_0:
        for (int j = 0; j < 32; j++) values[j] = (int8_t)v[j];
        break;
    case LOOM_QUANT_Q4_0:
        for (int j = 0; j < 16; j++) {
            values[j] = (v[j] & 15) - 8;
            values[j + 16] = (v[j] >> 4) - 8;
        }
        break;
    default:
        for (int j = 0; j < 16; j++) {
            values[j] = v[j] & 15;
            values[j + 16] = v[j] >> 4;
        }
    }
    for (int i = 0; i < 8; i++) {
        int32_t s = 0;
        for (int j = 4 * i; j < 4 * i + 4; j++) s += values[j] * q[j];
        lanes[i] = s;
    }
}

void loom_quant_block_lanes_scalar(int type, const uint8_t *block, const int8_t *q, int32_t lanes[8]) {
    value_lanes(type, block + (type == LOOM_QUANT_Q4_1 ? 4 : 2), q, lanes);
}

/// The fixed summation tree of 8 lanes: (a0+a4 + a2+a6) + (a1+a5 + a3+a7).
static inline float sum_lanes(const float a[8]) {
    float t0 = a[0] + a[4], t1 = a[1] + a[5], t2 = a[2] + a[6], t3 = a[3] + a[7];
    return (t0 + t2) + (t1 + t3);
}

static float dot_scalar(int type, RowView row, int blocks, const LoomActivationBlock *x) {
    float acc[8] = {0}, minimumTerm = 0;
    for (int b = 0; b < blocks; b++) {
        const size_t at = (size_t)b * row.stride;
        int32_t lanes[8];
        value_lanes(type, row.q + at, x[b].q, lanes);
        float scale = loom_half_to_float(load_u16(row.d + at)) * x[b].d;
        for (int i = 0; i < 8; i++) acc[i] = fmaf(scale, (float)lanes[i], acc[i]);
        if (type == LOOM_QUANT_Q4_1) minimumTerm = fmaf(loom_half_to_float(load_u16(row.m + at)), x[b].sum, minimumTerm);
    }
    float total = sum_lanes(acc);
    return type == LOOM_QUANT_Q4_1 ? total + minimumTerm : total;
}

void loom_quant_matmul_scalar(int type, const uint8_t *w, int rows, int blocksPerRow, int rowBegin, int rowEnd,
                              const LoomActivationBlock *x, int xRows, float *y, size_t ldy, int accumulate) {
    for (int o = rowBegin; o < rowEnd; o++) {
        RowView row = row_view(type, w, rows, blocksPerRow, o);
        for (int r = 0; r < xRows; r++) {
            float value = dot_scalar(type, row, blocksPerRow, x + (size_t)r * blocksPerRow);
            float *out = y + (size_t)r * ldy + o;
            *out = accumulate ? *out + value : value;
        }
    }
}

// MARK: - AVX2

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma,f16c")))
/// How far ahead (bytes) of the block being multiplied the weight stream is fetched. Every
/// cache line of it is prefetched: a super-block spans two or three lines, and fetching only
/// one of them left the kernel waiting on memory. Measured on AMD EPYC (Zen 3, one core, 90
/// Q8_0 matrices 1536 x 576, 85 MB, 2.6x the L3; best of 5 in 3 alternating runs): one line
/// per super-block 512 ahead 4.9-6.5 GB/s; every line 512 ahead 7.7-9.1, 1024 ahead 7.6-8.3,
/// 2048 ahead 8.8-9.6 GB/s (a plain streaming read: 9.5 GB/s).
enum { PREFETCH_DISTANCE = 2048 };

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

/// Fetches every cache line of the super-block PREFETCH_DISTANCE bytes after `s` (a super-block
/// spans two lines, or three for Q8_0's 136 bytes).
static inline __attribute__((always_inline)) void prefetch_super_block(const uint8_t *s, size_t super) {
    _mm_prefetch((const char *)(s + PREFETCH_DISTANCE), _MM_HINT_T0);
    _mm_prefetch((const char *)(s + PREFETCH_DISTANCE + 64), _MM_HINT_T0);
    if (super > 128) _mm_prefetch((const char *)(s + PREFETCH_DISTANCE + 128), _MM_HINT_T0);
}

/// The 32 weights of a block, from its quantized values, as bytes: signed for Q8_0 and Q4_0,
/// unsigned nibbles for Q4_1.
static inline __attribute__((always_inline)) AVX2 __m256i load_weights(int type, const uint8_t *v) {
    if (type == LOOM_QUANT_Q8_0) return _mm256_loadu_si256((const __m256i *)v);
    const __m128i mask = _mm_set1_epi8(15);
    __m128i packed = _mm_loadu_si128((const __m128i *)v);
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

/// Lane `i` of `v` in all eight lanes.
static inline __attribute__((always_inline)) AVX2 __m256 broadcast_lane(__m128 v, int i) {
    return _mm256_broadcastss_ps(_mm_permutevar_ps(v, _mm_set1_epi32(i)));
}

/// The four rows of one interleaved group against `xrows` (1 or 2) activation rows. Each
/// super-block (four rows' block b) is read once, front to back; its four scales (and Q4_1
/// minimums) are converted with one instruction. Every output's arithmetic is that of
/// dot_scalar: scale = d·x.d rounded, one fused multiply-add per lane and block, the minimum
/// term fused per block, the lanes summed in the fixed tree.
static inline __attribute__((always_inline)) AVX2 void group_tile(int type, const uint8_t *group, int blocks,
                                                                   const LoomActivationBlock *x, int xrows, float out[4][2]) {
    const size_t super = GROUP_ROWS * block_bytes(type), header = group_header_bytes(type), values = value_bytes(type);
    __m256 acc[4][2];
    __m128 minimumTerm[2];
    for (int r = 0; r < xrows; r++) {
        minimumTerm[r] = _mm_setzero_ps();
        for (int i = 0; i < 4; i++) acc[i][r] = _mm256_setzero_ps();
    }
    for (int b = 0; b < blocks; b++) {
        const uint8_t *s = group + (size_t)b * super;
        prefetch_super_block(s, super);
        const __m128 d = _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)s));
        __m128 scale[2];
        __m256i q[2];
        for (int r = 0; r < xrows; r++) {
            const LoomActivationBlock *xb = x + (size_t)r * blocks + b;
            scale[r] = _mm_mul_ps(d, _mm_set1_ps(xb->d));
            q[r] = _mm256_loadu_si256((const __m256i *)xb->q);
            if (type == LOOM_QUANT_Q4_1)
                minimumTerm[r] = _mm_fmadd_ps(_mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(s + 8))), _mm_set1_ps(xb->sum), minimumTerm[r]);
        }
        for (int i = 0; i < 4; i++) {
            __m256i weights = load_weights(type, s + header + values * i);
            for (int r = 0; r < xrows; r++) {
                __m256i lanes = block_lanes(type, weights, q[r]);
                acc[i][r] = _mm256_fmadd_ps(broadcast_lane(scale[r], i), _mm256_cvtepi32_ps(lanes), acc[i][r]);
            }
        }
    }
    for (int r = 0; r < xrows; r++) {
        float minimums[4];
        _mm_storeu_ps(minimums, minimumTerm[r]);
        for (int i = 0; i < 4; i++) {
            float total = sum_lanes_avx2(acc[i][r]);
            out[i][r] = type == LOOM_QUANT_Q4_1 ? total + minimums[i] : total;
        }
    }
}

/// One weight row (any position: inside a group or after the last one) against `xrows`
/// (1 … 4) activation rows, with the same arithmetic.
static inline __attribute__((always_inline)) AVX2 void row_tile(int type, RowView row, int blocks,
                                                                 const LoomActivationBlock *x, int xrows, float out[4]) {
    __m256 acc[4];
    float minimumTerm[4];
    for (int r = 0; r < xrows; r++) { acc[r] = _mm256_setzero_ps(); minimumTerm[r] = 0; }
    for (int b = 0; b < blocks; b++) {
        const size_t at = (size_t)b * row.stride;
        _mm_prefetch((const char *)(row.q + at + PREFETCH_DISTANCE), _MM_HINT_T0);
        const float dw = _cvtsh_ss(load_u16(row.d + at));
        const float mw = type == LOOM_QUANT_Q4_1 ? _cvtsh_ss(load_u16(row.m + at)) : 0;
        __m256i weights = load_weights(type, row.q + at);
        for (int r = 0; r < xrows; r++) {
            const LoomActivationBlock *xb = x + (size_t)r * blocks + b;
            __m256i lanes = block_lanes(type, weights, _mm256_loadu_si256((const __m256i *)xb->q));
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(dw * xb->d), _mm256_cvtepi32_ps(lanes), acc[r]);
            if (type == LOOM_QUANT_Q4_1) minimumTerm[r] = fmaf(mw, xb->sum, minimumTerm[r]);
        }
    }
    for (int r = 0; r < xrows; r++) {
        float total = sum_lanes_avx2(acc[r]);
        out[r] = type == LOOM_QUANT_Q4_1 ? total + minimumTerm[r] : total;
    }
}

static inline __attribute__((always_inline)) void store_output(float *y, size_t ldy, int r, int o, float value, int accumulate) {
    float *out = y + (size_t)r * ldy + o;
    *out = accumulate ? *out + value : value;
}

static inline __attribute__((always_inline)) AVX2 void matmul_typed(int type, const uint8_t *w, int rows, int blocks,
                                                                      int rowBegin, int rowEnd, const LoomActivationBlock *x,
                                                                      int xRows, float *y, size_t ldy, int accumulate) {
    const size_t groupBytes = GROUP_ROWS * block_bytes(type) * (size_t)blocks;
    const int grouped = rows / GROUP_ROWS * GROUP_ROWS;
    for (int o = rowBegin; o < rowEnd;) {
        if (o % GROUP_ROWS == 0 && o + GROUP_ROWS <= rowEnd && o + GROUP_ROWS <= grouped) {
            const uint8_t *group = w + (size_t)(o / GROUP_ROWS) * groupBytes;
            for (int r0 = 0; r0 < xRows; r0 += 2) {
                float values[4][2];
                const LoomActivationBlock *xr = x + (size_t)r0 * blocks;
                // Constant tile sizes let the compiler keep the accumulators in registers.
                int xrows = xRows - r0 >= 2 ? 2 : 1;
                if (xrows == 2) group_tile(type, group, blocks, xr, 2, values);
                else group_tile(type, group, blocks, xr, 1, values);
                for (int i = 0; i < 4; i++)
                    for (int r = 0; r < xrows; r++) store_output(y, ldy, r0 + r, o + i, values[i][r], accumulate);
            }
            o += GROUP_ROWS;
        } else {
            RowView row = row_view(type, w, rows, blocks, o);
            for (int r0 = 0; r0 < xRows; r0 += 4) {
                float values[4];
                const LoomActivationBlock *xr = x + (size_t)r0 * blocks;
                int xrows = xRows - r0 < 4 ? xRows - r0 : 4;
                switch (xrows) {
                case 4: row_tile(type, row, blocks, xr, 4, values); break;
                case 3: row_tile(type, row, blocks, xr, 3, values); break;
                case 2: row_tile(type, row, blocks, xr, 2, values); break;
                default: row_tile(type, row, blocks, xr, 1, values); break;
                }
                for (int r = 0; r < xrows; r++) store_output(y, ldy, r0 + r, o, values[r], accumulate);
            }
            o += 1;
        }
    }
}

AVX2 void loom_quant_matmul_avx2(int type, const uint8_t *w, int rows, int blocksPerRow, int rowBegin, int rowEnd,
                                 const LoomActivationBlock *x, int xRows, float *y, size_t ldy, int accumulate) {
    switch (type) {
    case LOOM_QUANT_Q8_0: matmul_typed(LOOM_QUANT_Q8_0, w, rows, blocksPerRow, rowBegin, rowEnd, x, xRows, y, ldy, accumulate); break;
    case LOOM_QUANT_Q4_0: matmul_typed(LOOM_QUANT_Q4_0, w, rows, blocksPerRow, rowBegin, rowEnd, x, xRows, y, ldy, accumulate); break;
    default: matmul_typed(LOOM_QUANT_Q4_1, w, rows, blocksPerRow, rowBegin, rowEnd, x, xRows, y, ldy, accumulate); break;
    }
}

// MARK: - AVX-512 with VNNI

// Sixteen int32 lanes hold two weight rows' eight lanes side by side (rows i and i+1 of a group,
// block b), so each row's lanes get exactly the operations of the AVX2 and portable versions:
// the integer lane sums (vpdpbusd adds four byte products into each lane exactly, as
// maddubs + madd do), one fused multiply-add per lane and block with the same rounded scale,
// and the same summation tree at the end. The results are therefore bit-equal to both.
//
// LOOM_EMULATE_AVX512 compiles these functions for AVX2 instead, for the test harness that
// runs them with SIMDe's portable implementations of the AVX-512 intrinsics on CPUs without
// AVX-512 (Tests/Emulated/check_avx512_kernels.c).
#ifdef LOOM_EMULATE_AVX512
#define AVX512VNNI AVX2
#else
#define AVX512VNNI __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")))
#endif

/// Rows p and p+1 of a group's super-block (values at `v`), 32 weights each, as bytes in one
/// register: row p's in the low 256 bits, row p+1's in the high, in the order of load_weights.
static inline __attribute__((always_inline)) AVX512VNNI __m512i load_weight_pair(int type, const uint8_t *v, int p) {
    if (type == LOOM_QUANT_Q8_0) return _mm512_loadu_si512((const void *)(v + 32 * p));
    // 128-bit lanes: row p's 16 bytes twice, then row p+1's twice; the second copy of each
    // is shifted to its high nibbles.
    __m256i packed = _mm256_loadu_si256((const __m256i *)(v + 16 * p));
    __m512i twice = _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 1, 0, 1, 2, 3, 2, 3), _mm512_castsi256_si512(packed));
    __m512i nibbles = _mm512_mask_blend_epi64(0xCC, twice, _mm512_srli_epi16(twice, 4));
    __m512i values = _mm512_and_si512(nibbles, _mm512_set1_epi8(15));
    if (type == LOOM_QUANT_Q4_0) values = _mm512_sub_epi8(values, _mm512_set1_epi8(8));
    return values;
}

/// The sixteen lanes (eight per row) of a weight pair against activations `q` (the block's
/// 32 bytes in both halves). Signed weights: |w| times q with w's sign, as in the AVX2 version.
static inline __attribute__((always_inline)) AVX512VNNI __m512i block_lanes_pair(int type, __m512i weights, __m512i q) {
    if (type == LOOM_QUANT_Q4_1) return _mm512_dpbusd_epi32(_mm512_setzero_si512(), weights, q);
    __m512i signedQ = _mm512_mask_sub_epi8(q, _mm512_movepi8_mask(weights), _mm512_setzero_si512(), q);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(weights), signedQ);
}

/// The four rows of one interleaved group against `xrows` (1 … 4) activation rows, the
/// arithmetic of group_tile (AVX2) with two rows per register.
static inline __attribute__((always_inline)) AVX512VNNI void group_tile_avx512(int type, const uint8_t *group, int blocks,
                                                                               const LoomActivationBlock *x, int xrows,
                                                                               float out[4][4]) {
    const size_t super = GROUP_ROWS * block_bytes(type), header = group_header_bytes(type);
    // Lanes 0-7 take a row's scale, lanes 8-15 the next row's.
    const __m512i firstPair = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const __m512i secondPair = _mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    __m512 acc[2][4];
    __m128 minimumTerm[4];
    for (int r = 0; r < xrows; r++) {
        minimumTerm[r] = _mm_setzero_ps();
        acc[0][r] = _mm512_setzero_ps();
        acc[1][r] = _mm512_setzero_ps();
    }
    for (int b = 0; b < blocks; b++) {
        const uint8_t *s = group + (size_t)b * super;
        prefetch_super_block(s, super);
        const __m128 d = _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)s));
        const __m512 wide = _mm512_castps128_ps512(d);
        const __m512 d01 = _mm512_permutexvar_ps(firstPair, wide), d23 = _mm512_permutexvar_ps(secondPair, wide);
        const __m512i w01 = load_weight_pair(type, s + header, 0), w23 = load_weight_pair(type, s + header, 2);
        for (int r = 0; r < xrows; r++) {
            const LoomActivationBlock *xb = x + (size_t)r * blocks + b;
            const __m512 xd = _mm512_set1_ps(xb->d);
            const __m512i q = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)xb->q));
            if (type == LOOM_QUANT_Q4_1)
                minimumTerm[r] = _mm_fmadd_ps(_mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(s + 8))), _mm_set1_ps(xb->sum), minimumTerm[r]);
            acc[0][r] = _mm512_fmadd_ps(_mm512_mul_ps(d01, xd), _mm512_cvtepi32_ps(block_lanes_pair(type, w01, q)), acc[0][r]);
            acc[1][r] = _mm512_fmadd_ps(_mm512_mul_ps(d23, xd), _mm512_cvtepi32_ps(block_lanes_pair(type, w23, q)), acc[1][r]);
        }
    }
    for (int r = 0; r < xrows; r++) {
        float minimums[4];
        _mm_storeu_ps(minimums, minimumTerm[r]);
        for (int p = 0; p < 2; p++) {
            const float first = sum_lanes_avx2(_mm512_castps512_ps256(acc[p][r]));
            const float second = sum_lanes_avx2(_mm512_extractf32x8_ps(acc[p][r], 1));
            out[2 * p][r] = type == LOOM_QUANT_Q4_1 ? first + minimums[2 * p] : first;
            out[2 * p + 1][r] = type == LOOM_QUANT_Q4_1 ? second + minimums[2 * p + 1] : second;
        }
    }
}

static inline __attribute__((always_inline)) AVX512VNNI void matmul_typed_avx512(int type, const uint8_t *w, int rows, int blocks,
                                                                                 int rowBegin, int rowEnd, const LoomActivationBlock *x,
                                                                                 int xRows, float *y, size_t ldy, int accumulate) {
    const size_t groupBytes = GROUP_ROWS * block_bytes(type) * (size_t)blocks;
    // The whole groups inside [rowBegin, rowEnd) run here; the rows before and after them (a
    // thread's share that starts or ends inside a group, the rows after the last whole group)
    // take the AVX2 path, whose row tiles give the same bits.
    const int grouped = rows / GROUP_ROWS * GROUP_ROWS;
    const int groupsBegin = (rowBegin + GROUP_ROWS - 1) / GROUP_ROWS * GROUP_ROWS;
    const int groupsEnd = (rowEnd < grouped ? rowEnd : grouped) / GROUP_ROWS * GROUP_ROWS;
    if (groupsBegin >= groupsEnd) {
        matmul_typed(type, w, rows, blocks, rowBegin, rowEnd, x, xRows, y, ldy, accumulate);
        return;
    }
    if (rowBegin < groupsBegin) matmul_typed(type, w, rows, blocks, rowBegin, groupsBegin, x, xRows, y, ldy, accumulate);
    for (int o = groupsBegin; o < groupsEnd; o += GROUP_ROWS) {
        const uint8_t *group = w + (size_t)(o / GROUP_ROWS) * groupBytes;
        // Up to four activation rows per pass over the group's weights.
        for (int r0 = 0; r0 < xRows; r0 += 4) {
            float values[4][4];
            const LoomActivationBlock *xr = x + (size_t)r0 * blocks;
            const int xrows = xRows - r0 < 4 ? xRows - r0 : 4;
            // Constant tile sizes let the compiler keep the accumulators in registers.
            switch (xrows) {
            case 4: group_tile_avx512(type, group, blocks, xr, 4, values); break;
            case 3: group_tile_avx512(type, group, blocks, xr, 3, values); break;
            case 2: group_tile_avx512(type, group, blocks, xr, 2, values); break;
            default: group_tile_avx512(type, group, blocks, xr, 1, values); break;
            }
            for (int i = 0; i < 4; i++)
                for (int r = 0; r < xrows; r++) store_output(y, ldy, r0 + r, o + i, values[i][r], accumulate);
        }
    }
    if (groupsEnd < rowEnd) matmul_typed(type, w, rows, blocks, groupsEnd, rowEnd, x, xRows, y, ldy, accumulate);
}

AVX512VNNI void loom_quant_matmul_avx512vnni(int type, const uint8_t *w, int rows, int blocksPerRow, int rowBegin, int rowEnd,
                                             const LoomActivationBlock *x, int xRows, float *y, size_t ldy, int accumulate) {
    switch (type) {
    case LOOM_QUANT_Q8_0: matmul_typed_avx512(LOOM_QUANT_Q8_0, w, rows, blocksPerRow, rowBegin, rowEnd, x, xRows, y, ldy, accumulate); break;
    case LOOM_QUANT_Q4_0: matmul_typed_avx512(LOOM_QUANT_Q4_0, w, rows, blocksPerRow, rowBegin, rowEnd, x, xRows, y, ldy, accumulate); break;
    default: matmul_typed_avx512(LOOM_QUANT_Q4_1, w, rows, blocksPerRow, rowBegin, rowEnd, x, xRows, y, ldy, accumulate); break;
    }
}

#else

// Not x86-64: the portable versions stand in (CPUFeatures reports no AVX2, so these are not chosen).
void loom_quantize_activations_avx2(const float *x, LoomActivationBlock *out, int blocks) {
    loom_quantize_activations_scalar(x, out, blocks);
}
void loom_quant_matmul_avx2(int type, const uint8_t *w, int rows, int blocksPerRow, int rowBegin, int rowEnd,
                            const LoomActivationBlock *x, int xRows, float *y, size_t ldy, int accumulate) {
    loom_quant_matmul_scalar(type, w, rows, blocksPerRow, rowBegin, rowEnd, x, xRows, y, ldy, accumulate);
}
void loom_quant_matmul_avx512vnni(int type, const uint8_t *w, int rows, int blocksPerRow, int rowBegin, int rowEnd,
                                  const LoomActivationBlock *x, int xRows, float *y, size_t ldy, int accumulate) {
    loom_quant_matmul_scalar(type, w, rows, blocksPerRow, rowBegin, rowEnd, x, xRows, y, ldy, accumulate);
}

#endif
