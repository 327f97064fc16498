// Resolves the handful of OpenBLAS functions Loom calls and forwards to them.
#define _GNU_SOURCE
#include "COpenBLAS.h"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*SgemmFunction)(int, int, int, int, int, int, float, const float *, int,
                              const float *, int, float, float *, int);
typedef void (*SgemvFunction)(int, int, int, int, float, const float *, int, const float *, int,
                              float, float *, int);
typedef void (*SetThreadsFunction)(int);
typedef int (*GetThreadsFunction)(void);
typedef char *(*NameFunction)(void);

static SgemmFunction sgemmFunction;
static SgemvFunction sgemvFunction;
static SetThreadsFunction setThreadsFunction;
static GetThreadsFunction getThreadsFunction;
static NameFunction corenameFunction;
static NameFunction configFunction;
static char loadedPath[4096];

int loom_openblas_open(const char *path, char *error, unsigned long errorCapacity) {
    if (sgemmFunction) return 0;
    void *library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        snprintf(error, errorCapacity, "%s", dlerror());
        return -1;
    }
    const char *names[] = {"cblas_sgemm", "cblas_sgemv", "openblas_set_num_threads",
                           "openblas_get_num_threads", "openblas_get_corename", "openblas_get_config"};
    void *symbols[6];
    for (int i = 0; i < 6; i++) {
        symbols[i] = dlsym(library, names[i]);
        if (!symbols[i]) {
            snprintf(error, errorCapacity, "%s has no %s (is it OpenBLAS?)", path, names[i]);
            dlclose(library);
            return -1;
        }
    }
    Dl_info where;
    if (dladdr(symbols[0], &where) && where.dli_fname) {
        snprintf(loadedPath, sizeof loadedPath, "%s", where.dli_fname);
    } else {
        snprintf(loadedPath, sizeof loadedPath, "%s", path);
    }
    sgemvFunction = (SgemvFunction)symbols[1];
    setThreadsFunction = (SetThreadsFunction)symbols[2];
    getThreadsFunction = (GetThreadsFunction)symbols[3];
    corenameFunction = (NameFunction)symbols[4];
    configFunction = (NameFunction)symbols[5];
    sgemmFunction = (SgemmFunction)symbols[0];
    return 0;
}

const char *loom_openblas_loaded_path(void) { return loadedPath; }

static void notLoaded(void) {
    fprintf(stderr, "loom: OpenBLAS was called before it was loaded (LoomTensor's BLAS.swift loads it)\n");
    abort();
}

void loom_cblas_sgemm(int order, int transA, int transB, int m, int n, int k, float alpha,
                      const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    if (!sgemmFunction) notLoaded();
    sgemmFunction(order, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void loom_cblas_sgemv(int order, int trans, int m, int n, float alpha, const float *a, int lda,
                      const float *x, int incx, float beta, float *y, int incy) {
    if (!sgemvFunction) notLoaded();
    sgemvFunction(order, trans, m, n, alpha, a, lda, x, incx, beta, y, incy);
}

void loom_openblas_set_num_threads(int threads) {
    if (!setThreadsFunction) notLoaded();
    setThreadsFunction(threads);
}

int loom_openblas_get_num_threads(void) {
    if (!getThreadsFunction) notLoaded();
    return getThreadsFunction();
}

const char *loom_openblas_get_corename(void) {
    if (!corenameFunction) notLoaded();
    return corenameFunction();
}

const char *loom_openblas_get_config(void) {
    if (!configFunction) notLoaded();
    return configFunction();
}
