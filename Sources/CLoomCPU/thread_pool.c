// Persistent worker threads with spin-then-sleep waiting; see include/LoomThreadPool.h.
#include "LoomThreadPool.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#if defined(__x86_64__)
#include <immintrin.h>
static inline void relax(void) { _mm_pause(); }
#else
static inline void relax(void) {}
#endif

enum { MAX_WORKERS = 255, SPINS_BEFORE_SLEEP = 1 << 15 };

static pthread_t workers[MAX_WORKERS];
static int workerCount = 0;

// The job: written by the caller before `generation` is advanced (release), read by workers
// after they see the new generation (acquire).
static loom_pool_body jobBody;
static void *jobContext;
static long jobCount;
static atomic_long nextIndex;
static atomic_int unfinishedWorkers;
static atomic_ulong generation;
static atomic_int busy;          // 1 while a job (or a reconfiguration) owns the pool
static atomic_int stopping;

// Sleeping: a worker registers in `sleepers` and re-checks `generation` under the mutex, and
// the caller wakes sleepers under the same mutex after advancing `generation` (both sequentially
// consistent), so a wake-up cannot be lost.
static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static atomic_int sleepers;

static _Thread_local int insideJob = 0;

static void run_indices(void) {
    insideJob = 1;
    for (;;) {
        long i = atomic_fetch_add_explicit(&nextIndex, 1, memory_order_relaxed);
        if (i >= jobCount) break;
        jobBody(jobContext, i);
    }
    insideJob = 0;
}

// `start` is the generation when the worker was created (configure holds `busy`, so no job
// can publish in between). Reading `generation` here instead would race with the first job:
// a worker that starts after that job was published would take the job's generation as
// already seen, never run it, and the caller would wait for it forever.
static void *worker_main(void *start) {
    unsigned long seen = (unsigned long)(uintptr_t)start;
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&generation, memory_order_acquire) == seen) {
            if (++spins < SPINS_BEFORE_SLEEP) { relax(); continue; }
            pthread_mutex_lock(&mutex);
            atomic_fetch_add(&sleepers, 1);
            while (atomic_load(&generation) == seen) pthread_cond_wait(&wake, &mutex);
            atomic_fetch_sub(&sleepers, 1);
            pthread_mutex_unlock(&mutex);
        }
        seen = atomic_load_explicit(&generation, memory_order_acquire);
        if (atomic_load(&stopping)) return NULL;
        run_indices();
        atomic_fetch_sub_explicit(&unfinishedWorkers, 1, memory_order_release);
    }
}

static void publish(void) {
    atomic_fetch_add(&generation, 1);
    if (atomic_load(&sleepers) > 0) {
        pthread_mutex_lock(&mutex);
        pthread_cond_broadcast(&wake);
        pthread_mutex_unlock(&mutex);
    }
}

void loom_pool_configure(int threads) {
    int wanted = threads - 1 < 0 ? 0 : (threads - 1 > MAX_WORKERS ? MAX_WORKERS : threads - 1);
    if (wanted == workerCount) return;
    int expected = 0;
    while (!atomic_compare_exchange_weak(&busy, &expected, 1)) { expected = 0; relax(); }
    if (workerCount > 0) {
        atomic_store(&stopping, 1);
        publish();
        for (int i = 0; i < workerCount; i++) pthread_join(workers[i], NULL);
        atomic_store(&stopping, 0);
    }
    workerCount = 0;
    void *start = (void *)(uintptr_t)atomic_load(&generation);
    for (int i = 0; i < wanted; i++) {
        if (pthread_create(&workers[i], NULL, worker_main, start) != 0) break;
        workerCount++;
    }
    atomic_store(&busy, 0);
}

int loom_pool_run(long count, loom_pool_body body, void *context) {
    if (workerCount == 0 || insideJob) return 0;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&busy, &expected, 1)) return 0;
    jobBody = body;
    jobContext = context;
    jobCount = count;
    atomic_store_explicit(&nextIndex, 0, memory_order_relaxed);
    atomic_store_explicit(&unfinishedWorkers, workerCount, memory_order_relaxed);
    publish();
    run_indices();
    while (atomic_load_explicit(&unfinishedWorkers, memory_order_acquire) > 0) relax();
    atomic_store(&busy, 0);
    return 1;
}
