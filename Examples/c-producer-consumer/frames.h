/*
 * frames.h — what producer.c and consumer.c agree on: the frame shape and its pattern,
 * and how both report a failed call.
 */
#ifndef EXAMPLE_FRAMES_H
#define EXAMPLE_FRAMES_H

#include <conveyor.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every frame is a ROWS x COLS matrix of doubles, the question's 8 MB sample. */
#define ROWS 500
#define COLS 2000
#define ELEMENTS ((uint64_t)ROWS * COLS)

/* The ring's slots: frames in flight at once. */
#define SLOTS 4

/* How long either side waits for the other before giving up (10 s): a peer that never
 * comes (a consumer never started) ends the program with CONVEYOR_E_TIMEOUT instead of
 * hanging it. A peer that dies is reported sooner, as CONVEYOR_E_PEER_DEAD (~10 ms). */
#define WAIT_NS ((int64_t)10 * 1000 * 1000 * 1000)

/* Element j of frame t: exact in a double (t * 2^20 + j < 2^53 for any t < 2^32). */
static inline double frame_value(uint64_t t, uint64_t j) { return (double)(t * 1048576u + j); }

/* Reports a failed call as "program: call: message (status N[, errno])"; returns 0 for
 * CONVEYOR_OK, else 1, so callers can write `if (failed(...)) goto out;`. */
static inline int failed(const char *program, int status, const char *call) {
    if (status == CONVEYOR_OK) return 0;
    if (status == CONVEYOR_E_SYSTEM)
        fprintf(stderr, "%s: %s: %s (status %d, errno %d: %s)\n", program, call,
                conveyor_status_message(status), status, errno, strerror(errno));
    else
        fprintf(stderr, "%s: %s: %s (status %d)\n", program, call,
                conveyor_status_message(status), status);
    return 1;
}

/* Parses a count > 0; exits with 2 and a message otherwise. */
static inline uint64_t parse_count(const char *program, const char *text) {
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value == 0 || value > UINT32_MAX) {
        fprintf(stderr, "%s: FRAMES must be a whole number from 1 to %u, not '%s'\n", program,
                UINT32_MAX, text);
        exit(2);
    }
    return (uint64_t)value;
}

#endif
