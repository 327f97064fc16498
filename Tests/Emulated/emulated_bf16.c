// The bf16 products (Sources/CLoomCPU/bf16_gemm.c) with SIMDe's AVX-512 intrinsics and
// vdpbf16ps written from Intel's definition, for check_avx512_kernels.c (a translation unit of
// its own: the kernel files each have their own static helpers).
#include <immintrin.h>
#include <math.h>
#include <string.h>
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#include "simde_avx512_shims.h"

// A bfloat16 as vdpbf16ps reads it: subnormals as zero.
static float bf16_input(uint16_t h) {
    uint32_t bits = (h & 0x7f80u) == 0 ? (uint32_t)(h & 0x8000u) << 16 : (uint32_t)h << 16;
    float x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

// vdpbf16ps (Intel SDM): in each 32-bit lane, acc += a.odd · b.odd, then acc += a.even · b.even,
// each a float32 fused multiply-add rounded to nearest even, a subnormal result flushed to zero.
static simde__m512 dot_pairs(simde__m512 acc, simde__m512i a, simde__m512i b) {
    simde__m512_private s = simde__m512_to_private(acc);
    simde__m512i_private x = simde__m512i_to_private(a), y = simde__m512i_to_private(b);
    for (int lane = 0; lane < 16; lane++)
        for (int half = 1; half >= 0; half--) {
            float r = fmaf(bf16_input(x.u16[2 * lane + half]), bf16_input(y.u16[2 * lane + half]), s.f32[lane]);
            if (fpclassify(r) == FP_SUBNORMAL) r = copysignf(0.0f, r);
            s.f32[lane] = r;
        }
    return simde__m512_from_private(s);
}

#define LOOM_EMULATE_AVX512 1
#include "../../Sources/CLoomCPU/bf16_gemm.c"

// The packers' vector rounding (round8) against loom_bf16_from_float on every float32 bit
// pattern: returns how many differ.
long emulated_bf16_rounding_mismatches(void) {
    long mismatches = 0;
    float x[8];
    uint32_t got[8];
    for (uint64_t base = 0; base < (1ull << 32); base += 8) {
        for (int lane = 0; lane < 8; lane++) {
            uint32_t bits = (uint32_t)(base + lane);
            memcpy(&x[lane], &bits, sizeof bits);
        }
        store8(got, round8(x));
        for (int lane = 0; lane < 8; lane++)
            if (got[lane] != (uint32_t)loom_bf16_from_float(x[lane]) << 16) mismatches++;
    }
    return mismatches;
}
