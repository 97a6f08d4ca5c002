/*
 * header_only.c — a plain C program that uses Conveyor through conveyor.h and nothing
 * else from the project. scripts/test compiles it as C11 with every warning an error,
 * compiles it again as C++, links it against the Swift-free libconveyor built from
 * CKernels/src, and runs it. Exit status 0 means every check held.
 */
#include <conveyor.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int failures = 0;

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                      \
        }                                                                    \
    } while (0)

#if !CONVEYOR_CHECK_VERSION(0, 1, 0)
#error "conveyor.h older than 0.1.0"
#endif

int main(void) {
    CHECK(conveyor_version_number() == CONVEYOR_VERSION_NUMBER);
    printf("conveyor %s, OpenMP %s, %d threads\n", conveyor_version_string(),
           conveyor_has_openmp() ? "on" : "off", conveyor_get_threads());

    /* The question's workload, one sample: x uniform, out = 3x^2 + 1 in one fused pass. */
    const size_t n = 500 * 2000;
    double *x = (double *)malloc(n * sizeof(double));
    double *out = (double *)malloc(n * sizeof(double));
    CHECK(x != NULL && out != NULL);
    CHECK(conveyor_f64_fill_uniform(x, n, 2016, 0, 0) == CONVEYOR_OK);

    conveyor_op program[3] = {
        {CONVEYOR_OP_SQUARE, 0, 0.0, 0.0, NULL},
        {CONVEYOR_OP_MUL_SCALAR, 0, 3.0, 0.0, NULL},
        {CONVEYOR_OP_ADD_SCALAR, 0, 1.0, 0.0, NULL},
    };
    CHECK(conveyor_f64_program(out, x, n, program, 3) == CONVEYOR_OK);
    for (size_t i = 0; i < n; i += 9973) {
        double v = x[i] * x[i];
        v = v * 3.0;
        CHECK(out[i] == v + 1.0);
    }

    /* E[3x^2 + 1] = 2 for x ~ U[0, 1). */
    double sum = 0;
    CHECK(conveyor_f64_sum(out, n, &sum) == CONVEYOR_OK);
    CHECK(fabs(sum / (double)n - 2.0) < 0.01);
    printf("mean of 3x^2+1 over %zu samples: %.6f\n", n, sum / (double)n);

    /* The fused generate-transform-sum gives the same bits without storing anything. */
    double fused_sum = 0;
    CHECK(conveyor_f64_uniform_program_sum(n, 2016, 0, 0, program, 3, &fused_sum) == CONVEYOR_OK);
    CHECK(fused_sum == sum);

    /* Same values whatever the chunking. */
    CHECK(conveyor_f64_fill_uniform(out, 10, 2016, 0, 500) == CONVEYOR_OK);
    CHECK(out[0] == x[500] && out[9] == x[509]);

    /* Errors are codes with messages, never crashes. */
    int status = conveyor_f64_add_scalar(x + 1, x, 1.0, 100);
    CHECK(status == CONVEYOR_E_OVERLAP);
    printf("expected error: %s (%s)\n", conveyor_status_name(status), conveyor_status_message(status));
    CHECK(conveyor_f64_copy(NULL, x, 4) == CONVEYOR_E_NULL_POINTER);
    CHECK(conveyor_set_threads(0) == CONVEYOR_E_INVALID_ARGUMENT);
    CHECK(conveyor_set_threads(2) == (conveyor_has_openmp() ? CONVEYOR_OK : CONVEYOR_E_UNSUPPORTED));

    /* A ring: the producer writes a matrix in place, the consumer reads it in place. */
    conveyor_ring_config ring_config = {2, 64, 500 * 2000 * sizeof(double), CONVEYOR_RING_ANONYMOUS, 0, NULL};
    conveyor_ring *producer = NULL, *consumer = NULL;
    CHECK(conveyor_ring_create(&ring_config, &producer, &consumer) == CONVEYOR_OK);
    conveyor_ring_stats ring_stats;
    CHECK(conveyor_ring_get_stats(producer, &ring_stats) == CONVEYOR_OK);
    CHECK(ring_stats.mapped_bytes >= 2 * ring_config.slot_bytes); /* both slots are mapped */
    void *slot = NULL;
    uint64_t capacity = 0;
    CHECK(conveyor_ring_loan(producer, -1, &slot, &capacity) == CONVEYOR_OK);
    CHECK(capacity == n * sizeof(double));
    CHECK(conveyor_f64_fill_uniform((double *)slot, n, 2016, 0, 0) == CONVEYOR_OK);
    CHECK(conveyor_f64_program((double *)slot, (const double *)slot, n, program, 3) == CONVEYOR_OK);
    conveyor_frame_info info = {CONVEYOR_DTYPE_F64, 2, {500, 2000, 0, 0}, n * sizeof(double), 7};
    CHECK(conveyor_ring_commit(producer, &info) == CONVEYOR_OK);
    CHECK(conveyor_ring_close(producer) == CONVEYOR_OK);
    const void *frame = NULL;
    conveyor_frame_info got;
    CHECK(conveyor_ring_receive(consumer, 0, &frame, &got) == CONVEYOR_OK);
    CHECK(got.tag == 7 && got.rank == 2 && got.shape[1] == 2000 && frame == slot);
    double ring_sum = 0;
    CHECK(conveyor_f64_sum((const double *)frame, n, &ring_sum) == CONVEYOR_OK);
    CHECK(fabs(ring_sum - sum) <= 1e-12 * sum); /* same data; the thread count may differ */
    CHECK(conveyor_ring_release(consumer) == CONVEYOR_OK);
    CHECK(conveyor_ring_receive(consumer, 0, &frame, &got) == CONVEYOR_E_END_OF_STREAM);
    conveyor_ring_destroy(producer);
    conveyor_ring_destroy(consumer);

    float f[3] = {1.0f, 2.0f, 4.0f};
    CHECK(conveyor_f32_sum(f, 3, &sum) == CONVEYOR_OK && sum == 7.0);

    free(x);
    free(out);
    if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
    else printf("header_only: all checks passed\n");
    return failures ? 1 : 0;
}
