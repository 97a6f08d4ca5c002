/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conveyor.h — the whole C contract of Conveyor's core.
 *
 * Conveyor moves large numeric arrays between the stages of a pipeline without copying
 * them. This header is its embeddable C11 core: SIMD elementwise kernels with OpenMP
 * parallel loops, zero-copy rings, pools and channels of slots over shared memory, and
 * the protocol that makes a process of any language a pipeline stage. If a name is not
 * declared here, it is not API: everything under CKernels/src is private and may change
 * in any release.
 *
 * Reading order, simple to advanced:
 *   1. Versions         compile-time macros and the runtime version of the library.
 *   2. Status codes     every fallible function returns an int, 0 = success.
 *   3. Threads          how many threads the kernels use, and when they go parallel.
 *   4. Elementwise      out = op(x) for one op: scalar and array operands, f64 and f32.
 *   5. Programs         several elementwise ops fused into one pass over memory.
 *   6. Reductions       an accurate, deterministic sum.
 *   7. Random numbers   a counter-based uniform generator, identical for any threading.
 *   8. Rings            zero-copy single-producer/single-consumer frames over shared
 *                       memory, across threads and processes.
 *   9. Pools, channels  the pieces a pipeline's transport is made of: a shared pool of
 *                       slots, and index channels (with wait-any) that pass slot
 *                       numbers forward and back.
 *  10. Stage programs   a process of any language serving a pipeline's items in place.
 *
 * Conventions that hold for every function below:
 *   - Prefix: every public symbol starts with `conveyor_` or `CONVEYOR_`.
 *   - Arrays are passed as (pointer, element count). A pointer may be NULL only when the
 *     count is 0. Pointers must be aligned to their element type (any SIMD alignment is
 *     fine: the kernels handle any start address and any length).
 *   - Output first, like memcpy: `conveyor_f64_add_scalar(out, x, a, n)`.
 *   - `out` may be exactly the same array as `x` (in place); a partial overlap between
 *     an output and an input is rejected with CONVEYOR_E_OVERLAP, never computed wrongly.
 *   - Floating-point follows IEEE 754 with no contraction: `a*x + b` is rounded twice
 *     on every machine, so results are bit-identical across CPUs and code paths.
 *     Division by zero gives an infinity or NaN, not an error.
 *   - Functions are thread-safe; the settings in section 3 are process-wide.
 *
 * The header is self-contained C11 and also compiles as C++ (declarations are
 * `extern "C"`). It includes only <stddef.h> and <stdint.h>.
 */
#ifndef CONVEYOR_H
#define CONVEYOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ===================================================================================
 * 1. Versions
 * =================================================================================== */

/*
 * ABI rules. A program built against 0.x.y runs with any library 0.x'.y' where x' >= x:
 *   - functions, status codes and enum values are only ever added (minor version);
 *   - a public struct keeps its size and field offsets for the whole major version, with
 *     one kind of exception: a struct the library fills and that may grow is passed
 *     together with its size (conveyor_ring_read_stats), grows only at its end, and the
 *     library fills only the bytes both sides know. conveyor_ring_stats grew in 0.2
 *     without that; since 0.4 conveyor_ring_get_stats fills exactly its 0.2 layout and
 *     later fields come only through conveyor_ring_read_stats.
 * The shared library's SONAME is libconveyor.so.<major>.
 */

/**
 * CONVEYOR_API marks every public function: the library is compiled with hidden
 * visibility, so only these symbols are exported from libconveyor.so.
 */
#if defined(__GNUC__) || defined(__clang__)
#define CONVEYOR_API __attribute__((visibility("default")))
#else
#define CONVEYOR_API
#endif

/** Major version: incremented on any incompatible change of this header. */
#define CONVEYOR_VERSION_MAJOR 0
/** Minor version: incremented when functions or status codes are added. */
#define CONVEYOR_VERSION_MINOR 6
/** Patch version: incremented for fixes that change no declaration. */
#define CONVEYOR_VERSION_PATCH 0
/** The version as one comparable number: major * 10000 + minor * 100 + patch. */
#define CONVEYOR_VERSION_NUMBER \
    (CONVEYOR_VERSION_MAJOR * 10000 + CONVEYOR_VERSION_MINOR * 100 + CONVEYOR_VERSION_PATCH)
/** The version as a string literal, "major.minor.patch". */
#define CONVEYOR_VERSION_STRING "0.6.0"
/** True (1) at compile time when this header is at least version major.minor.patch. */
#define CONVEYOR_CHECK_VERSION(major, minor, patch) \
    (CONVEYOR_VERSION_NUMBER >= ((major) * 10000 + (minor) * 100 + (patch)))

/**
 * The version of the library actually linked, as CONVEYOR_VERSION_NUMBER encodes it.
 * Compare it with the macro to detect a header/library mismatch. Cost: a return.
 */
CONVEYOR_API int conveyor_version_number(void);

/** The linked library's version as a static string, "major.minor.patch". Never NULL. */
CONVEYOR_API const char *conveyor_version_string(void);

/* ===================================================================================
 * 2. Status codes
 * =================================================================================== */

/**
 * Every fallible function returns one of these. The numbers are stable: a code keeps its
 * meaning in every later version, and new codes only get new numbers.
 */
enum conveyor_status {
    CONVEYOR_OK = 0,                 /**< Success. */
    CONVEYOR_E_NULL_POINTER = 1,     /**< A required pointer was NULL (with a count > 0). */
    CONVEYOR_E_INVALID_ARGUMENT = 2, /**< An argument is outside its documented range. */
    CONVEYOR_E_OVERFLOW = 3,         /**< count * element size exceeds PTRDIFF_MAX. */
    CONVEYOR_E_MISALIGNED = 4,       /**< A pointer is not aligned to its element type. */
    CONVEYOR_E_OVERLAP = 5,          /**< An output partially overlaps an input. */
    CONVEYOR_E_UNSUPPORTED = 6,      /**< The feature is not built in (e.g. no OpenMP). */
    CONVEYOR_E_NO_MEMORY = 7,        /**< An allocation failed. */
    CONVEYOR_E_TIMEOUT = 8,          /**< Nothing became ready before the timeout (0 = try once). */
    CONVEYOR_E_END_OF_STREAM = 9,    /**< The sender closed the ring or lane and everything sent was received. */
    CONVEYOR_E_CLOSED = 10,          /**< The ring or lane is closed: nothing more may be loaned or sent. */
    CONVEYOR_E_PEER_DEAD = 11,       /**< The process on the other side died (or left) without closing. */
    CONVEYOR_E_BAD_STATE = 12,       /**< Call out of order: commit without loan, double release... */
    CONVEYOR_E_WRONG_ROLE = 13,      /**< A producer call on a consumer handle, or the reverse. */
    CONVEYOR_E_NOT_A_RING = 14,      /**< The memory does not start with a ring header (or, since 0.5, the pool or channel header asked for). */
    CONVEYOR_E_VERSION = 15,         /**< The ring, pool or channel was made with another layout version. */
    CONVEYOR_E_TRUNCATED = 16,       /**< The file starts like a ring, pool or channel but is smaller than its header says. */
    CONVEYOR_E_CORRUPT = 17,         /**< A shared index or frame header is impossible. */
    CONVEYOR_E_EXISTS = 18,          /**< A NAMED ring, pool or channel of that name already exists. */
    CONVEYOR_E_BUSY = 19,            /**< That side is held by another live handle (in this or another process). */
    CONVEYOR_E_SYSTEM = 20,          /**< A system call failed; errno tells which way. */
    CONVEYOR_E_TOO_LARGE = 21,       /**< A frame does not fit in a slot. */
    CONVEYOR_E_NOT_SEALED = 22       /**< A ring, pool or channel fd is not sealed against resizing (F_SEAL_SHRINK/GROW). Since 0.3. */
};

/**
 * A one-line English message for a status code, e.g. "output partially overlaps an
 * input". Unknown codes give "unknown conveyor status code". Never NULL; the string is
 * static and must not be freed. Cost: a table lookup.
 */
CONVEYOR_API const char *conveyor_status_message(int status);

/**
 * The symbolic name of a status code, e.g. "CONVEYOR_E_OVERLAP", or
 * "CONVEYOR_E_UNKNOWN" for an unknown code. Never NULL; static storage.
 */
CONVEYOR_API const char *conveyor_status_name(int status);

/* ===================================================================================
 * 3. Threads
 *
 * With OpenMP built in (the default), a kernel splits its work into one contiguous chunk
 * per thread, but only when its output is at least the parallel threshold: a parallel
 * region costs microseconds, which small arrays cannot repay.
 *
 * Idle-spin policy: after a parallel region, LLVM's libomp keeps its worker threads
 * spinning for KMP_BLOCKTIME milliseconds (200 by default). In a pipeline that runs one
 * stage per core, that spin steals the core another stage needs. Conveyor therefore sets
 * KMP_BLOCKTIME=0 when the library is loaded, unless the environment already sets it:
 * workers sleep at once, and waking them costs tens of microseconds per region on a VM,
 * which the default threshold accounts for. Export KMP_BLOCKTIME yourself to choose otherwise.
 * =================================================================================== */

/** The largest thread count conveyor_set_threads accepts. */
#define CONVEYOR_MAX_THREADS 256

/** 1 if this library was built with OpenMP (parallel kernels), 0 if it is serial. */
CONVEYOR_API int conveyor_has_openmp(void);

/**
 * Sets the number of threads every kernel uses from now on, process-wide.
 * `threads` must be in 1...CONVEYOR_MAX_THREADS (else CONVEYOR_E_INVALID_ARGUMENT).
 * A serial build accepts 1 and returns CONVEYOR_E_UNSUPPORTED for more.
 * The default is OpenMP's own (OMP_NUM_THREADS, else the number of cores); 1 when serial.
 */
CONVEYOR_API int conveyor_set_threads(int threads);

/**
 * Sets the thread count for kernels called from the calling thread only, overriding the
 * process-wide one; 0 removes the override. A pipeline stage uses it to stay on one core
 * without touching the process-wide setting other threads rely on.
 * Errors: as conveyor_set_threads (0 is valid here).
 */
CONVEYOR_API int conveyor_set_threads_local(int threads);

/** The number of threads kernels called from this thread use now (>= 1): the thread's
 * override if set, else the process-wide count. Cost: an atomic load. */
CONVEYOR_API int conveyor_get_threads(void);

/**
 * Sets the output size in bytes from which a kernel runs in parallel; below it the
 * kernel runs on the calling thread alone. 0 means always parallel (when threads > 1).
 * The default, CONVEYOR_DEFAULT_PARALLEL_THRESHOLD, was measured on a 2-core x86-64 VM
 * (see below). Never fails; returns CONVEYOR_OK.
 */
CONVEYOR_API int conveyor_set_parallel_threshold(size_t bytes);

/** The current parallel threshold in bytes. */
CONVEYOR_API size_t conveyor_get_parallel_threshold(void);

/**
 * Default parallel threshold in output bytes: 2 MiB. Measured with `conveyor-bench
 * threshold` on a 2-core x86-64 VM: with KMP_BLOCKTIME=0 a parallel region costs 30-40 us
 * (waking a sleeping worker), and two threads first beat one at 1-2 MiB. With workers
 * left spinning (KMP_BLOCKTIME=200) the break-even is near 64 KiB: lower the threshold to
 * match if you choose that policy.
 */
#define CONVEYOR_DEFAULT_PARALLEL_THRESHOLD 2097152

/* ===================================================================================
 * 4. Elementwise kernels
 *
 * out[i] = op(x[i]) or op(x[i], y[i]) for i in 0..<n, for double (f64) and float (f32).
 * Cost: one read of each input and one write of out, at memory speed for large n.
 * Errors: CONVEYOR_E_NULL_POINTER, CONVEYOR_E_MISALIGNED, CONVEYOR_E_OVERLAP,
 * CONVEYOR_E_OVERFLOW (n * element size exceeds PTRDIFF_MAX).
 *
 * min and max: `min(x, a)` is `a < x ? a : x`, so a NaN in x propagates to out while a NaN
 * in a (or y) is ignored: data errors stay visible.
 * =================================================================================== */

/** out = x (a parallel, SIMD copy). */
CONVEYOR_API int conveyor_f64_copy(double *out, const double *x, size_t n);
/** out = x + a */
CONVEYOR_API int conveyor_f64_add_scalar(double *out, const double *x, double a, size_t n);
/** out = x - a */
CONVEYOR_API int conveyor_f64_sub_scalar(double *out, const double *x, double a, size_t n);
/** out = x * a */
CONVEYOR_API int conveyor_f64_mul_scalar(double *out, const double *x, double a, size_t n);
/** out = x / a (a true division, not a multiplication by 1/a). */
CONVEYOR_API int conveyor_f64_div_scalar(double *out, const double *x, double a, size_t n);
/** out = x * x */
CONVEYOR_API int conveyor_f64_square(double *out, const double *x, size_t n);
/** out = a * x + b, rounded after the product and after the sum (no FMA). */
CONVEYOR_API int conveyor_f64_affine(double *out, const double *x, double a, double b, size_t n);
/** out = min(x, a) */
CONVEYOR_API int conveyor_f64_min_scalar(double *out, const double *x, double a, size_t n);
/** out = max(x, a) */
CONVEYOR_API int conveyor_f64_max_scalar(double *out, const double *x, double a, size_t n);
/** out = x + y */
CONVEYOR_API int conveyor_f64_add(double *out, const double *x, const double *y, size_t n);
/** out = x - y */
CONVEYOR_API int conveyor_f64_sub(double *out, const double *x, const double *y, size_t n);
/** out = x * y */
CONVEYOR_API int conveyor_f64_mul(double *out, const double *x, const double *y, size_t n);
/** out = x / y */
CONVEYOR_API int conveyor_f64_div(double *out, const double *x, const double *y, size_t n);
/** out = min(x, y) */
CONVEYOR_API int conveyor_f64_min(double *out, const double *x, const double *y, size_t n);
/** out = max(x, y) */
CONVEYOR_API int conveyor_f64_max(double *out, const double *x, const double *y, size_t n);

/** out = x (a parallel, SIMD copy). */
CONVEYOR_API int conveyor_f32_copy(float *out, const float *x, size_t n);
/** out = x + a */
CONVEYOR_API int conveyor_f32_add_scalar(float *out, const float *x, float a, size_t n);
/** out = x - a */
CONVEYOR_API int conveyor_f32_sub_scalar(float *out, const float *x, float a, size_t n);
/** out = x * a */
CONVEYOR_API int conveyor_f32_mul_scalar(float *out, const float *x, float a, size_t n);
/** out = x / a */
CONVEYOR_API int conveyor_f32_div_scalar(float *out, const float *x, float a, size_t n);
/** out = x * x */
CONVEYOR_API int conveyor_f32_square(float *out, const float *x, size_t n);
/** out = a * x + b, rounded after the product and after the sum (no FMA). */
CONVEYOR_API int conveyor_f32_affine(float *out, const float *x, float a, float b, size_t n);
/** out = min(x, a) */
CONVEYOR_API int conveyor_f32_min_scalar(float *out, const float *x, float a, size_t n);
/** out = max(x, a) */
CONVEYOR_API int conveyor_f32_max_scalar(float *out, const float *x, float a, size_t n);
/** out = x + y */
CONVEYOR_API int conveyor_f32_add(float *out, const float *x, const float *y, size_t n);
/** out = x - y */
CONVEYOR_API int conveyor_f32_sub(float *out, const float *x, const float *y, size_t n);
/** out = x * y */
CONVEYOR_API int conveyor_f32_mul(float *out, const float *x, const float *y, size_t n);
/** out = x / y */
CONVEYOR_API int conveyor_f32_div(float *out, const float *x, const float *y, size_t n);
/** out = min(x, y) */
CONVEYOR_API int conveyor_f32_min(float *out, const float *x, const float *y, size_t n);
/** out = max(x, y) */
CONVEYOR_API int conveyor_f32_max(float *out, const float *x, const float *y, size_t n);

/* ===================================================================================
 * 5. Programs: fused elementwise ops
 *
 * A program is a short list of elementwise ops applied left to right in ONE pass: the
 * kernel walks x in strips of 256 bytes, applies every op to a strip while it sits in
 * vector registers, and writes it once. f(g(h(x))) = ((x*x)*3)+1 costs one read and one write of
 * memory instead of three of each, and gives bit-identical results to three separate
 * calls.
 * =================================================================================== */

/** The elementwise operations a program step can apply to the running value v. */
enum conveyor_opcode {
    CONVEYOR_OP_COPY = 0,       /**< v = v */
    CONVEYOR_OP_ADD_SCALAR = 1, /**< v = v + a */
    CONVEYOR_OP_SUB_SCALAR = 2, /**< v = v - a */
    CONVEYOR_OP_RSUB_SCALAR = 3,/**< v = a - v */
    CONVEYOR_OP_MUL_SCALAR = 4, /**< v = v * a */
    CONVEYOR_OP_DIV_SCALAR = 5, /**< v = v / a */
    CONVEYOR_OP_RDIV_SCALAR = 6,/**< v = a / v */
    CONVEYOR_OP_SQUARE = 7,     /**< v = v * v */
    CONVEYOR_OP_AFFINE = 8,     /**< v = a * v + b (two roundings) */
    CONVEYOR_OP_MIN_SCALAR = 9, /**< v = min(v, a) */
    CONVEYOR_OP_MAX_SCALAR = 10,/**< v = max(v, a) */
    CONVEYOR_OP_ADD = 11,       /**< v = v + operand[i] */
    CONVEYOR_OP_SUB = 12,       /**< v = v - operand[i] */
    CONVEYOR_OP_MUL = 13,       /**< v = v * operand[i] */
    CONVEYOR_OP_DIV = 14,       /**< v = v / operand[i] */
    CONVEYOR_OP_MIN = 15,       /**< v = min(v, operand[i]) */
    CONVEYOR_OP_MAX = 16        /**< v = max(v, operand[i]) */
};

/** The most steps one program may have. */
#define CONVEYOR_PROGRAM_MAX_OPS 16

/**
 * One program step. Scalars are given as double; f32 programs round them to float
 * once, before the pass. Fields an op does not use are ignored, except `reserved`.
 */
typedef struct conveyor_op {
    int32_t code;         /**< A CONVEYOR_OP_* value. */
    uint32_t reserved;    /**< Must be 0 (room for flags in later versions). */
    double a;             /**< First scalar operand (the *_SCALAR ops and AFFINE). */
    double b;             /**< Second scalar operand (AFFINE only). */
    const void *operand;  /**< ADD...MAX: an array of n elements of the program's type. */
} conveyor_op;

/**
 * out = ops[count-1](...ops[1](ops[0](x))...), elementwise, in one pass over memory.
 * `count` may be 0 (a copy). An `operand` may be any array that does not partially
 * overlap out; it may be out itself (element i of every input is read before out[i] is
 * written, so it then holds out's values from before the call).
 * Errors: as in section 4, plus CONVEYOR_E_INVALID_ARGUMENT for an unknown opcode, a
 * nonzero `reserved`, or count > CONVEYOR_PROGRAM_MAX_OPS, and CONVEYOR_E_NULL_POINTER
 * for a missing operand. Arguments are checked before anything is written.
 */
CONVEYOR_API int conveyor_f64_program(double *out, const double *x, size_t n,
                         const conveyor_op *ops, size_t count);

/** The float version of conveyor_f64_program. */
CONVEYOR_API int conveyor_f32_program(float *out, const float *x, size_t n,
                         const conveyor_op *ops, size_t count);

/* ===================================================================================
 * 6. Reductions
 * =================================================================================== */

/**
 * *result = x[0] + ... + x[n-1], accumulated in double with compensated (TwoSum)
 * arithmetic per SIMD lane, per thread chunk and across them. The error bound is that of
 * a sum in twice the working precision (Ogita, Rump & Oishi, "Accurate sum and dot
 * product", 2005): about 2^-53 * |sum| + (n * 2^-53)^2 * sum|x|, against a plain loop's
 * n * 2^-53 * sum|x|. Infinities and NaNs propagate as in a plain sum. The result depends only on the data and the thread count (the
 * chunking is fixed by it, whether or not the region runs in parallel), never on timing
 * or on the address of x. An empty array sums to 0.
 * Cost: one read of x; compute-bound at about one cycle per element per core.
 * Errors: CONVEYOR_E_NULL_POINTER (x with n > 0, or result), CONVEYOR_E_MISALIGNED.
 */
CONVEYOR_API int conveyor_f64_sum(const double *x, size_t n, double *result);

/** Sum of floats, each widened to double, accumulated as conveyor_f64_sum does. */
CONVEYOR_API int conveyor_f32_sum(const float *x, size_t n, double *result);

/**
 * Generate, transform and sum in one pass: *result is, to the bit, what
 * conveyor_f64_fill_uniform(tmp, n, seed, stream, first), then
 * conveyor_f64_program(tmp, tmp, n, ops, count), then conveyor_f64_sum(tmp, n, result) give on
 * the same thread count — but the n values are never stored: each thread makes, transforms
 * and sums them 32 at a time in registers (f64), or in blocks of 4096 values that stay in
 * its L1/L2 cache (f32). Use it to sum
 * f(g(h(x))) over generated samples when nothing else needs them.
 * Only ops without an operand array (codes below CONVEYOR_OP_ADD) are accepted.
 * Cost: compute only (one hash, the program's steps and one TwoSum per value); no memory
 * traffic, at most 16 KB of stack per thread.
 * Errors: CONVEYOR_E_NULL_POINTER (result; ops with count > 0), CONVEYOR_E_INVALID_ARGUMENT
 * (count > CONVEYOR_PROGRAM_MAX_OPS, an unknown opcode, an op with an operand, a nonzero
 * reserved field), CONVEYOR_E_OVERFLOW (n * 8 exceeds PTRDIFF_MAX).
 */
CONVEYOR_API int conveyor_f64_uniform_program_sum(size_t n, uint64_t seed, uint64_t stream, uint64_t first,
                                     const conveyor_op *ops, size_t count, double *result);

/** The float version: values generated and transformed in float (as conveyor_f32_fill_uniform
 * and conveyor_f32_program), summed in double as conveyor_f32_sum. */
CONVEYOR_API int conveyor_f32_uniform_program_sum(size_t n, uint64_t seed, uint64_t stream, uint64_t first,
                                     const conveyor_op *ops, size_t count, double *result);

/* ===================================================================================
 * 7. Random numbers: counter-based uniform [0, 1)
 *
 * Element i of stream (seed, stream) is a pure function of (seed, stream, first + i), so
 * any split of an array into chunks or threads produces the same values, on every
 * machine. The generator is SplitMix64 evaluated at counter i:
 *     key  = mix64(mix64(seed) ^ (stream * 0xD1B54A32D192ED03))
 *     bits = mix64(key + (first + i + 1) * 0x9E3779B97F4A7C15)
 * where mix64 is the SplitMix64 finalizer. A double takes the top 52 bits as the mantissa
 * of a number in [1, 2) and subtracts 1 (so values are multiples of 2^-52); a float takes
 * the top 23 bits the same way. Streams start at unrelated points of a 2^64 cycle.
 * Not for cryptography.
 * Cost: about 10 vector instructions per 8 doubles; parallel above the threshold.
 * Errors: CONVEYOR_E_NULL_POINTER, CONVEYOR_E_MISALIGNED, CONVEYOR_E_OVERFLOW.
 * =================================================================================== */

/** Fills out[0..<n] with element first...first+n-1 of uniform stream (seed, stream). */
CONVEYOR_API int conveyor_f64_fill_uniform(double *out, size_t n, uint64_t seed, uint64_t stream,
                              uint64_t first);

/** The float version of conveyor_f64_fill_uniform (a different sequence of values). */
CONVEYOR_API int conveyor_f32_fill_uniform(float *out, size_t n, uint64_t seed, uint64_t stream,
                              uint64_t first);

/* ===================================================================================
 * 8. Rings: zero-copy frames between threads and processes
 *
 * A ring is a fixed array of slots in one shared mapping, with exactly one producer and
 * one consumer. The producer loans a slot, writes a frame into it in place and commits
 * it; the consumer receives the frame as a read-only pointer into the same memory,
 * reads it in place and releases it, which frees the slot for reuse. Nothing is copied
 * or serialized: what crosses is a sequence number. Frames arrive in commit order, each
 * exactly once. When all slots are full the producer waits (backpressure); when none is
 * full the consumer waits. A waiting side spins briefly, then sleeps on a futex; a busy
 * ring makes no system calls at all.
 *
 * Backings (conveyor_ring_config.backing):
 *   ANONYMOUS  shared anonymous memory: threads of one process, or inherited across fork.
 *   MEMFD      a memfd: pass conveyor_ring_fd() to another process (e.g. dup2 it in
 *              posix_spawn file actions) and attach there with conveyor_ring_attach_fd.
 *   NAMED      a POSIX shared-memory object "/name", created exclusively with mode 0600:
 *              an unrelated process attaches with conveyor_ring_attach_named. The creating
 *              process's conveyor_ring_destroy unlinks the name (a forked child's does not).
 *
 * Each side belongs to one handle at a time (its process id is recorded in the ring). A
 * side may be taken over when its owner is dead or has destroyed its handle; the new owner
 * resumes at the shared position, so a new consumer receives again the frame the previous
 * one held: no slot is lost. A handle inherited across fork moves to the child on its
 * first use (or conveyor_ring_claim); the parent must then leave its copy alone, except to
 * destroy it, which then does not free the side. A handle used again after the side
 * changed hands resumes at the shared position too. That first use claims as
 * conveyor_ring_claim does and fails as it does, so every producer and consumer call
 * (loan, commit, abandon, push, close, receive, release) may also return CONVEYOR_E_BUSY
 * (a live handle holds the side) or CONVEYOR_E_CORRUPT (impossible shared counters:
 * nothing claimed) on the first use of a handle after a fork.
 *
 * If the other side's process dies (or destroys its handle) without closing, a call that
 * waits returns CONVEYOR_E_PEER_DEAD within about 10 ms (checked every
 * CONVEYOR_RING_PEER_CHECK_NS), and so does a poll (timeout 0) made after that delay,
 * after the consumer has received every frame committed before the death.
 *
 * Timeouts: < 0 waits without limit, 0 tries once, > 0 waits at most that long (however
 * large: the deadline saturates), spinning included; a call returns at most a few
 * microseconds after its deadline, plus scheduling delay.
 *
 * Trust: the other process may be buggy or hostile. Geometry is read once at attach and
 * validated; every shared index and frame header read later is checked before use, so a
 * corrupted ring yields CONVEYOR_E_CORRUPT, never an access outside the mapping. A MEMFD
 * ring is sealed at its size (F_SEAL_SHRINK | F_SEAL_GROW), and conveyor_ring_attach_fd
 * refuses any fd that is not, so no peer can truncate the memory under another process.
 * What remains: a NAMED ring cannot be sealed (POSIX shared memory has no seals), so a
 * process of the same user that truncates the object makes the others' next access to
 * it raise SIGBUS. Name rings only among processes you trust that far; give untrusted
 * peers a MEMFD ring. The default spin an attach reads from the header (another process
 * wrote it) is bounded: above 2^24 pauses (well under a second of spinning) it is taken as
 * 2^24, for rings and channels alike; conveyor_ring_set_spin is not bounded.
 * A handle is used by one thread at a time; different handles are independent.
 * =================================================================================== */

/** An opaque handle on one side (producer or consumer) of a ring. */
typedef struct conveyor_ring conveyor_ring;

/** The most slots a ring may have. */
#define CONVEYOR_RING_MAX_SLOTS 65536
/** The largest slot capacity in bytes (1 TiB). */
#define CONVEYOR_RING_MAX_SLOT_BYTES ((uint64_t)1 << 40)
/** How often a sleeping side checks that its peer process is alive, in nanoseconds. */
#define CONVEYOR_RING_PEER_CHECK_NS 10000000
/** Default spin iterations (a pause each) before a waiting side sleeps. */
#define CONVEYOR_RING_DEFAULT_SPIN 2048

/** How a ring's memory is obtained (see the backings above). */
enum conveyor_ring_backing {
    CONVEYOR_RING_ANONYMOUS = 0,
    CONVEYOR_RING_MEMFD = 1,
    CONVEYOR_RING_NAMED = 2
};

/** Which side a handle is. */
enum conveyor_ring_role {
    CONVEYOR_RING_PRODUCER = 1,
    CONVEYOR_RING_CONSUMER = 2,
    /** A handle that holds the ring's memory (and a NAMED ring's name) but neither side:
     * what a process keeps to hand sides out later with conveyor_ring_open_side, or to
     * pass the ring on. Producer and consumer calls on it fail with WRONG_ROLE. Since 0.4. */
    CONVEYOR_RING_HOLDER = 3
};

/** Parameters of a new ring. Zero-initialize, then set the fields you need. */
typedef struct conveyor_ring_config {
    uint32_t slot_count;  /**< Slots in flight, 1...CONVEYOR_RING_MAX_SLOTS. */
    uint32_t spin;        /**< Spin iterations before sleeping; 0 = sleep at once. The
                               creator's handles use it as given; a handle attached by fd
                               or name takes at most 2^24 (see "Trust" above). */
    uint64_t slot_bytes;  /**< Capacity of each slot, 1...CONVEYOR_RING_MAX_SLOT_BYTES. */
    int32_t backing;      /**< A conveyor_ring_backing. */
    uint32_t reserved;    /**< Must be 0. */
    const char *name;     /**< NAMED only: "/name", at most 200 bytes, no other '/'. */
} conveyor_ring_config;

/** Element types a frame may declare. */
enum conveyor_dtype {
    CONVEYOR_DTYPE_BYTES = 0, /**< Raw bytes (element size 1). */
    CONVEYOR_DTYPE_F32 = 1,   /**< float */
    CONVEYOR_DTYPE_F64 = 2    /**< double */
};

/** The most dimensions a frame's shape may have. */
#define CONVEYOR_FRAME_MAX_RANK 4

/**
 * What a frame holds, written by the producer at commit and handed to the consumer.
 * byte_length must equal the product of shape[0..<rank] times the element size
 * (a rank-0 frame is one element) and fit in the slot.
 */
typedef struct conveyor_frame_info {
    uint32_t dtype;                           /**< A conveyor_dtype. */
    uint32_t rank;                            /**< 0...CONVEYOR_FRAME_MAX_RANK. */
    uint64_t shape[CONVEYOR_FRAME_MAX_RANK];  /**< Extents; entries past rank are ignored. */
    uint64_t byte_length;                     /**< Bytes of payload. */
    uint64_t tag;                             /**< Free for the application (e.g. an item index). */
} conveyor_frame_info;

/** Counters of a ring, kept in the shared memory and readable from either side.
 * This struct may grow at its end: read it with conveyor_ring_read_stats. */
typedef struct conveyor_ring_stats {
    uint64_t frames_committed;   /**< Frames the producer published. */
    uint64_t bytes_committed;    /**< Sum of their byte_length. */
    uint64_t frames_released;    /**< Frames the consumer released. */
    uint64_t producer_waits;     /**< Times the producer slept on a full ring (futex waits). */
    uint64_t producer_wakes;     /**< Futex wakes the producer issued to a sleeping consumer. */
    uint64_t consumer_waits;     /**< Times the consumer slept on an empty ring. */
    uint64_t consumer_wakes;     /**< Futex wakes the consumer issued to a sleeping producer. */
    uint64_t peak_occupancy;     /**< Most frames in flight, as the producer saw it. */
    uint32_t slot_count;         /**< The ring's slot count. */
    uint32_t closed;             /**< 1 once the producer closed the ring. */
    uint64_t slot_bytes;         /**< The ring's slot capacity. */
    uint64_t mapped_bytes;       /**< Bytes of the ring's shared mapping (header, descriptors,
                                      page-rounded slots): what the ring costs in memory. Since 0.2. */
} conveyor_ring_stats;

/** sizeof(conveyor_ring_stats) in 0.1, the smallest size conveyor_ring_read_stats accepts. */
#define CONVEYOR_RING_STATS_SIZE_0_1 80
/** sizeof(conveyor_ring_stats) in 0.2 to 0.4: what conveyor_ring_get_stats fills. */
#define CONVEYOR_RING_STATS_SIZE_0_2 88

/**
 * Creates a ring and returns handles on the sides asked for: pass NULL for a side another
 * process will attach. At least one of producer and consumer must be non-NULL.
 * Cost: one mmap of slot_count pages-rounded slots plus a header; memory is committed
 * lazily as slots are first written.
 * Errors: CONVEYOR_E_INVALID_ARGUMENT (a field out of range, bad name), CONVEYOR_E_EXISTS
 * (NAMED, the name is taken), CONVEYOR_E_SYSTEM (shm_open, memfd_create, ftruncate or mmap
 * failed; errno is kept), CONVEYOR_E_NO_MEMORY, CONVEYOR_E_NULL_POINTER.
 */
CONVEYOR_API int conveyor_ring_create(const conveyor_ring_config *config, conveyor_ring **producer,
                         conveyor_ring **consumer);

/**
 * Creates a ring and returns a CONVEYOR_RING_HOLDER handle on it: both sides stay free for
 * conveyor_ring_open_side (here or in a forked child) or for processes that attach by fd
 * or name. The holder keeps the memory mapped and, for NAMED, the name: the creating
 * process unlinks it when its last handle on the ring is destroyed (or at
 * conveyor_ring_remove_name). Cost and errors: as conveyor_ring_create. Since 0.4.
 */
CONVEYOR_API int conveyor_ring_create_holder(const conveyor_ring_config *config,
                                             conveyor_ring **holder);

/**
 * Opens `role` (PRODUCER or CONSUMER) of the ring `ring` is a handle on, as a new handle
 * sharing its mapping: no system call but the liveness probe of a previous owner. `ring`
 * may be a holder or a side, and may be one inherited across fork (the new handle then
 * belongs to the calling process). The new handle starts with the ring's default spin.
 * Errors: CONVEYOR_E_BUSY (a live handle holds that side), CONVEYOR_E_CORRUPT (impossible
 * shared counters: nothing claimed), CONVEYOR_E_INVALID_ARGUMENT (role),
 * CONVEYOR_E_NO_MEMORY, CONVEYOR_E_NULL_POINTER. Since 0.4.
 */
CONVEYOR_API int conveyor_ring_open_side(const conveyor_ring *ring, int role,
                                         conveyor_ring **side);

/**
 * Attaches to the ring in a sealed memfd (which it dups; the caller keeps its own), as
 * `role`. Validates the seals, magic, layout version, geometry, file size and shared
 * counters first; a failed attach claims nothing. `role` may be CONVEYOR_RING_HOLDER
 * (since 0.4): then no side is claimed. Cost: fstat, fcntl, mmap, and one
 * pidfd probe if the side's previous owner must be checked.
 * Errors: CONVEYOR_E_NOT_SEALED (the fd can be resized: not a MEMFD ring's; attach a NAMED
 * ring by name), CONVEYOR_E_NOT_A_RING, CONVEYOR_E_VERSION, CONVEYOR_E_TRUNCATED,
 * CONVEYOR_E_CORRUPT, CONVEYOR_E_BUSY (the side is held by another live handle),
 * CONVEYOR_E_INVALID_ARGUMENT, CONVEYOR_E_SYSTEM.
 */
CONVEYOR_API int conveyor_ring_attach_fd(int fd, int role, conveyor_ring **ring);

/** Attaches to the NAMED ring `name` as `role`. Errors: as attach_fd, plus
 * CONVEYOR_E_SYSTEM with errno ENOENT when no such ring exists. */
CONVEYOR_API int conveyor_ring_attach_named(const char *name, int role, conveyor_ring **ring);

/** Removes a NAMED ring's name (attached handles keep working). Errors:
 * CONVEYOR_E_INVALID_ARGUMENT, CONVEYOR_E_SYSTEM (errno ENOENT if absent). */
CONVEYOR_API int conveyor_ring_unlink_named(const char *name);

/**
 * Removes the name of a NAMED ring this process created, now rather than when its last
 * handle here is destroyed; once only, so a later ring of the same name is never removed
 * by mistake. A no-op (CONVEYOR_OK) on other handles, in forked children and the second
 * time. Errors: CONVEYOR_E_NULL_POINTER, CONVEYOR_E_SYSTEM (shm_unlink failed). Since 0.4.
 */
CONVEYOR_API int conveyor_ring_remove_name(conveyor_ring *ring);

/** The name of the NAMED ring `ring` is a handle on ("/name", created or attached by
 * name; owned by the handle's mapping), or NULL for other backings. Since 0.4. */
CONVEYOR_API const char *conveyor_ring_name(const conveyor_ring *ring);

/** The fd behind a MEMFD or NAMED ring handle (owned by the handle), or -1. */
CONVEYOR_API int conveyor_ring_fd(const conveyor_ring *ring);

/** The role of a handle (a conveyor_ring_role, HOLDER included), or 0 for NULL. */
CONVEYOR_API int conveyor_ring_role_of(const conveyor_ring *ring);

/**
 * Records the calling process as the owner of this handle's side, so the peer can tell
 * when it dies. Done automatically on first use after fork; call it explicitly right after
 * fork in the child to close the window before that first use. If the side was taken
 * over or handed back meanwhile, the handle resumes at the shared position.
 * Errors: CONVEYOR_E_BUSY if another live handle holds the side, CONVEYOR_E_CORRUPT if
 * the shared counters are impossible (then nothing is claimed), CONVEYOR_E_WRONG_ROLE for
 * a holder.
 */
CONVEYOR_API int conveyor_ring_claim(conveyor_ring *ring);

/** Sets this handle's spin budget (pause iterations before sleeping; 0 = sleep at once). */
CONVEYOR_API int conveyor_ring_set_spin(conveyor_ring *ring, uint32_t spin);

/**
 * Hands the side back, unmaps and frees the handle (NULL is fine). It does not close the
 * ring: a producer should call conveyor_ring_close first, or its consumer sees PEER_DEAD.
 * A loan or received frame outstanding on this handle is abandoned: the next handle to
 * attach (in this or another process) resumes there and receives that frame again. A
 * handle inherited over fork and not used since does not hand the side back (it may be
 * the other process's now). The creating process of a NAMED ring unlinks its name here.
 */
CONVEYOR_API void conveyor_ring_destroy(conveyor_ring *ring);

/**
 * Producer: waits for a free slot and lends it: *data points at slot_bytes writable bytes
 * (page-aligned), *capacity receives slot_bytes. timeout_ns < 0 waits without limit,
 * 0 tries once, > 0 waits at most that long. One loan at a time.
 * Errors: CONVEYOR_E_TIMEOUT, CONVEYOR_E_CLOSED, CONVEYOR_E_PEER_DEAD (consumer died),
 * CONVEYOR_E_BAD_STATE (a loan is already outstanding), CONVEYOR_E_WRONG_ROLE,
 * CONVEYOR_E_CORRUPT, CONVEYOR_E_NULL_POINTER.
 */
CONVEYOR_API int conveyor_ring_loan(conveyor_ring *ring, int64_t timeout_ns, void **data, uint64_t *capacity);

/**
 * Producer: publishes the loaned slot as the next frame, described by `info`.
 * Cost: a release store and a fence; a futex wake only if the consumer sleeps.
 * Errors: CONVEYOR_E_BAD_STATE (no loan), CONVEYOR_E_TOO_LARGE (byte_length > slot),
 * CONVEYOR_E_INVALID_ARGUMENT (unknown dtype, rank > 4, shape and byte_length disagree),
 * CONVEYOR_E_WRONG_ROLE, CONVEYOR_E_NULL_POINTER. On error the loan stays outstanding.
 */
CONVEYOR_API int conveyor_ring_commit(conveyor_ring *ring, const conveyor_frame_info *info);

/** Producer: gives the loaned slot back unpublished. Errors: CONVEYOR_E_BAD_STATE,
 * CONVEYOR_E_WRONG_ROLE. */
CONVEYOR_API int conveyor_ring_abandon(conveyor_ring *ring);

/**
 * Producer: copies info->byte_length bytes from `bytes` into a loaned slot and commits
 * it: one copy into the slot, for data not built in place.
 * Errors: those of loan and commit.
 */
CONVEYOR_API int conveyor_ring_push(conveyor_ring *ring, int64_t timeout_ns, const void *bytes,
                       const conveyor_frame_info *info);

/**
 * Producer: ends the stream. The consumer receives every frame committed before, then
 * CONVEYOR_E_END_OF_STREAM. Later loans fail with CONVEYOR_E_CLOSED; closing twice is
 * fine. An outstanding loan is abandoned.
 */
CONVEYOR_API int conveyor_ring_close(conveyor_ring *ring);

/**
 * Consumer: waits for the next frame; *data points at it, read-only, valid until
 * conveyor_ring_release releases it; *info receives its (validated) description. Timeout
 * as in loan. A handle holds one frame at a time unless conveyor_ring_set_hold_limit says
 * more.
 * Errors: CONVEYOR_E_TIMEOUT, CONVEYOR_E_END_OF_STREAM, CONVEYOR_E_PEER_DEAD (producer
 * died without closing, after all its frames were received), CONVEYOR_E_BAD_STATE (the
 * hold limit's worth of frames is held), CONVEYOR_E_CORRUPT, CONVEYOR_E_WRONG_ROLE,
 * CONVEYOR_E_NULL_POINTER.
 */
CONVEYOR_API int conveyor_ring_receive(conveyor_ring *ring, int64_t timeout_ns, const void **data,
                          conveyor_frame_info *info);

/** Consumer: releases the oldest frame it holds (with a hold limit of 1, the one received
 * last), freeing its slot for the producer.
 * Errors: CONVEYOR_E_BAD_STATE (nothing held: double release), CONVEYOR_E_WRONG_ROLE. */
CONVEYOR_API int conveyor_ring_release(conveyor_ring *ring);

/**
 * Consumer: lets this handle hold up to `frames` received frames at once (1...slot_count;
 * the default is 1). Frames are still released oldest first, so a consumer can keep the
 * previous frame while it receives the next (Python's `for x in consumer` does) or keep a
 * window of frames. A limit below the frames held now only stops new receives until
 * enough are released. Errors: CONVEYOR_E_INVALID_ARGUMENT, CONVEYOR_E_WRONG_ROLE,
 * CONVEYOR_E_NULL_POINTER. Since 0.4.
 */
CONVEYOR_API int conveyor_ring_set_hold_limit(conveyor_ring *ring, uint32_t frames);

/**
 * The address of slot `index` (0...slot_count-1) in this handle's mapping, or NULL for a
 * bad index or handle: lets a caller tell which slot a frame's data is in, and prove that
 * nothing was copied. Cost: arithmetic. Since 0.4.
 */
CONVEYOR_API void *conveyor_ring_slot_address(const conveyor_ring *ring, uint32_t index);

/**
 * Reads the ring's counters into *stats, filling CONVEYOR_RING_STATS_SIZE_0_2 bytes: the
 * 0.2 layout, frozen. Errors: CONVEYOR_E_NULL_POINTER.
 */
CONVEYOR_API int conveyor_ring_get_stats(const conveyor_ring *ring, conveyor_ring_stats *stats);

/**
 * Reads the ring's counters into the first `size` bytes of *stats: pass sizeof *stats.
 * A caller built against an older header gets the fields it knows; one built against a
 * newer header gets the fields this library knows, and the rest of its struct zeroed.
 * Errors: CONVEYOR_E_NULL_POINTER, CONVEYOR_E_INVALID_ARGUMENT (size below
 * CONVEYOR_RING_STATS_SIZE_0_1 or not a multiple of 8). Since 0.4.
 */
CONVEYOR_API int conveyor_ring_read_stats(const conveyor_ring *ring, conveyor_ring_stats *stats,
                                          size_t size);

/* ===================================================================================
 * 9. Pools and channels: the pieces of a pipeline's transport. Since 0.5.
 *
 * A ring couples slots and their order: one producer, one consumer, frames in sequence.
 * A pipeline with replicated stages needs them apart (the model is iceoryx2's zero-copy
 * connection): a POOL is shared memory cut into slots, each with a frame descriptor, and
 * CHANNELS carry slot numbers (any 64-bit words) between processes. A stage that owns a
 * slot writes a frame into it, describes it (conveyor_pool_describe) and sends its number
 * forward; the reader receives the number, reads the slot in place
 * (conveyor_pool_frame) and sends the number back on a return channel; the owner
 * receives it and reuses the slot. Whoever holds a slot's number may touch the slot;
 * nothing else guards it, so the pool has no protocol of its own: the channels' SYNC
 * POINTS publish what was written to a slot before its number was sent.
 *
 * A channel has one receiver and 1...CONVEYOR_CHANNEL_MAX_LANES senders, each on its own
 * LANE: a single-producer/single-consumer queue of `capacity` words whose indices sit on
 * cache lines of their own, so no two senders ever write the same line. The receiver
 * takes the next word of one lane (conveyor_channel_receive) or of whichever lane has one
 * first (conveyor_channel_receive_any: wait-any, round-robin among ready lanes so none
 * starves). Either way it sleeps on the channel's one doorbell, which every lane's sender
 * rings after a send if the receiver may be asleep: one futex word per waiter, no polling.
 * A one-lane channel is a plain SPSC index channel. A full lane makes its sender wait
 * (backpressure) on a doorbell of the lane's own, which the receiver rings.
 *
 * Waiting, peer death, takeover, timeouts, backings and trust are exactly as for rings
 * (section 8): spin, then a futex sleep sliced by CONVEYOR_RING_PEER_CHECK_NS; a dead
 * sender or receiver is reported as CONVEYOR_E_PEER_DEAD once nothing it sent is left; a
 * lane's sender or the receiver may be taken over from a dead process and resumes at the
 * shared position; anonymous channels and pools cross fork, MEMFD ones pass as a sealed
 * fd, NAMED ones by name. A word is the receiver's once received (there is no release):
 * a receiver that dies loses the words it had received, never one it had not.
 * Every shared index is checked on every load; geometry is read once at attach.
 * A handle is used by one thread at a time; different handles are independent.
 * =================================================================================== */

/** An opaque handle on a slot pool's mapping. */
typedef struct conveyor_pool conveyor_pool;

/** The most slots a pool may have. */
#define CONVEYOR_POOL_MAX_SLOTS 65536

/** Parameters of a new pool. Zero-initialize, then set the fields you need. */
typedef struct conveyor_pool_config {
    uint32_t slot_count;  /**< Slots, 1...CONVEYOR_POOL_MAX_SLOTS. */
    uint32_t reserved;    /**< Must be 0. */
    uint64_t slot_bytes;  /**< Capacity of each slot, 1...CONVEYOR_RING_MAX_SLOT_BYTES. */
    int32_t backing;      /**< A conveyor_ring_backing. */
    uint32_t reserved2;   /**< Must be 0. */
    const char *name;     /**< NAMED only: "/name", at most 200 bytes, no other '/'. */
} conveyor_pool_config;

/**
 * Creates a pool: a header page, one 64-byte frame descriptor per slot, then the slots,
 * each page-aligned (slot_bytes rounded up to the page size). Cost: one mmap (and for
 * MEMFD/NAMED a memfd_create/shm_open and ftruncate; MEMFD is sealed at its size); slot
 * memory is committed lazily as it is first written.
 * Errors: CONVEYOR_E_INVALID_ARGUMENT (a field out of range, reserved fields not 0, bad
 * name), CONVEYOR_E_EXISTS (NAMED, the name is taken), CONVEYOR_E_SYSTEM (errno kept:
 * ENOMEM, EFBIG or ENOSPC when the mapping is larger than the address space, the file
 * size limit or memory limits allow: for MEMFD/NAMED the ftruncate can fail first),
 * CONVEYOR_E_NO_MEMORY, CONVEYOR_E_NULL_POINTER, CONVEYOR_E_OVERFLOW (the size does not
 * fit this platform's arithmetic: never on 64-bit, where the largest pool is 2^56 bytes).
 */
CONVEYOR_API int conveyor_pool_create(const conveyor_pool_config *config, conveyor_pool **pool);

/**
 * Attaches to the pool in a sealed memfd (dup'd; the caller keeps its fd). Validates the
 * seals, magic, layout version, geometry and file size; the geometry is then kept in the
 * handle and never read from shared memory again. Cost: fstat, fcntl, mmap.
 * Errors: CONVEYOR_E_NOT_SEALED, CONVEYOR_E_NOT_A_RING (not a pool), CONVEYOR_E_VERSION,
 * CONVEYOR_E_TRUNCATED, CONVEYOR_E_CORRUPT, CONVEYOR_E_INVALID_ARGUMENT, CONVEYOR_E_SYSTEM,
 * CONVEYOR_E_NO_MEMORY, CONVEYOR_E_NULL_POINTER.
 */
CONVEYOR_API int conveyor_pool_attach_fd(int fd, conveyor_pool **pool);

/** Attaches to the NAMED pool `name`. Errors: as attach_fd (NOT_SEALED aside), plus
 * CONVEYOR_E_SYSTEM with errno ENOENT when no such pool exists. */
CONVEYOR_API int conveyor_pool_attach_named(const char *name, conveyor_pool **pool);

/** Unmaps and frees the handle (NULL is fine). The creating process of a NAMED pool
 * unlinks its name here, unless conveyor_pool_remove_name already did. */
CONVEYOR_API void conveyor_pool_destroy(conveyor_pool *pool);

/** Removes the name of a NAMED pool this process created, once only (a no-op on other
 * handles, in forked children and the second time). Errors: CONVEYOR_E_NULL_POINTER,
 * CONVEYOR_E_SYSTEM. */
CONVEYOR_API int conveyor_pool_remove_name(conveyor_pool *pool);

/** The fd behind a MEMFD or NAMED pool (owned by the handle), or -1. */
CONVEYOR_API int conveyor_pool_fd(const conveyor_pool *pool);

/** The name of a NAMED pool ("/name"; owned by the handle), or NULL. */
CONVEYOR_API const char *conveyor_pool_name(const conveyor_pool *pool);

/** The pool's slot count, or 0 for NULL. Cost: a load from the handle. */
CONVEYOR_API uint32_t conveyor_pool_slot_count(const conveyor_pool *pool);

/** The capacity of each slot in bytes, or 0 for NULL. */
CONVEYOR_API uint64_t conveyor_pool_slot_bytes(const conveyor_pool *pool);

/** Bytes of the pool's shared mapping (header, descriptors, page-rounded slots), or 0. */
CONVEYOR_API uint64_t conveyor_pool_mapped_bytes(const conveyor_pool *pool);

/**
 * The writable address of slot `index` (page-aligned, slot_bytes long) in this handle's
 * mapping, or NULL for a bad index or a NULL pool. Only the holder of the slot's number
 * may write it. Cost: arithmetic on local geometry.
 */
CONVEYOR_API void *conveyor_pool_slot(const conveyor_pool *pool, uint32_t index);

/**
 * Writes slot `index`'s frame descriptor: what the slot holds now. Call it before sending
 * the slot's number; the send publishes it (and the payload) to the receiver.
 * Cost: a 64-byte store. Errors: CONVEYOR_E_INVALID_ARGUMENT (index, unknown dtype,
 * rank > 4, shape and byte_length disagree), CONVEYOR_E_TOO_LARGE (byte_length >
 * slot_bytes), CONVEYOR_E_NULL_POINTER.
 */
CONVEYOR_API int conveyor_pool_describe(conveyor_pool *pool, uint32_t index,
                                        const conveyor_frame_info *info);

/**
 * Reads slot `index`'s frame: *data points at the slot (read-only by convention: the
 * sender may still own it for reading), *info receives its descriptor, copied once out of
 * shared memory and validated, so what is checked is what is returned. Call it after
 * receiving the slot's number. Cost: a 64-byte copy and a check.
 * Errors: CONVEYOR_E_INVALID_ARGUMENT (index), CONVEYOR_E_CORRUPT (the descriptor is
 * impossible: unknown dtype, shape and length disagree, longer than the slot; a slot never
 * described reads as CORRUPT too, since its all-zero descriptor is a rank-0 BYTES frame of
 * one element with byte_length 0), CONVEYOR_E_NULL_POINTER.
 */
CONVEYOR_API int conveyor_pool_frame(const conveyor_pool *pool, uint32_t index, const void **data,
                                     conveyor_frame_info *info);

/** An opaque handle on one end of a channel: a lane's sender, the receiver, or a holder. */
typedef struct conveyor_channel conveyor_channel;

/** The most lanes (senders) a channel may have. */
#define CONVEYOR_CHANNEL_MAX_LANES 64
/** The most words a lane may hold. */
#define CONVEYOR_CHANNEL_MAX_CAPACITY 65536

/** Which end a channel handle is. */
enum conveyor_channel_role {
    CONVEYOR_CHANNEL_SENDER = 1,   /**< Sends on one lane. */
    CONVEYOR_CHANNEL_RECEIVER = 2, /**< Receives from every lane. */
    /** Keeps the mapping (and a NAMED channel's name) without claiming an end: what a
     * process keeps to open ends later with conveyor_channel_open or to pass it on. */
    CONVEYOR_CHANNEL_HOLDER = 3
};

/** Parameters of a new channel. Zero-initialize, then set the fields you need. */
typedef struct conveyor_channel_config {
    uint32_t lanes;     /**< Senders, 1...CONVEYOR_CHANNEL_MAX_LANES. */
    uint32_t capacity;  /**< Words each lane holds, 1...CONVEYOR_CHANNEL_MAX_CAPACITY. */
    uint32_t spin;      /**< Default spin iterations before sleeping; 0 = sleep at once.
                             The creator's handles use it as given; a handle attached by fd
                             or name takes at most 2^24 (as for rings: section 8, "Trust"). */
    int32_t backing;    /**< A conveyor_ring_backing. */
    uint32_t reserved;  /**< Must be 0 (room for flags in later versions). */
    const char *name;   /**< NAMED only: "/name", at most 200 bytes, no other '/'. */
} conveyor_channel_config;

/** Counters of a channel, summed over its lanes, kept in shared memory and readable from
 * any handle. May grow at its end: read it with conveyor_channel_read_stats. */
typedef struct conveyor_channel_stats {
    uint64_t words_sent;      /**< Words the senders published. */
    uint64_t words_received;  /**< Words the receiver took. */
    uint64_t sender_waits;    /**< Times a sender slept on a full lane. */
    uint64_t sender_wakes;    /**< Futex wakes senders issued to the sleeping receiver. */
    uint64_t receiver_waits;  /**< Times the receiver slept on empty lanes. */
    uint64_t receiver_wakes;  /**< Futex wakes the receiver issued to sleeping senders. */
    uint32_t lanes;           /**< The channel's lane count. */
    uint32_t capacity;        /**< Words per lane. */
    uint64_t mapped_bytes;    /**< Bytes of the channel's shared mapping. */
} conveyor_channel_stats;

/** sizeof(conveyor_channel_stats) in 0.5. */
#define CONVEYOR_CHANNEL_STATS_SIZE_0_5 64

/**
 * Creates a channel and returns a CONVEYOR_CHANNEL_HOLDER handle on it; open its ends
 * with conveyor_channel_open (here, or in a forked child for ANONYMOUS), or attach them
 * by fd or name from other processes. Cost: one mmap of a header page, a 384-byte block
 * per lane and lanes * capacity * 8 bytes of words.
 * Errors: CONVEYOR_E_INVALID_ARGUMENT (a field out of range, `reserved` not 0, bad name),
 * CONVEYOR_E_EXISTS, CONVEYOR_E_SYSTEM, CONVEYOR_E_NO_MEMORY, CONVEYOR_E_NULL_POINTER.
 */
CONVEYOR_API int conveyor_channel_create(const conveyor_channel_config *config,
                                         conveyor_channel **holder);

/**
 * Opens an end of the channel `channel` is a handle on, sharing its mapping: the sender
 * of `lane` (0...lanes-1), the receiver (lane must be 0) or another holder. The new
 * handle belongs to the calling process (also when `channel` was inherited over fork),
 * claims its end at once (a holder claims nothing) and starts with the channel's default
 * spin. Cost: no system call but the liveness probe of a previous owner.
 * Errors: CONVEYOR_E_BUSY (a live handle holds that end), CONVEYOR_E_CORRUPT (impossible
 * shared indices: nothing claimed), CONVEYOR_E_INVALID_ARGUMENT (role, lane),
 * CONVEYOR_E_NO_MEMORY, CONVEYOR_E_NULL_POINTER.
 */
CONVEYOR_API int conveyor_channel_open(const conveyor_channel *channel, int role, uint32_t lane,
                                       conveyor_channel **end);

/**
 * Attaches to the channel in a sealed memfd as `role` (lane as in conveyor_channel_open).
 * Validates seals, magic, layout version, geometry, size and the shared indices of the
 * end claimed; a failed attach claims nothing. Cost: fstat, fcntl, mmap, maybe a probe.
 * Errors: CONVEYOR_E_NOT_SEALED, CONVEYOR_E_NOT_A_RING (not a channel),
 * CONVEYOR_E_VERSION, CONVEYOR_E_TRUNCATED, CONVEYOR_E_CORRUPT, CONVEYOR_E_BUSY,
 * CONVEYOR_E_INVALID_ARGUMENT, CONVEYOR_E_SYSTEM, CONVEYOR_E_NO_MEMORY,
 * CONVEYOR_E_NULL_POINTER (end is NULL).
 */
CONVEYOR_API int conveyor_channel_attach_fd(int fd, int role, uint32_t lane, conveyor_channel **end);

/** Attaches to the NAMED channel `name`. Errors: as attach_fd (NOT_SEALED aside), plus
 * CONVEYOR_E_SYSTEM with errno ENOENT when no such channel exists. */
CONVEYOR_API int conveyor_channel_attach_named(const char *name, int role, uint32_t lane,
                                               conveyor_channel **end);

/**
 * Records the calling process as the owner of this handle's end, as conveyor_ring_claim
 * does: automatic on first use after fork; call it right after fork to close the window
 * before that first use. Errors: CONVEYOR_E_BUSY, CONVEYOR_E_CORRUPT,
 * CONVEYOR_E_WRONG_ROLE (a holder), CONVEYOR_E_NULL_POINTER.
 */
CONVEYOR_API int conveyor_channel_claim(conveyor_channel *end);

/**
 * Hands the end back (its peers see CONVEYOR_E_PEER_DEAD unless a sender closed its lane
 * first), unmaps and frees the handle (NULL is fine). A handle inherited over fork and
 * not used since does not hand its end back. The creating process of a NAMED channel
 * unlinks its name when its last handle on the mapping goes.
 */
CONVEYOR_API void conveyor_channel_destroy(conveyor_channel *end);

/** Removes the name of a NAMED channel this process created, once only. Errors:
 * CONVEYOR_E_NULL_POINTER, CONVEYOR_E_SYSTEM. */
CONVEYOR_API int conveyor_channel_remove_name(conveyor_channel *channel);

/** The fd behind a MEMFD or NAMED channel (owned by the handle), or -1. */
CONVEYOR_API int conveyor_channel_fd(const conveyor_channel *channel);

/** The name of a NAMED channel (owned by the handle), or NULL. */
CONVEYOR_API const char *conveyor_channel_name(const conveyor_channel *channel);

/** The role of a handle (a conveyor_channel_role), or 0 for NULL. */
CONVEYOR_API int conveyor_channel_role_of(const conveyor_channel *channel);

/** A sender's lane (0 for a receiver or holder, and for NULL). */
CONVEYOR_API uint32_t conveyor_channel_lane(const conveyor_channel *channel);

/** The channel's lane count, or 0 for NULL. */
CONVEYOR_API uint32_t conveyor_channel_lanes(const conveyor_channel *channel);

/** Words each lane holds, or 0 for NULL. */
CONVEYOR_API uint32_t conveyor_channel_capacity(const conveyor_channel *channel);

/** Sets this handle's spin budget. Errors: CONVEYOR_E_NULL_POINTER. */
CONVEYOR_API int conveyor_channel_set_spin(conveyor_channel *end, uint32_t spin);

/**
 * Sender: appends `word` to its lane, waiting while the lane is full (timeout as for
 * rings: < 0 no limit, 0 try once). Cost: a release store and a fence, a futex wake only
 * if the receiver sleeps.
 * Errors: CONVEYOR_E_TIMEOUT, CONVEYOR_E_CLOSED (this lane was closed),
 * CONVEYOR_E_PEER_DEAD (the receiver died or left), CONVEYOR_E_CORRUPT,
 * CONVEYOR_E_BUSY (first use after a fork: the re-claim found a live handle on the lane;
 * a re-claim whose shared indices are impossible gives CONVEYOR_E_CORRUPT and claims
 * nothing), CONVEYOR_E_WRONG_ROLE, CONVEYOR_E_NULL_POINTER.
 */
CONVEYOR_API int conveyor_channel_send(conveyor_channel *sender, uint64_t word, int64_t timeout_ns);

/** Sender: ends its lane. The receiver takes every word sent before, then the lane reports
 * CONVEYOR_E_END_OF_STREAM. Closing twice is fine. Errors: CONVEYOR_E_WRONG_ROLE,
 * CONVEYOR_E_NULL_POINTER, and on the first use after a fork those of the re-claim, as for
 * send: CONVEYOR_E_BUSY, CONVEYOR_E_CORRUPT. */
CONVEYOR_API int conveyor_channel_close(conveyor_channel *sender);

/**
 * Receiver: takes the next word of `lane`, in the order it was sent, waiting while the
 * lane is empty. Errors: CONVEYOR_E_TIMEOUT, CONVEYOR_E_END_OF_STREAM (the lane was
 * closed and drained), CONVEYOR_E_PEER_DEAD (its sender died without closing, and every
 * word it sent was taken), CONVEYOR_E_INVALID_ARGUMENT (lane), CONVEYOR_E_CORRUPT,
 * CONVEYOR_E_BUSY (first use after a fork, as for send; the re-claim may also give
 * CONVEYOR_E_CORRUPT), CONVEYOR_E_WRONG_ROLE, CONVEYOR_E_NULL_POINTER.
 */
CONVEYOR_API int conveyor_channel_receive(conveyor_channel *receiver, uint32_t lane,
                                          int64_t timeout_ns, uint64_t *word);

/**
 * Receiver, wait-any: takes the next word of whichever lane has one, trying lanes
 * round-robin from the one after the lane served last, and sleeps until any lane has one
 * (one futex word, rung by every lane's sender). *lane receives the lane the word came on.
 * Closed, drained lanes are skipped; when every lane is (or was reported corrupt),
 * CONVEYOR_E_END_OF_STREAM. One bad lane never blocks the others:
 *   - a lane whose shared indices are impossible is reported as CONVEYOR_E_CORRUPT only
 *     when no lane has a word, once, with *lane naming it; this handle then skips it for
 *     good;
 *   - a lane whose sender died (or left) without closing, once its words were all taken,
 *     is reported as CONVEYOR_E_PEER_DEAD with *lane naming it, while no lane has a word,
 *     once per dead sender while other lanes can still deliver: the lane is still served
 *     and waited for (a new sender may take it over, and is then watched again), and so
 *     are the others. Once no lane can deliver (each is done, skipped, or has a dead
 *     sender), PEER_DEAD is returned again within a peer-check slice: a receiver whose
 *     senders are all dead never waits for good.
 * Errors: CONVEYOR_E_TIMEOUT, CONVEYOR_E_END_OF_STREAM, CONVEYOR_E_PEER_DEAD (*lane names
 * the lane), CONVEYOR_E_CORRUPT (*lane names the lane, also when it comes from the
 * re-claim after a fork), CONVEYOR_E_BUSY (first use after a fork, as for send),
 * CONVEYOR_E_WRONG_ROLE, CONVEYOR_E_NULL_POINTER.
 */
CONVEYOR_API int conveyor_channel_receive_any(conveyor_channel *receiver, int64_t timeout_ns,
                                              uint32_t *lane, uint64_t *word);

/**
 * Reads the channel's counters into the first `size` bytes of *stats (pass sizeof
 * *stats), as conveyor_ring_read_stats does. Errors: CONVEYOR_E_NULL_POINTER,
 * CONVEYOR_E_INVALID_ARGUMENT (size not a multiple of 8 or below 8).
 */
CONVEYOR_API int conveyor_channel_read_stats(const conveyor_channel *channel,
                                             conveyor_channel_stats *stats, size_t size);

/* ===================================================================================
 * 10. Stage programs: a process of any language as a pipeline stage
 *
 * A pipeline (Swift's Conveyor.Pipeline, Python's conveyor.Pipeline) can start a program
 * as one of its stages (an EXTERNAL stage, or a SPAWNED one: the pipeline's own executable
 * serving a closure). The program serves items until end of stream through the pieces of
 * section 9: it reads each input in place in a slot of the upstream pool and writes its
 * output in place in a slot of the pipeline's pool for this stage. conveyor_stage_serve
 * is the whole program side; a program calls it with a callback and returns its result.
 *
 * The contract (protocol version 1), in the environment variable CONVEYOR_STAGE that the
 * pipeline sets when it starts the program: one line of space-separated key=value tokens,
 * the first being "conveyor-stage/1":
 *
 *   conveyor-stage/1 in=f64:500x2000 out=f64:500x2000 in_pool=3 out_pool=4 jobs=5
 *       done=6 report=7 parent=4242 replica=0 name=g
 *
 *   in, out    the items' element type (bytes, f32, f64) and shape (1 to 4 extents joined
 *              by 'x'); in=none for a source, which gets no input.
 *   in_pool    fd of the upstream pool (a sealed MEMFD pool; absent when in=none).
 *   out_pool   fd of this stage's output pool, or "in": the stage works in place in its
 *              input slot (the out shape and type then equal the in ones).
 *   jobs       fd of a one-lane channel: the program is its RECEIVER.
 *   done       fd of a one-lane channel: the program is its SENDER.
 *   report     fd of a pipe the program writes a failure's message to, once, before it
 *              exits; the pipeline reads it when the program ends early.
 *   parent     pid of the process that started the program: the program dies with it
 *              (PR_SET_PDEATHSIG, then a check that it has not died already). Linux sends
 *              that signal when the THREAD that started the program exits: a pipeline
 *              starts its programs from a thread that outlives them.
 *   replica    which replica of the stage this process is (0-based), for the callback.
 *   name       the stage's name: always the last key, it takes the rest of the line.
 *
 * Per item the pipeline sends two words on `jobs`: the input word item << 24 | in_slot
 * (for a source, item << 24 | 0xFFFFFF) and the output word item << 24 | out_slot (the
 * same word as the input when in place). The program checks both (slots inside their
 * pools, the input slot's descriptor saying it holds item `item` as declared), calls the
 * callback, describes the output slot (conveyor_pool_describe: the declared type and
 * shape, tag = item) and sends the output word on `done`. The slots stay the pipeline's:
 * the program touches the input slot only between receiving its word and sending `done`,
 * and never writes it unless in place. End of stream: the pipeline closes `jobs`; the
 * program returns from conveyor_stage_serve with CONVEYOR_OK and exits 0, and the pipeline
 * expects exactly that. Channel SYNC POINTS (section 9) publish the slots' contents both
 * ways, so nothing else is shared.
 *
 * Failure, on either side, is never a hang: the pipeline waits for `done` in slices and
 * checks between them whether the program is still alive; the program's waits report a
 * dead pipeline as CONVEYOR_E_PEER_DEAD, and the parent's death kills it. Whatever
 * makes the program stop early (its callback failing, a contract it refuses, a protocol
 * error) is written to `report` as one line and returned as a status; the pipeline
 * reports it with the stage's name and the item.
 * =================================================================================== */

/** The protocol version of the CONVEYOR_STAGE contract this header describes. */
#define CONVEYOR_STAGE_PROTOCOL 1

/** The environment variable that carries the contract. */
#define CONVEYOR_STAGE_ENV "CONVEYOR_STAGE"

/** The input word of a source's job: it has no input slot. */
#define CONVEYOR_STAGE_NO_SLOT 0xFFFFFFu

/** The longest failure line conveyor_stage_serve writes, its newline included; also the
 * size of the message buffer the callback gets. */
#define CONVEYOR_STAGE_MESSAGE_MAX 512

/**
 * What a program accepts for one side (input or output), checked against the contract
 * before the first item. Zero-initialize: dtype 0 (CONVEYOR_DTYPE_BYTES) with
 * `any_dtype` set accepts every type, rank 0 accepts every shape, and an extent of 0
 * accepts any extent in that place.
 */
typedef struct conveyor_stage_side {
    uint32_t dtype;                          /**< A conveyor_dtype the program needs. */
    uint32_t any_dtype;                      /**< Non-zero: any dtype is fine. */
    uint32_t rank;                           /**< Needed rank, or 0 for any shape. */
    uint32_t reserved;                       /**< Must be 0. */
    uint64_t shape[CONVEYOR_FRAME_MAX_RANK]; /**< Needed extents; 0 = any. */
} conveyor_stage_side;

/** What the program accepts. Zero-initialize, then set what it needs. */
typedef struct conveyor_stage_contract {
    conveyor_stage_side input;   /**< Ignored for a source (in=none). */
    conveyor_stage_side output;
    uint32_t allow_source;       /**< Non-zero: the program may serve as a source. */
    uint32_t allow_in_place;     /**< Non-zero: the program may be given out_pool=in. */
} conveyor_stage_contract;

/** One item as the callback sees it. The pointers are into shared slots, valid only
 * until the callback returns; `input` is NULL for a source, and equals `output` in place. */
typedef struct conveyor_stage_item {
    uint64_t item;                   /**< The item's index in the stream. */
    uint32_t replica;                /**< This process's replica of the stage. */
    uint32_t reserved;
    const void *input;               /**< The input, read-only (unless in place). */
    const conveyor_frame_info *input_info; /**< Its type and shape (NULL for a source). */
    void *output;                    /**< Where to write the output, in place. */
    const conveyor_frame_info *output_info; /**< The declared output type and shape. */
    const char *name;                /**< The stage's name. */
} conveyor_stage_item;

/**
 * A stage's work on one item. Returns 0 on success; anything else fails the item, and
 * then `message` (of `message_size` bytes, NUL-terminated by the callee; may be left
 * empty) says why. Called on the thread that called conveyor_stage_serve.
 */
typedef int (*conveyor_stage_fn)(void *context, const conveyor_stage_item *item, char *message,
                                 size_t message_size);

/**
 * Serves the stage described by CONVEYOR_STAGE until end of stream: attaches the pools
 * and channels the contract names, checks the contract against `contract` (NULL accepts
 * any), then per item receives its words, checks them and the input's descriptor, calls
 * `fn`, describes the output and sends it on. Returns CONVEYOR_OK when the pipeline
 * closes the stream. Cost: per item two channel receives, one send and the checks (well
 * under a microsecond); waits sleep in the channel's futex.
 * Errors, each also written as one line to the contract's `report` fd (and to stderr
 * when there is none, or the write fails): CONVEYOR_E_INVALID_ARGUMENT (no or a malformed
 * CONVEYOR_STAGE, declared items larger than their pool's slots, or a contract the
 * program refuses: the line names both sides), CONVEYOR_E_VERSION (another protocol
 * version), CONVEYOR_E_CORRUPT (a word or descriptor the pipeline should never send),
 * CONVEYOR_E_BAD_STATE (fn failed; the line has its message and the item),
 * CONVEYOR_E_PEER_DEAD (the pipeline died, or `parent` is not this process's parent),
 * CONVEYOR_E_NULL_POINTER (fn is NULL), CONVEYOR_E_SYSTEM (prctl failed), and those of
 * attaching (section 9). A report fd whose reader is gone does not raise SIGPIPE.
 */
CONVEYOR_API int conveyor_stage_serve(const conveyor_stage_contract *contract, conveyor_stage_fn fn,
                                      void *context);

/** conveyor_stage_serve as a main function: its exit status, 0 at end of stream, 1 after a
 * failure (already reported), 2 when the contract was refused or malformed. */
CONVEYOR_API int conveyor_stage_main(const conveyor_stage_contract *contract, conveyor_stage_fn fn,
                                     void *context);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CONVEYOR_H */
