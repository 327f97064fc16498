#ifndef LOOM_COPENBLAS_H
#define LOOM_COPENBLAS_H
// OpenBLAS, opened at run time with dlopen rather than linked at build time.
//
// Why: OpenBLAS chooses its kernels once, while the library initialises, from the
// OPENBLAS_CORETYPE environment variable or its own CPU table. A library linked at build
// time initialises before main(), too early for Loom to pick the kernels from cpuid (the
// table of Debian 12's 0.3.21 does not know Sapphire Rapids and falls back to SSE3).
// Loading it on first use lets LoomTensor set the core type first (see BLAS.swift).

enum { LoomCblasRowMajor = 101, LoomCblasNoTrans = 111, LoomCblasTrans = 112 };

/// Opens the library at `path` (a file name is searched like any dlopen name) and resolves
/// every function below. Returns 0 on success, otherwise -1 with a message in `error`.
/// Only the first successful call has an effect.
int loom_openblas_open(const char *path, char *error, unsigned long errorCapacity);

/// The file the library was loaded from (as the dynamic loader names it), or "" before loading.
const char *loom_openblas_loaded_path(void);

void loom_cblas_sgemm(int order, int transA, int transB, int m, int n, int k, float alpha,
                      const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
void loom_cblas_sgemv(int order, int trans, int m, int n, float alpha, const float *a, int lda,
                      const float *x, int incx, float beta, float *y, int incy);
void loom_openblas_set_num_threads(int threads);
int loom_openblas_get_num_threads(void);
const char *loom_openblas_get_corename(void);
const char *loom_openblas_get_config(void);

#endif
