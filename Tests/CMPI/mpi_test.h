/*
 * mpi_test.h — what the MPI test programs share: a check that names the rank and the
 * line and ends the whole job, and the pattern frames are filled with and checked against.
 */
#ifndef CONVEYOR_MPI_TEST_H
#define CONVEYOR_MPI_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conveyor_mpi.h"

/* Fails the job at once, with the rank, the line and the link's own message if any. */
#define CHECK(cond, link)                                                                       \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "rank %d: %s:%d: check failed: %s %s\n", conveyor_mpi_world_rank(), \
                    __FILE__, __LINE__, #cond, (link) ? conveyor_mpi_link_error(link) : "");    \
            conveyor_mpi_abort(1);                                                              \
        }                                                                                       \
    } while (0)

/* CHECK that a call returned `expected`, printing the status it returned otherwise. */
#define CHECK_STATUS(call, expected, link)                                                      \
    do {                                                                                        \
        int status_ = (call);                                                                   \
        if (status_ != (expected)) {                                                            \
            fprintf(stderr, "rank %d: %s:%d: %s returned %d (%s), expected %d: %s\n",            \
                    conveyor_mpi_world_rank(), __FILE__, __LINE__, #call, status_,              \
                    conveyor_mpi_status_message(status_), (int)(expected),                      \
                    (link) ? conveyor_mpi_link_error(link) : "");                               \
            conveyor_mpi_abort(1);                                                              \
        }                                                                                       \
    } while (0)

/* Opens one end of a link (0 for a field: its default), failing the job if it cannot. */
static inline conveyor_mpi_link *open_test_link(int direction, int peer, int channel, uint64_t chunk_bytes,
                                                int64_t liveness_ns, int64_t heartbeat_ns, uint32_t window) {
    conveyor_mpi_link_config config;
    memset(&config, 0, sizeof config);
    config.peer = peer;
    config.channel = channel;
    config.chunk_bytes = chunk_bytes;
    config.liveness_ns = liveness_ns;
    config.heartbeat_ns = heartbeat_ns;
    config.window = window;
    conveyor_mpi_link *link = NULL;
    CHECK_STATUS(conveyor_mpi_link_open(&config, direction, &link), CONVEYOR_OK, NULL);
    return link;
}

/* An anonymous ring of `slots` slots of `slot_bytes`, failing the job if it cannot. */
static inline void make_test_ring(uint32_t slots, uint64_t slot_bytes, conveyor_ring **producer,
                                  conveyor_ring **consumer) {
    conveyor_ring_config config;
    memset(&config, 0, sizeof config);
    config.slot_count = slots;
    config.slot_bytes = slot_bytes;
    config.backing = CONVEYOR_RING_ANONYMOUS;
    CHECK_STATUS(conveyor_ring_create(&config, producer, consumer), CONVEYOR_OK, NULL);
}

/* Byte i of frame `seq`: a pattern a lost, shifted or mixed-up chunk cannot keep. */
static inline unsigned char pattern_byte(uint64_t seq, uint64_t i) {
    uint64_t x = (seq + 1) * 0x9E3779B97F4A7C15ull ^ (i * 0xBF58476D1CE4E5B9ull);
    return (unsigned char)(x >> 56 ^ x >> 24 ^ i);
}

static inline void fill_pattern(unsigned char *bytes, uint64_t length, uint64_t seq) {
    for (uint64_t i = 0; i < length; i++) bytes[i] = pattern_byte(seq, i);
}

/* The first byte that differs from the pattern, or `length` when none does. */
static inline uint64_t first_wrong_byte(const unsigned char *bytes, uint64_t length, uint64_t seq) {
    for (uint64_t i = 0; i < length; i++)
        if (bytes[i] != pattern_byte(seq, i)) return i;
    return length;
}

#endif
