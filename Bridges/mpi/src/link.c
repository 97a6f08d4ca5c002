/*
 * link.c — opening and destroying one end of a link, its heartbeats and the liveness
 * check every wait makes.
 *
 * HEARTBEATS. Each end's heartbeat thread sends a BEAT on the BEAT tag every heartbeat_ns
 * (once the previous one is out) and takes the peer's, recording when the last came.
 * Every wait of the driving thread calls cv_mpi_check_peer, which fails once the peer has
 * been silent for liveness_ns. The bound on noticing a dead peer is therefore
 * liveness_ns + heartbeat_ns (the thread's sleep) plus one pause of the wait loop.
 *
 * BYE. When its stream is over (the sender got the acknowledgement of END, the receiver
 * sent it) or when it is destroyed, whichever comes first, an end stops its heartbeat
 * thread and sends BYE; destroy then takes the peer's heartbeats until the peer's BYE
 * comes. A sender's messages on one tag arrive in order, so after the peer's BYE none of
 * its heartbeats is still on the way, and no message of the link is left unreceived when
 * MPI is finalized. Sending BYE at the end of the stream, not at destroy, matters: ranks
 * that destroy several links one after another, each waiting for its peer's BYE, would
 * otherwise wait in a cycle (rank 0 for rank 3, 3 for 2, 2 for 1, 1 for 0) until the
 * liveness bound broke it, leaving late BYEs behind. A BYE that comes while the thread runs
 * means the peer left: the next check reports it (PEER_DEAD) at once, except while the
 * sender waits for its acknowledgement of END, which the receiver sent before its BYE. A
 * broken link (a dead, buggy or hostile peer) sends its BYE but does not wait for the
 * peer's.
 */
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "link_internal.h"

enum { TAG_BASE = 16384 };

int64_t cv_mpi_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

void cv_mpi_pause(void) { sched_yield(); }

void cv_mpi_pause_idle(int64_t since) {
    if (cv_mpi_now_ns() - since < IDLE_SPIN_NS) {
        sched_yield();
        return;
    }
    struct timespec nap = {0, IDLE_NAP_NS};
    nanosleep(&nap, NULL);
}
int cv_mpi_fail(conveyor_mpi_link *link, int status, const char *format, ...) {
    int n = snprintf(link->error, sizeof link->error, "link %d %s rank %d: ", link->channel,
                     link->direction == CONVEYOR_MPI_SENDER ? "to" : "from", link->peer);
    if (n < 0 || (size_t)n >= sizeof link->error) n = 0;
    va_list args;
    va_start(args, format);
    vsnprintf(link->error + n, sizeof link->error - (size_t)n, format, args);
    va_end(args);
    return status;
}

// MPI's text for an error code, or its number when MPI has none.
static void describe_mpi_error(int code, char message[MPI_MAX_ERROR_STRING]) {
    int length = 0;
    if (MPI_Error_string(code, message, &length) != MPI_SUCCESS) snprintf(message, MPI_MAX_ERROR_STRING, "error %d", code);
}

int cv_mpi_call_failed(conveyor_mpi_link *link, const char *call, int code) {
    char message[MPI_MAX_ERROR_STRING];
    describe_mpi_error(code, message);
    link->broken = true;
    return cv_mpi_fail(link, CONVEYOR_MPI_E_MPI, "%s failed: %s", call, message);
}

int cv_mpi_check_peer(conveyor_mpi_link *link) { return cv_mpi_check_peer_while(link, false); }

int cv_mpi_check_peer_while(conveyor_mpi_link *link, bool peer_may_leave) {
    pthread_mutex_lock(&link->beat.lock);
    int64_t silent = cv_mpi_now_ns() - link->beat.last_heard_ns;
    bool left = link->beat.peer_left;
    int mpi_error = link->beat.mpi_error;
    pthread_mutex_unlock(&link->beat.lock);
    if (mpi_error) {
        // The heartbeats are the liveness probe: when MPI itself cannot carry one (Open MPI's
        // TCP transport fails a reconnect to a dead rank with MPI_ERR_INTERN, say), the peer
        // is unreachable, which the header promises to report as a dead peer.
        char message[MPI_MAX_ERROR_STRING];
        describe_mpi_error(mpi_error, message);
        link->broken = true;
        return cv_mpi_fail(link, CONVEYOR_E_PEER_DEAD, "the peer cannot be reached: a heartbeat failed: %s", message);
    }
    if (left && !peer_may_leave) {
        link->broken = true;
        return cv_mpi_fail(link, CONVEYOR_E_PEER_DEAD, "the peer destroyed its end of the link");
    }
    if (silent > link->liveness_ns) {
        link->broken = true;
        return cv_mpi_fail(link, CONVEYOR_E_PEER_DEAD, "no heartbeat from the peer for %.1f s (the bound is %.1f s)",
                           (double)silent / 1e9, (double)link->liveness_ns / 1e9);
    }
    return CONVEYOR_OK;
}

void cv_mpi_give_up(conveyor_mpi_link *link, MPI_Request *request, bool in_link) {
    if (*request == MPI_REQUEST_NULL) return;
    MPI_Cancel(request);
    // A receive into the caller's buffer (a pool slot, which is unmapped after the run)
    // gets up to the liveness bound: a matched chunk cannot be cancelled, but a live peer
    // finishes it and a dead one fails it; only a peer frozen past the bound leaves it.
    int64_t deadline = cv_mpi_now_ns() + (in_link ? link->heartbeat_ns : link->liveness_ns);
    while (*request != MPI_REQUEST_NULL) {
        int done = 0;
        if (MPI_Test(request, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS || done) break;
        if (cv_mpi_now_ns() > deadline) {
            MPI_Request_free(request);
            if (in_link) link->abandoned = true;
            break;
        }
        cv_mpi_pause();
    }
    *request = MPI_REQUEST_NULL;
}

int cv_mpi_wait_request(conveyor_mpi_link *link, MPI_Request *request, const char *what, bool peer_may_leave) {
    int64_t start = cv_mpi_now_ns();
    int status = CONVEYOR_OK;
    while (status == CONVEYOR_OK) {
        int done = 0, rc = MPI_Test(request, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) status = cv_mpi_call_failed(link, what, rc);
        else if (done) break;
        else if ((status = cv_mpi_check_peer_while(link, peer_may_leave)) == CONVEYOR_OK) cv_mpi_pause();
    }
    link->stats.blocked_ns += (uint64_t)(cv_mpi_now_ns() - start);
    return status;
}

uint64_t cv_mpi_element_size(uint32_t dtype) {
    switch (dtype) {
    case CONVEYOR_DTYPE_BYTES: return 1;
    case CONVEYOR_DTYPE_F32: return sizeof(float);
    case CONVEYOR_DTYPE_F64: return sizeof(double);
    default: return 0;
    }
}

int cv_mpi_check_frame(const conveyor_frame_info *info) {
    uint64_t size = cv_mpi_element_size(info->dtype);
    if (size == 0 || info->rank > CONVEYOR_FRAME_MAX_RANK) return CONVEYOR_E_INVALID_ARGUMENT;
    uint64_t bytes = size;
    for (uint32_t d = 0; d < info->rank; d++) {
        if (info->shape[d] != 0 && bytes > UINT64_MAX / info->shape[d]) return CONVEYOR_E_INVALID_ARGUMENT;
        bytes *= info->shape[d];
    }
    return bytes == info->byte_length ? CONVEYOR_OK : CONVEYOR_E_INVALID_ARGUMENT;
}

/* ---- The heartbeat thread ------------------------------------------------------------ */

/* Takes every heartbeat that has come; records BYE. Called with beat.lock held. */
static int take_beats(conveyor_mpi_link *link) {
    for (;;) {
        int done = 0, rc = MPI_Test(&link->beat_receive, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return rc;
        if (!done) return MPI_SUCCESS;
        link->beat.last_heard_ns = cv_mpi_now_ns();
        if (link->beat_in.kind == WIRE_BYE) {
            link->beat.peer_left = true;
            return MPI_SUCCESS; // nothing follows a BYE: no receive is posted again
        }
        link->beat.heartbeats++;
        rc = MPI_Irecv(&link->beat_in, sizeof link->beat_in, MPI_BYTE, link->peer, link->tag_beat, link->comm,
                       &link->beat_receive);
        if (rc != MPI_SUCCESS) return rc;
    }
}

static void *beat_loop(void *argument) {
    conveyor_mpi_link *link = argument;
    pthread_mutex_lock(&link->beat.lock);
    while (!link->beat.stop) {
        int done = 1, rc = MPI_SUCCESS;
        if (link->beat_send != MPI_REQUEST_NULL) rc = MPI_Test(&link->beat_send, &done, MPI_STATUS_IGNORE);
        if (rc == MPI_SUCCESS && done) {
            link->beat_out.kind = WIRE_BEAT;
            rc = MPI_Isend(&link->beat_out, sizeof link->beat_out, MPI_BYTE, link->peer, link->tag_beat, link->comm,
                           &link->beat_send);
        }
        if (rc == MPI_SUCCESS && !link->beat.peer_left) rc = take_beats(link);
        if (rc != MPI_SUCCESS) {
            link->beat.mpi_error = rc;
            break;
        }
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        int64_t ns = until.tv_nsec + link->heartbeat_ns;
        until.tv_sec += (time_t)(ns / 1000000000);
        until.tv_nsec = (long)(ns % 1000000000);
        // The condition variable uses CLOCK_MONOTONIC (set at open); a spurious or early
        // wake-up only sends the next heartbeat sooner.
        pthread_cond_timedwait(&link->beat.wake, &link->beat.lock, &until);
    }
    pthread_mutex_unlock(&link->beat.lock);
    return NULL;
}

int cv_mpi_beats_start(conveyor_mpi_link *link) {
    pthread_condattr_t attributes;
    pthread_condattr_init(&attributes);
    pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
    pthread_cond_init(&link->beat.wake, &attributes);
    pthread_condattr_destroy(&attributes);
    pthread_mutex_init(&link->beat.lock, NULL);
    link->beat.last_heard_ns = cv_mpi_now_ns();
    link->beat_send = MPI_REQUEST_NULL;
    link->bye = MPI_REQUEST_NULL;
    link->beat_receive = MPI_REQUEST_NULL;
    int rc = MPI_Irecv(&link->beat_in, sizeof link->beat_in, MPI_BYTE, link->peer, link->tag_beat, link->comm,
                       &link->beat_receive);
    if (rc != MPI_SUCCESS) return cv_mpi_call_failed(link, "MPI_Irecv (heartbeat)", rc);
    int error = pthread_create(&link->beat_thread, NULL, beat_loop, link);
    if (error != 0) {
        cv_mpi_give_up(link, &link->beat_receive, true);
        errno = error;
        return cv_mpi_fail(link, CONVEYOR_E_SYSTEM, "pthread_create failed: %s", strerror(error));
    }
    return CONVEYOR_OK;
}

/* Waits for `request` (its buffer is in the link) until it completes or `deadline`, then
 * gives it up. */
static void finish_or_give_up(conveyor_mpi_link *link, MPI_Request *request, int64_t deadline) {
    while (*request != MPI_REQUEST_NULL) {
        int done = 0;
        if (MPI_Test(request, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS || done) break;
        if (cv_mpi_now_ns() > deadline) {
            cv_mpi_give_up(link, request, true);
            break;
        }
        cv_mpi_pause();
    }
    *request = MPI_REQUEST_NULL;
}

void cv_mpi_beats_end(conveyor_mpi_link *link) {
    if (link->beats_ended) return;
    link->beats_ended = true;
    pthread_mutex_lock(&link->beat.lock);
    link->beat.stop = true;
    pthread_cond_signal(&link->beat.wake);
    pthread_mutex_unlock(&link->beat.lock);
    pthread_join(link->beat_thread, NULL);
    // Sends of heartbeats are small, so complete locally at once; the grace is for a
    // loaded machine. One still posted after it is freed (MPI then owns it).
    finish_or_give_up(link, &link->beat_send, cv_mpi_now_ns() + link->heartbeat_ns);
    if (link->abandoned) return; // beat_out may still be read: no BYE from it
    // A peer silent past the bound gets no BYE: it is dead, or cannot hear it.
    if (cv_mpi_now_ns() - link->beat.last_heard_ns > link->liveness_ns) return;
    link->beat_out.kind = WIRE_BYE;
    MPI_Isend(&link->beat_out, sizeof link->beat_out, MPI_BYTE, link->peer, link->tag_beat, link->comm, &link->bye);
}

void cv_mpi_beats_stop(conveyor_mpi_link *link) {
    cv_mpi_beats_end(link);
    // Wait for the peer's BYE on a link whose stream ended (the peer said BYE then, or will
    // at once: see the top of this file). A link destroyed before (a failed run) or broken
    // (a dead, buggy or hostile peer) waits for nothing, since the peer may be waiting for
    // this rank in turn: its BYE, when it comes, stays in MPI's queues, harmless on a
    // communicator of the run's own (conveyor_mpi_world_dup).
    int64_t deadline = cv_mpi_now_ns() + (link->finished && !link->broken ? link->liveness_ns : 0);
    while (!link->beat.peer_left && link->beat_receive != MPI_REQUEST_NULL && cv_mpi_now_ns() <= deadline) {
        if (take_beats(link) != MPI_SUCCESS) break;
        if (!link->beat.peer_left) cv_mpi_pause_idle(deadline - link->liveness_ns);
    }
    if (!link->beat.peer_left) cv_mpi_give_up(link, &link->beat_receive, true);
    finish_or_give_up(link, &link->bye, cv_mpi_now_ns() + (link->broken ? link->heartbeat_ns : link->liveness_ns));
    pthread_cond_destroy(&link->beat.wake);
    pthread_mutex_destroy(&link->beat.lock);
}

/* ---- Open and destroy ---------------------------------------------------------------- */

int conveyor_mpi_link_open(const conveyor_mpi_link_config *config, int direction, conveyor_mpi_link **out) {
    if (out) *out = NULL;
    if (!config || !out) return CONVEYOR_E_NULL_POINTER;
    int initialized = 0, finalized = 0, provided = MPI_THREAD_SINGLE;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (!initialized || finalized) return CONVEYOR_E_UNSUPPORTED;
    MPI_Query_thread(&provided);
    if (provided < MPI_THREAD_MULTIPLE) return CONVEYOR_E_UNSUPPORTED;

    MPI_Comm comm = config->comm == (MPI_Comm)0 ? MPI_COMM_WORLD : config->comm;
    int size = 0, self = -1;
    if (MPI_Comm_size(comm, &size) != MPI_SUCCESS || MPI_Comm_rank(comm, &self) != MPI_SUCCESS)
        return CONVEYOR_E_INVALID_ARGUMENT;
    uint64_t chunk = config->chunk_bytes ? config->chunk_bytes : CONVEYOR_MPI_DEFAULT_CHUNK_BYTES;
    int64_t liveness = config->liveness_ns ? config->liveness_ns : CONVEYOR_MPI_DEFAULT_LIVENESS_NS;
    int64_t heartbeat = config->heartbeat_ns ? config->heartbeat_ns : CONVEYOR_MPI_DEFAULT_HEARTBEAT_NS;
    uint32_t window = config->window ? config->window : 2;
    if ((direction != CONVEYOR_MPI_SENDER && direction != CONVEYOR_MPI_RECEIVER) || config->peer < 0 ||
        config->peer >= size || config->peer == self || config->channel < 0 ||
        config->channel > CONVEYOR_MPI_MAX_CHANNEL || chunk > CONVEYOR_MPI_MAX_CHUNK_BYTES || liveness < 0 ||
        heartbeat < 0 || heartbeat >= liveness || window > CONVEYOR_MPI_MAX_WINDOW || config->reserved != 0)
        return CONVEYOR_E_INVALID_ARGUMENT;

    conveyor_mpi_link *link = calloc(1, sizeof *link);
    if (!link) return CONVEYOR_E_NO_MEMORY;
    link->comm = comm;
    link->peer = config->peer;
    link->channel = config->channel;
    link->direction = direction;
    link->tag_desc = TAG_BASE + 4 * config->channel;
    link->tag_data = link->tag_desc + 1;
    link->tag_back = link->tag_desc + 2;
    link->tag_beat = link->tag_desc + 3;
    link->chunk_bytes = chunk;
    link->liveness_ns = liveness;
    link->heartbeat_ns = heartbeat;
    link->window = window;
    link->incoming_request = MPI_REQUEST_NULL;
    for (uint32_t f = 0; f < CONVEYOR_MPI_MAX_WINDOW; f++) {
        link->frames[f].desc_request = MPI_REQUEST_NULL;
        for (int c = 0; c < CHUNKS_IN_FLIGHT; c++) link->frames[f].chunk[c] = MPI_REQUEST_NULL;
    }
    // Errors come back as statuses on this communicator too (a dead peer must not abort).
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    if (direction == CONVEYOR_MPI_RECEIVER) {
        int rc = MPI_Irecv(&link->incoming, sizeof link->incoming, MPI_BYTE, link->peer, link->tag_desc, comm,
                           &link->incoming_request);
        if (rc != MPI_SUCCESS) {
            free(link);
            return CONVEYOR_MPI_E_MPI;
        }
    }
    int status = cv_mpi_beats_start(link);
    if (status != CONVEYOR_OK) {
        cv_mpi_give_up(link, &link->incoming_request, true);
        if (!link->abandoned) free(link);
        return status;
    }
    *out = link;
    return CONVEYOR_OK;
}

void conveyor_mpi_link_destroy(conveyor_mpi_link *link) {
    if (!link) return;
    cv_mpi_beats_stop(link);
    // Whatever is still posted is given up: a receive is cancelled, a send freed (MPI
    // finishes it or drops it with the job).
    cv_mpi_give_up(link, &link->incoming_request, true);
    for (uint32_t f = 0; f < CONVEYOR_MPI_MAX_WINDOW; f++) {
        pending_frame *frame = &link->frames[f];
        cv_mpi_give_up(link, &frame->desc_request, true);
        for (int c = 0; c < CHUNKS_IN_FLIGHT; c++) {
            if (frame->chunk[c] == MPI_REQUEST_NULL) continue;
            MPI_Request_free(&frame->chunk[c]); // the caller's buffer (see the header)
        }
    }
    // A request given up may still read or write the link's memory: keep it then (a few
    // hundred bytes, once per failed link) rather than free what MPI may touch.
    if (!link->abandoned) free(link);
}

int conveyor_mpi_link_check(conveyor_mpi_link *link) {
    if (!link) return CONVEYOR_E_NULL_POINTER;
    if (link->finished) return CONVEYOR_OK; // the stream is over: heartbeats have ended
    return cv_mpi_check_peer(link);
}

int conveyor_mpi_link_get_stats(const conveyor_mpi_link *link, conveyor_mpi_link_stats *stats) {
    if (!link || !stats) return CONVEYOR_E_NULL_POINTER;
    *stats = link->stats;
    conveyor_mpi_link *mutable = (conveyor_mpi_link *)link;
    pthread_mutex_lock(&mutable->beat.lock);
    stats->heartbeats = link->beat.heartbeats;
    pthread_mutex_unlock(&mutable->beat.lock);
    return CONVEYOR_OK;
}

const char *conveyor_mpi_link_error(const conveyor_mpi_link *link) { return link ? link->error : ""; }
