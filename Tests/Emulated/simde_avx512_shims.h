// The AVX-512 intrinsics Loom's kernels use that SIMDe 0.7 (Debian 12's libsimde-dev) does not
// implement, written out from their definitions in Intel's intrinsics guide, element by element.
// Included after <simde/x86/avx512.h> by the emulation harness only.
#ifndef LOOM_SIMDE_AVX512_SHIMS_H
#define LOOM_SIMDE_AVX512_SHIMS_H

/// vcvtdq2ps: each int32 lane to float, rounded to nearest even (C's conversion does the same).
static inline simde__m512 loom_shim_mm512_cvtepi32_ps(simde__m512i a) {
    simde__m512i_private in = simde__m512i_to_private(a);
    simde__m512_private out;
    for (int i = 0; i < 16; i++) out.f32[i] = (simde_float32)in.i32[i];
    return simde__m512_from_private(out);
}

/// vextractf32x8: the low (imm 0) or high (imm 1) eight floats.
static inline simde__m256 loom_shim_mm512_extractf32x8_ps(simde__m512 a, int imm) {
    simde__m512_private in = simde__m512_to_private(a);
    simde__m256_private out;
    for (int i = 0; i < 8; i++) out.f32[i] = in.f32[8 * (imm & 1) + i];
    return simde__m256_from_private(out);
}

#undef _mm512_cvtepi32_ps
#define _mm512_cvtepi32_ps(a) loom_shim_mm512_cvtepi32_ps(a)
#undef _mm512_extractf32x8_ps
#define _mm512_extractf32x8_ps(a, imm) loom_shim_mm512_extractf32x8_ps(a, imm)

#endif
