/*
 * kernels_sum.c — compensated summation, deterministic for a given thread count.
 *
 * Each of CV_LANES lanes keeps a running sum s and a running error c. Adding x uses
 * Knuth's branch-free TwoSum, which recovers the exact rounding error of s + x:
 *     t = s + x;  z = t - s;  e = (s - (t - z)) + (x - z);  c += e;  s = t;
 * so s + c behaves like a sum in twice the precision (the bound is in conveyor.h). The lanes are independent, which lets the compiler keep
 * them in SIMD registers; the lane results, then the per-chunk results, are merged in a
 * fixed order with the same TwoSum. Chunks are fixed by the thread count alone
 * (cv_for_chunks with fixed_partition), so a given array and thread count always give
 * the same bits.
 */
#include "internal.h"

#include <math.h>

/* 32 lanes: four AVX-512 (or eight AVX2) registers of sums, enough independent chains to
 * hide the adder's latency. */
#define CV_LANES 32

typedef struct {
    double s, c;
} cv_compensated;

static inline void cv_two_sum_into(cv_compensated *acc, double x) {
    double t = acc->s + x;
    double z = t - acc->s;
    acc->c += (acc->s - (t - z)) + (x - z);
    acc->s = t;
}

/* Merges a partial (its sum, then its error) into acc. */
static inline void cv_merge(cv_compensated *acc, cv_compensated part) {
    cv_two_sum_into(acc, part.s);
    acc->c += part.c;
}

#define CV_SUM_KERNEL(NAME, T)                                                         \
    CV_SIMD_CLONES static cv_compensated NAME(const T *restrict x, size_t n) {         \
        double s[CV_LANES] = {0}, c[CV_LANES] = {0};                                   \
        size_t i = 0;                                                                  \
        for (; i + CV_LANES <= n; i += CV_LANES) {                                     \
            for (int l = 0; l < CV_LANES; l++) {                                       \
                double v = (double)x[i + l];                                           \
                double t = s[l] + v;                                                   \
                double z = t - s[l];                                                   \
                c[l] += (s[l] - (t - z)) + (v - z);                                    \
                s[l] = t;                                                              \
            }                                                                          \
        }                                                                              \
        cv_compensated acc = {0, 0};                                                   \
        for (int l = 0; l < CV_LANES; l++) cv_merge(&acc, (cv_compensated){s[l], c[l]}); \
        for (; i < n; i++) cv_two_sum_into(&acc, (double)x[i]);                        \
        return acc;                                                                    \
    }

CV_SUM_KERNEL(cv_f64_sum_range, double)
CV_SUM_KERNEL(cv_f32_sum_range, float)

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
