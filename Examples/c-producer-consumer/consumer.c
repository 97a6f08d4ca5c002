/*
 * consumer.c — reads the frames producer.c writes, in place, and checks every element.
 *
 *   consumer NAME FRAMES        e.g.  consumer /conveyor-example-$$ 64
 *
 * Attaches to the NAMED ring NAME as its consumer (start the producer first: it creates
 * the ring and prints "ready NAME" once it exists), then receives frames until the end
 * of the stream. Each frame is read where the producer wrote it (a read-only pointer
 * into the shared slot, nothing copied), checked — dtype, shape, length, tag t in
 * sequence, and all 10^6 values of frame t's pattern (frames.h) — and released, which
 * gives the slot back to the producer.
 *
 * Prints a summary; exit status 0 only if exactly FRAMES frames arrived and all were
 * right, 1 if a frame was wrong, missing or extra or a call failed (the message on
 * stderr; CONVEYOR_E_SYSTEM with errno ENOENT: no ring of that name), 2 for bad
 * arguments.
 */
#include "frames.h"

/* Returns NULL if the frame is frame t, else what is wrong with it; for a wrong element,
 * *bad_index is set to its index (it is left alone otherwise). */
static const char *frame_error(const double *x, const conveyor_frame_info *info, uint64_t t,
                               uint64_t *bad_index) {
    if (info->dtype != CONVEYOR_DTYPE_F64) return "dtype is not float64";
    if (info->rank != 2 || info->shape[0] != ROWS || info->shape[1] != COLS) return "shape is not 500 x 2000";
    if (info->byte_length != ELEMENTS * sizeof(double)) return "byte length is not 8000000";
    if (info->tag != t) return "tag out of sequence";
    for (uint64_t j = 0; j < ELEMENTS; j++) {
        if (x[j] != frame_value(t, j)) {
            *bad_index = j;
            return "element differs from the pattern";
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    const char *program = "consumer";
    if (argc != 3) {
        fprintf(stderr, "usage: %s NAME FRAMES   (the producer's NAME and FRAMES)\n", argv[0]);
        return 2;
    }
    const char *name = argv[1];
    uint64_t expected = parse_count(program, argv[2]);

    conveyor_ring *ring = NULL;
    int status = conveyor_ring_attach_named(name, CONVEYOR_RING_CONSUMER, &ring);
    if (status == CONVEYOR_E_SYSTEM && errno == ENOENT) {
        fprintf(stderr, "%s: no ring named %s (start the producer first)\n", program, name);
        return 1;
    }
    if (failed(program, status, "conveyor_ring_attach_named")) return 1;

    uint64_t received = 0, correct = 0;
    int call_failed = 0;
    for (;;) {
        const void *data = NULL;
        conveyor_frame_info info;
        status = conveyor_ring_receive(ring, WAIT_NS, &data, &info);
        if (status == CONVEYOR_E_END_OF_STREAM) break;  /* closed, and every frame received */
        if (failed(program, status, "conveyor_ring_receive")) {
            call_failed = 1;
            break;
        }
        uint64_t bad_index = UINT64_MAX;
        const char *error = frame_error(data, &info, received, &bad_index);
        if (error == NULL) {
            correct++;
        } else {
            fprintf(stderr, "%s: frame %" PRIu64 " (tag %" PRIu64 "): %s", program, received,
                    info.tag, error);
            if (bad_index != UINT64_MAX)
                fprintf(stderr, " at %" PRIu64 ": %.17g, expected %.17g", bad_index,
                        ((const double *)data)[bad_index], frame_value(received, bad_index));
            fputc('\n', stderr);
        }
        received++;
        /* The pointer is dead after this: the producer may write the slot again. */
        if (failed(program, conveyor_ring_release(ring), "conveyor_ring_release")) {
            call_failed = 1;
            break;
        }
    }

    conveyor_ring_stats stats;
    memset(&stats, 0, sizeof stats);
    int have_stats = !failed(program, conveyor_ring_read_stats(ring, &stats, sizeof stats),
                             "conveyor_ring_read_stats");
    conveyor_ring_destroy(ring);

    int ok = !call_failed && received == expected && correct == expected;
    printf("%s: %" PRIu64 " frames received, %" PRIu64 " correct, %" PRIu64 " expected: %s\n",
           program, received, correct, expected, ok ? "OK" : "FAILED");
    if (have_stats)
        printf("%s: ring of %" PRIu32 " slots, %" PRIu64 " MB committed, the producer waited %" PRIu64
               " times for a slot, the consumer %" PRIu64 " times for a frame\n",
               program, stats.slot_count, stats.bytes_committed / 1000000, stats.producer_waits,
               stats.consumer_waits);
    return ok ? 0 : 1;
}
