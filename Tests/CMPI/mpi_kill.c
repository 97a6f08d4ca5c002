/*
 * mpi_kill.c — a rank that dies is reported by the others within the liveness bound,
 * under mpirun -n 3 with the job's abort on a dead rank disabled (Open MPI:
 * `--mca orte_abort_on_non_zero_status 0`): rank 0 streams frames to rank 1, which
 * forwards them to rank 2; after some frames rank 1 kills itself with SIGKILL. Ranks 0
 * (blocked sending) and 2 (blocked receiving) must each get CONVEYOR_E_PEER_DEAD no later
 * than liveness + heartbeat + SCHEDULING_ALLOWANCE after the kill, and print a line
 * saying so; scripts/test-mpi checks both lines and that nothing is left behind.
 *
 * The kill time crosses on a synchronous send (MPI_Ssend completes only once the
 * survivors' receive matched it), so every survivor knows it before the death.
 */
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "mpi_test.h"

static const int64_t LIVENESS_NS = 1000000000, HEARTBEAT_NS = 50000000;
/* Slack for a loaded 2-core machine on top of the stated bound. */
static const int64_t SCHEDULING_ALLOWANCE_NS = 2000000000;
enum { FRAME_BYTES = 256 << 10, FRAMES_BEFORE_KILL = 20, KILL_TAG = 7 };

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static conveyor_mpi_link *open_link(int direction, int peer, int channel) {
    return open_test_link(direction, peer, channel, 0, LIVENESS_NS, HEARTBEAT_NS, 0);
}

/* A survivor: the link failed with `status`; checks it against the kill and the bound. */
static void report(int rank, conveyor_mpi_link *link, int status, MPI_Request *kill_request, const int64_t *killed_at) {
    int64_t noticed = now_ns();
    int done = 0;
    MPI_Test(kill_request, &done, MPI_STATUS_IGNORE);
    CHECK(done, link);                       // rank 1 said when before it died
    CHECK_STATUS(status, CONVEYOR_E_PEER_DEAD, link);
    double after = (double)(noticed - *killed_at) / 1e9;
    double bound = (double)(LIVENESS_NS + HEARTBEAT_NS) / 1e9;
    CHECK(noticed - *killed_at <= LIVENESS_NS + HEARTBEAT_NS + SCHEDULING_ALLOWANCE_NS, link);
    printf("mpi_kill: rank %d reported the dead rank 1 %.2f s after the kill (bound %.2f s): %s\n", rank, after, bound,
           conveyor_mpi_link_error(link));
    fflush(stdout);
    // No MPI_Finalize: it would wait for the dead rank. The job ends when every rank did.
    _exit(0);
}

int main(int argc, char **argv) {
    CHECK_STATUS(conveyor_mpi_init(&argc, &argv), CONVEYOR_OK, NULL);
    CHECK(conveyor_mpi_world_size() == 3, NULL);
    int rank = conveyor_mpi_world_rank();
    unsigned char *frame = calloc(1, FRAME_BYTES);
    conveyor_frame_info info;
    memset(&info, 0, sizeof info);
    info.rank = 1;
    info.shape[0] = FRAME_BYTES;
    info.byte_length = FRAME_BYTES;
    int64_t killed_at = 0;
    MPI_Request kill_request = MPI_REQUEST_NULL;
    if (rank != 1) MPI_Irecv(&killed_at, 1, MPI_INT64_T, 1, KILL_TAG, MPI_COMM_WORLD, &kill_request);
    MPI_Barrier(MPI_COMM_WORLD);

    if (rank == 0) {
        conveyor_mpi_link *out = open_link(CONVEYOR_MPI_SENDER, 1, 0);
        for (;;) {
            int status = conveyor_mpi_link_send(out, frame, &info);
            if (status != CONVEYOR_OK) report(0, out, status, &kill_request, &killed_at);
        }
    } else if (rank == 1) {
        conveyor_mpi_link *in = open_link(CONVEYOR_MPI_RECEIVER, 0, 0);
        conveyor_mpi_link *out = open_link(CONVEYOR_MPI_SENDER, 2, 1);
        for (int i = 0; i < FRAMES_BEFORE_KILL; i++) {
            CHECK_STATUS(conveyor_mpi_link_next(in, -1, &info), CONVEYOR_OK, in);
            CHECK_STATUS(conveyor_mpi_link_receive_payload(in, frame, FRAME_BYTES), CONVEYOR_OK, in);
            CHECK_STATUS(conveyor_mpi_link_send(out, frame, &info), CONVEYOR_OK, out);
        }
        int64_t at = now_ns();
        MPI_Ssend(&at, 1, MPI_INT64_T, 0, KILL_TAG, MPI_COMM_WORLD);
        MPI_Ssend(&at, 1, MPI_INT64_T, 2, KILL_TAG, MPI_COMM_WORLD);
        raise(SIGKILL);
    } else {
        conveyor_mpi_link *in = open_link(CONVEYOR_MPI_RECEIVER, 1, 1);
        for (;;) {
            int status = conveyor_mpi_link_next(in, -1, &info);
            if (status == CONVEYOR_OK) status = conveyor_mpi_link_receive_payload(in, frame, FRAME_BYTES);
            if (status != CONVEYOR_OK) report(2, in, status, &kill_request, &killed_at);
        }
    }
    return 1;
}
