// cpuid and xgetbv need inline assembly, which Swift cannot express; this file only reads
// the bits. Deciding what to do with them happens in LoomTensor/CPUFeatures.swift.
#include "CLoomCPU.h"
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static void cpuid(unsigned leaf, unsigned subleaf, unsigned r[4]) {
    __cpuid_count(leaf, subleaf, r[0], r[1], r[2], r[3]);
}

static unsigned long long xgetbv0(void) {
    unsigned eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

#define BIT(value, n) ((((value) >> (n)) & 1u) != 0)

void loom_cpu_detect(LoomCPUInfo *info) {
    memset(info, 0, sizeof *info);
    unsigned r[4];
    cpuid(0, 0, r);
    unsigned maxLeaf = r[0];
    memcpy(info->vendor + 0, &r[1], 4);   // ebx, edx, ecx spell the vendor
    memcpy(info->vendor + 4, &r[3], 4);
    memcpy(info->vendor + 8, &r[2], 4);

    cpuid(1, 0, r);
    unsigned baseFamily = (r[0] >> 8) & 0xf, baseModel = (r[0] >> 4) & 0xf;
    info->stepping = r[0] & 0xf;
    info->family = baseFamily == 0xf ? baseFamily + ((r[0] >> 20) & 0xff) : baseFamily;
    info->model = (baseFamily == 0x6 || baseFamily == 0xf) ? baseModel | (((r[0] >> 16) & 0xf) << 4) : baseModel;
    unsigned ecx1 = r[2];
    info->sse3 = BIT(ecx1, 0);
    info->ssse3 = BIT(ecx1, 9);
    info->fma = BIT(ecx1, 12);
    info->sse41 = BIT(ecx1, 19);
    info->sse42 = BIT(ecx1, 20);
    info->avx = BIT(ecx1, 28);
    info->f16c = BIT(ecx1, 29);
    bool osxsave = BIT(ecx1, 27);

    if (maxLeaf >= 7) {
        cpuid(7, 0, r);
        unsigned maxSubleaf = r[0], ebx = r[1], ecx = r[2], edx = r[3];
        info->avx2 = BIT(ebx, 5);
        info->avx512f = BIT(ebx, 16);
        info->avx512dq = BIT(ebx, 17);
        info->avx512cd = BIT(ebx, 28);
        info->avx512bw = BIT(ebx, 30);
        info->avx512vl = BIT(ebx, 31);
        info->avx512vnni = BIT(ecx, 11);
        info->avx512fp16 = BIT(edx, 23);
        info->amxBF16 = BIT(edx, 22);
        info->amxTile = BIT(edx, 24);
        info->amxInt8 = BIT(edx, 25);
        if (maxSubleaf >= 1) {
            cpuid(7, 1, r);
            info->avxVnni = BIT(r[0], 4);
            info->avx512bf16 = BIT(r[0], 5);
        }
    }

    if (osxsave) {
        unsigned long long xcr0 = xgetbv0();
        info->osSavesAVX = (xcr0 & 0x6) == 0x6;                 // SSE and AVX (YMM) state
        info->osSavesAVX512 = (xcr0 & 0xe6) == 0xe6;            // + opmask, ZMM_Hi256, Hi16_ZMM
        info->osSavesAMX = (xcr0 & 0x60000ull) == 0x60000ull;   // XTILECFG and XTILEDATA
    }

    cpuid(0x80000000u, 0, r);
    if (r[0] >= 0x80000004u) {
        char brand[49] = {0};
        for (unsigned i = 0; i < 3; i++) {
            cpuid(0x80000002u + i, 0, r);
            memcpy(brand + 16 * i, r, 16);
        }
        // The brand string is padded with leading spaces on some processors.
        const char *start = brand;
        while (*start == ' ') start++;
        strncpy(info->modelName, start, sizeof info->modelName - 1);
        size_t n = strlen(info->modelName);
        while (n > 0 && info->modelName[n - 1] == ' ') info->modelName[--n] = 0;
    }
}

#else

void loom_cpu_detect(LoomCPUInfo *info) { memset(info, 0, sizeof *info); }

#endif
