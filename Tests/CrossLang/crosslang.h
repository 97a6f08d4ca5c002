/*
 * crosslang.h — what the cross-language peers of the Python tests share: argument parsing,
 * the frame checksum, and a bounded wait. The programs use Conveyor through conveyor.h
 * only (built with `pkg-config --cflags --libs conveyor` against the Meson install, see
 * scripts/test-python) and are driven by Tests/python/test_cross_language.py.
 *
 * The checksum (Tests/python/support.py computes the same, and so does Tests/RingPeer):
 *   frame  c_t = sum_j w_j * (2j + 1)       mod 2^64, w_j the frame's 64-bit words
 *   stream C   = sum_t (t + 1) * c_t        mod 2^64, t the frame's tag
 * Any change of one word changes c_t: its weight is odd, hence invertible mod 2^64.
 */
#ifndef CONVEYOR_CROSSLANG_H
#define CONVEYOR_CROSSLANG_H

#include <conveyor.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A ring wait that does not end within a minute is a failure, never a hang. */
#define CROSSLANG_WAIT_NS INT64_C(60000000000)

/* The frame checksum of n_words 64-bit words at `data` (which need not be aligned). */
static inline uint64_t crosslang_frame_checksum(const void *data, size_t n_words) {
    const unsigned char *bytes = (const unsigned char *)data;
    uint64_t sum = 0;
    for (size_t j = 0; j < n_words; j++) {
        uint64_t w;
        memcpy(&w, bytes + 8 * j, sizeof w);
        sum += w * (2 * (uint64_t)j + 1);
    }
    return sum;
}

/* Parses a decimal unsigned 64-bit argument or exits with status 2. */
static inline uint64_t crosslang_u64(const char *text, const char *what) {
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-') {
        fprintf(stderr, "bad %s: '%s'\n", what, text);
        exit(2);
    }
    return (uint64_t)value;
}

/* Exits with status 1 and a message if `status` is not CONVEYOR_OK. */
static inline void crosslang_check(int status, const char *call) {
    if (status != CONVEYOR_OK) {
        fprintf(stderr, "%s: %s (%s)\n", call, conveyor_status_message(status),
                conveyor_status_name(status));
        exit(1);
    }
}

#endif /* CONVEYOR_CROSSLANG_H */
