/*
 * program_template.h — the fused elementwise engine for one element type. Included by
 * kernels_program.c once per type with CV_T (the C type) and CV_SFX (f64 or f32) defined;
 * it defines conveyor_<sfx>_program and the named single-op kernels of conveyor.h §4–5.
 *
 * Why strips: step k of a program reads what step k-1 wrote. Running each step over the
 * whole array would stream it through memory once per step; running all steps over one
 * strip held in registers means memory sees one read of x (and of each operand) and one
 * write of out, whatever the program's length.
 */
#define CV_CAT_(a, b) a##b
#define CV_CAT(a, b) CV_CAT_(a, b)
#define CV_FN(name) CV_CAT(CV_CAT(cv_, CV_SFX), name)
#define CV_API(name) CV_CAT(CV_CAT(conveyor_, CV_SFX), name)

/* One resolved step: scalars already converted to CV_T, operand typed. */
typedef struct {
    int code;
    CV_T a, b;
    const CV_T *operand;
} CV_FN(_step);

/*
 * A strip is four vectors of 64 bytes (32 doubles or 64 floats), held in named vector
 * variables so the compiler keeps them in registers across all steps: intermediate values
 * never touch memory. These are the compiler's generic vector types, so the same code
 * becomes four AVX-512 registers, eight AVX2 or sixteen SSE2 registers per clone.
 */
typedef CV_T CV_FN(_vec) __attribute__((vector_size(64)));
typedef CV_I CV_FN(_mask) __attribute__((vector_size(64)));
#define CV_VEC CV_FN(_vec)
#define CV_MASK CV_FN(_mask)
#define CV_PER_VEC (64 / sizeof(CV_T))

/* Macros, not functions: a function taking or returning a 64-byte vector would need
 * AVX-512 in its signature, which the AVX2 and baseline clones must not assume. */
/* lt ? p : q, lanewise, where lt is a comparison mask (all ones or all zeros per lane). */
#define CV_SELECT(lt, p, q) \
    ((CV_VEC)(((CV_MASK)(lt) & (CV_MASK)(p)) | (~(CV_MASK)(lt) & (CV_MASK)(q))))
/* An unaligned vector load or store. */
#define CV_LOAD(v, p) memcpy(&(v), (p), sizeof(CV_VEC))
#define CV_STORE(p, v) memcpy((p), &(v), sizeof(CV_VEC))

/*
 * One step, as one table for both paths: the vector path (four registers per strip) and
 * the scalar tail use the same IEEE operations, so every element gets the same bits.
 * V is the running value, YP points at the operand's matching elements, A is the scalar
 * operand as a value of V's type (for selects: an exact broadcast, never a + 0, which
 * would turn -0 into +0), SELECT(lt, p, q) is lt ? p : q, LOAD(v, p) loads v from p.
 */
#define CV_STEP(V, YP, A, SELECT, LOAD, YTYPE)                                           \
    switch (code) {                                                                      \
    case CONVEYOR_OP_COPY:        break;                                                 \
    case CONVEYOR_OP_ADD_SCALAR:  V = V + a; break;                                      \
    case CONVEYOR_OP_SUB_SCALAR:  V = V - a; break;                                      \
    case CONVEYOR_OP_RSUB_SCALAR: V = a - V; break;                                      \
    case CONVEYOR_OP_MUL_SCALAR:  V = V * a; break;                                      \
    case CONVEYOR_OP_DIV_SCALAR:  V = V / a; break;                                      \
    case CONVEYOR_OP_RDIV_SCALAR: V = a / V; break;                                      \
    case CONVEYOR_OP_SQUARE:      V = V * V; break;                                      \
    case CONVEYOR_OP_AFFINE:      V = a * V + b; break;                                  \
    case CONVEYOR_OP_MIN_SCALAR:  V = SELECT(a < V, A, V); break;                        \
    case CONVEYOR_OP_MAX_SCALAR:  V = SELECT(a > V, A, V); break;                        \
    case CONVEYOR_OP_ADD:         { YTYPE y_; LOAD(y_, YP); V = V + y_; } break;         \
    case CONVEYOR_OP_SUB:         { YTYPE y_; LOAD(y_, YP); V = V - y_; } break;         \
    case CONVEYOR_OP_MUL:         { YTYPE y_; LOAD(y_, YP); V = V * y_; } break;         \
    case CONVEYOR_OP_DIV:         { YTYPE y_; LOAD(y_, YP); V = V / y_; } break;         \
    case CONVEYOR_OP_MIN:         { YTYPE y_; LOAD(y_, YP); V = SELECT(y_ < V, y_, V); } break; \
    case CONVEYOR_OP_MAX:         { YTYPE y_; LOAD(y_, YP); V = SELECT(y_ > V, y_, V); } break; \
    }

#define CV_SCALAR_SELECT(lt, p, q) ((lt) ? (p) : (q))
#define CV_SCALAR_LOAD(v, p) ((v) = *(p))

/*
 * Runs every step over [lo, hi): x is loaded once per strip, each step costs one
 * instruction per register plus one well-predicted jump per strip, and out is stored once.
 * out may equal x or an operand: a strip's inputs are all read before it is stored.
 */
CV_SIMD_CLONES static void CV_FN(_run_steps)(const CV_FN(_step) *steps, size_t count, CV_T *out,
                                             const CV_T *x, size_t lo, size_t hi) {
    const size_t strip = 4 * CV_PER_VEC;
    size_t i = lo;
    for (; i + strip <= hi; i += strip) {
        CV_VEC v0, v1, v2, v3;
        CV_LOAD(v0, x + i);
        CV_LOAD(v1, x + i + CV_PER_VEC);
        CV_LOAD(v2, x + i + 2 * CV_PER_VEC);
        CV_LOAD(v3, x + i + 3 * CV_PER_VEC);
        for (size_t k = 0; k < count; k++) {
            const int code = steps[k].code;
            const CV_T a = steps[k].a, b = steps[k].b;
            const CV_T *y = steps[k].operand ? steps[k].operand + i : NULL;
            CV_VEC va;
            for (size_t l = 0; l < CV_PER_VEC; l++) va[l] = a;
            (void)b;
            CV_STEP(v0, y, va, CV_SELECT, CV_LOAD, CV_VEC)
            CV_STEP(v1, y + CV_PER_VEC, va, CV_SELECT, CV_LOAD, CV_VEC)
            CV_STEP(v2, y + 2 * CV_PER_VEC, va, CV_SELECT, CV_LOAD, CV_VEC)
            CV_STEP(v3, y + 3 * CV_PER_VEC, va, CV_SELECT, CV_LOAD, CV_VEC)
        }
        CV_STORE(out + i, v0);
        CV_STORE(out + i + CV_PER_VEC, v1);
        CV_STORE(out + i + 2 * CV_PER_VEC, v2);
        CV_STORE(out + i + 3 * CV_PER_VEC, v3);
    }
    for (; i < hi; i++) {
        CV_T v = x[i];
        for (size_t k = 0; k < count; k++) {
            const int code = steps[k].code;
            const CV_T a = steps[k].a, b = steps[k].b;
            const CV_T *y = steps[k].operand ? steps[k].operand + i : NULL;
            (void)b;
            CV_STEP(v, y, a, CV_SCALAR_SELECT, CV_SCALAR_LOAD, CV_T)
        }
        out[i] = v;
    }
}

typedef struct {
    CV_T *out;
    const CV_T *x;
    const CV_FN(_step) *steps;
    size_t count;
} CV_FN(_program_ctx);

static void CV_FN(_program_chunk)(void *raw, int chunk, size_t lo, size_t hi) {
    (void)chunk;
    const CV_FN(_program_ctx) *ctx = raw;
    CV_FN(_run_steps)(ctx->steps, ctx->count, ctx->out, ctx->x, lo, hi);
}

/* Checks ops and turns them into steps (scalars converted once); operands are checked as
 * arrays of n elements that out may alias only exactly. A zero-step program becomes one
 * COPY step. Sets *used to the number of steps. */
static int CV_FN(_resolve)(CV_FN(_step) *steps, size_t *used, const conveyor_op *ops, size_t count,
                           const CV_T *out, size_t n) {
    if (count > CONVEYOR_PROGRAM_MAX_OPS) return CONVEYOR_E_INVALID_ARGUMENT;
    if (count > 0 && ops == NULL) return CONVEYOR_E_NULL_POINTER;
    steps[0] = (CV_FN(_step)){.code = CONVEYOR_OP_COPY};
    *used = count == 0 ? 1 : count;
    for (size_t k = 0; k < count; k++) {
        const conveyor_op *op = &ops[k];
        int status;
        if (op->code < CONVEYOR_OP_COPY || op->code > CONVEYOR_OP_MAX || op->reserved != 0)
            return CONVEYOR_E_INVALID_ARGUMENT;
        steps[k] = (CV_FN(_step)){.code = op->code, .a = (CV_T)op->a, .b = (CV_T)op->b};
        if (op->code < CONVEYOR_OP_ADD) continue;
        if (op->operand == NULL && n > 0) return CONVEYOR_E_NULL_POINTER;
        if ((status = cv_check_array(op->operand, n, sizeof(CV_T))) != CONVEYOR_OK) return status;
        if ((status = cv_check_alias(out, op->operand, n * sizeof(CV_T))) != CONVEYOR_OK) return status;
        steps[k].operand = op->operand;
    }
    return CONVEYOR_OK;
}

int CV_API(_program)(CV_T *out, const CV_T *x, size_t n, const conveyor_op *ops, size_t count) {
    int status;
    if ((status = cv_check_array(out, n, sizeof(CV_T))) != CONVEYOR_OK) return status;
    if ((status = cv_check_array(x, n, sizeof(CV_T))) != CONVEYOR_OK) return status;
    if ((status = cv_check_alias(out, x, n * sizeof(CV_T))) != CONVEYOR_OK) return status;
    CV_FN(_step) steps[CONVEYOR_PROGRAM_MAX_OPS];
    size_t used;
    if ((status = CV_FN(_resolve)(steps, &used, ops, count, out, n)) != CONVEYOR_OK) return status;
    if (n == 0) return CONVEYOR_OK;

    CV_FN(_program_ctx) ctx = {.out = out, .x = x, .steps = steps, .count = used};
    cv_for_chunks(n, n * sizeof(CV_T), false, &ctx, CV_FN(_program_chunk));
    return CONVEYOR_OK;
}

#ifdef CV_UNIFORM_LANES
#include "kernels_twosum.h"

/*
 * Generate, transform and sum in registers (see internal.h): a strip of 32 elements is
 * four vectors of generator states, mixed into uniforms, run through the steps like a
 * strip of the program engine, and added into the 32 lanes, four vectors of sums and four
 * of errors, with the sum's TwoSum (kernels_twosum.h). Nothing is stored, so the loop
 * runs at the speed of its arithmetic (the fill, the program and the sum each stored or
 * loaded every value).
 * Same bits as the three kernels: the same formulas per element, the same lane per element.
 */
typedef uint64_t cv_u64_vec __attribute__((vector_size(64)));

CV_SIMD_CLONES static size_t CV_FN(_uniform_steps_lanes)(const CV_FN(_step) *steps, size_t count, uint64_t key,
                                                         uint64_t first, size_t n, double *restrict lane_s,
                                                         double *restrict lane_c) {
    const size_t strip = CV_SUM_LANES;  /* four vectors: lane l of the sum is element l of a strip */
    _Static_assert(4 * CV_PER_VEC == CV_SUM_LANES, "a strip is four vectors, one per 8 lanes");
    CV_VEC s0, s1, s2, s3, c0, c1, c2, c3;
    CV_LOAD(s0, lane_s); CV_LOAD(s1, lane_s + CV_PER_VEC);
    CV_LOAD(s2, lane_s + 2 * CV_PER_VEC); CV_LOAD(s3, lane_s + 3 * CV_PER_VEC);
    CV_LOAD(c0, lane_c); CV_LOAD(c1, lane_c + CV_PER_VEC);
    CV_LOAD(c2, lane_c + 2 * CV_PER_VEC); CV_LOAD(c3, lane_c + 3 * CV_PER_VEC);
    cv_u64_vec g0, g1, g2, g3; /* the generator state of each element of the next strip */
    for (size_t l = 0; l < CV_PER_VEC; l++) {
        g0[l] = key + (first + 1 + l) * CV_GOLDEN_GAMMA;
        g1[l] = key + (first + 1 + l + CV_PER_VEC) * CV_GOLDEN_GAMMA;
        g2[l] = key + (first + 1 + l + 2 * CV_PER_VEC) * CV_GOLDEN_GAMMA;
        g3[l] = key + (first + 1 + l + 3 * CV_PER_VEC) * CV_GOLDEN_GAMMA;
    }
    const uint64_t advance = strip * CV_GOLDEN_GAMMA;
    size_t i = 0;
    for (; i + strip <= n; i += strip) {
        cv_u64_vec z0 = g0, z1 = g1, z2 = g2, z3 = g3;
        CV_MIX64(z0); CV_MIX64(z1); CV_MIX64(z2); CV_MIX64(z3);
        /* Exponent of 1.0 and 52 random bits: [1, 2), minus 1 exactly, as the fill does. */
        CV_VEC v0 = (CV_VEC)((z0 >> 12) | 0x3FF0000000000000ull) - 1.0;
        CV_VEC v1 = (CV_VEC)((z1 >> 12) | 0x3FF0000000000000ull) - 1.0;
        CV_VEC v2 = (CV_VEC)((z2 >> 12) | 0x3FF0000000000000ull) - 1.0;
        CV_VEC v3 = (CV_VEC)((z3 >> 12) | 0x3FF0000000000000ull) - 1.0;
        g0 += advance; g1 += advance; g2 += advance; g3 += advance;
        for (size_t k = 0; k < count; k++) {
            const int code = steps[k].code;
            const CV_T a = steps[k].a, b = steps[k].b;
            const CV_T *y = NULL; /* scalar steps only */
            CV_VEC va;
            for (size_t l = 0; l < CV_PER_VEC; l++) va[l] = a;
            (void)b;
            CV_STEP(v0, y, va, CV_SELECT, CV_LOAD, CV_VEC)
            CV_STEP(v1, y, va, CV_SELECT, CV_LOAD, CV_VEC)
            CV_STEP(v2, y, va, CV_SELECT, CV_LOAD, CV_VEC)
            CV_STEP(v3, y, va, CV_SELECT, CV_LOAD, CV_VEC)
        }
        CV_TWO_SUM(s0, c0, v0); CV_TWO_SUM(s1, c1, v1); CV_TWO_SUM(s2, c2, v2); CV_TWO_SUM(s3, c3, v3);
    }
    CV_STORE(lane_s, s0); CV_STORE(lane_s + CV_PER_VEC, s1);
    CV_STORE(lane_s + 2 * CV_PER_VEC, s2); CV_STORE(lane_s + 3 * CV_PER_VEC, s3);
    CV_STORE(lane_c, c0); CV_STORE(lane_c + CV_PER_VEC, c1);
    CV_STORE(lane_c + 2 * CV_PER_VEC, c2); CV_STORE(lane_c + 3 * CV_PER_VEC, c3);
    return i;
}

size_t CV_CAT(CV_CAT(cv_, CV_SFX), _uniform_program_lanes)(const conveyor_op *ops, size_t count, uint64_t key,
                                                           uint64_t first, size_t n, double *lane_s,
                                                           double *lane_c) {
    CV_FN(_step) steps[CONVEYOR_PROGRAM_MAX_OPS];
    size_t used;
    if (CV_FN(_resolve)(steps, &used, ops, count, NULL, 0) != CONVEYOR_OK) return 0; /* checked by the caller */
    return CV_FN(_uniform_steps_lanes)(steps, used, key, first, n, lane_s, lane_c);
}
#endif /* CV_UNIFORM_LANES */

/* The named kernels of §4: one-step programs. */
static int CV_FN(_one)(CV_T *out, const CV_T *x, size_t n, int code, double a, double b,
                       const CV_T *y) {
    conveyor_op op = {.code = code, .a = a, .b = b, .operand = y};
    return CV_API(_program)(out, x, n, &op, 1);
}

int CV_API(_copy)(CV_T *out, const CV_T *x, size_t n) {
    return CV_FN(_one)(out, x, n, CONVEYOR_OP_COPY, 0, 0, NULL);
}
int CV_API(_add_scalar)(CV_T *out, const CV_T *x, CV_T a, size_t n) {
    return CV_FN(_one)(out, x, n, CONVEYOR_OP_ADD_SCALAR, a, 0, NULL);
}
int CV_API(_sub_scalar)(CV_T *out, const CV_T *x, CV_T a, size_t n) {
    return CV_FN(_one)(out, x, n, CONVEYOR_OP_SUB_SCALAR, a, 0, NULL);
}
int CV_API(_mul_scalar)(CV_T *out, const CV_T *x, CV_T a, size_t n) {
    return CV_FN(_one)(out, x, n, CONVEYOR_OP_MUL_SCALAR, a, 0, NULL);
}
int CV_API(_div_scalar)(CV_T *out, const CV_T *x, CV_T a, size_t n) {
    return CV_FN(_one)(out, x, n, CONVEYOR_OP_DIV_SCALAR, a, 0, NULL);
}
int CV_API(_square)(CV_T *out, const CV_T *x, size_t n) {
    return CV_FN(_one)(out, x, n, CONVEYOR_OP_SQUARE, 0, 0, NULL);
}
int CV_API(_affine)(CV_T *out, const CV_T *x, CV_T a, CV_T b, size_t n) {
    return CV_FN(_one)(out, x, n, CONVEYOR_OP_AFFINE, a, b, NULL);
}
int CV_API(_min_scalar)(CV_T *out, const CV_T *x, CV_T a, size_t n) {
    return CV_FN(_one)(out, x, n, CONVEYOR_OP_MIN_SCALAR, a, 0, NULL);
}
int CV_API(_max_scalar)(CV_T *out, const CV_T *x, CV_T a, size_t n) {
    return CV_FN(_one)(out, x, n, CONVEYOR_OP_MAX_SCALAR, a, 0, NULL);
}
int CV_API(_add)(CV_T *out, const CV_T *x, const CV_T *y, size_t n) {
    return CV_FN(_one)(out, x, n, CONVEYOR_OP_ADD, 0, 0, y);
}
int CV_API(_sub)(CV_T *out, const CV_T *x, const CV_T *y, size_t n) {
    return CV_FN(_one)(out, x, n, CONVEYOR_OP_SUB, 0, 0, y);
}
int CV_API(_mul)(CV_T *out, const CV_T *x, const CV_T *y, size_t n) {
    return CV_FN(_one)(out, x, n, CONVEYOR_OP_MUL, 0, 0, y);
}
int CV_API(_div)(CV_T *out, const CV_T *x, const CV_T *y, size_t n) {
    return CV_FN(_one)(out, x, n, CONVEYOR_OP_DIV, 0, 0, y);
}
int CV_API(_min)(CV_T *out, const CV_T *x, const CV_T *y, size_t n) {
    return CV_FN(_one)(out, x, n, CONVEYOR_OP_MIN, 0, 0, y);
}
int CV_API(_max)(CV_T *out, const CV_T *x, const CV_T *y, size_t n) {
    return CV_FN(_one)(out, x, n, CONVEYOR_OP_MAX, 0, 0, y);
}

#undef CV_STEP
#undef CV_SCALAR_SELECT
#undef CV_SCALAR_LOAD
#undef CV_VEC
#undef CV_SELECT
#undef CV_LOAD
#undef CV_STORE
#undef CV_MASK
#undef CV_PER_VEC
#undef CV_API
#undef CV_FN
#undef CV_CAT
#undef CV_CAT_
