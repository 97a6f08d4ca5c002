/*
 * ring_producer.c — a C producer for a Python consumer, through conveyor.h only.
 *
 *   ring_producer NAME SLOTS FRAMES ROWS COLS SEED
 *
 * Creates the NAMED ring NAME (SLOTS slots of ROWS*COLS doubles), prints "ready", then
 * loans FRAMES frames: frame t is conveyor_f64_fill_uniform(SEED, stream t) written in
 * place, committed as a ROWS x COLS float64 frame with tag t. Then it closes the stream,
 * prints "frames N checksum HEX" (crosslang.h's stream checksum of what it committed) and
 * destroys its handle, which unlinks the name. Exit 0 on success, 1 if a ring call failed
 * (message on stderr), 2 for bad arguments. Every wait is bounded (CROSSLANG_WAIT_NS).
 */
#include "crosslang.h"

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s NAME SLOTS FRAMES ROWS COLS SEED\n", argv[0]);
        return 2;
    }
    const char *name = argv[1];
    uint64_t slots = crosslang_u64(argv[2], "SLOTS"), frames = crosslang_u64(argv[3], "FRAMES");
    uint64_t rows = crosslang_u64(argv[4], "ROWS"), cols = crosslang_u64(argv[5], "COLS");
    uint64_t seed = crosslang_u64(argv[6], "SEED");
    if (conveyor_version_number() != CONVEYOR_VERSION_NUMBER) {
        fprintf(stderr, "header %s, library %s\n", CONVEYOR_VERSION_STRING, conveyor_version_string());
        return 1;
    }
    uint64_t n = rows * cols;
    conveyor_ring_config config = {.slot_count = (uint32_t)slots, .slot_bytes = n * 8,
                                   .spin = CONVEYOR_RING_DEFAULT_SPIN,
                                   .backing = CONVEYOR_RING_NAMED, .name = name};
    conveyor_ring *producer = NULL;
    crosslang_check(conveyor_ring_create(&config, &producer, NULL), "conveyor_ring_create");
    printf("ready\n");
    fflush(stdout);

    uint64_t checksum = 0;
    for (uint64_t t = 0; t < frames; t++) {
        void *data = NULL;
        uint64_t capacity = 0;
        crosslang_check(conveyor_ring_loan(producer, CROSSLANG_WAIT_NS, &data, &capacity),
                        "conveyor_ring_loan");
        crosslang_check(conveyor_f64_fill_uniform(data, (size_t)n, seed, t, 0),
                        "conveyor_f64_fill_uniform");
        checksum += (t + 1) * crosslang_frame_checksum(data, (size_t)n);
        conveyor_frame_info info = {.dtype = CONVEYOR_DTYPE_F64, .rank = 2,
                                    .shape = {rows, cols}, .byte_length = n * 8, .tag = t};
        crosslang_check(conveyor_ring_commit(producer, &info), "conveyor_ring_commit");
    }
    crosslang_check(conveyor_ring_close(producer), "conveyor_ring_close");
    printf("frames %" PRIu64 " checksum %016" PRIx64 "\n", frames, checksum);
    fflush(stdout);
    conveyor_ring_destroy(producer);
    return 0;
}
