/*
 * kernels_uniform.c — the counter-based uniform generator of conveyor.h §7.
 *
 * SplitMix64 is a counter passed through a strong 64-bit finalizer, which makes it
 * counter-based by construction: element i needs no state from element i-1, so a loop
 * over i vectorizes (two 64-bit multiplies per element; AVX-512DQ has them in hardware)
 * and any chunking of the index range gives the same values.
 */
#include "internal.h"

#include <string.h>

#define CV_STREAM_GAMMA 0xD1B54A32D192ED03ull

static inline uint64_t cv_mix64(uint64_t z) {
    CV_MIX64(z);
    return z;
}

uint64_t cv_uniform_key(uint64_t seed, uint64_t stream) {
    return cv_mix64(cv_mix64(seed) ^ (stream * CV_STREAM_GAMMA));
}

/* Bits with the exponent of 1.0 and a random mantissa give [1, 2); subtracting 1 is
 * exact. The same formula on every code path keeps values machine-independent. */
CV_SIMD_CLONES static void cv_f64_uniform_range(double *restrict out, size_t n, uint64_t key,
                                                uint64_t counter) {
    uint64_t state = key + (counter + 1) * CV_GOLDEN_GAMMA;
    for (size_t i = 0; i < n; i++, state += CV_GOLDEN_GAMMA) {
        uint64_t bits = cv_mix64(state);
        uint64_t one_to_two = 0x3FF0000000000000ull | (bits >> 12);
        double d;
        memcpy(&d, &one_to_two, sizeof d);
        out[i] = d - 1.0;
    }
}

CV_SIMD_CLONES static void cv_f32_uniform_range(float *restrict out, size_t n, uint64_t key,
                                                uint64_t counter) {
    uint64_t state = key + (counter + 1) * CV_GOLDEN_GAMMA;
    for (size_t i = 0; i < n; i++, state += CV_GOLDEN_GAMMA) {
        uint64_t bits = cv_mix64(state);
        uint32_t one_to_two = 0x3F800000u | (uint32_t)(bits >> 41);
        float f;
        memcpy(&f, &one_to_two, sizeof f);
        out[i] = f - 1.0f;
    }
}

typedef struct {
    void *out;
    bool is_f32;
    uint64_t key, first;
} cv_uniform_ctx;

static void cv_uniform_chunk(void *raw, int chunk, size_t lo, size_t hi) {
    (void)chunk;
    const cv_uniform_ctx *ctx = raw;
    if (ctx->is_f32)
        cv_f32_uniform_range((float *)ctx->out + lo, hi - lo, ctx->key, ctx->first + lo);
    else
        cv_f64_uniform_range((double *)ctx->out + lo, hi - lo, ctx->key, ctx->first + lo);
}

static int cv_fill_uniform(void *out, size_t n, size_t elem_size, uint64_t seed,
                           uint64_t stream, uint64_t first) {
    int status = cv_check_array(out, n, elem_size);
    if (status != CONVEYOR_OK || n == 0) return status;
    cv_uniform_ctx ctx = {.out = out, .is_f32 = elem_size == sizeof(float),
                          .key = cv_uniform_key(seed, stream), .first = first};
    cv_for_chunks(n, n * elem_size, false, &ctx, cv_uniform_chunk);
    return CONVEYOR_OK;
}

int conveyor_f64_fill_uniform(double *out, size_t n, uint64_t seed, uint64_t stream,
                              uint64_t first) {
    return cv_fill_uniform(out, n, sizeof(double), seed, stream, first);
}

int conveyor_f32_fill_uniform(float *out, size_t n, uint64_t seed, uint64_t stream,
                              uint64_t first) {
    return cv_fill_uniform(out, n, sizeof(float), seed, stream, first);
}
