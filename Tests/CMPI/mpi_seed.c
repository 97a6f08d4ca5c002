/*
 * mpi_seed.c — the question's pipeline across four ranks, ring to ring over links, under
 * mpirun -n 4: rank 0 generates the items and sums the results; h(x) = x*x runs on rank
 * 1, g(x) = 3x on rank 2, f(x) = x+1 on rank 3. Every stage reads its input in place in a
 * slot of its ring (where the receive bridge put it) and writes its output in place into
 * a slot of the next ring (which the send bridge sends from). Rank 0 then computes the
 * same checksum on its own and compares the two bit for bit.
 *
 *   mpirun -n 4 mpi_seed [items rows cols]      (default 24 250 400)
 */
#include <pthread.h>

#include "mpi_test.h"

enum { SLOTS = 3 };
static const int64_t LIVENESS_NS = 5000000000;

static uint64_t items = 24, rows = 250, cols = 400;

static conveyor_mpi_link *open_link(int direction, int peer, int channel) {
    return open_test_link(direction, peer, channel, 0, LIVENESS_NS, 0, 0);
}

static void make_ring(conveyor_ring **producer, conveyor_ring **consumer) {
    make_test_ring(SLOTS, rows * cols * sizeof(double), producer, consumer);
}

static conveyor_frame_info item_info(uint64_t index) {
    conveyor_frame_info info;
    memset(&info, 0, sizeof info);
    info.dtype = CONVEYOR_DTYPE_F64;
    info.rank = 2;
    info.shape[0] = rows;
    info.shape[1] = cols;
    info.byte_length = rows * cols * sizeof(double);
    info.tag = index;
    return info;
}

/* A bridge on a thread of its own: the rank's main thread does the stage's work. */
typedef struct bridge_job {
    conveyor_mpi_link *link;
    conveyor_ring *ring;
    int sending;
    int status;
} bridge_job;

static void *run_bridge(void *argument) {
    bridge_job *job = argument;
    job->status = job->sending ? conveyor_mpi_send_bridge(job->link, job->ring)
                               : conveyor_mpi_receive_bridge(job->link, job->ring);
    CHECK_STATUS(job->status, CONVEYOR_OK, job->link); // at once: the rank's other threads may wait on its ring
    return NULL;
}

static pthread_t start_bridge(bridge_job *job) {
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, run_bridge, job) == 0, NULL);
    return thread;
}

static void finish_bridge(pthread_t thread, bridge_job *job) {
    pthread_join(thread, NULL);
    CHECK_STATUS(job->status, CONVEYOR_OK, job->link);
    conveyor_mpi_link_destroy(job->link);
}

/* Rank 0's producer: item i is uniform stream 7 from element i*n. */
static void *generate(void *argument) {
    conveyor_ring *producer = argument;
    uint64_t n = rows * cols;
    for (uint64_t i = 0; i < items; i++) {
        void *slot = NULL;
        uint64_t capacity = 0;
        CHECK_STATUS(conveyor_ring_loan(producer, -1, &slot, &capacity), CONVEYOR_OK, NULL);
        CHECK_STATUS(conveyor_f64_fill_uniform(slot, n, 2016, 7, i * n), CONVEYOR_OK, NULL);
        conveyor_frame_info info = item_info(i);
        CHECK_STATUS(conveyor_ring_commit(producer, &info), CONVEYOR_OK, NULL);
    }
    CHECK_STATUS(conveyor_ring_close(producer), CONVEYOR_OK, NULL);
    return NULL;
}

static int apply(int stage, double *out, const double *x, size_t n) {
    switch (stage) {
    case 1: return conveyor_f64_square(out, x, n);
    case 2: return conveyor_f64_mul_scalar(out, x, 3.0, n);
    default: return conveyor_f64_add_scalar(out, x, 1.0, n);
    }
}

static void source_and_sink(int last) {
    conveyor_ring *out_producer, *out_consumer, *in_producer, *in_consumer;
    make_ring(&out_producer, &out_consumer);
    make_ring(&in_producer, &in_consumer);
    bridge_job out = {open_link(CONVEYOR_MPI_SENDER, 1, 0), out_consumer, 1, -1};
    bridge_job in = {open_link(CONVEYOR_MPI_RECEIVER, last, last), in_producer, 0, -1};
    pthread_t out_thread = start_bridge(&out), in_thread = start_bridge(&in);
    pthread_t generator;
    CHECK(pthread_create(&generator, NULL, generate, out_producer) == 0, NULL);

    double checksum = 0;
    for (uint64_t i = 0; i < items; i++) {
        const void *data = NULL;
        conveyor_frame_info info;
        CHECK_STATUS(conveyor_ring_receive(in_consumer, -1, &data, &info), CONVEYOR_OK, NULL);
        CHECK(info.tag == i && info.byte_length == rows * cols * sizeof(double), NULL);
        double sum = 0;
        CHECK_STATUS(conveyor_f64_sum(data, rows * cols, &sum), CONVEYOR_OK, NULL);
        checksum += sum;
        CHECK_STATUS(conveyor_ring_release(in_consumer), CONVEYOR_OK, NULL);
    }
    const void *data = NULL;
    conveyor_frame_info info;
    CHECK_STATUS(conveyor_ring_receive(in_consumer, -1, &data, &info), CONVEYOR_E_END_OF_STREAM, NULL);
    pthread_join(generator, NULL);
    finish_bridge(out_thread, &out);
    finish_bridge(in_thread, &in);

    // The same items through the same kernels in this process alone.
    uint64_t n = rows * cols;
    double *x = malloc(n * sizeof *x), expected = 0;
    for (uint64_t i = 0; i < items; i++) {
        conveyor_f64_fill_uniform(x, n, 2016, 7, i * n);
        for (int stage = 1; stage <= 3; stage++) apply(stage, x, x, n);
        double sum = 0;
        conveyor_f64_sum(x, n, &sum);
        expected += sum;
    }
    free(x);
    CHECK(checksum == expected, NULL);
    printf("mpi_seed: %llu items of %llux%llu through 3 ranks, checksum %.17g as on one machine\n",
           (unsigned long long)items, (unsigned long long)rows, (unsigned long long)cols, checksum);
    conveyor_ring_destroy(out_producer);
    conveyor_ring_destroy(out_consumer);
    conveyor_ring_destroy(in_producer);
    conveyor_ring_destroy(in_consumer);
}

/* Ranks 1...last: receive into a ring, compute from its slots into the next ring's. */
static void stage(int rank, int last) {
    conveyor_ring *in_producer, *in_consumer, *out_producer, *out_consumer;
    make_ring(&in_producer, &in_consumer);
    make_ring(&out_producer, &out_consumer);
    bridge_job in = {open_link(CONVEYOR_MPI_RECEIVER, rank - 1, rank - 1), in_producer, 0, -1};
    bridge_job out = {open_link(CONVEYOR_MPI_SENDER, rank == last ? 0 : rank + 1, rank), out_consumer, 1, -1};
    pthread_t in_thread = start_bridge(&in), out_thread = start_bridge(&out);
    for (;;) {
        const void *x = NULL;
        conveyor_frame_info info;
        int status = conveyor_ring_receive(in_consumer, -1, &x, &info);
        if (status == CONVEYOR_E_END_OF_STREAM) break;
        CHECK_STATUS(status, CONVEYOR_OK, NULL);
        void *slot = NULL;
        uint64_t capacity = 0;
        CHECK_STATUS(conveyor_ring_loan(out_producer, -1, &slot, &capacity), CONVEYOR_OK, NULL);
        CHECK_STATUS(apply(rank, slot, x, info.byte_length / sizeof(double)), CONVEYOR_OK, NULL);
        CHECK_STATUS(conveyor_ring_commit(out_producer, &info), CONVEYOR_OK, NULL);
        CHECK_STATUS(conveyor_ring_release(in_consumer), CONVEYOR_OK, NULL);
    }
    CHECK_STATUS(conveyor_ring_close(out_producer), CONVEYOR_OK, NULL);
    finish_bridge(in_thread, &in);
    finish_bridge(out_thread, &out);
    conveyor_ring_destroy(in_producer);
    conveyor_ring_destroy(in_consumer);
    conveyor_ring_destroy(out_producer);
    conveyor_ring_destroy(out_consumer);
}

int main(int argc, char **argv) {
    CHECK_STATUS(conveyor_mpi_init(&argc, &argv), CONVEYOR_OK, NULL);
    if (argc == 4) {
        items = strtoull(argv[1], NULL, 10);
        rows = strtoull(argv[2], NULL, 10);
        cols = strtoull(argv[3], NULL, 10);
    }
    CHECK(conveyor_mpi_world_size() == 4 && rows * cols > 0, NULL);
    int rank = conveyor_mpi_world_rank();
    if (rank == 0) source_and_sink(3);
    else stage(rank, 3);
    MPI_Barrier(MPI_COMM_WORLD);
    CHECK_STATUS(conveyor_mpi_finalize(), CONVEYOR_OK, NULL);
    return 0;
}
