#ifndef LOOM_CPU_H
#define LOOM_CPU_H
#include <stdbool.h>
#include "LoomBF16.h"
#include "LoomRowInvariant.h"
#include "LoomThreadPool.h"

/// What cpuid and xgetbv report about the processor Loom runs on (x86-64; on other
/// architectures every flag is false and the strings are empty).
typedef struct {
    char vendor[13];        ///< "GenuineIntel", "AuthenticAMD", ...
    char modelName[49];     ///< the brand string, e.g. "AMD EPYC 7B13 64-Core Processor"
    unsigned family;        ///< display family (base + extended)
    unsigned model;         ///< display model (base + extended << 4)
    unsigned stepping;
    bool sse3, ssse3, sse41, sse42, avx, f16c, fma, avx2;
    bool avx512f, avx512dq, avx512cd, avx512bw, avx512vl, avx512vnni, avx512bf16, avx512fp16;
    bool avxVnni, amxTile, amxBF16, amxInt8;
    /// The operating system saves the register state (XCR0 bits), so the instructions may be used.
    bool osSavesAVX, osSavesAVX512, osSavesAMX;
} LoomCPUInfo;

/// Fills `info` from cpuid and xgetbv.
void loom_cpu_detect(LoomCPUInfo *info);

#endif
