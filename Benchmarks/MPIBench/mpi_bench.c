/* mpi_bench.c — the loops mpi_bench.h describes. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "conveyor_mpi.h"
#include "mpi_bench.h"

enum { PAYLOAD_TAG = 1, ACK_TAG = 2, BENCH_CHANNEL = 4000 };

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

/* The sender's wait for the 0-byte acknowledgement, the same in every variant: it tests
 * and naps 20 us between tests instead of spinning in MPI_Recv, so that the waiting main
 * thread does not take a core from the transfer it waits for (with 2 cores, a spinning
 * waiter besides the bridge's threads holds its core until the scheduler's tick). */
static int wait_ack(int peer) {
    MPI_Request request;
    int rc = MPI_Irecv(NULL, 0, MPI_BYTE, peer, ACK_TAG, MPI_COMM_WORLD, &request);
    for (int done = 0; rc == MPI_SUCCESS && !done;) {
        rc = MPI_Test(&request, &done, MPI_STATUS_IGNORE);
        if (!done) nanosleep(&(struct timespec){0, 20000}, NULL);
    }
    return rc;
}

int cvb_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD) == MPI_SUCCESS ? 0 : -1; }

int cvb_mpi_floor(uint64_t bytes, int rounds, int warmup, int peer, int sending, int shared, double *us) {
    size_t size = bytes ? bytes : 1;
    unsigned char *buffer = shared ? mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0) : malloc(size);
    if (buffer == MAP_FAILED) buffer = NULL;
    if (!buffer) return CONVEYOR_E_NO_MEMORY;
    memset(buffer, 1, bytes);
    int rc = MPI_SUCCESS;
    for (int r = -warmup; r < rounds && rc == MPI_SUCCESS; r++) {
        double t0 = now_us();
        if (sending) {
            rc = MPI_Send(buffer, (int)bytes, MPI_BYTE, peer, PAYLOAD_TAG, MPI_COMM_WORLD);
            if (rc == MPI_SUCCESS) rc = wait_ack(peer);
            if (r >= 0) us[r] = now_us() - t0;
        } else {
            rc = MPI_Recv(buffer, (int)bytes, MPI_BYTE, peer, PAYLOAD_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            if (rc == MPI_SUCCESS) rc = MPI_Send(NULL, 0, MPI_BYTE, peer, ACK_TAG, MPI_COMM_WORLD);
        }
    }
    if (shared) munmap(buffer, size);
    else free(buffer);
    return rc == MPI_SUCCESS ? 0 : -1;
}

/* One end of the benchmark's link on `channel`, and the frame description of `bytes`. */
static int open_link(int peer, int sending, int channel, uint64_t chunk_bytes, uint64_t bytes,
                     conveyor_mpi_link **link, conveyor_frame_info *info) {
    conveyor_mpi_link_config config;
    memset(&config, 0, sizeof config);
    config.peer = peer;
    config.channel = channel;
    config.chunk_bytes = chunk_bytes;
    memset(info, 0, sizeof *info);
    info->rank = 1;
    info->shape[0] = bytes;
    info->byte_length = bytes;
    return conveyor_mpi_link_open(&config, sending ? CONVEYOR_MPI_SENDER : CONVEYOR_MPI_RECEIVER, link);
}

int cvb_mpi_link(uint64_t bytes, int rounds, int warmup, int peer, int sending, uint64_t chunk_bytes, double *us) {
    unsigned char *buffer = malloc(bytes ? bytes : 1);
    if (!buffer) return CONVEYOR_E_NO_MEMORY;
    memset(buffer, 1, bytes);
    conveyor_mpi_link *link = NULL;
    conveyor_frame_info info;
    int status = open_link(peer, sending, BENCH_CHANNEL + 1, chunk_bytes, bytes, &link, &info);
    int rc = MPI_SUCCESS;
    for (int r = -warmup; r < rounds && status == CONVEYOR_OK && rc == MPI_SUCCESS; r++) {
        double t0 = now_us();
        if (sending) {
            status = conveyor_mpi_link_send(link, buffer, &info);
            if (status == CONVEYOR_OK) rc = wait_ack(peer);
            if (r >= 0) us[r] = now_us() - t0;
        } else {
            status = conveyor_mpi_link_next(link, -1, &info);
            if (status == CONVEYOR_OK) status = conveyor_mpi_link_receive_payload(link, buffer, bytes);
            if (status == CONVEYOR_OK) rc = MPI_Send(NULL, 0, MPI_BYTE, peer, ACK_TAG, MPI_COMM_WORLD);
        }
    }
    if (status == CONVEYOR_OK && rc == MPI_SUCCESS)
        status = sending ? conveyor_mpi_link_close(link) : conveyor_mpi_link_next(link, -1, &info) == CONVEYOR_E_END_OF_STREAM ? 0 : -1;
    conveyor_mpi_link_destroy(link);
    free(buffer);
    return status == CONVEYOR_OK && rc != MPI_SUCCESS ? -1 : status;
}

typedef struct bridge_thread {
    conveyor_mpi_link *link;
    conveyor_ring *ring;
    int sending, status;
} bridge_thread;

static void *run_bridge(void *argument) {
    bridge_thread *b = argument;
    b->status = b->sending ? conveyor_mpi_send_bridge(b->link, b->ring) : conveyor_mpi_receive_bridge(b->link, b->ring);
    return NULL;
}

int cvb_mpi_bridge(uint64_t bytes, int rounds, int warmup, int peer, int sending, uint64_t chunk_bytes, double *us) {
    conveyor_ring_config ring_config;
    memset(&ring_config, 0, sizeof ring_config);
    ring_config.slot_count = 2;
    ring_config.slot_bytes = bytes ? bytes : 1;
    ring_config.backing = CONVEYOR_RING_ANONYMOUS;
    ring_config.spin = CONVEYOR_RING_DEFAULT_SPIN;
    conveyor_ring *producer = NULL, *consumer = NULL;
    int status = conveyor_ring_create(&ring_config, &producer, &consumer);
    if (status != CONVEYOR_OK) return status;
    conveyor_mpi_link *link = NULL;
    conveyor_frame_info info;
    status = open_link(peer, sending, BENCH_CHANNEL, chunk_bytes, bytes, &link, &info);
    if (status != CONVEYOR_OK) {
        conveyor_ring_destroy(producer);
        conveyor_ring_destroy(consumer);
        return status;
    }
    bridge_thread bridge = {link, sending ? consumer : producer, sending, 0};
    pthread_t thread;
    pthread_create(&thread, NULL, run_bridge, &bridge);
    int rc = MPI_SUCCESS;
    for (int r = -warmup; r < rounds && status == CONVEYOR_OK && rc == MPI_SUCCESS; r++) {
        double t0 = now_us();
        if (sending) {
            void *slot = NULL;
            uint64_t capacity = 0;
            status = conveyor_ring_loan(producer, -1, &slot, &capacity);
            if (status != CONVEYOR_OK) break;
            if (r < 0) memset(slot, 1, bytes); // the warm-up rounds write both slots once
            status = conveyor_ring_commit(producer, &info);
            if (status == CONVEYOR_OK) rc = wait_ack(peer);
            if (r >= 0) us[r] = now_us() - t0;
        } else {
            const void *data = NULL;
            status = conveyor_ring_receive(consumer, -1, &data, &info);
            if (status == CONVEYOR_OK) status = conveyor_ring_release(consumer);
            if (status == CONVEYOR_OK) rc = MPI_Send(NULL, 0, MPI_BYTE, peer, ACK_TAG, MPI_COMM_WORLD);
        }
    }
    if (sending) conveyor_ring_close(producer);
    else {
        const void *data = NULL;
        if (status == CONVEYOR_OK && conveyor_ring_receive(consumer, -1, &data, &info) != CONVEYOR_E_END_OF_STREAM)
            status = CONVEYOR_E_BAD_STATE;
    }
    pthread_join(thread, NULL);
    if (status == CONVEYOR_OK) status = bridge.status;
    conveyor_mpi_link_destroy(link);
    conveyor_ring_destroy(producer);
    conveyor_ring_destroy(consumer);
    if (status == CONVEYOR_OK && rc != MPI_SUCCESS) status = -1;
    return status;
}
