/*
 * bench_baselines.h — deliberately naive scalar loops, one per kernel, so that
 * `conveyor-bench kernels` can show what the SIMD kernels gain over the obvious C loop.
 * Vectorization and unrolling are disabled for these loops; they are single-threaded.
 * Benchmark-only: not part of any product or of the public C API.
 */
#ifndef BENCH_BASELINES_H
#define BENCH_BASELINES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The kernels the naive loops cover, mirroring conveyor.h's. */
typedef enum bench_naive_kernel {
    BENCH_NAIVE_COPY,
    BENCH_NAIVE_ADD_SCALAR,
    BENCH_NAIVE_MUL_SCALAR,
    BENCH_NAIVE_DIV_SCALAR,
    BENCH_NAIVE_SQUARE,
    BENCH_NAIVE_AFFINE,
    BENCH_NAIVE_MAX_SCALAR,
    BENCH_NAIVE_ADD,
    BENCH_NAIVE_MUL,
    BENCH_NAIVE_FUSED_3X2_PLUS_1,
} bench_naive_kernel;

/** out = kernel(x[, y]) with scalars a, b, for double. */
void bench_naive_f64(bench_naive_kernel kernel, double *out, const double *x, const double *y,
                     double a, double b, size_t n);
/** out = kernel(x[, y]) with scalars a, b, for float. */
void bench_naive_f32(bench_naive_kernel kernel, float *out, const float *x, const float *y,
                     float a, float b, size_t n);
/** Plain sequential sum, accumulated in double. */
double bench_naive_sum_f64(const double *x, size_t n);
/** Plain sequential sum of floats, accumulated in double. */
double bench_naive_sum_f32(const float *x, size_t n);
/** The same SplitMix64 uniform values as conveyor_f64_fill_uniform, one at a time. */
void bench_naive_uniform_f64(double *out, size_t n, uint64_t seed, uint64_t stream);
/** The same SplitMix64 uniform values as conveyor_f32_fill_uniform, one at a time. */
void bench_naive_uniform_f32(float *out, size_t n, uint64_t seed, uint64_t stream);

#ifdef __cplusplus
}
#endif

#endif
