/*
 * kernel_stage.c — a real stage program in C, on conveyor_stage_main (conveyor.h section
 * 10): one of Conveyor's elementwise kernels from the input slot to the output slot.
 *
 *   kernel_stage OP [A] [flags]      OP: square | mul A | add A | copy
 *
 * f32 or f64 comes from the contract (the input's type; the output must have the same
 * type and element count). It accepts in place (out_pool=in) and serving as a source
 * (in=none): a source's input is the uniform stream conveyor_fNN_fill_uniform(seed 0,
 * stream = item, first 0), generated into the output slot, then OP runs there in place.
 * Kernels run on one thread (conveyor_set_threads_local(1)): a stage is one core's work.
 *
 * Flags for the failure tests (Tests/CStage/stage_driver.c), each at item N:
 *   --fail-at N     the callback fails with "asked to fail at item N"
 *   --crash-at N    the process dies of SIGSEGV
 *   --exit-at N     exit(0) in the middle of the stream, before item N's done
 *   --hang-at N     the callback never returns (pause())
 *   --expect f32|f64|bytes   the contract requires that input type (to test refusal)
 *   --expect-shape RxC       the contract requires that input shape
 * Exit status: conveyor_stage_main's (0, 1 after a failure, 2 for a refused or malformed
 * contract), and 2 for a bad command line.
 *
 * Built as the SwiftPM product conveyor-kernel-stage, by meson as kernel_stage, and by
 * scripts/test-c.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* pause(), under -std=c11 */
#endif

#include <conveyor.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum kernel_op { OP_SQUARE, OP_MUL, OP_ADD, OP_COPY };

typedef struct options {
    enum kernel_op op;
    double a;
    int64_t fail_at, crash_at, exit_at, hang_at; /* -1: never */
} options;

static int usage(const char *why) {
    fprintf(stderr, "kernel_stage: %s\n"
            "usage: kernel_stage square|copy|mul A|add A [--fail-at N] [--crash-at N] "
            "[--exit-at N] [--hang-at N] [--expect bytes|f32|f64] [--expect-shape RxC]\n", why);
    return 2;
}

static bool parse_count(const char *text, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < 0) return false;
    *out = v;
    return true;
}

static bool parse_double(const char *text, double *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0') return false;
    *out = v;
    return true;
}

/* "RxC": two extents >= 1. */
static bool parse_shape(const char *text, uint64_t shape[2]) {
    char *end;
    errno = 0;
    unsigned long long r = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != 'x' || r == 0 || text[0] == '-') return false;
    const char *rest = end + 1;
    unsigned long long c = strtoull(rest, &end, 10);
    if (errno != 0 || end == rest || *end != '\0' || c == 0 || rest[0] == '-') return false;
    shape[0] = r;
    shape[1] = c;
    return true;
}

/* Runs OP from x to out (x may be out: every kernel accepts exactly in place). */
static int run_f64(const options *o, double *out, const double *x, size_t n) {
    switch (o->op) {
    case OP_SQUARE: return conveyor_f64_square(out, x, n);
    case OP_MUL: return conveyor_f64_mul_scalar(out, x, o->a, n);
    case OP_ADD: return conveyor_f64_add_scalar(out, x, o->a, n);
    default: return conveyor_f64_copy(out, x, n);
    }
}

static int run_f32(const options *o, float *out, const float *x, size_t n) {
    switch (o->op) {
    case OP_SQUARE: return conveyor_f32_square(out, x, n);
    case OP_MUL: return conveyor_f32_mul_scalar(out, x, (float)o->a, n);
    case OP_ADD: return conveyor_f32_add_scalar(out, x, (float)o->a, n);
    default: return conveyor_f32_copy(out, x, n);
    }
}

static int serve_item(void *context, const conveyor_stage_item *item, char *message,
                      size_t message_size) {
    const options *o = context;
    int64_t i = (int64_t)item->item;
    if (i == o->fail_at) {
        snprintf(message, message_size, "asked to fail at item %lld", (long long)i);
        return 1;
    }
    if (i == o->crash_at) {
        /* The default action, not a sanitizer's handler (which would turn the SIGSEGV into
         * a report and an abort): the test expects death by SIGSEGV. */
        signal(SIGSEGV, SIG_DFL);
        raise(SIGSEGV);
    }
    if (i == o->exit_at) exit(0);
    if (i == o->hang_at)
        for (;;) pause();

    const conveyor_frame_info *out_info = item->output_info;
    const conveyor_frame_info *in_info = item->input_info ? item->input_info : out_info;
    if (in_info->dtype != out_info->dtype || in_info->byte_length != out_info->byte_length ||
        out_info->dtype == CONVEYOR_DTYPE_BYTES) {
        snprintf(message, message_size, "kernel_stage maps f32 to f32 or f64 to f64 of the same "
                 "element count, not dtype %u (%llu bytes) to dtype %u (%llu bytes)",
                 in_info->dtype, (unsigned long long)in_info->byte_length, out_info->dtype,
                 (unsigned long long)out_info->byte_length);
        return 1;
    }
    bool f64 = out_info->dtype == CONVEYOR_DTYPE_F64;
    size_t n = (size_t)(out_info->byte_length / (f64 ? sizeof(double) : sizeof(float)));
    const void *x = item->input;
    int status = CONVEYOR_OK;
    if (x == NULL) {  /* a source: the generated stream is the input, in the output slot */
        status = f64 ? conveyor_f64_fill_uniform(item->output, n, 0, item->item, 0)
                     : conveyor_f32_fill_uniform(item->output, n, 0, item->item, 0);
        x = item->output;
    }
    if (status == CONVEYOR_OK)
        status = f64 ? run_f64(o, item->output, x, n) : run_f32(o, item->output, x, n);
    if (status != CONVEYOR_OK) {
        snprintf(message, message_size, "kernel: %s", conveyor_status_message(status));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    options o = {.fail_at = -1, .crash_at = -1, .exit_at = -1, .hang_at = -1};
    conveyor_stage_contract contract = {
        .input = {.any_dtype = 1}, .output = {.any_dtype = 1},
        .allow_source = 1, .allow_in_place = 1,
    };
    if (argc < 2) return usage("no OP");
    int arg = 1;
    const char *op = argv[arg++];
    if (strcmp(op, "square") == 0) o.op = OP_SQUARE;
    else if (strcmp(op, "copy") == 0) o.op = OP_COPY;
    else if (strcmp(op, "mul") == 0 || strcmp(op, "add") == 0) {
        o.op = op[0] == 'm' ? OP_MUL : OP_ADD;
        if (arg >= argc || !parse_double(argv[arg++], &o.a)) return usage("mul and add take a number A");
    } else {
        return usage("unknown OP");
    }
    for (; arg < argc; arg++) {
        const char *flag = argv[arg];
        if (arg + 1 >= argc) return usage("a flag without its value");
        const char *value = argv[++arg];
        int64_t *at = strcmp(flag, "--fail-at") == 0    ? &o.fail_at
                      : strcmp(flag, "--crash-at") == 0 ? &o.crash_at
                      : strcmp(flag, "--exit-at") == 0  ? &o.exit_at
                      : strcmp(flag, "--hang-at") == 0  ? &o.hang_at
                                                        : NULL;
        if (at != NULL) {
            if (!parse_count(value, at)) return usage("an item number is an integer >= 0");
        } else if (strcmp(flag, "--expect") == 0) {
            contract.input.any_dtype = 0;
            if (strcmp(value, "f64") == 0) contract.input.dtype = CONVEYOR_DTYPE_F64;
            else if (strcmp(value, "f32") == 0) contract.input.dtype = CONVEYOR_DTYPE_F32;
            else if (strcmp(value, "bytes") == 0) contract.input.dtype = CONVEYOR_DTYPE_BYTES;
            else return usage("--expect takes bytes, f32 or f64");
        } else if (strcmp(flag, "--expect-shape") == 0) {
            if (!parse_shape(value, contract.input.shape)) return usage("--expect-shape takes RxC");
            contract.input.rank = 2;
        } else {
            return usage("unknown flag");
        }
    }
    int status = conveyor_set_threads_local(1);
    if (status != CONVEYOR_OK) {
        fprintf(stderr, "kernel_stage: conveyor_set_threads_local(1): %s\n",
                conveyor_status_message(status));
        return 1;
    }
    return conveyor_stage_main(&contract, serve_item, &o);
}
