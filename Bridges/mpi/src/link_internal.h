/*
 * link_internal.h — one end of a link: its state, its wire messages and the helpers that
 * link.c (open, destroy, liveness, heartbeats), link_send.c and link_receive.c share.
 *
 * Threads: the thread that drives the link owns everything below but `beat`; the
 * heartbeat thread owns the heartbeat requests and shares only `beat` (under beat.lock)
 * with it. MPI itself is initialized with MPI_THREAD_MULTIPLE, so both threads may be
 * inside MPI at once.
 */
#ifndef CONVEYOR_MPI_LINK_INTERNAL_H
#define CONVEYOR_MPI_LINK_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>

#include "conveyor_mpi.h"

/* The descriptor of a frame (or END) on the DESC tag: 96 bytes, the hosts' byte order
 * (a receiver on a host of the other order reads a wrong magic and reports it). */
enum { WIRE_MAGIC = 0x464d5643u /* "CVMF" */, WIRE_VERSION = 1 };
enum wire_kind { WIRE_FRAME = 1, WIRE_END = 2, WIRE_BEAT = 3, WIRE_BYE = 4, WIRE_ACK = 5 };

typedef struct wire_descriptor {
    uint32_t magic, version, kind, dtype, rank, reserved;
    uint64_t seq;
    uint64_t shape[CONVEYOR_FRAME_MAX_RANK];
    uint64_t byte_length, tag, chunk_bytes, reserved2;
} wire_descriptor;
_Static_assert(sizeof(wire_descriptor) == 96, "the descriptor is 96 bytes on the wire");

/* A heartbeat, BYE or ACK on the BEAT or BACK tag. */
typedef struct wire_word {
    uint64_t kind, seq;
} wire_word;

/* Chunks of one frame in flight at once, each way. */
enum { CHUNKS_IN_FLIGHT = 4 };

/* A frame the sender posted and MPI has not finished with. */
typedef struct pending_frame {
    wire_descriptor desc;
    const unsigned char *data;
    uint64_t chunks, next_chunk;             /* chunks in all; the next one to post */
    MPI_Request desc_request;
    MPI_Request chunk[CHUNKS_IN_FLIGHT];     /* MPI_REQUEST_NULL when free */
} pending_frame;

/* What the heartbeat thread and the driving thread share, under lock. */
typedef struct beat_state {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;              /* destroy asks the thread to end */
    bool peer_left;         /* the peer's BYE came: it destroyed its end */
    int64_t last_heard_ns;  /* when the peer's last heartbeat came (CLOCK_MONOTONIC) */
    uint64_t heartbeats;
    int mpi_error;          /* an MPI call of the thread failed (0: none) */
} beat_state;

struct conveyor_mpi_link {
    MPI_Comm comm;
    int peer, channel, direction;
    int tag_desc, tag_data, tag_back, tag_beat;
    uint64_t chunk_bytes;
    int64_t liveness_ns, heartbeat_ns;
    uint32_t window;

    bool broken;            /* a protocol or MPI error: every later call fails */
    bool finished;          /* sender: closed; receiver: END received */
    uint64_t seq;           /* the next frame's sequence number, sent or expected */

    /* sender */
    pending_frame frames[CONVEYOR_MPI_MAX_WINDOW];
    uint32_t oldest, in_flight;
    uint32_t unreported;    /* frames send_post retired that no send_wait has counted yet */
    wire_descriptor end_out;        /* END, and the acknowledgement's place: never on a stack, */
    wire_word ack_in;               /* so that a request MPI could not finish may stay posted */

    /* receiver */
    wire_descriptor incoming;       /* where the posted descriptor receive lands */
    MPI_Request incoming_request;   /* the posted receive of the next descriptor */
    bool described;                 /* next() described a frame whose payload is not taken */
    conveyor_frame_info current;
    uint64_t current_chunk_bytes;

    /* heartbeats */
    pthread_t beat_thread;
    beat_state beat;
    wire_word beat_out, beat_in;
    MPI_Request beat_send, beat_receive, bye;
    bool beats_ended;       /* the heartbeat thread is stopped and BYE sent */
    bool abandoned;         /* a request into this struct was given up: destroy keeps the memory */
    wire_word ack_out;      /* receiver: the acknowledgement of END */

    conveyor_mpi_link_stats stats;
    char error[320];
};

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t cv_mpi_now_ns(void);

/* Records what failed in link->error (printf-style) and returns `status`. */
int cv_mpi_fail(conveyor_mpi_link *link, int status, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/* Records a failed MPI call `call` with MPI's message for `code`; breaks the link. */
int cv_mpi_call_failed(conveyor_mpi_link *link, const char *call, int code);

/* CONVEYOR_OK while the peer is alive; CONVEYOR_E_PEER_DEAD (and the link broken) once it
 * has been silent for liveness_ns or has left. Cost: a mutex. */
int cv_mpi_check_peer(conveyor_mpi_link *link);
/* The same, but a peer that left (its BYE came) is not yet an error when `peer_may_leave`:
 * only its silence past the bound is. */
int cv_mpi_check_peer_while(conveyor_mpi_link *link, bool peer_may_leave);

/* One round of a wait loop: gives the core to other threads (MPI has no progress thread:
 * the transfer moves only while some thread is inside MPI, so waits poll rather than sleep). */
void cv_mpi_pause(void);

/* A wait loop's round when the wait may be long (the next descriptor, a sender's window):
 * yields for the first IDLE_SPIN_NS of the wait, then naps IDLE_NAP_NS a round, so an idle
 * link does not take a core from the threads doing the work (on a machine with fewer cores
 * than busy threads, a spinning waiter holds its core until the scheduler's tick). */
enum { IDLE_SPIN_NS = 200000, IDLE_NAP_NS = 50000 };
void cv_mpi_pause_idle(int64_t since);

/* Waits for `request` (posted, its buffer the link's or the caller's) with the liveness
 * check; with `peer_may_leave`, the peer's BYE alone is no error. Counts the time in
 * blocked_ns. CONVEYOR_OK once it completed, else the failure (the request still posted). */
int cv_mpi_wait_request(conveyor_mpi_link *link, MPI_Request *request, const char *what, bool peer_may_leave);

/* Gives up a posted request after an error: cancels it and waits at most heartbeat_ns for
 * MPI to let it go; if it does not (a matched receive, a send Open MPI cannot cancel), frees
 * the request, which MPI then finishes or drops with the job. `in_link`: the request's
 * buffer is in the link, which destroy must then not free. */
void cv_mpi_give_up(conveyor_mpi_link *link, MPI_Request *request, bool in_link);

/* Checks a frame's description as a ring commit does; CONVEYOR_OK or INVALID_ARGUMENT. */
int cv_mpi_check_frame(const conveyor_frame_info *info);

/* Element size of a dtype, 0 for an unknown one. */
uint64_t cv_mpi_element_size(uint32_t dtype);

/* Starts the heartbeat thread; ends it and sends BYE (at the end of the stream, or from
 * stop); stop (destroy) also waits for the peer's BYE (link.c). */
int cv_mpi_beats_start(conveyor_mpi_link *link);
void cv_mpi_beats_end(conveyor_mpi_link *link);
void cv_mpi_beats_stop(conveyor_mpi_link *link);

#endif
