/*
 * kernels_sum.c — compensated summation, deterministic for a given thread count.
 *
 * Each of CV_SUM_LANES lanes keeps a running sum s and a running error c. Adding x uses
 * Knuth's branch-free TwoSum (CV_TWO_SUM in kernels_twosum.h, shared with the fused
 * uniform sum), which recovers the exact rounding error of s + x, so s + c behaves like a sum in twice the precision (the bound is in conveyor.h). The lanes are independent, which lets the compiler keep
 * them in SIMD registers; the lane results, then the per-chunk results, are merged in a
 * fixed order with the same TwoSum. Chunks are fixed by the thread count alone
 * (cv_for_chunks with fixed_partition), so a given array and thread count always give
 * the same bits.
 */
#include "internal.h"
#include "kernels_twosum.h"

#include <math.h>
#include <string.h>

/* The lane count of kernels_twosum.h, under the name this file uses. */
#define CV_LANES CV_SUM_LANES

typedef struct {
    double s, c;
} cv_compensated;

static inline void cv_two_sum_into(cv_compensated *acc, double x) {
    CV_TWO_SUM(acc->s, acc->c, x);
}

/* Merges a partial (its sum, then its error) into acc. */
static inline void cv_merge(cv_compensated *acc, cv_compensated part) {
    cv_two_sum_into(acc, part.s);
    acc->c += part.c;
}

/* Per-lane running sums and errors. Lane l takes elements lo + l, lo + l + CV_LANES...
 * of a range; feeding a range in pieces whose lengths are multiples of CV_LANES keeps
 * every element in the same lane, so the result is the same bits as one pass. */
typedef struct {
    double s[CV_LANES], c[CV_LANES];
} cv_lanes;

#define CV_LANES_KERNEL(NAME, T)                                                      \
    CV_SIMD_CLONES static void NAME(cv_lanes *restrict st, const T *restrict x, size_t n) { \
        double s[CV_LANES], c[CV_LANES];                                              \
        memcpy(s, st->s, sizeof s);                                                   \
        memcpy(c, st->c, sizeof c);                                                   \
        for (size_t i = 0; i + CV_LANES <= n; i += CV_LANES) {                        \
            for (int l = 0; l < CV_LANES; l++) {                                      \
                double v = (double)x[i + l];                                          \
                CV_TWO_SUM(s[l], c[l], v);                                            \
            }                                                                         \
        }                                                                             \
        memcpy(st->s, s, sizeof s);                                                   \
        memcpy(st->c, c, sizeof c);                                                   \
    }

CV_LANES_KERNEL(cv_f64_lanes_add, double)
CV_LANES_KERNEL(cv_f32_lanes_add, float)

/* Merges the lanes in order, then adds the range's last n % CV_LANES elements. */
#define CV_LANES_FINISH(NAME, T)                                                      \
    static cv_compensated NAME(const cv_lanes *st, const T *tail, size_t count) {     \
        cv_compensated acc = {0, 0};                                                  \
        for (int l = 0; l < CV_LANES; l++) cv_merge(&acc, (cv_compensated){st->s[l], st->c[l]}); \
        for (size_t i = 0; i < count; i++) cv_two_sum_into(&acc, (double)tail[i]);    \
        return acc;                                                                   \
    }

CV_LANES_FINISH(cv_f64_lanes_finish, double)
CV_LANES_FINISH(cv_f32_lanes_finish, float)

/* One pass over a range: the lanes over the multiple-of-CV_LANES body, then the tail. */
#define CV_SUM_RANGE(NAME, T, SFX)                                                   \
    static cv_compensated NAME(const T *x, size_t n) {                               \
        cv_lanes st = {{0}, {0}};                                                    \
        size_t body = n - n % CV_LANES;                                              \
        cv_##SFX##_lanes_add(&st, x, body);                                          \
        return cv_##SFX##_lanes_finish(&st, x + body, n - body);                     \
    }

CV_SUM_RANGE(cv_f64_sum_range, double, f64)
CV_SUM_RANGE(cv_f32_sum_range, float, f32)

typedef struct {
    const void *x;
    bool is_f32;
    cv_compensated partial[CV_MAX_CHUNKS];
} cv_sum_ctx;

static void cv_sum_chunk(void *raw, int chunk, size_t lo, size_t hi) {
    cv_sum_ctx *ctx = raw;
    ctx->partial[chunk] = ctx->is_f32 ? cv_f32_sum_range((const float *)ctx->x + lo, hi - lo)
                                      : cv_f64_sum_range((const double *)ctx->x + lo, hi - lo);
}

static int cv_sum(const void *x, size_t n, size_t elem_size, double *result) {
    if (result == NULL) return CONVEYOR_E_NULL_POINTER;
    int status = cv_check_array(x, n, elem_size);
    if (status != CONVEYOR_OK) return status;
    *result = 0;
    if (n == 0) return CONVEYOR_OK;

    cv_sum_ctx ctx = {.x = x, .is_f32 = elem_size == sizeof(float)};
    /* The threshold is judged on bytes read: a sum writes nothing. */
    int chunks = cv_for_chunks(n, n * elem_size, true, &ctx, cv_sum_chunk);
    cv_compensated total = {0, 0};
    for (int c = 0; c < chunks; c++) cv_merge(&total, ctx.partial[c]);
    /* An infinity or NaN in the data (or an overflow) makes the error terms NaN
     * (inf - inf); the plain sum then already holds the IEEE answer. */
    *result = isfinite(total.s) ? total.s + total.c : total.s;
    return CONVEYOR_OK;
}

int conveyor_f64_sum(const double *x, size_t n, double *result) {
    return cv_sum(x, n, sizeof(double), result);
}

int conveyor_f32_sum(const float *x, size_t n, double *result) {
    return cv_sum(x, n, sizeof(float), result);
}

/* ---- Generate, transform and sum in one pass (conveyor.h §6) ----------------------
 * Each chunk (the sum's fixed partition) must give the bits of fill + program + sum over
 * its range: every value the same, in the same lane, merged in the same order.
 * - f64: the values are generated, transformed and added in registers
 *   (cv_f64_uniform_program_lanes, in program_template.h), 32 at a time; the last n % 32
 *   go through the public kernels into a small buffer and the lanes' finish.
 * - f32: its lanes are doubles, 32 to a strip of 64 floats, so a register strip does not
 *   map onto them; it walks the range in blocks of CV_FUSED_BLOCK values that the public
 *   fill and program kernels write into a stack buffer (below the parallel threshold, so
 *   inline on this thread) and the lanes take while it is in L1/L2. Blocks are multiples
 *   of CV_LANES, so every value lands in its one-pass lane. */
#define CV_FUSED_BLOCK 4096

typedef struct {
    uint64_t seed, stream, first;
    const conveyor_op *ops;
    size_t count;
    cv_compensated partial[CV_MAX_CHUNKS];
} cv_uniform_sum_ctx;

static void cv_f64_uniform_sum_chunk(void *raw, int chunk, size_t lo, size_t hi) {
    cv_uniform_sum_ctx *ctx = raw;
    cv_lanes st = {{0}, {0}};
    size_t body = cv_f64_uniform_program_lanes(ctx->ops, ctx->count, cv_uniform_key(ctx->seed, ctx->stream),
                                               ctx->first + lo, hi - lo, st.s, st.c);
    _Alignas(64) double tail[CV_LANES];
    size_t m = hi - lo - body;
    /* Cannot fail: the buffer is valid and the program was checked. */
    (void)conveyor_f64_fill_uniform(tail, m, ctx->seed, ctx->stream, ctx->first + lo + body);
    (void)conveyor_f64_program(tail, tail, m, ctx->ops, ctx->count);
    ctx->partial[chunk] = cv_f64_lanes_finish(&st, tail, m);
}

static void cv_f32_uniform_sum_chunk(void *raw, int chunk, size_t lo, size_t hi) {
    cv_uniform_sum_ctx *ctx = raw;
    _Alignas(64) float block[CV_FUSED_BLOCK];
    cv_lanes st = {{0}, {0}};
    for (size_t i = lo; i < hi;) {
        size_t m = hi - i < CV_FUSED_BLOCK ? hi - i : CV_FUSED_BLOCK;
        (void)conveyor_f32_fill_uniform(block, m, ctx->seed, ctx->stream, ctx->first + i);
        (void)conveyor_f32_program(block, block, m, ctx->ops, ctx->count);
        size_t body = m - m % CV_LANES;
        cv_f32_lanes_add(&st, block, body);
        i += m;
        if (i == hi) ctx->partial[chunk] = cv_f32_lanes_finish(&st, block + body, m - body);
    }
}

static int cv_uniform_program_sum(size_t n, size_t elem_size, uint64_t seed, uint64_t stream,
                                  uint64_t first, const conveyor_op *ops, size_t count,
                                  double *result) {
    if (result == NULL) return CONVEYOR_E_NULL_POINTER;
    if (count > CONVEYOR_PROGRAM_MAX_OPS) return CONVEYOR_E_INVALID_ARGUMENT;
    if (count > 0 && ops == NULL) return CONVEYOR_E_NULL_POINTER;
    for (size_t k = 0; k < count; k++) {
        /* Ops with an operand array would need one as long as the virtual input. */
        if (ops[k].code < CONVEYOR_OP_COPY || ops[k].code >= CONVEYOR_OP_ADD || ops[k].reserved != 0)
            return CONVEYOR_E_INVALID_ARGUMENT;
    }
    if (n > (size_t)PTRDIFF_MAX / elem_size) return CONVEYOR_E_OVERFLOW;
    *result = 0;
    if (n == 0) return CONVEYOR_OK;

    cv_uniform_sum_ctx ctx = {.seed = seed, .stream = stream, .first = first, .ops = ops, .count = count};
    /* The same n and byte count as conveyor_*_sum: the same chunks. */
    int chunks = cv_for_chunks(n, n * elem_size, true, &ctx,
                               elem_size == sizeof(float) ? cv_f32_uniform_sum_chunk
                                                          : cv_f64_uniform_sum_chunk);
    cv_compensated total = {0, 0};
    for (int c = 0; c < chunks; c++) cv_merge(&total, ctx.partial[c]);
    *result = isfinite(total.s) ? total.s + total.c : total.s;
    return CONVEYOR_OK;
}

int conveyor_f64_uniform_program_sum(size_t n, uint64_t seed, uint64_t stream, uint64_t first,
                                     const conveyor_op *ops, size_t count, double *result) {
    return cv_uniform_program_sum(n, sizeof(double), seed, stream, first, ops, count, result);
}

int conveyor_f32_uniform_program_sum(size_t n, uint64_t seed, uint64_t stream, uint64_t first,
                                     const conveyor_op *ops, size_t count, double *result) {
    return cv_uniform_program_sum(n, sizeof(float), seed, stream, first, ops, count, result);
}
