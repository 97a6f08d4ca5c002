/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conveyor_mpi.h — Conveyor's bridge to other hosts over MPI (Open MPI, MPICH).
 *
 * The core (conveyor.h) moves frames between the processes of one machine through shared
 * memory. This library moves them between the ranks of an MPI job, so that a pipeline's
 * stages can run on other hosts. It is a separate library (libconveyor_mpi) with this
 * header of its own: the core stays free of MPI, and a program that does not use MPI does
 * not link it. It adds no network layer of its own: every byte crosses in MPI messages.
 *
 * Two layers:
 *   LINKS  (section 2) carry a stream of frames from one rank to another: a descriptor
 *          (dtype, shape, byte length, tag) then the payload, in chunks of at most
 *          chunk_bytes, received straight into the receiver's buffer (the network's copy is
 *          the only one), then end of stream. Nonblocking underneath, with deadlines: a
 *          dead or silent peer is an error status, never a hang.
 *   BRIDGES (section 3) are the loops that drain a local ring into a link (send bridge),
 *          and fill a local ring from a link (receive bridge: each frame lands in a loaned
 *          slot, which is then committed).
 *
 * Threads: open MPI with MPI_THREAD_MULTIPLE (conveyor_mpi_init does). Each link runs a
 * heartbeat thread of its own, and links are used from whichever thread drives them. A
 * link is used by one thread at a time (its heartbeat thread aside).
 *
 * Wire protocol of one link (sender S, receiver R, on the communicator and tags below):
 *   DESC  S->R  one 96-byte descriptor per frame, then one END descriptor.
 *   DATA  S->R  the payload of each frame, in ceil(byte_length / chunk_bytes) messages.
 *   BACK  R->S  one acknowledgement of END: the sender's close returns only after it.
 *   BEAT  both  heartbeats every heartbeat_ns, then one BYE at the end of the stream (the
 *               sender once END is acknowledged, the receiver once it acknowledged it) or
 *               when the link is destroyed, whichever comes first.
 * MPI keeps messages of one sender, tag and communicator in order, so the chunks of frame
 * k arrive before those of frame k+1, and every heartbeat before its sender's BYE. The
 * receiver checks every descriptor (magic, sequence number, dtype, rank, shape against
 * byte length, chunk size) and the size of every chunk before it trusts them: a buggy or
 * hostile sender gets CONVEYOR_E_CORRUPT, never a write outside the buffer.
 *
 * Liveness: a peer is alive while its heartbeats come. Every wait on a link fails with
 * CONVEYOR_E_PEER_DEAD once nothing came from the peer for liveness_ns, or once MPI could
 * not carry a heartbeat to or from it (the message then names MPI's error), so a rank that
 * dies, hangs in a way that stops its heartbeats, or loses its link is reported by the
 * other side within liveness_ns + heartbeat_ns. Under mpirun, disable the job's abort on
 * a dead rank (Open MPI 4: `--mca orte_abort_on_non_zero_status 0`) to let the survivors
 * report it; after such an error a rank should call conveyor_mpi_abort, not MPI_Finalize
 * (which waits for the dead rank).
 *
 * Tags: link channel c uses tags 16384 + 4c ... 16384 + 4c + 3 (c in 0...4095, so every
 * tag is within the 32767 that MPI guarantees). Give the links a communicator of their
 * own (MPI_Comm_dup) if the program sends other messages with such tags.
 */
#ifndef CONVEYOR_MPI_H
#define CONVEYOR_MPI_H

#include <mpi.h>
#include <stdint.h>

#include "conveyor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ===================================================================================
 * 1. The MPI job
 * =================================================================================== */

/**
 * Initializes MPI for links (MPI_Init_thread with MPI_THREAD_MULTIPLE), unless the program
 * already did, and makes MPI calls on MPI_COMM_WORLD return errors instead of aborting
 * (MPI_ERRORS_RETURN), then opens MPI's connections between every pair of ranks (one
 * all-to-all: Open MPI's TCP transport opens them lazily, and opening them from two
 * threads at once fails now and then). Collective: every rank calls it. argc and argv may
 * be NULL. Cost: MPI's start-up (milliseconds) and the all-to-all.
 * Errors: CONVEYOR_E_UNSUPPORTED when the MPI library offers less than
 * MPI_THREAD_MULTIPLE, CONVEYOR_E_SYSTEM when MPI_Init_thread fails, CONVEYOR_MPI_E_MPI
 * when the all-to-all does.
 */
CONVEYOR_API int conveyor_mpi_init(int *argc, char ***argv);

/** Finalizes MPI after a run in which every link was destroyed; a no-op if MPI is not
 * initialized or already finalized. Errors: CONVEYOR_E_SYSTEM (MPI_Finalize failed). */
CONVEYOR_API int conveyor_mpi_finalize(void);

/** Ends the whole job after an error (MPI_Abort on MPI_COMM_WORLD with `code`): the way
 * out when a peer is dead, since MPI_Finalize would wait for it. Does not return. */
CONVEYOR_API void conveyor_mpi_abort(int code);

/** The calling process's rank in MPI_COMM_WORLD, or -1 if MPI is not initialized. */
CONVEYOR_API int conveyor_mpi_world_rank(void);

/** The number of ranks in MPI_COMM_WORLD, or -1 if MPI is not initialized. */
CONVEYOR_API int conveyor_mpi_world_size(void);

/**
 * A communicator of its own for one run's links: MPI_Comm_dup of MPI_COMM_WORLD, with
 * errors returned. Messages on it never meet those of another run (a late heartbeat of a
 * run that failed, say) or of the program. Collective: every rank calls it, and it waits
 * for all of them (a barrier at the start of a run). Errors: CONVEYOR_MPI_E_MPI,
 * CONVEYOR_E_NULL_POINTER.
 */
CONVEYOR_API int conveyor_mpi_world_dup(MPI_Comm *comm);

/** Frees a communicator from conveyor_mpi_world_dup once every link on it is destroyed
 * (MPI_Comm_free: pending messages on it are dropped), and sets it to MPI_COMM_NULL. */
CONVEYOR_API void conveyor_mpi_comm_release(MPI_Comm *comm);

/** A message for any status of this library or of the core (conveyor_status_message for
 * the core's codes, plus CONVEYOR_MPI_E_MPI). Never NULL. */
CONVEYOR_API const char *conveyor_mpi_status_message(int status);

/** An MPI call failed; conveyor_mpi_link_error tells which and MPI's own message. */
#define CONVEYOR_MPI_E_MPI 100

/* ===================================================================================
 * 2. Links: a stream of frames from one rank to another
 * =================================================================================== */

/** An opaque handle on one end (sending or receiving) of a link. */
typedef struct conveyor_mpi_link conveyor_mpi_link;

/** Which end a handle is. */
enum conveyor_mpi_direction {
    CONVEYOR_MPI_SENDER = 1,
    CONVEYOR_MPI_RECEIVER = 2
};

/** The default chunk size: 4 MiB (large messages go through MPI's rendezvous protocol, so
 * a chunk this size costs one handshake per 4 MiB). */
#define CONVEYOR_MPI_DEFAULT_CHUNK_BYTES ((uint64_t)4 << 20)
/** The largest chunk: MPI counts are ints. */
#define CONVEYOR_MPI_MAX_CHUNK_BYTES ((uint64_t)1 << 30)
/** The default bound after which a silent peer is dead: 10 s. */
#define CONVEYOR_MPI_DEFAULT_LIVENESS_NS ((int64_t)10000000000)
/** The default interval between heartbeats: 100 ms. */
#define CONVEYOR_MPI_DEFAULT_HEARTBEAT_NS ((int64_t)100000000)
/** The most frames a sender may have in flight at once. */
#define CONVEYOR_MPI_MAX_WINDOW 16
/** The largest link channel number. */
#define CONVEYOR_MPI_MAX_CHANNEL 4095

/** Parameters of one end of a link. Zero-initialize, then set comm and peer at least;
 * both ends must agree on channel (and the sender's chunk size rules). */
typedef struct conveyor_mpi_link_config {
    MPI_Comm comm;          /**< The communicator (0 from zero-initialization means MPI_COMM_WORLD). */
    int32_t peer;           /**< The other end's rank in comm (not the caller's own). */
    int32_t channel;        /**< 0...CONVEYOR_MPI_MAX_CHANNEL: tells links between the same ranks apart. */
    uint64_t chunk_bytes;   /**< Sender: payload bytes per message, 1...2^30; 0 = the default. */
    int64_t liveness_ns;    /**< A peer silent this long is dead; 0 = the default. */
    int64_t heartbeat_ns;   /**< Interval between heartbeats (< liveness_ns); 0 = the default. */
    uint32_t window;        /**< Sender: frames in flight at once, 1...16; 0 = 2. */
    uint32_t reserved;      /**< Must be 0. */
} conveyor_mpi_link_config;

/** Counters of one end of a link. */
typedef struct conveyor_mpi_link_stats {
    uint64_t frames;        /**< Frames sent or received (end of stream not counted). */
    uint64_t bytes;         /**< Their payload bytes. */
    uint64_t messages;      /**< Descriptor and chunk messages. */
    uint64_t blocked_ns;    /**< Time spent waiting inside link calls (for the peer, the network or a window slot). */
    uint64_t heartbeats;    /**< Heartbeats received from the peer. */
} conveyor_mpi_link_stats;

/**
 * Opens one end of a link to config->peer and starts its heartbeat thread. The other end
 * opens the opposite direction with the same channel. Cost: a thread and a few MPI calls;
 * no message waits for the peer here, so ends may open in any order.
 * Errors: CONVEYOR_E_INVALID_ARGUMENT (direction, peer, channel, sizes, reserved field),
 * CONVEYOR_E_UNSUPPORTED (MPI not initialized with MPI_THREAD_MULTIPLE),
 * CONVEYOR_MPI_E_MPI, CONVEYOR_E_SYSTEM (the thread), CONVEYOR_E_NO_MEMORY,
 * CONVEYOR_E_NULL_POINTER.
 */
CONVEYOR_API int conveyor_mpi_link_open(const conveyor_mpi_link_config *config, int direction,
                                        conveyor_mpi_link **link);

/**
 * Stops the heartbeat thread and frees the handle (NULL is fine). It exchanges a BYE with
 * the peer (waiting at most liveness_ns for it), so that no message of the link is left
 * unreceived when MPI is finalized. A sender should call conveyor_mpi_link_close first,
 * or its receiver's next wait fails. A link whose stream did not end (a failed run) or
 * that is broken sends its BYE but waits for nothing (the peer may be waiting for this
 * rank in turn); frames it still had in flight are given up, and MPI may read their
 * buffers until the job ends (keep them until then, or end the job). A request MPI cannot
 * let go of keeps the handle's few hundred bytes allocated.
 */
CONVEYOR_API void conveyor_mpi_link_destroy(conveyor_mpi_link *link);

/**
 * Sender: posts a frame: its descriptor, then its payload from `data` in chunks, all
 * nonblocking. `data` must stay unchanged until the frame completes (see
 * conveyor_mpi_link_send_wait). If the window is full it first waits for the oldest frame.
 * `info` is checked as a ring commit checks it (dtype, rank, shape against byte_length).
 * Cost: one descriptor message plus one message per chunk; no copy.
 * Errors: CONVEYOR_E_INVALID_ARGUMENT (the frame), CONVEYOR_E_WRONG_ROLE,
 * CONVEYOR_E_CLOSED (after close), CONVEYOR_E_PEER_DEAD, CONVEYOR_MPI_E_MPI,
 * CONVEYOR_E_BAD_STATE (an earlier error broke the link), CONVEYOR_E_NULL_POINTER.
 */
CONVEYOR_API int conveyor_mpi_link_send_post(conveyor_mpi_link *link, const void *data,
                                             const conveyor_frame_info *info);

/**
 * Sender: waits until at most `leave` frames are in flight; frames complete oldest first,
 * and *completed (may be NULL) receives how many did since the last call that asked (frames
 * send_post retired to make room included), so that a caller can hand their buffers back
 * in order. timeout_ns < 0 waits without limit (the liveness bound still applies), 0 makes
 * one round of progress, > 0 waits at most that long. Errors: CONVEYOR_E_TIMEOUT (more
 * than `leave` still in flight; *completed is still set), CONVEYOR_E_PEER_DEAD,
 * CONVEYOR_MPI_E_MPI, CONVEYOR_E_BAD_STATE, CONVEYOR_E_WRONG_ROLE, CONVEYOR_E_NULL_POINTER.
 */
CONVEYOR_API int conveyor_mpi_link_send_wait(conveyor_mpi_link *link, uint32_t leave, int64_t timeout_ns,
                                             uint32_t *completed);

/** Sender: posts a frame and waits until it is out (conveyor_mpi_link_send_post, then
 * conveyor_mpi_link_send_wait with leave 0, no timeout): `data` is free again on return. */
CONVEYOR_API int conveyor_mpi_link_send(conveyor_mpi_link *link, const void *data,
                                        const conveyor_frame_info *info);

/**
 * Sender: ends the stream: waits for every frame in flight, sends END and waits for the
 * receiver's acknowledgement, so on success every frame was received. Closing twice is
 * fine. Errors: CONVEYOR_E_PEER_DEAD, CONVEYOR_MPI_E_MPI, CONVEYOR_E_BAD_STATE,
 * CONVEYOR_E_WRONG_ROLE.
 */
CONVEYOR_API int conveyor_mpi_link_close(conveyor_mpi_link *link);

/**
 * Receiver: waits for the next frame's descriptor and writes it, checked, to *info; the
 * payload must then be taken with conveyor_mpi_link_receive_payload before the next call.
 * At the end it acknowledges END and returns CONVEYOR_E_END_OF_STREAM (again on later
 * calls). timeout_ns < 0 waits without limit (the liveness bound still applies), 0 tries
 * once, > 0 waits at most that long.
 * Errors: CONVEYOR_E_TIMEOUT, CONVEYOR_E_PEER_DEAD, CONVEYOR_E_CORRUPT (a descriptor that
 * breaks the protocol: the link is then broken), CONVEYOR_MPI_E_MPI,
 * CONVEYOR_E_BAD_STATE (a payload not taken, or a broken link), CONVEYOR_E_WRONG_ROLE,
 * CONVEYOR_E_NULL_POINTER.
 */
CONVEYOR_API int conveyor_mpi_link_next(conveyor_mpi_link *link, int64_t timeout_ns, conveyor_frame_info *info);

/**
 * Receiver: receives the payload of the frame conveyor_mpi_link_next described straight
 * into buffer[0..<byte_length] (MPI_Irecv per chunk, a few chunks in flight): no other
 * copy. Waits until all of it came. An empty frame takes no message.
 * Errors: CONVEYOR_E_TOO_LARGE (capacity < byte_length: the link is then broken, since
 * the payload cannot be taken), CONVEYOR_E_CORRUPT (a chunk of the wrong size),
 * (after any error, a chunk MPI was already receiving from a peer that then stopped may
 * still be written into `buffer` until the job ends: keep it, or end the job),
 * CONVEYOR_E_PEER_DEAD, CONVEYOR_MPI_E_MPI, CONVEYOR_E_BAD_STATE (no frame described),
 * CONVEYOR_E_WRONG_ROLE, CONVEYOR_E_NULL_POINTER.
 */
CONVEYOR_API int conveyor_mpi_link_receive_payload(conveyor_mpi_link *link, void *buffer, uint64_t capacity);

/**
 * Either end: fails with CONVEYOR_E_PEER_DEAD if the peer has been silent for longer
 * than liveness_ns or left, else returns CONVEYOR_OK (always, once the stream is over:
 * heartbeats end with it). Cost: a mutex; no MPI call. For callers that wait elsewhere
 * (on a ring, on their own work) and want to notice a dead peer.
 */
CONVEYOR_API int conveyor_mpi_link_check(conveyor_mpi_link *link);

/** The link's counters (either end). Errors: CONVEYOR_E_NULL_POINTER. */
CONVEYOR_API int conveyor_mpi_link_get_stats(const conveyor_mpi_link *link, conveyor_mpi_link_stats *stats);

/** What the link's last failure was, in words (the peer, the channel, the call and MPI's
 * message), or "" if none. Owned by the handle, valid until its next call. */
CONVEYOR_API const char *conveyor_mpi_link_error(const conveyor_mpi_link *link);

/* ===================================================================================
 * 3. Bridges: rings across ranks
 * =================================================================================== */

/**
 * The send bridge: receives every frame of `consumer` (a ring's consumer handle), sends it
 * on `link` (a sender) with up to the link's window of frames in flight, read in place
 * from the ring's slots, releasing each slot once its frame is out; at the ring's end of
 * stream it closes the link and returns CONVEYOR_OK. Runs in the calling thread until
 * then. The ring's hold limit is set to the window (at most its slot count).
 * Errors: those of the ring's receive (PEER_DEAD when the local producer died) and of the
 * link (PEER_DEAD when the remote side died); either way nothing more is sent.
 */
CONVEYOR_API int conveyor_mpi_send_bridge(conveyor_mpi_link *link, conveyor_ring *consumer);

/**
 * The receive bridge: for every frame on `link` (a receiver) loans a slot of `producer`
 * (a ring's producer handle), receives the payload straight into it and commits it with
 * the sender's descriptor; at end of stream it closes the ring and returns CONVEYOR_OK.
 * Waits for a slot as long as the ring is full (backpressure reaches the sender through
 * MPI's flow control). Errors: those of the link and of the ring (PEER_DEAD when the
 * local consumer died, TOO_LARGE when a frame does not fit a slot).
 */
CONVEYOR_API int conveyor_mpi_receive_bridge(conveyor_mpi_link *link, conveyor_ring *producer);

#ifdef __cplusplus
}
#endif

#endif /* CONVEYOR_MPI_H */
