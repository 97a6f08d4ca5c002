/*
 * pkgconfig_consumer.c — a C program built the way a C user builds against an installed
 * Conveyor: `cc pkgconfig_consumer.c $(pkg-config --cflags --libs conveyor)`, with the
 * library, header and conveyor.pc that `meson install` put in a prefix. scripts/test-meson
 * builds and runs it against a fresh install and passes -DCONVEYOR_PC_VERSION set to
 * `pkg-config --modversion conveyor`.
 *
 * Checks, each against a value computed here independently of the library:
 *   - versions: the header's macros, the linked library and conveyor.pc agree;
 *   - kernels: fill_uniform reproduces the generator documented in conveyor.h bit for
 *     bit, a fused program equals the same steps written in C, a sum of integers is exact;
 *   - a ring across fork: a child produces frames into a MEMFD ring, the parent receives
 *     them in order and compares each one's bytes and checksum with its own copy;
 *   - status codes: names and messages, and a real error status from the ring.
 * Prints one line per group; exits 1 if any check failed (each failure is printed).
 */
#include <conveyor.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CONVEYOR_PC_VERSION
#error "build with -DCONVEYOR_PC_VERSION='\"<pkg-config --modversion conveyor>\"'"
#endif

static int failures = 0;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
            failures++;                                                                \
        }                                                                              \
    } while (0)

/* ---- The uniform generator as conveyor.h section 7 documents it ---------------------- */
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double reference_uniform(uint64_t seed, uint64_t stream, uint64_t counter) {
    uint64_t key = mix64(mix64(seed) ^ (stream * 0xD1B54A32D192ED03ull));
    uint64_t bits = mix64(key + (counter + 1) * 0x9E3779B97F4A7C15ull);
    uint64_t one = 0x3FF0000000000000ull | (bits >> 12); /* top 52 bits, in [1, 2) */
    double d;
    memcpy(&d, &one, sizeof d);
    return d - 1.0;
}

/* FNV-1a over bytes: the frame checksum both processes compute. */
static uint64_t fnv1a(const void *data, size_t n) {
    const unsigned char *p = (const unsigned char *)data;
    uint64_t h = 0xCBF29CE484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001B3ull;
    return h;
}

static void check_versions(void) {
    CHECK(conveyor_version_number() == CONVEYOR_VERSION_NUMBER);
    CHECK(strcmp(conveyor_version_string(), CONVEYOR_VERSION_STRING) == 0);
    CHECK(strcmp(CONVEYOR_PC_VERSION, CONVEYOR_VERSION_STRING) == 0);
    CHECK(CONVEYOR_CHECK_VERSION(0, 5, 0));
    printf("versions: header %s, library %s, conveyor.pc %s\n", CONVEYOR_VERSION_STRING,
           conveyor_version_string(), CONVEYOR_PC_VERSION);
}

static void check_kernels(void) {
    enum { n = 4099 }; /* not a multiple of any vector width: the tail path runs too */
    static double x[n], out[n];
    CHECK(conveyor_f64_fill_uniform(x, n, 2016, 3, 10) == CONVEYOR_OK);
    int uniform_mismatches = 0;
    for (size_t i = 0; i < n; i++) uniform_mismatches += x[i] != reference_uniform(2016, 3, 10 + i);
    CHECK(uniform_mismatches == 0);

    /* out = 3 * x^2 + 1 in one pass, each step rounded as C rounds it. */
    conveyor_op program[3] = {
        {CONVEYOR_OP_SQUARE, 0, 0.0, 0.0, NULL},
        {CONVEYOR_OP_MUL_SCALAR, 0, 3.0, 0.0, NULL},
        {CONVEYOR_OP_ADD_SCALAR, 0, 1.0, 0.0, NULL},
    };
    CHECK(conveyor_f64_program(out, x, n, program, 3) == CONVEYOR_OK);
    int program_mismatches = 0;
    for (size_t i = 0; i < n; i++) {
        double v = x[i] * x[i];
        v = v * 3.0;
        v = v + 1.0;
        program_mismatches += out[i] != v;
    }
    CHECK(program_mismatches == 0);

    /* 1 + 2 + ... + n is exact in double: n (n + 1) / 2. */
    for (size_t i = 0; i < n; i++) x[i] = (double)(i + 1);
    double sum = -1.0;
    CHECK(conveyor_f64_sum(x, n, &sum) == CONVEYOR_OK);
    CHECK(sum == (double)n * (n + 1) / 2);
    printf("kernels: fill_uniform matches the documented generator (%d mismatches), "
           "3x^2+1 program (%d mismatches), sum 1..%d = %.0f\n",
           uniform_mismatches, program_mismatches, n, sum);
}

/* ---- A ring across fork ---------------------------------------------------------------- */
enum { frames = 5, frame_elems = 1000 };

static void fill_frame(double *data, uint64_t i) {
    conveyor_f64_fill_uniform(data, frame_elems, 7, i, 0);
}

/* The child: claims the inherited producer side and sends `frames` frames, frame i tagged
 * i and filled from uniform stream i, which the parent regenerates to check the bytes.
 * Returns the child's exit status: 0, or which step failed. */
static int produce(conveyor_ring *producer) {
    if (conveyor_ring_claim(producer) != CONVEYOR_OK) return 10;
    for (uint64_t i = 0; i < frames; i++) {
        void *slot = NULL;
        uint64_t capacity = 0;
        if (conveyor_ring_loan(producer, 10 * 1000000000ll, &slot, &capacity) != CONVEYOR_OK) return 11;
        fill_frame((double *)slot, i);
        conveyor_frame_info info = {CONVEYOR_DTYPE_F64, 1, {frame_elems, 0, 0, 0},
                                    frame_elems * sizeof(double), i};
        if (conveyor_ring_commit(producer, &info) != CONVEYOR_OK) return 12;
    }
    if (conveyor_ring_close(producer) != CONVEYOR_OK) return 13;
    conveyor_ring_destroy(producer);
    return 0;
}

static void check_ring(void) {
    conveyor_ring_config config;
    memset(&config, 0, sizeof config);
    config.slot_count = 2; /* fewer slots than frames: the producer must wait for releases */
    config.slot_bytes = frame_elems * sizeof(double);
    config.backing = CONVEYOR_RING_MEMFD;
    conveyor_ring *producer = NULL, *consumer = NULL;
    CHECK(conveyor_ring_create(&config, &producer, &consumer) == CONVEYOR_OK);
    if (producer == NULL || consumer == NULL) return;

    /* Nothing committed yet: a poll returns a real error status. */
    const void *data = NULL;
    conveyor_frame_info info;
    int status = conveyor_ring_receive(consumer, 0, &data, &info);
    CHECK(status == CONVEYOR_E_TIMEOUT);
    CHECK(strcmp(conveyor_status_name(status), "CONVEYOR_E_TIMEOUT") == 0);

    fflush(stdout);
    pid_t child = fork();
    CHECK(child >= 0);
    /* exit, not _exit: LLVM's libomp registers each process in /dev/shm
     * (__KMP_REGISTERED_LIB_<pid>_<uid>) and removes the entry only in its exit handler. */
    if (child == 0) exit(produce(producer));
    conveyor_ring_destroy(producer); /* the child owns that side now */

    static double expected[frame_elems];
    uint64_t received = 0, checksum = 0;
    for (;;) {
        status = conveyor_ring_receive(consumer, 10 * 1000000000ll, &data, &info);
        if (status != CONVEYOR_OK) break;
        fill_frame(expected, received);
        CHECK(info.tag == received && info.dtype == CONVEYOR_DTYPE_F64 && info.rank == 1);
        CHECK(info.shape[0] == frame_elems && info.byte_length == sizeof expected);
        CHECK(fnv1a(data, sizeof expected) == fnv1a(expected, sizeof expected));
        checksum ^= fnv1a(data, sizeof expected);
        CHECK(conveyor_ring_release(consumer) == CONVEYOR_OK);
        received++;
    }
    CHECK(status == CONVEYOR_E_END_OF_STREAM);
    CHECK(received == frames);
    int wstatus = 0;
    CHECK(waitpid(child, &wstatus, 0) == child);
    CHECK(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);

    conveyor_ring_stats stats;
    CHECK(conveyor_ring_get_stats(consumer, &stats) == CONVEYOR_OK);
    CHECK(stats.frames_committed == frames && stats.frames_released == frames && stats.closed == 1);
    conveyor_ring_destroy(consumer);
    printf("ring: %" PRIu64 " frames across fork through %u slots, then %s; "
           "checksum %016" PRIx64 "\n", received, config.slot_count,
           conveyor_status_name(status), checksum);
}

static void check_status_names(void) {
    int named = 0;
    for (int code = CONVEYOR_OK; code <= CONVEYOR_E_NOT_SEALED; code++) {
        const char *name = conveyor_status_name(code);
        const char *message = conveyor_status_message(code);
        CHECK(name != NULL && strncmp(name, "CONVEYOR_", 9) == 0);
        CHECK(name != NULL && strcmp(name, "CONVEYOR_E_UNKNOWN") != 0);
        CHECK(message != NULL && message[0] != '\0');
        named++;
    }
    CHECK(strcmp(conveyor_status_name(CONVEYOR_OK), "CONVEYOR_OK") == 0);
    CHECK(strcmp(conveyor_status_name(CONVEYOR_E_OVERLAP), "CONVEYOR_E_OVERLAP") == 0);
    CHECK(strcmp(conveyor_status_name(-1), "CONVEYOR_E_UNKNOWN") == 0);
    CHECK(strcmp(conveyor_status_message(9999), "unknown conveyor status code") == 0);
    printf("status: %d codes named, e.g. %s: %s\n", named,
           conveyor_status_name(CONVEYOR_E_PEER_DEAD), conveyor_status_message(CONVEYOR_E_PEER_DEAD));
}

int main(void) {
    check_versions();
    check_kernels();
    check_ring();
    check_status_names();
    if (failures) fprintf(stderr, "pkgconfig_consumer: %d check(s) failed\n", failures);
    else printf("pkgconfig_consumer: all checks passed\n");
    return failures ? 1 : 0;
}
