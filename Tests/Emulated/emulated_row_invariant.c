// The batch-invariant products (Sources/CLoomCPU/row_invariant.c) with SIMDe's AVX-512
// intrinsics, for check_avx512_kernels.c (a translation unit of its own: the two kernel files
// each have their own static helpers).
#include <immintrin.h>
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#include "simde_avx512_shims.h"

#define LOOM_EMULATE_AVX512 1
#include "../../Sources/CLoomCPU/row_invariant.c"
