#ifndef LOOM_THREAD_POOL_H
#define LOOM_THREAD_POOL_H

/// A pool of persistent worker threads for Loom's kernels. A decoding step makes a few hundred
/// short parallel calls (every matrix product, split across threads); waking sleeping threads
/// for each (what libdispatch does) costs more than some of those products. Workers here spin
/// for a short while after each job (about a millisecond) before they sleep, so that the next
/// call, a few microseconds later, finds them awake.
typedef void (*loom_pool_body)(void *context, long index);

/// Starts `threads - 1` workers (the calling thread is the last one); stops the previous ones.
/// Call from one thread, with no job running.
void loom_pool_configure(int threads);

/// Runs body(context, i) for every i in [0, count), spread over the workers and the calling
/// thread (indices handed out one at a time), and returns when all have finished. Returns 0
/// without running anything when the pool cannot take the job — no workers, a job already
/// running (another thread's, or this call is nested inside a job): the caller then runs it
/// another way.
int loom_pool_run(long count, loom_pool_body body, void *context);

#endif
