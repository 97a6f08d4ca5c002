/*
 * mpi_frames.c — frames cross a link intact, under mpirun -n 2: every dtype, ranks 0-4,
 * empty frames, frames of many chunks, a frame over the default chunk size, through the
 * link calls and through a ring on each side (send and receive bridges); then every way a
 * link refuses: bad frames, a buffer too small, a hostile sender's descriptors and chunks,
 * a receiver that left.
 *
 *   mpirun -n 2 mpi_frames
 */
#include <pthread.h>

#include "mpi_test.h"
#include "../../Bridges/mpi/src/link_internal.h" /* the wire descriptor, for the hostile sender */

static uint64_t element_size(uint32_t dtype) {
    return dtype == CONVEYOR_DTYPE_F64 ? 8 : dtype == CONVEYOR_DTYPE_F32 ? 4 : 1;
}

enum { SMALL_CHUNK = 1000, TEST_LIVENESS_NS = 2000000000, TEST_HEARTBEAT_NS = 20000000 };

/* The frames every channel sends: dtype x rank, an empty one per rank > 0, many chunks. */
static int frame_list(conveyor_frame_info *frames, int capacity) {
    static const uint64_t dims[CONVEYOR_FRAME_MAX_RANK] = {3, 1, 7, 2};
    int n = 0;
    for (uint32_t dtype = CONVEYOR_DTYPE_BYTES; dtype <= CONVEYOR_DTYPE_F64; dtype++) {
        for (uint32_t rank = 0; rank <= CONVEYOR_FRAME_MAX_RANK; rank++) {
            for (int empty = 0; empty <= (rank > 0); empty++) {
                conveyor_frame_info *f = &frames[n];
                memset(f, 0, sizeof *f);
                f->dtype = dtype;
                f->rank = rank;
                uint64_t bytes = element_size(dtype);
                for (uint32_t d = 0; d < rank; d++) {
                    f->shape[d] = empty && d == rank - 1 ? 0 : dims[d];
                    bytes *= f->shape[d];
                }
                f->byte_length = bytes;
                f->tag = 1000 + (uint64_t)n;
                n++;
            }
        }
        conveyor_frame_info *big = &frames[n++];   // 46 chunks of SMALL_CHUNK for a small chunk size
        memset(big, 0, sizeof *big);
        big->dtype = dtype;
        big->rank = 2;
        big->shape[0] = 17;
        big->shape[1] = 333 * 8 / element_size(dtype);
        big->byte_length = 17 * 333 * 8;
        big->tag = 1000 + (uint64_t)n;
    }
    CHECK(n <= capacity, NULL);
    return n;
}

static conveyor_mpi_link *open_link(int direction, int peer, int channel, uint64_t chunk) {
    return open_test_link(direction, peer, channel, chunk, TEST_LIVENESS_NS, TEST_HEARTBEAT_NS, 3);
}

static void expect_same(const conveyor_frame_info *got, const conveyor_frame_info *want) {
    CHECK(got->dtype == want->dtype && got->rank == want->rank && got->byte_length == want->byte_length &&
          got->tag == want->tag, NULL);
    for (uint32_t d = 0; d < want->rank; d++) CHECK(got->shape[d] == want->shape[d], NULL);
}

/* ---- Through the link calls ---------------------------------------------------------- */

static void send_frames(int channel, uint64_t chunk, const conveyor_frame_info *frames, int n) {
    conveyor_mpi_link *link = open_link(CONVEYOR_MPI_SENDER, 1, channel, chunk);
    unsigned char *buffers[64];
    for (int i = 0; i < n; i++) {
        buffers[i] = malloc(frames[i].byte_length + 1);
        fill_pattern(buffers[i], frames[i].byte_length, (uint64_t)i);
        // Posted, not waited: up to the window stays in flight from these buffers.
        CHECK_STATUS(conveyor_mpi_link_send_post(link, buffers[i], &frames[i]), CONVEYOR_OK, link);
    }
    CHECK_STATUS(conveyor_mpi_link_close(link), CONVEYOR_OK, link);
    CHECK_STATUS(conveyor_mpi_link_close(link), CONVEYOR_OK, link); // twice is fine
    conveyor_mpi_link_stats stats;
    CHECK_STATUS(conveyor_mpi_link_get_stats(link, &stats), CONVEYOR_OK, link);
    CHECK(stats.frames == (uint64_t)n, link);
    conveyor_mpi_link_destroy(link);
    for (int i = 0; i < n; i++) free(buffers[i]);
}

static void receive_frames(int channel, const conveyor_frame_info *frames, int n) {
    conveyor_mpi_link *link = open_link(CONVEYOR_MPI_RECEIVER, 0, channel, 0);
    conveyor_frame_info info;
    for (int i = 0; i < n; i++) {
        CHECK_STATUS(conveyor_mpi_link_next(link, -1, &info), CONVEYOR_OK, link);
        expect_same(&info, &frames[i]);
        CHECK_STATUS(conveyor_mpi_link_next(link, 0, &info), CONVEYOR_E_BAD_STATE, NULL); // payload not taken
        unsigned char *buffer = malloc(info.byte_length + 1);
        CHECK_STATUS(conveyor_mpi_link_receive_payload(link, buffer, info.byte_length), CONVEYOR_OK, link);
        CHECK(first_wrong_byte(buffer, info.byte_length, (uint64_t)i) == info.byte_length, link);
        free(buffer);
    }
    CHECK_STATUS(conveyor_mpi_link_next(link, -1, &info), CONVEYOR_E_END_OF_STREAM, link);
    CHECK_STATUS(conveyor_mpi_link_next(link, -1, &info), CONVEYOR_E_END_OF_STREAM, link);
    conveyor_mpi_link_stats stats;
    CHECK_STATUS(conveyor_mpi_link_get_stats(link, &stats), CONVEYOR_OK, link);
    CHECK(stats.frames == (uint64_t)n, link);
    conveyor_mpi_link_destroy(link);
}

/* ---- Through rings and bridges ------------------------------------------------------- */

typedef struct ring_job {
    conveyor_ring *ring;
    const conveyor_frame_info *frames;
    int n;
    conveyor_mpi_link *link;
    int status;
} ring_job;

static void *produce(void *argument) {
    ring_job *job = argument;
    for (int i = 0; i < job->n; i++) {
        void *slot = NULL;
        uint64_t capacity = 0;
        CHECK_STATUS(conveyor_ring_loan(job->ring, -1, &slot, &capacity), CONVEYOR_OK, NULL);
        fill_pattern(slot, job->frames[i].byte_length, (uint64_t)i);
        CHECK_STATUS(conveyor_ring_commit(job->ring, &job->frames[i]), CONVEYOR_OK, NULL);
    }
    CHECK_STATUS(conveyor_ring_close(job->ring), CONVEYOR_OK, NULL);
    return NULL;
}

static void *bridge_in(void *argument) {
    ring_job *job = argument;
    job->status = conveyor_mpi_receive_bridge(job->link, job->ring);
    return NULL;
}

static void make_ring(conveyor_ring **producer, conveyor_ring **consumer) {
    make_test_ring(3, 64 << 10, producer, consumer);
}

static void bridge_frames_out(const conveyor_frame_info *frames, int n) {
    conveyor_ring *producer, *consumer;
    make_ring(&producer, &consumer);
    conveyor_mpi_link *link = open_link(CONVEYOR_MPI_SENDER, 1, 8, SMALL_CHUNK);
    ring_job job = {producer, frames, n, link, 0};
    pthread_t thread;
    pthread_create(&thread, NULL, produce, &job);
    CHECK_STATUS(conveyor_mpi_send_bridge(link, consumer), CONVEYOR_OK, link);
    pthread_join(thread, NULL);
    conveyor_mpi_link_destroy(link);
    conveyor_ring_destroy(consumer);
    conveyor_ring_destroy(producer);
}

static void bridge_frames_in(const conveyor_frame_info *frames, int n) {
    conveyor_ring *producer, *consumer;
    make_ring(&producer, &consumer);
    conveyor_mpi_link *link = open_link(CONVEYOR_MPI_RECEIVER, 0, 8, 0);
    ring_job job = {producer, frames, n, link, -1};
    pthread_t thread;
    pthread_create(&thread, NULL, bridge_in, &job);
    for (int i = 0; i < n; i++) {
        const void *data = NULL;
        conveyor_frame_info info;
        CHECK_STATUS(conveyor_ring_receive(consumer, -1, &data, &info), CONVEYOR_OK, NULL);
        expect_same(&info, &frames[i]);
        CHECK(first_wrong_byte(data, info.byte_length, (uint64_t)i) == info.byte_length, NULL);
        CHECK_STATUS(conveyor_ring_release(consumer), CONVEYOR_OK, NULL);
    }
    const void *data = NULL;
    conveyor_frame_info info;
    CHECK_STATUS(conveyor_ring_receive(consumer, -1, &data, &info), CONVEYOR_E_END_OF_STREAM, NULL);
    pthread_join(thread, NULL);
    CHECK_STATUS(job.status, CONVEYOR_OK, link);
    conveyor_mpi_link_destroy(link);
    conveyor_ring_destroy(consumer);
    conveyor_ring_destroy(producer);
}

/* ---- Refusals ------------------------------------------------------------------------ */

static void hostile_descriptor(int channel, wire_descriptor d) {
    MPI_Send(&d, sizeof d, MPI_BYTE, 1, 16384 + 4 * channel, MPI_COMM_WORLD);
}

static wire_descriptor valid_descriptor(uint64_t bytes) {
    wire_descriptor d;
    memset(&d, 0, sizeof d);
    d.magic = WIRE_MAGIC;
    d.version = WIRE_VERSION;
    d.kind = WIRE_FRAME;
    d.dtype = CONVEYOR_DTYPE_BYTES;
    d.rank = 1;
    d.shape[0] = bytes;
    d.byte_length = bytes;
    d.chunk_bytes = bytes;
    return d;
}

static void refusals_sender(void) {
    // Bad frames and wrong calls never reach the wire.
    conveyor_mpi_link *link = open_link(CONVEYOR_MPI_SENDER, 1, 20, 0);
    unsigned char bytes[64] = {0};
    conveyor_frame_info bad;
    memset(&bad, 0, sizeof bad);
    bad.dtype = CONVEYOR_DTYPE_F64;
    bad.rank = 1;
    bad.shape[0] = 3;
    bad.byte_length = 16; // 3 doubles are 24 bytes
    CHECK_STATUS(conveyor_mpi_link_send_post(link, bytes, &bad), CONVEYOR_E_INVALID_ARGUMENT, link);
    bad.rank = 5;
    CHECK_STATUS(conveyor_mpi_link_send_post(link, bytes, &bad), CONVEYOR_E_INVALID_ARGUMENT, link);
    bad.rank = 1;
    bad.dtype = 9;
    CHECK_STATUS(conveyor_mpi_link_send_post(link, bytes, &bad), CONVEYOR_E_INVALID_ARGUMENT, link);
    conveyor_frame_info info;
    CHECK_STATUS(conveyor_mpi_link_next(link, 0, &info), CONVEYOR_E_WRONG_ROLE, link);
    CHECK_STATUS(conveyor_mpi_link_receive_payload(link, bytes, 64), CONVEYOR_E_WRONG_ROLE, link);
    // A 100-byte frame, which the receiver gives only 50 bytes for.
    conveyor_frame_info hundred;
    memset(&hundred, 0, sizeof hundred);
    hundred.rank = 1;
    hundred.shape[0] = 64;
    hundred.byte_length = 64;
    CHECK_STATUS(conveyor_mpi_link_send(link, bytes, &hundred), CONVEYOR_OK, link);
    conveyor_mpi_link_destroy(link);

    conveyor_mpi_link_config config;
    memset(&config, 0, sizeof config);
    config.peer = 0; // this rank itself
    CHECK_STATUS(conveyor_mpi_link_open(&config, CONVEYOR_MPI_SENDER, &link), CONVEYOR_E_INVALID_ARGUMENT, NULL);
    config.peer = 2; // no such rank
    CHECK_STATUS(conveyor_mpi_link_open(&config, CONVEYOR_MPI_SENDER, &link), CONVEYOR_E_INVALID_ARGUMENT, NULL);
    config.peer = 1;
    CHECK_STATUS(conveyor_mpi_link_open(&config, 3, &link), CONVEYOR_E_INVALID_ARGUMENT, NULL);
    config.channel = CONVEYOR_MPI_MAX_CHANNEL + 1;
    CHECK_STATUS(conveyor_mpi_link_open(&config, CONVEYOR_MPI_SENDER, &link), CONVEYOR_E_INVALID_ARGUMENT, NULL);

    // A hostile sender: the wire format broken every way the receiver checks.
    wire_descriptor d = valid_descriptor(8);
    d.magic = 0x12345678;
    hostile_descriptor(21, d);
    d = valid_descriptor(8);
    d.seq = 5;
    hostile_descriptor(22, d);
    d = valid_descriptor(8);
    d.byte_length = 9; // the shape says 8
    hostile_descriptor(23, d);
    d = valid_descriptor(8);
    d.chunk_bytes = 0;
    hostile_descriptor(24, d);
    d = valid_descriptor(100);
    hostile_descriptor(25, d);
    unsigned char too_much[200] = {0};
    MPI_Send(too_much, 200, MPI_BYTE, 1, 16384 + 4 * 25 + 1, MPI_COMM_WORLD); // a chunk larger than announced
    d = valid_descriptor(100);
    hostile_descriptor(26, d);
    MPI_Send(too_much, 60, MPI_BYTE, 1, 16384 + 4 * 26 + 1, MPI_COMM_WORLD);  // shorter than announced
    unsigned char long_descriptor[200] = {0};
    MPI_Send(long_descriptor, 200, MPI_BYTE, 1, 16384 + 4 * 27, MPI_COMM_WORLD);

    // A receiver that leaves: the close waits for an acknowledgement that never comes.
    link = open_link(CONVEYOR_MPI_SENDER, 1, 28, 0);
    CHECK_STATUS(conveyor_mpi_link_send(link, bytes, &hundred), CONVEYOR_OK, link);
    // (While it waits for the acknowledgement, a BYE is no error: the receiver's silence is.)
    CHECK_STATUS(conveyor_mpi_link_close(link), CONVEYOR_E_PEER_DEAD, link);
    CHECK(strstr(conveyor_mpi_link_error(link), "no heartbeat") != NULL, link);
    CHECK_STATUS(conveyor_mpi_link_send(link, bytes, &hundred), CONVEYOR_E_BAD_STATE, link);
    conveyor_mpi_link_destroy(link);
}

static void expect_corrupt(int channel, const char *words) {
    conveyor_mpi_link *link = open_link(CONVEYOR_MPI_RECEIVER, 0, channel, 0);
    conveyor_frame_info info;
    int status = conveyor_mpi_link_next(link, -1, &info);
    if (status == CONVEYOR_OK) {
        unsigned char buffer[256];
        status = conveyor_mpi_link_receive_payload(link, buffer, sizeof buffer);
    }
    CHECK_STATUS(status, CONVEYOR_E_CORRUPT, link);
    CHECK(strstr(conveyor_mpi_link_error(link), words) != NULL, link);
    CHECK_STATUS(conveyor_mpi_link_next(link, 0, &info), CONVEYOR_E_BAD_STATE, link); // broken for good
    conveyor_mpi_link_destroy(link);
}

static void refusals_receiver(void) {
    conveyor_mpi_link *link = open_link(CONVEYOR_MPI_RECEIVER, 0, 20, 0);
    conveyor_frame_info info;
    unsigned char small[50];
    CHECK_STATUS(conveyor_mpi_link_receive_payload(link, small, sizeof small), CONVEYOR_E_BAD_STATE, link);
    CHECK_STATUS(conveyor_mpi_link_next(link, -1, &info), CONVEYOR_OK, link);
    CHECK_STATUS(conveyor_mpi_link_send(link, small, &info), CONVEYOR_E_WRONG_ROLE, link);
    CHECK_STATUS(conveyor_mpi_link_receive_payload(link, small, sizeof small), CONVEYOR_E_TOO_LARGE, link);
    CHECK_STATUS(conveyor_mpi_link_next(link, 0, &info), CONVEYOR_E_BAD_STATE, link);
    conveyor_mpi_link_destroy(link);
    // The 64 bytes never taken stay in MPI's queue of unexpected messages, harmlessly.

    expect_corrupt(21, "wrong magic");
    expect_corrupt(22, "out of sequence");
    expect_corrupt(23, "disagrees with the byte length");
    expect_corrupt(24, "chunk size");
    expect_corrupt(25, "larger than announced");
    expect_corrupt(26, "shorter than announced");
    expect_corrupt(27, "larger than a descriptor");

    link = open_link(CONVEYOR_MPI_RECEIVER, 0, 28, 0);
    conveyor_mpi_link_destroy(link); // leaves at once: the sender's close must notice
}

int main(int argc, char **argv) {
    CHECK_STATUS(conveyor_mpi_init(&argc, &argv), CONVEYOR_OK, NULL);
    CHECK(conveyor_mpi_world_size() == 2, NULL);
    int rank = conveyor_mpi_world_rank();
    conveyor_frame_info frames[64];
    int n = frame_list(frames, 64);

    // One frame over the default chunk size (4 MiB): three chunks, the last one short.
    conveyor_frame_info large;
    memset(&large, 0, sizeof large);
    large.rank = 1;
    large.shape[0] = (9u << 20) + 3;
    large.byte_length = large.shape[0];
    large.tag = 77;

    if (rank == 0) {
        send_frames(1, SMALL_CHUNK, frames, n);
        send_frames(2, 0, frames, n);
        send_frames(3, 0, &large, 1);
        bridge_frames_out(frames, n);
        refusals_sender();
    } else {
        receive_frames(1, frames, n);
        receive_frames(2, frames, n);
        receive_frames(3, &large, 1);
        bridge_frames_in(frames, n);
        refusals_receiver();
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) printf("mpi_frames: %d frames x 3 ways, a 9 MiB frame and 13 refusals passed\n", n);
    CHECK_STATUS(conveyor_mpi_finalize(), CONVEYOR_OK, NULL);
    return 0;
}
