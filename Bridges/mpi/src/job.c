/*
 * job.c — the MPI job around the links: start-up with MPI_THREAD_MULTIPLE, the way out,
 * ranks, and the messages of this library's statuses.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "conveyor_mpi.h"

/* Opens MPI's connections between every pair of ranks now, from one thread per rank: Open
 * MPI 4's TCP transport opens them lazily, and two threads of a rank opening connections
 * at once (a link's heartbeat thread and its data thread) was seen to fail a send with
 * MPI_ERR_OTHER now and then. One all-to-all of an int touches every pair. */
static int connect_every_pair(MPI_Comm comm) {
    int size = 0;
    if (MPI_Comm_size(comm, &size) != MPI_SUCCESS || size < 1) return CONVEYOR_MPI_E_MPI;
    int *words = calloc(2 * (size_t)size, sizeof *words);
    if (!words) return CONVEYOR_E_NO_MEMORY;
    int rc = MPI_Alltoall(words, 1, MPI_INT, words + size, 1, MPI_INT, comm);
    free(words);
    return rc == MPI_SUCCESS ? CONVEYOR_OK : CONVEYOR_MPI_E_MPI;
}

int conveyor_mpi_init(int *argc, char ***argv) {
    int initialized = 0, provided = MPI_THREAD_SINGLE;
    MPI_Initialized(&initialized);
    if (!initialized) {
        if (MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS)
            return CONVEYOR_E_SYSTEM;
    } else {
        MPI_Query_thread(&provided);
    }
    // Errors come back as statuses: a dead peer must not abort the rank that notices it.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if (provided < MPI_THREAD_MULTIPLE) return CONVEYOR_E_UNSUPPORTED;
    return connect_every_pair(MPI_COMM_WORLD);
}

/* MPI is initialized and not yet finalized: MPI calls may be made. */
static bool mpi_running(void) {
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    return initialized && !finalized;
}

int conveyor_mpi_finalize(void) {
    if (!mpi_running()) return CONVEYOR_OK;
    return MPI_Finalize() == MPI_SUCCESS ? CONVEYOR_OK : CONVEYOR_E_SYSTEM;
}

void conveyor_mpi_abort(int code) {
    fflush(stdout);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    // MPI_Abort should not return; if an implementation does, do not run on.
    _Exit(code ? code : 1);
}

int conveyor_mpi_world_rank(void) {
    int rank = -1;
    return mpi_running() && MPI_Comm_rank(MPI_COMM_WORLD, &rank) == MPI_SUCCESS ? rank : -1;
}

int conveyor_mpi_world_size(void) {
    int size = -1;
    return mpi_running() && MPI_Comm_size(MPI_COMM_WORLD, &size) == MPI_SUCCESS ? size : -1;
}

int conveyor_mpi_world_dup(MPI_Comm *comm) {
    if (!comm) return CONVEYOR_E_NULL_POINTER;
    if (MPI_Comm_dup(MPI_COMM_WORLD, comm) != MPI_SUCCESS) return CONVEYOR_MPI_E_MPI;
    MPI_Comm_set_errhandler(*comm, MPI_ERRORS_RETURN);
    return connect_every_pair(*comm);
}

void conveyor_mpi_comm_release(MPI_Comm *comm) {
    if (comm && *comm != MPI_COMM_NULL && *comm != MPI_COMM_WORLD) MPI_Comm_free(comm);
}

const char *conveyor_mpi_status_message(int status) {
    if (status == CONVEYOR_MPI_E_MPI) return "an MPI call failed";
    return conveyor_status_message(status);
}
