/*
 * kernel_bits.c — the C results the Python kernels must reproduce bit for bit, through
 * conveyor.h only.
 *
 *   kernel_bits THREADS DTYPE N KIND SEED STREAM FIRST [OP...]
 *
 * DTYPE is f64 or f32. With conveyor_set_threads(THREADS), x is the N values
 * fill_uniform(SEED, STREAM, FIRST) and y those of (SEED + 1, STREAM, FIRST); then KIND:
 *   fill     writes x;
 *   program  writes conveyor_*_program(x, OPs) into a separate out, and writes out;
 *   sum      applies the OPs to x in place (none: x as is) and writes the double sum.
 * An OP is NAME, NAME:A, NAME:A:B or NAME:@y (y as the operand array); NAME is copy, add,
 * sub, rsub, mul, div, rdiv, square, affine, min or max; A and B are parsed by strtod
 * (decimal or hexadecimal floating point, exact for Python's repr of a float).
 * The result goes to stdout as raw native-endian bytes. Exit 0 on success, 1 if a
 * conveyor call failed (message on stderr), 2 for bad arguments, 3 if THREADS > 1 and
 * the library is serial.
 */
#include "crosslang.h"

static int parse_op(const char *text, const void *y, conveyor_op *op) {
    static const struct { const char *name; int scalar; int array; } table[] = {
        {"copy", CONVEYOR_OP_COPY, -1},         {"add", CONVEYOR_OP_ADD_SCALAR, CONVEYOR_OP_ADD},
        {"sub", CONVEYOR_OP_SUB_SCALAR, CONVEYOR_OP_SUB}, {"rsub", CONVEYOR_OP_RSUB_SCALAR, -1},
        {"mul", CONVEYOR_OP_MUL_SCALAR, CONVEYOR_OP_MUL}, {"div", CONVEYOR_OP_DIV_SCALAR, CONVEYOR_OP_DIV},
        {"rdiv", CONVEYOR_OP_RDIV_SCALAR, -1},  {"square", CONVEYOR_OP_SQUARE, -1},
        {"affine", CONVEYOR_OP_AFFINE, -1},     {"min", CONVEYOR_OP_MIN_SCALAR, CONVEYOR_OP_MIN},
        {"max", CONVEYOR_OP_MAX_SCALAR, CONVEYOR_OP_MAX},
    };
    char name[16];
    size_t len = strcspn(text, ":");
    if (len == 0 || len >= sizeof name) return 0;
    memcpy(name, text, len);
    name[len] = '\0';
    const char *rest = text[len] == ':' ? text + len + 1 : NULL;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (strcmp(name, table[i].name) != 0) continue;
        *op = (conveyor_op){.code = table[i].scalar};
        if (rest != NULL && strcmp(rest, "@y") == 0) {
            if (table[i].array < 0) return 0;
            op->code = table[i].array;
            op->operand = y;
            return 1;
        }
        if (rest != NULL) {
            char *end = NULL;
            op->a = strtod(rest, &end);
            if (end == rest) return 0;
            if (*end == ':') {
                rest = end + 1;
                op->b = strtod(rest, &end);
                if (end == rest) return 0;
            }
            if (*end != '\0') return 0;
        }
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 8) {
        fprintf(stderr, "usage: %s THREADS DTYPE N KIND SEED STREAM FIRST [OP...]\n", argv[0]);
        return 2;
    }
    int threads = (int)crosslang_u64(argv[1], "THREADS");
    int f32 = strcmp(argv[2], "f32") == 0;
    if (!f32 && strcmp(argv[2], "f64") != 0) return 2;
    size_t n = (size_t)crosslang_u64(argv[3], "N");
    const char *kind = argv[4];
    uint64_t seed = crosslang_u64(argv[5], "SEED"), stream = crosslang_u64(argv[6], "STREAM");
    uint64_t first = crosslang_u64(argv[7], "FIRST");
    int status = conveyor_set_threads(threads);
    if (status == CONVEYOR_E_UNSUPPORTED) return 3;
    crosslang_check(status, "conveyor_set_threads");

    size_t size = f32 ? sizeof(float) : sizeof(double);
    void *x = malloc(n * size + 1), *y = malloc(n * size + 1), *out = malloc(n * size + 1);
    if (x == NULL || y == NULL || out == NULL) return 1;
    if (f32) {
        crosslang_check(conveyor_f32_fill_uniform(x, n, seed, stream, first), "fill_uniform");
        crosslang_check(conveyor_f32_fill_uniform(y, n, seed + 1, stream, first), "fill_uniform");
    } else {
        crosslang_check(conveyor_f64_fill_uniform(x, n, seed, stream, first), "fill_uniform");
        crosslang_check(conveyor_f64_fill_uniform(y, n, seed + 1, stream, first), "fill_uniform");
    }
    conveyor_op ops[CONVEYOR_PROGRAM_MAX_OPS];
    size_t count = (size_t)(argc - 8);
    if (count > CONVEYOR_PROGRAM_MAX_OPS) return 2;
    for (size_t i = 0; i < count; i++) {
        if (!parse_op(argv[8 + i], y, &ops[i])) {
            fprintf(stderr, "bad op '%s'\n", argv[8 + i]);
            return 2;
        }
    }

    if (strcmp(kind, "fill") == 0) {
        fwrite(x, size, n, stdout);
    } else if (strcmp(kind, "program") == 0) {
        crosslang_check(f32 ? conveyor_f32_program(out, x, n, ops, count)
                            : conveyor_f64_program(out, x, n, ops, count), "program");
        fwrite(out, size, n, stdout);
    } else if (strcmp(kind, "sum") == 0) {
        double sum = 0;
        if (count > 0)
            crosslang_check(f32 ? conveyor_f32_program(x, x, n, ops, count)
                                : conveyor_f64_program(x, x, n, ops, count), "program");
        crosslang_check(f32 ? conveyor_f32_sum(x, n, &sum) : conveyor_f64_sum(x, n, &sum), "sum");
        fwrite(&sum, sizeof sum, 1, stdout);
    } else {
        fprintf(stderr, "bad kind '%s'\n", kind);
        return 2;
    }
    free(x);
    free(y);
    free(out);
    return fflush(stdout) == 0 ? 0 : 1;
}
