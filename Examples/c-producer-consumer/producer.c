/*
 * producer.c — writes FRAMES matrices into a NAMED ring, in place, for consumer.c.
 *
 *   producer NAME FRAMES        e.g.  producer /conveyor-example-$$ 64
 *
 * Creates the ring NAME (a POSIX shared-memory object, /dev/shm/NAME without its '/'),
 * prints "ready NAME" on stdout once a consumer can attach, then for t = 0..FRAMES-1
 * loans a slot, writes frame t's pattern (frames.h) straight into it and commits it as a
 * 500 x 2000 float64 frame tagged t. Then it closes the stream and destroys its handle,
 * which unlinks the name: nothing is left in /dev/shm, on success or failure.
 *
 * Why FRAMES must exceed the slot count: the name exists only while the producer runs,
 * so the consumer must attach before the producer finishes. The loan of frame SLOTS
 * waits until the consumer released frame 0, so with more frames than slots the
 * producer cannot finish before a consumer attached; with fewer it could commit them
 * all, close and unlink before any consumer came.
 *
 * Exit status: 0 when every frame was committed and the stream closed; 1 if a call
 * failed (the message on stderr: e.g. CONVEYOR_E_EXISTS if the name is taken,
 * CONVEYOR_E_TIMEOUT if no consumer came within 10 s, CONVEYOR_E_PEER_DEAD if it died);
 * 2 for bad arguments.
 */
#include "frames.h"

int main(int argc, char **argv) {
    const char *program = "producer";
    if (argc != 3) {
        fprintf(stderr, "usage: %s NAME FRAMES   (NAME like /conveyor-example-PID)\n", argv[0]);
        return 2;
    }
    const char *name = argv[1];
    uint64_t frames = parse_count(program, argv[2]);
    if (frames <= SLOTS) {
        fprintf(stderr, "%s: FRAMES must exceed the ring's %d slots (see the top of producer.c)\n",
                program, SLOTS);
        return 2;
    }

    conveyor_ring_config config = {.slot_count = SLOTS, .slot_bytes = ELEMENTS * sizeof(double),
                                   .spin = CONVEYOR_RING_DEFAULT_SPIN,
                                   .backing = CONVEYOR_RING_NAMED, .name = name};
    conveyor_ring *ring = NULL;
    if (failed(program, conveyor_ring_create(&config, &ring, NULL), "conveyor_ring_create")) return 1;
    printf("ready %s\n", name);
    fflush(stdout);  /* the test waits for this line before it starts the consumer */

    int ok = 0;
    uint64_t t = 0;
    for (; t < frames; t++) {
        void *data = NULL;
        uint64_t capacity = 0;
        if (failed(program, conveyor_ring_loan(ring, WAIT_NS, &data, &capacity), "conveyor_ring_loan"))
            goto out;
        double *x = data;  /* the slot itself: the consumer will read these very bytes */
        for (uint64_t j = 0; j < ELEMENTS; j++) x[j] = frame_value(t, j);
        conveyor_frame_info info = {.dtype = CONVEYOR_DTYPE_F64, .rank = 2, .shape = {ROWS, COLS},
                                    .byte_length = ELEMENTS * sizeof(double), .tag = t};
        if (failed(program, conveyor_ring_commit(ring, &info), "conveyor_ring_commit")) {
            conveyor_ring_abandon(ring);  /* the loan stays outstanding after a failed commit */
            goto out;
        }
    }
    /* The consumer receives every committed frame, then CONVEYOR_E_END_OF_STREAM. */
    if (failed(program, conveyor_ring_close(ring), "conveyor_ring_close")) goto out;
    ok = 1;
out:
    fprintf(ok ? stdout : stderr, "%s: %s after %" PRIu64 " of %" PRIu64 " frames\n", program,
            ok ? "closed the stream" : "FAILED", t, frames);
    /* After close the consumer keeps its own mapping and drains the rest; without close
     * (a failure) it sees CONVEYOR_E_PEER_DEAD. Either way the name is unlinked here. */
    conveyor_ring_destroy(ring);
    return ok ? 0 : 1;
}
