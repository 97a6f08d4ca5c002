/*
 * parallel.c — thread count, parallel threshold, libomp's idle-spin default, and the one
 * place that opens a parallel region (cv_for_chunks). With the OpenMP trait off the same
 * code runs every chunk on the caller.
 */
#include "internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#ifdef CONVEYOR_HAVE_OPENMP
/* Declared here rather than through omp.h, which Debian keeps outside the default include
 * path (with clang: /usr/lib/llvm-<n>/lib/clang/<n>/include). These are stable OpenMP 1.0 entry points. */
int omp_get_max_threads(void);
#endif

/* 0 = not chosen yet: the first reader takes OpenMP's default. */
static _Atomic int cv_thread_count = 0;
static _Atomic size_t cv_threshold_bytes = CONVEYOR_DEFAULT_PARALLEL_THRESHOLD;

#ifdef CONVEYOR_HAVE_OPENMP
/* libomp reads KMP_BLOCKTIME once, when its runtime initializes on the first parallel
 * region, which is after every shared library's constructors ran. See conveyor.h §3. */
__attribute__((constructor)) static void cv_default_blocktime(void) {
    if (getenv("KMP_BLOCKTIME") == NULL) setenv("KMP_BLOCKTIME", "0", 0);
}
#endif

/*
 * Fork safety under gcc's libgomp: a child forked after its parent ran a parallel region
 * inherits libgomp's thread pool but not its threads, and its next region with more than
 * one thread hangs (checked with libgomp 12: 3 hangs out of 3; LLVM's libomp re-creates
 * its pool in the child). So the child of such a parent runs every region's chunks on the
 * calling thread: the same chunks, so the same bits, only slower. A forked child whose
 * parent never went parallel, and any exec'd process, keeps its threads.
 */
#if defined(CONVEYOR_HAVE_OPENMP) && defined(__GNUC__) && !defined(__clang__)
#define CV_LIBGOMP 1
static _Atomic bool cv_went_parallel = false;  /* this process opened a parallel region */
static _Atomic bool cv_pool_lost = false;      /* forked after a region: stay serial */
static pthread_once_t cv_gomp_atfork_once = PTHREAD_ONCE_INIT;
static void cv_gomp_child(void) {
    if (atomic_load_explicit(&cv_went_parallel, memory_order_relaxed))
        atomic_store_explicit(&cv_pool_lost, true, memory_order_relaxed);
}
static void cv_gomp_register(void) { pthread_atfork(NULL, NULL, cv_gomp_child); }
#endif

int conveyor_has_openmp(void) {
#ifdef CONVEYOR_HAVE_OPENMP
    return 1;
#else
    return 0;
#endif
}

/* conveyor_set_threads_local: 0 = no override. */
static _Thread_local int cv_local_threads = 0;

int cv_threads(void) {
    if (cv_local_threads > 0) return cv_local_threads;
    int threads = atomic_load_explicit(&cv_thread_count, memory_order_relaxed);
    if (threads > 0) return threads;
#ifdef CONVEYOR_HAVE_OPENMP
    threads = omp_get_max_threads();
    if (threads < 1) threads = 1;
    if (threads > CONVEYOR_MAX_THREADS) threads = CONVEYOR_MAX_THREADS;
#else
    threads = 1;
#endif
    int expected = 0;  /* a concurrent conveyor_set_threads wins over this default */
    atomic_compare_exchange_strong(&cv_thread_count, &expected, threads);
    return atomic_load_explicit(&cv_thread_count, memory_order_relaxed);
}

int conveyor_get_threads(void) { return cv_threads(); }

int conveyor_set_threads(int threads) {
    if (threads < 1 || threads > CONVEYOR_MAX_THREADS) return CONVEYOR_E_INVALID_ARGUMENT;
    if (threads > 1 && !conveyor_has_openmp()) return CONVEYOR_E_UNSUPPORTED;
    atomic_store_explicit(&cv_thread_count, threads, memory_order_relaxed);
    return CONVEYOR_OK;
}

int conveyor_set_threads_local(int threads) {
    if (threads < 0 || threads > CONVEYOR_MAX_THREADS) return CONVEYOR_E_INVALID_ARGUMENT;
    if (threads > 1 && !conveyor_has_openmp()) return CONVEYOR_E_UNSUPPORTED;
    cv_local_threads = threads;
    return CONVEYOR_OK;
}

size_t cv_parallel_threshold(void) {
    return atomic_load_explicit(&cv_threshold_bytes, memory_order_relaxed);
}

size_t conveyor_get_parallel_threshold(void) { return cv_parallel_threshold(); }

int conveyor_set_parallel_threshold(size_t bytes) {
    atomic_store_explicit(&cv_threshold_bytes, bytes, memory_order_relaxed);
    return CONVEYOR_OK;
}

/* Chunk c of `chunks` over [0, n): boundaries rounded down to CV_CHUNK_GRAIN elements. */
static size_t cv_chunk_start(size_t n, int chunk, int chunks) {
    if (chunk >= chunks) return n;
    size_t per = n / (size_t)chunks;
    size_t start = per * (size_t)chunk;
    return start - start % CV_CHUNK_GRAIN;
}

int cv_for_chunks(size_t n, size_t out_bytes, bool fixed_partition, void *ctx, cv_chunk_fn fn) {
    int threads = cv_threads();
    size_t most = n / CV_CHUNK_GRAIN;
    int chunks = threads * CV_CHUNKS_PER_THREAD;
    if ((size_t)chunks > most) chunks = most > 0 ? (int)most : 1;
    bool parallel = threads > 1 && chunks > 1 && out_bytes >= cv_parallel_threshold();
#ifdef CV_LIBGOMP
    if (parallel) {
        pthread_once(&cv_gomp_atfork_once, cv_gomp_register);
        parallel = !atomic_load_explicit(&cv_pool_lost, memory_order_relaxed);
        atomic_store_explicit(&cv_went_parallel, true, memory_order_relaxed);
    }
#endif

#ifdef CONVEYOR_HAVE_OPENMP
    if (parallel) {
        /* Self-scheduled: the caller starts on chunk 0 at once and a worker joins when it
         * wakes (tens of microseconds on a VM with KMP_BLOCKTIME=0); whoever is free takes
         * the next chunk, so a late start costs half its length instead of all of it.
         * (A plain counter rather than schedule(dynamic): clang 21 emits dispatch calls
         * that Debian's libomp 14 does not have.) Relaxed is enough: the counter only
         * hands out indices, and the region's closing barrier publishes the results. */
        _Atomic int next = 0;
        #pragma omp parallel num_threads(threads)
        for (int c; (c = atomic_fetch_add_explicit(&next, 1, memory_order_relaxed)) < chunks;)
            fn(ctx, c, cv_chunk_start(n, c, chunks), cv_chunk_start(n, c + 1, chunks));
        return chunks;
    }
#else
    (void)parallel;
#endif
    if (!fixed_partition) {
        fn(ctx, 0, 0, n);
        return 1;
    }
    for (int c = 0; c < chunks; c++)
        fn(ctx, c, cv_chunk_start(n, c, chunks), cv_chunk_start(n, c + 1, chunks));
    return chunks;
}
