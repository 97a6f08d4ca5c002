/*
 * ring_consumer.c — a C consumer of a Python producer, through conveyor.h only.
 *
 *   ring_consumer NAME SEED
 *
 * Attaches to the consumer side of the NAMED ring NAME and receives until end of stream.
 * Every frame must be float64, rank 1 or 2, with tags 0, 1, 2... in order, and hold
 * exactly conveyor_f64_fill_uniform(SEED, stream tag) of its size; frames that do not are
 * counted as bad. Prints "frames N checksum HEX bad B" (crosslang.h's stream checksum of
 * what it received). Exit 0 if no frame was bad, 1 otherwise or if a ring call failed
 * (message on stderr), 2 for bad arguments. Every wait is bounded (CROSSLANG_WAIT_NS).
 */
#include "crosslang.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s NAME SEED\n", argv[0]);
        return 2;
    }
    const char *name = argv[1];
    uint64_t seed = crosslang_u64(argv[2], "SEED");
    conveyor_ring *consumer = NULL;
    crosslang_check(conveyor_ring_attach_named(name, CONVEYOR_RING_CONSUMER, &consumer),
                    "conveyor_ring_attach_named");
    conveyor_ring_stats stats;
    crosslang_check(conveyor_ring_get_stats(consumer, &stats), "conveyor_ring_get_stats");
    double *expected = malloc(stats.slot_bytes);
    if (expected == NULL) return 1;

    uint64_t frames = 0, bad = 0, checksum = 0;
    for (;;) {
        const void *data = NULL;
        conveyor_frame_info info;
        int status = conveyor_ring_receive(consumer, CROSSLANG_WAIT_NS, &data, &info);
        if (status == CONVEYOR_E_END_OF_STREAM) break;
        crosslang_check(status, "conveyor_ring_receive");
        uint64_t n = info.byte_length / 8;
        int ok = info.dtype == CONVEYOR_DTYPE_F64 && (info.rank == 1 || info.rank == 2) &&
                 info.tag == frames && info.byte_length % 8 == 0 &&
                 conveyor_f64_fill_uniform(expected, (size_t)n, seed, info.tag, 0) == CONVEYOR_OK &&
                 memcmp(expected, data, info.byte_length) == 0;
        if (!ok) {
            fprintf(stderr, "frame %" PRIu64 ": tag %" PRIu64 ", dtype %u, rank %u, %" PRIu64
                    " bytes: not the expected frame\n", frames, info.tag, info.dtype, info.rank,
                    info.byte_length);
            bad++;
        }
        checksum += (info.tag + 1) * crosslang_frame_checksum(data, (size_t)n);
        crosslang_check(conveyor_ring_release(consumer), "conveyor_ring_release");
        frames++;
    }
    printf("frames %" PRIu64 " checksum %016" PRIx64 " bad %" PRIu64 "\n", frames, checksum, bad);
    fflush(stdout);
    free(expected);
    conveyor_ring_destroy(consumer);
    return bad == 0 ? 0 : 1;
}
