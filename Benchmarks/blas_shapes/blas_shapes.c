// sgemm GFLOP/s of OpenBLAS (cblas_sgemm) and oneDNN (dnnl_sgemm) on the matrix products of one
// training step of a Loom configuration: for each linear layer [out, in] and M = batch × context
// tokens, the forward product Y = X·Wᵀ, the input gradient dX = dY·W and the weight gradient
// dW = dYᵀ·X. Each library is opened with dlopen in a child process of its own, so neither
// one's idle threads (OpenMP's spin-waiting workers, OpenBLAS's) compete with the other's; their
// thread counts come from OPENBLAS_NUM_THREADS and OMP_NUM_THREADS (blas_compare.sh sets both). The last line
// adds up a step's time, each layer shape counted as often as the model has it.
//
//   cc -O2 blas_shapes.c -ldl -o blas_shapes && ./blas_shapes M "name:out:in[:count]" ...
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

typedef void (*cblas_sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
typedef int (*dnnl_sgemm_fn)(char, char, long, long, long, float, const float *, long, const float *, long, float, float *, long);
enum { RowMajor = 101, NoTrans = 111, Trans = 112 };

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

static cblas_sgemm_fn openblas;
static dnnl_sgemm_fn dnnl;

static int splitThreads = 1;

typedef struct { int ta, tb; long m0, m1, m, n, k; const float *a, *b; float *c; } Block;

/// Rows [m0, m1) of C = op(A)·op(B) with one single-threaded OpenBLAS call (row-major; lda and
/// ldb those of the whole product).
static void *block_product(void *argument) {
    const Block *p = argument;
    const long lda = p->ta ? p->m : p->k, ldb = p->tb ? p->k : p->n;
    const float *a = p->ta ? p->a + p->m0 : p->a + p->m0 * lda;
    openblas(RowMajor, p->ta ? Trans : NoTrans, p->tb ? Trans : NoTrans, (int)(p->m1 - p->m0), (int)p->n, (int)p->k, 1,
             a, (int)lda, p->b, (int)ldb, 0, p->c + p->m0 * p->n, (int)p->n);
    return NULL;
}

/// C[m,n] = op(A)·op(B), row-major, with `library` 0 (OpenBLAS), 1 (oneDNN) or 2 (OpenBLAS
/// single-threaded on `splitThreads` row blocks, as Loom splits it).
static void gemm(int library, int ta, int tb, long m, long n, long k, const float *a, const float *b, float *c) {
    long lda = ta ? m : k, ldb = tb ? k : n;
    if (library == 0) {
        openblas(RowMajor, ta ? Trans : NoTrans, tb ? Trans : NoTrans, (int)m, (int)n, (int)k, 1, a, (int)lda, b, (int)ldb, 0, c, (int)n);
    } else if (library == 1) {
        dnnl(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, 1, a, lda, b, ldb, 0, c, n);
    } else {
        pthread_t threads[64];
        Block blocks[64];
        for (int t = 0; t < splitThreads; t++) {
            blocks[t] = (Block){ta, tb, m * t / splitThreads, m * (t + 1) / splitThreads, m, n, k, a, b, c};
            if (t > 0) pthread_create(&threads[t], NULL, block_product, &blocks[t]);
        }
        block_product(&blocks[0]);
        for (int t = 1; t < splitThreads; t++) pthread_join(threads[t], NULL);
    }
}

/// Best GFLOP/s over runs of at least 0.2 s each, three runs.
static double rate(int library, int ta, int tb, long m, long n, long k, const float *a, const float *b, float *c) {
    gemm(library, ta, tb, m, n, k, a, b, c);
    double best = 0;
    for (int run = 0; run < 3; run++) {
        int calls = 0;
        double start = now(), elapsed;
        do { gemm(library, ta, tb, m, n, k, a, b, c); calls++; } while ((elapsed = now() - start) < 0.2);
        double gflops = 2.0 * m * n * k * calls / elapsed / 1e9;
        if (gflops > best) best = gflops;
    }
    return best;
}

/// The layers of the command line: name, out, in, count.
typedef struct { char name[64]; long out, in, count; } Layer;

/// Measures every product of every layer with one library and writes the rates to `fd`.
static int measure(int library, long M, const Layer *layers, int n, int fd) {
    void *handle = dlopen(library == 1 ? "libdnnl.so.2" : "libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!handle) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 2; }
    if (library == 1) dnnl = (dnnl_sgemm_fn)dlsym(handle, "dnnl_sgemm");
    else openblas = (cblas_sgemm_fn)dlsym(handle, "cblas_sgemm");
    if (library == 1 ? !dnnl : !openblas) { fprintf(stderr, "dlsym failed\n"); return 2; }
    if (library == 2) {
        void (*setThreads)(int) = (void (*)(int))dlsym(handle, "openblas_set_num_threads");
        if (!setThreads) { fprintf(stderr, "dlsym openblas_set_num_threads failed\n"); return 2; }
        setThreads(1);
    }
    if (library == 0) {
        const char *(*corename)(void) = (const char *(*)(void))dlsym(handle, "openblas_get_corename");
        printf("# OpenBLAS core %s; M = %ld tokens\n", corename ? corename() : "?", M);
        fflush(stdout);
    }
    for (int i = 0; i < n; i++) {
        const long out = layers[i].out, in = layers[i].in, wide = in > out ? in : out;
        float *x = malloc(sizeof(float) * M * wide), *w = malloc(sizeof(float) * out * in);
        float *y = malloc(sizeof(float) * M * wide), *g = malloc(sizeof(float) * out * in);
        for (long j = 0; j < M * wide; j++) x[j] = (float)((j * 7919) % 1000) / 1000.0f - 0.5f;
        for (long j = 0; j < out * in; j++) w[j] = (float)((j * 104729) % 1000) / 1000.0f - 0.5f;
        double r[3] = {
            rate(library, 0, 1, M, out, in, x, w, y),   // forward X·Wᵀ
            rate(library, 0, 0, M, in, out, x, w, y),   // input gradient dY·W
            rate(library, 1, 0, out, in, M, x, x, g),   // weight gradient dYᵀ·X
        };
        if (write(fd, r, sizeof r) != (ssize_t)sizeof r) return 2;
        free(x); free(w); free(y); free(g);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s M name:out:in[:count] ...\n", argv[0]); return 2; }
    const long M = atol(argv[1]);
    const int n = argc - 2;
    Layer *layers = calloc(n, sizeof(Layer));
    for (int i = 0; i < n; i++) {
        layers[i].count = 1;
        if (sscanf(argv[i + 2], "%63[^:]:%ld:%ld:%ld", layers[i].name, &layers[i].out, &layers[i].in, &layers[i].count) < 3
            || layers[i].count < 1 || layers[i].out < 1 || layers[i].in < 1) {
            fprintf(stderr, "bad layer %s (name:out:in[:count])\n", argv[i + 2]);
            return 2;
        }
    }
    const char *threadSetting = getenv("OPENBLAS_NUM_THREADS");
    splitThreads = threadSetting ? atoi(threadSetting) : 1;
    if (splitThreads < 1 || splitThreads > 64) splitThreads = 1;
    const int libraries = splitThreads > 1 ? 3 : 2;
    double *rates[3];
    for (int library = 0; library < libraries; library++) {
        int fds[2];
        if (pipe(fds) != 0) return 2;
        fflush(stdout);
        pid_t child = fork();
        if (child == 0) { close(fds[0]); _exit(measure(library, M, layers, n, fds[1])); }
        close(fds[1]);
        rates[library] = malloc(sizeof(double) * 3 * n);
        size_t want = sizeof(double) * 3 * n, got = 0;
        ssize_t r;
        while (got < want && (r = read(fds[0], (char *)rates[library] + got, want - got)) > 0) got += (size_t)r;
        int status;
        waitpid(child, &status, 0);
        close(fds[0]);
        if (got != want || !WIFEXITED(status) || WEXITSTATUS(status) != 0) { fprintf(stderr, "library %d failed\n", library); return 2; }
    }
    printf("%-8s %-17s %-16s %9s %9s %8s", "layer", "product", "m x n x k", "openblas", "onednn", "dnnl/ob");
    if (libraries == 3) printf(" %9s %8s", "ob split", "dnnl/spl");
    printf("\n");
    const char *labels[3] = {"forward X·Wt", "input grad dY·W", "weight grad dYt·X"};
    double total[3] = {0, 0, 0}, either = 0;   // seconds of a step's products at the measured rates
    for (int i = 0; i < n; i++) {
        const long out = layers[i].out, in = layers[i].in;
        const long shapes[3][3] = {{M, out, in}, {M, in, out}, {out, in, M}};
        for (int p = 0; p < 3; p++) {
            double r[3];
            for (int l = 0; l < libraries; l++) r[l] = rates[l][3 * i + p];
            // Loom's way: OpenBLAS's own threads at 1 thread, its split with more.
            const double loom = libraries == 3 ? r[2] : r[0];
            const double flops = 2.0 * shapes[p][0] * shapes[p][1] * shapes[p][2] * layers[i].count;
            char shape[64];
            snprintf(shape, sizeof shape, "%ldx%ldx%ld", shapes[p][0], shapes[p][1], shapes[p][2]);
            printf("%-8s %-17s %-16s %9.1f %9.1f %7.2fx", layers[i].name, labels[p], shape, r[0], r[1], r[1] / r[0]);
            if (libraries == 3) printf(" %9.1f %7.2fx", r[2], r[1] / r[2]);
            printf("\n");
            for (int l = 0; l < libraries; l++) total[l] += flops / (r[l] * 1e9);
            either += flops / ((loom > r[1] ? loom : r[1]) * 1e9);
        }
    }
    const double loomTotal = libraries == 3 ? total[2] : total[0];
    printf("a step's products (each layer's count): OpenBLAS %.1f ms, oneDNN %.1f ms", total[0] * 1e3, total[1] * 1e3);
    if (libraries == 3) printf(", OpenBLAS split as Loom does %.1f ms", total[2] * 1e3);
    printf("; oneDNN takes %.2fx Loom's time; the faster of Loom's way and oneDNN per product: %.2fx Loom's time\n",
           total[1] / loomTotal, either / loomTotal);
    return 0;
}
