/* naive.c — the scalar loops of bench_baselines.h. Every loop carries a pragma that
 * forbids vectorizing or interleaving it: these rows show the plain, one-element-at-a-time
 * cost. */
#include "bench_baselines.h"

#include <string.h>

/* Same rounding as the kernels: no FMA contraction of a*x+b. */
#pragma STDC FP_CONTRACT OFF

#define NAIVE_LOOP _Pragma("clang loop vectorize(disable) interleave(disable) unroll(disable)")

#define NAIVE_BODY(T)                                                                    \
    switch (kernel) {                                                                    \
    case BENCH_NAIVE_COPY: NAIVE_LOOP for (size_t i = 0; i < n; i++) out[i] = x[i]; break; \
    case BENCH_NAIVE_ADD_SCALAR: NAIVE_LOOP for (size_t i = 0; i < n; i++) out[i] = x[i] + a; break; \
    case BENCH_NAIVE_MUL_SCALAR: NAIVE_LOOP for (size_t i = 0; i < n; i++) out[i] = x[i] * a; break; \
    case BENCH_NAIVE_DIV_SCALAR: NAIVE_LOOP for (size_t i = 0; i < n; i++) out[i] = x[i] / a; break; \
    case BENCH_NAIVE_SQUARE: NAIVE_LOOP for (size_t i = 0; i < n; i++) out[i] = x[i] * x[i]; break; \
    case BENCH_NAIVE_AFFINE: NAIVE_LOOP for (size_t i = 0; i < n; i++) out[i] = a * x[i] + b; break; \
    case BENCH_NAIVE_MAX_SCALAR: NAIVE_LOOP for (size_t i = 0; i < n; i++) out[i] = a > x[i] ? a : x[i]; break; \
    case BENCH_NAIVE_ADD: NAIVE_LOOP for (size_t i = 0; i < n; i++) out[i] = x[i] + y[i]; break; \
    case BENCH_NAIVE_MUL: NAIVE_LOOP for (size_t i = 0; i < n; i++) out[i] = x[i] * y[i]; break; \
    case BENCH_NAIVE_FUSED_3X2_PLUS_1: NAIVE_LOOP for (size_t i = 0; i < n; i++) out[i] = (x[i] * x[i]) * (T)3 + (T)1; break; \
    }

void bench_naive_f64(bench_naive_kernel kernel, double *out, const double *x, const double *y,
                     double a, double b, size_t n) {
    NAIVE_BODY(double)
}

void bench_naive_f32(bench_naive_kernel kernel, float *out, const float *x, const float *y,
                     float a, float b, size_t n) {
    NAIVE_BODY(float)
}

double bench_naive_sum_f64(const double *x, size_t n) {
    double s = 0;
    NAIVE_LOOP for (size_t i = 0; i < n; i++) s += x[i];
    return s;
}

double bench_naive_sum_f32(const float *x, size_t n) {
    double s = 0;
    NAIVE_LOOP for (size_t i = 0; i < n; i++) s += (double)x[i];
    return s;
}

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t stream_key(uint64_t seed, uint64_t stream) {
    return mix64(mix64(seed) ^ (stream * 0xD1B54A32D192ED03ull));
}

void bench_naive_uniform_f64(double *out, size_t n, uint64_t seed, uint64_t stream) {
    uint64_t key = stream_key(seed, stream);
    NAIVE_LOOP for (size_t i = 0; i < n; i++) {
        uint64_t bits = 0x3FF0000000000000ull | (mix64(key + (i + 1) * 0x9E3779B97F4A7C15ull) >> 12);
        double d;
        memcpy(&d, &bits, sizeof d);
        out[i] = d - 1.0;
    }
}

void bench_naive_uniform_f32(float *out, size_t n, uint64_t seed, uint64_t stream) {
    uint64_t key = stream_key(seed, stream);
    NAIVE_LOOP for (size_t i = 0; i < n; i++) {
        uint32_t bits = 0x3F800000u | (uint32_t)(mix64(key + (i + 1) * 0x9E3779B97F4A7C15ull) >> 41);
        float f;
        memcpy(&f, &bits, sizeof f);
        out[i] = f - 1.0f;
    }
}
