/*
 * program_template.h — the fused elementwise engine for one element type. Included by
 * kernels_program.c once per type with CV_T (the C type) and CV_SFX (f64 or f32) defined;
 * it defines conveyor_<sfx>_program and the named single-op kernels of conveyor.h §4–5.
 *
 * Why blocks: step k of a program reads what step k-1 wrote. Running each step over the
 * whole array would stream it through memory once per step; running all steps over one
 * block of CV_BLOCK_BYTES keeps the block in L1 between steps, so memory sees one read of
 * x (and of each operand) and one write of out, whatever the program's length.
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

/* The elementwise body of every op, on v = source value, y = operand value. Written as
 * one expression so each case below is a loop the compiler vectorizes. */
#define CV_OP_CASES(DST, SRC, I)                                                         \
    case CONVEYOR_OP_COPY:        for (I) DST = SRC; break;                               \
    case CONVEYOR_OP_ADD_SCALAR:  for (I) DST = SRC + a; break;                           \
    case CONVEYOR_OP_SUB_SCALAR:  for (I) DST = SRC - a; break;                           \
    case CONVEYOR_OP_RSUB_SCALAR: for (I) DST = a - SRC; break;                           \
    case CONVEYOR_OP_MUL_SCALAR:  for (I) DST = SRC * a; break;                           \
    case CONVEYOR_OP_DIV_SCALAR:  for (I) DST = SRC / a; break;                           \
    case CONVEYOR_OP_RDIV_SCALAR: for (I) DST = a / SRC; break;                           \
    case CONVEYOR_OP_SQUARE:      for (I) DST = SRC * SRC; break;                         \
    case CONVEYOR_OP_AFFINE:      for (I) DST = a * SRC + b; break;                       \
    case CONVEYOR_OP_MIN_SCALAR:  for (I) DST = a < SRC ? a : SRC; break;                 \
    case CONVEYOR_OP_MAX_SCALAR:  for (I) DST = a > SRC ? a : SRC; break;                 \
    case CONVEYOR_OP_ADD:         for (I) DST = SRC + y[i]; break;                        \
    case CONVEYOR_OP_SUB:         for (I) DST = SRC - y[i]; break;                        \
    case CONVEYOR_OP_MUL:         for (I) DST = SRC * y[i]; break;                        \
    case CONVEYOR_OP_DIV:         for (I) DST = SRC / y[i]; break;                        \
    case CONVEYOR_OP_MIN:         for (I) DST = y[i] < SRC ? y[i] : SRC; break;           \
    case CONVEYOR_OP_MAX:         for (I) DST = y[i] > SRC ? y[i] : SRC; break;

/* out[i] = op(src[i]) with out and src distinct (restrict lets every case vectorize
 * without runtime alias checks). y may alias out only in step 0 (see conveyor.h). */
CV_SIMD_CLONES static void CV_FN(_step_apart)(const CV_FN(_step) *s, CV_T *restrict out,
                                              const CV_T *restrict src, const CV_T *y, size_t n) {
    const CV_T a = s->a, b = s->b;
    (void)b;
    switch (s->code) { CV_OP_CASES(out[i], src[i], size_t i = 0; i < n; i++) }
}

/* v[i] = op(v[i]): the in-place form, for steps after the first and for out == x. */
CV_SIMD_CLONES static void CV_FN(_step_inplace)(const CV_FN(_step) *s, CV_T *restrict v,
                                                const CV_T *y, size_t n) {
    const CV_T a = s->a, b = s->b;
    (void)b;
    switch (s->code) { CV_OP_CASES(v[i], v[i], size_t i = 0; i < n; i++) }
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
    const size_t block = CV_BLOCK_BYTES / sizeof(CV_T);
    for (size_t start = lo; start < hi; start += block) {
        size_t len = hi - start < block ? hi - start : block;
        CV_T *out = ctx->out + start;
        const CV_T *x = ctx->x + start;
        for (size_t k = 0; k < ctx->count; k++) {
            const CV_FN(_step) *s = &ctx->steps[k];
            const CV_T *y = s->operand ? s->operand + start : NULL;
            const CV_T *src = k == 0 ? x : out;
            if (src == out) CV_FN(_step_inplace)(s, out, y, len);
            else CV_FN(_step_apart)(s, out, src, y, len);
        }
    }
}

int CV_API(_program)(CV_T *out, const CV_T *x, size_t n, const conveyor_op *ops, size_t count) {
    int status;
    if ((status = cv_check_array(out, n, sizeof(CV_T))) != CONVEYOR_OK) return status;
    if ((status = cv_check_array(x, n, sizeof(CV_T))) != CONVEYOR_OK) return status;
    if ((status = cv_check_alias(out, x, n * sizeof(CV_T))) != CONVEYOR_OK) return status;
    if (count > CONVEYOR_PROGRAM_MAX_OPS) return CONVEYOR_E_INVALID_ARGUMENT;
    if (count > 0 && ops == NULL) return CONVEYOR_E_NULL_POINTER;

    /* A zero-step program is a copy; give the engine one COPY step. */
    CV_FN(_step) steps[CONVEYOR_PROGRAM_MAX_OPS] = {{.code = CONVEYOR_OP_COPY}};
    size_t used = count == 0 ? 1 : count;
    for (size_t k = 0; k < count; k++) {
        const conveyor_op *op = &ops[k];
        if (op->code < CONVEYOR_OP_COPY || op->code > CONVEYOR_OP_MAX || op->reserved != 0)
            return CONVEYOR_E_INVALID_ARGUMENT;
        steps[k] = (CV_FN(_step)){.code = op->code, .a = (CV_T)op->a, .b = (CV_T)op->b};
        if (op->code < CONVEYOR_OP_ADD) continue;
        if (op->operand == NULL && n > 0) return CONVEYOR_E_NULL_POINTER;
        if ((status = cv_check_array(op->operand, n, sizeof(CV_T))) != CONVEYOR_OK) return status;
        if ((status = cv_check_alias(out, op->operand, n * sizeof(CV_T))) != CONVEYOR_OK)
            return status;
        if (k > 0 && op->operand == out && n > 0) return CONVEYOR_E_OVERLAP;
        steps[k].operand = op->operand;
    }
    if (n == 0) return CONVEYOR_OK;

    CV_FN(_program_ctx) ctx = {.out = out, .x = x, .steps = steps, .count = used};
    cv_for_chunks(n, n * sizeof(CV_T), false, &ctx, CV_FN(_program_chunk));
    return CONVEYOR_OK;
}

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

#undef CV_OP_CASES
#undef CV_API
#undef CV_FN
#undef CV_CAT
#undef CV_CAT_
