/*
 * internal.h — private helpers shared by the kernel files. Not API.
 */
#ifndef CONVEYOR_INTERNAL_H
#define CONVEYOR_INTERNAL_H

#ifndef _GNU_SOURCE
#error "CKernels must be compiled with _GNU_SOURCE defined (Package.swift passes it)"
#endif

#include "conveyor.h"

#include <stdbool.h>
#include <stdint.h>

/* Bit-identical results on every code path: never fuse a*x+b into an FMA, which some
 * clones (AVX2, AVX-512) could do and the baseline clone cannot. clang honours the C99
 * pragma; gcc ignores it (and warns: -Wunknown-pragmas, an error under -Werror), so gcc
 * builds rely on -ffp-contract=off, which the Meson build passes to every compiler. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* Runtime SIMD dispatch: the loader picks the best clone once (IFUNC). No -march=native
 * anywhere, so one binary runs on any x86-64 and uses AVX-512 where present. Elsewhere
 * the plain loop is compiled for the target's baseline vector unit. gcc needs the clones
 * as much as clang: without them its SSE2 code for the 64-byte strips of the programs
 * and for the generator's 64-bit multiplies ran 6-7x slower (measured: the fused
 * program on 10^6 doubles 2.5 ms against 0.22 ms with them; x86-64-v4 needs gcc 11). */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CV_NO_CLONES 1 /* IFUNC resolvers run before the TSan runtime is ready */
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define CV_NO_CLONES 1 /* gcc's spelling of the same check */
#endif
#if defined(__x86_64__) && !defined(CV_NO_CLONES) && \
    (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 11))
#define CV_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CV_SIMD_CLONES
#endif

/* Elements each thread's chunk boundary is rounded to: 64 elements is a whole number of
 * cache lines for both element sizes, so two threads never write the same line. */
#define CV_CHUNK_GRAIN 64

/* Checks common to every array argument: NULL only when empty, aligned to its type, and
 * a byte size no larger than PTRDIFF_MAX (the largest object C pointer arithmetic covers). */
int cv_check_array(const void *p, size_t n, size_t elem_size);

/* CONVEYOR_E_OVERLAP if [out, out+bytes) and [in, in+bytes) overlap without being the
 * same range; exact aliasing (in-place) is allowed. */
int cv_check_alias(const void *out, const void *in, size_t bytes);

/* The process-wide settings of section 3 of conveyor.h. */
int cv_threads(void);
size_t cv_parallel_threshold(void);

/* Chunks per thread in a parallel region: enough that a worker which wakes late still
 * takes its share, few enough that each chunk is long (8 MiB / 16 = 512 KiB). */
#define CV_CHUNKS_PER_THREAD 8

/*
 * Runs fn(ctx, chunk, lo, hi) over [0, n) split into threads * CV_CHUNKS_PER_THREAD
 * contiguous ranges with CV_CHUNK_GRAIN-rounded bounds. The chunks are shared out among
 * the threads when the output is at least the parallel threshold, else run one after
 * another on the caller.
 * When `fixed_partition` is false and the work is serial, it is one chunk [0, n), which
 * saves the loop overhead; reductions pass true so their result never depends on the
 * threshold. Returns the number of chunks used (>= 1).
 */
typedef void (*cv_chunk_fn)(void *ctx, int chunk, size_t lo, size_t hi);
int cv_for_chunks(size_t n, size_t out_bytes, bool fixed_partition, void *ctx, cv_chunk_fn fn);

/* ---- The uniform generator's pieces, shared by the fill (kernels_uniform.c) and the
 * fused generate-transform-sum (program_template.h), so both give the same values. ---- */
#define CV_GOLDEN_GAMMA 0x9E3779B97F4A7C15ull

/* SplitMix64's finalizer (Stafford's Mix13) applied to z in place. A macro, so that the
 * same expression serves a uint64_t and a vector of them. */
#define CV_MIX64(z)                                 \
    do {                                            \
        (z) = ((z) ^ ((z) >> 30)) * 0xBF58476D1CE4E5B9ull; \
        (z) = ((z) ^ ((z) >> 27)) * 0x94D049BB133111EBull; \
        (z) = (z) ^ ((z) >> 31);                    \
    } while (0)

/* The generator's key for (seed, stream): element i of the sequence mixes
 * key + (first + i + 1) * CV_GOLDEN_GAMMA. */
uint64_t cv_uniform_key(uint64_t seed, uint64_t stream);

/* Adds program(uniform(key, first + j)) for j in [0, n - n % 32) into 32 compensated lanes
 * (s, c: lane l takes j ≡ l mod 32), as conveyor_f64_fill_uniform, conveyor_f64_program and
 * the sum's lanes would, without storing a value: generated, transformed and summed in
 * registers. `ops` must be valid scalar ops (checked by the caller). Returns the count of
 * elements added; the caller sums the rest. */
size_t cv_f64_uniform_program_lanes(const conveyor_op *ops, size_t count, uint64_t key, uint64_t first,
                                    size_t n, double *lane_s, double *lane_c);

/* The largest number of chunks cv_for_chunks uses (reductions size their arrays by it). */
#define CV_MAX_CHUNKS (CONVEYOR_MAX_THREADS * CV_CHUNKS_PER_THREAD)

/* The largest default spin an attach takes from a ring's or channel's header (TRUST in
 * ring_layout.h and channel_layout.h): another process wrote it, and 2^32-1 pauses would
 * keep every untimed wait spinning for minutes before it sleeps. 2^24 pauses spin well
 * under a second. The creator's own handles keep its configured value, and set_spin is
 * local and unbounded: a caller may still ask for a wait that never sleeps. */
#define CV_MAX_PEER_SPIN (UINT32_C(1) << 24)

static inline uint32_t cv_peer_spin(uint32_t shared) {
    return shared > CV_MAX_PEER_SPIN ? CV_MAX_PEER_SPIN : shared;
}

#endif /* CONVEYOR_INTERNAL_H */
