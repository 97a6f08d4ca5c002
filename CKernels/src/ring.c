/*
 * ring.c — the single-producer/single-consumer protocol specified in ring_layout.h:
 * loan/commit/abandon/close on the producer side, receive/release on the consumer side,
 * what a takeover reloads, what each side waits for, stats. Every shared access names its
 * SYNC POINT. The pieces channels share live apart: the owner word in owner.c, the wait
 * loop and doorbells in wait.c/wait.h, descriptors and the frame check in slots.c, the
 * backings in shm.c; creating, attaching and validating a ring in ring_open.c.
 */
#include "ring_internal.h"
#include "futex.h"
#include "wait.h"

#include <string.h>

/* ---- ownership and liveness (the word itself: owner.c) --------------------------- */

static cv_atomic_u64 *cv_own_owner(conveyor_ring *ring) {
    return ring->role == CONVEYOR_RING_PRODUCER ? &ring->hdr->prod_owner : &ring->hdr->cons_owner;
}

static cv_atomic_u64 *cv_peer_owner(conveyor_ring *ring) {
    return ring->role == CONVEYOR_RING_PRODUCER ? &ring->hdr->cons_owner : &ring->hdr->prod_owner;
}

/* Clears this side's own sleeping flag, which a previous owner killed while asleep left
 * at 1 (only its own side ever clears it, at the end of a wait): else the peer would make
 * a futex wake after every commit or release until the new owner happens to sleep. Safe:
 * a takeover only happens when the previous owner is dead or LEFT, so nobody of this side
 * is inside a wait. Then rings the doorbell this side rings after every commit (producer)
 * or release (consumer); its fence (C) orders the clear before the load of the peer's
 * flag, as a wait's own clear is ordered before its next operation's ring. */
static void cv_ring_peer_after_takeover(conveyor_ring *ring) {
    cv_ring_header *hdr = ring->hdr;
    if (ring->role == CONVEYOR_RING_PRODUCER) {
        cv_store_relaxed_u32(&hdr->prod_sleeping, 0);
        cv_doorbell_ring(&hdr->prod_doorbell, &hdr->cons_sleeping, &hdr->prod_wakes);
    } else {
        cv_store_relaxed_u32(&hdr->cons_sleeping, 0);
        cv_doorbell_ring(&hdr->cons_doorbell, &hdr->prod_sleeping, &hdr->cons_wakes);
    }
}

/* Takes this side's position from the shared counters, as a new owner must: a frame the
 * previous consumer held is received again, a loan the previous producer held is gone. */
static int cv_load_position(conveyor_ring *ring) {
    cv_ring_header *hdr = ring->hdr;
    uint64_t head = cv_load_acquire_u64(&hdr->prod_head);   /* SYNC POINT A */
    uint64_t tail = cv_load_acquire_u64(&hdr->cons_tail);   /* SYNC POINT B */
    if (head - tail > ring->slot_count) return CONVEYOR_E_CORRUPT;
    bool producer = ring->role == CONVEYOR_RING_PRODUCER;
    ring->position = producer ? head : tail;
    ring->peer_cache = producer ? tail : head;
    ring->outstanding = false;
    ring->held = 0;
    return CONVEYOR_OK;
}

/* What a new owner of this side does after a takeover (cv_claim_owner): resume at the
 * shared position, check the peer again soon, and wake a peer that may have gone to sleep
 * on a doorbell the previous owner died before ringing (found by the spin model: FINDING
 * in Tests/Model/ring.pml). */
static int cv_ring_take_over(void *ctx) {
    conveyor_ring *ring = ctx;
    int status = cv_load_position(ring);
    if (status != CONVEYOR_OK) return status;
    ring->loans_since_check = 0;
    ring->next_peer_check_ns = 0;
    cv_ring_peer_after_takeover(ring);
    return CONVEYOR_OK;
}

int cv_ring_claim_side(conveyor_ring *ring) {
    return cv_claim_owner(&ring->claim, cv_own_owner(ring), cv_ring_take_over, ring);
}

void cv_ring_hand_back(conveyor_ring *ring) {
    cv_hand_back_owner(&ring->claim, cv_own_owner(ring));
}

int conveyor_ring_claim(conveyor_ring *ring) {
    if (ring == NULL) return CONVEYOR_E_NULL_POINTER;
    if (ring->role == CONVEYOR_RING_HOLDER) return CONVEYOR_E_WRONG_ROLE;
    return cv_ring_claim_side(ring);
}

/* Every operation starts here: right role, and this process owns the side (a handle used
 * for the first time after a fork claims it again: a hand-over in the child, a no-op in
 * the parent that still owns it). */
static int cv_enter(conveyor_ring *ring, int role) {
    if (ring == NULL) return CONVEYOR_E_NULL_POINTER;
    if (ring->role != role) return CONVEYOR_E_WRONG_ROLE;
    if (cv_claim_stale(&ring->claim)) return cv_ring_claim_side(ring);
    return CONVEYOR_OK;
}

/* Rate-limited: whether the other side's process is gone (or handed its side back). */
static bool cv_peer_dead(conveyor_ring *ring, int64_t now) {
    if (!cv_check_due(&ring->next_peer_check_ns, now)) return false;
    /* Acquire, as a channel's: a peer that closed and then destroyed its handle (LEFT, by
     * an acq_rel CAS) must be seen in that order. The loads that follow (prod_closed,
     * prod_head: cv_after_peer_death) come after this one, so on a weakly ordered CPU a
     * relaxed load could see LEFT and then an old prod_closed or prod_head: PEER_DEAD
     * instead of END_OF_STREAM, frames committed before the close left undelivered. */
    return cv_owner_gone(cv_load_acquire_u64(cv_peer_owner(ring)));
}

static bool cv_peer_dead_cb(void *ctx, int64_t now) { return cv_peer_dead(ctx, now); }

/* Loans between two liveness checks of the consumer when the ring never fills. */
#define CV_PEER_CHECK_EVERY 4096

/* ---- waiting (the loop itself: wait.c) ------------------------------------------ */

/* A wait of this side for ready(): on the doorbell its peer rings, with its own flag. */
static int cv_ring_wait(conveyor_ring *ring, int64_t timeout_ns, int (*ready)(void *),
                        cv_atomic_u32 *doorbell, cv_atomic_u32 *sleeping, cv_atomic_u64 *waits) {
    cv_waiter w = {.ctx = ring, .ready = ready, .peer_gone = cv_peer_dead_cb,
                   .doorbell = doorbell, .sleeping = sleeping, .waits = waits,
                   .spin = ring->spin};
    return cv_wait(&w, timeout_ns);
}

/* ---- producer -------------------------------------------------------------------- */

static int cv_slot_free(void *ctx) {
    conveyor_ring *ring = ctx;
    if (ring->position - ring->peer_cache < ring->slot_count) return CONVEYOR_OK;
    uint64_t tail = cv_load_acquire_u64(&ring->hdr->cons_tail);  /* SYNC POINT B */
    if (ring->position - tail > ring->slot_count) return CONVEYOR_E_CORRUPT;
    ring->peer_cache = tail;
    return ring->position - tail < ring->slot_count ? CONVEYOR_OK : CONVEYOR_E_TIMEOUT;
}

static void *cv_slot_address(const conveyor_ring *ring, uint64_t sequence) {
    uint64_t slot = sequence % ring->slot_count;
    return (char *)ring->map->base + ring->slots_offset + slot * ring->slot_stride;
}

static cv_slot_desc *cv_slot_descriptor(const conveyor_ring *ring, uint64_t sequence) {
    uint64_t slot = sequence % ring->slot_count;
    return (cv_slot_desc *)((char *)ring->map->base + ring->descriptors_offset) + slot;
}

int conveyor_ring_loan(conveyor_ring *ring, int64_t timeout_ns, void **data, uint64_t *capacity) {
    int status = cv_enter(ring, CONVEYOR_RING_PRODUCER);
    if (status != CONVEYOR_OK) return status;
    if (data == NULL) return CONVEYOR_E_NULL_POINTER;
    if (ring->outstanding) return CONVEYOR_E_BAD_STATE;
    cv_ring_header *hdr = ring->hdr;
    if (cv_load_relaxed_u32(&hdr->prod_closed)) return CONVEYOR_E_CLOSED;
    /* A dead consumer is noticed while waiting for a slot (within a sleep slice), and
     * every CV_PEER_CHECK_EVERY loans otherwise: a clock read per loan would cost more
     * than the rest of the loan. */
    if (++ring->loans_since_check >= CV_PEER_CHECK_EVERY) {
        ring->loans_since_check = 0;
        ring->next_peer_check_ns = 0;
        if (cv_peer_dead(ring, cv_now_ns())) return CONVEYOR_E_PEER_DEAD;
    }
    status = cv_ring_wait(ring, timeout_ns, cv_slot_free, &hdr->cons_doorbell, &hdr->prod_sleeping,
                     &hdr->prod_waits);
    if (status != CONVEYOR_OK) return status;
    ring->outstanding = true;
    *data = cv_slot_address(ring, ring->position);
    if (capacity != NULL) *capacity = ring->slot_bytes;
    return CONVEYOR_OK;
}

int conveyor_ring_commit(conveyor_ring *ring, const conveyor_frame_info *info) {
    int status = cv_enter(ring, CONVEYOR_RING_PRODUCER);
    if (status != CONVEYOR_OK) return status;
    if (info == NULL) return CONVEYOR_E_NULL_POINTER;
    if (!ring->outstanding) return CONVEYOR_E_BAD_STATE;
    if ((status = cv_check_frame(info, ring->slot_bytes)) != CONVEYOR_OK) return status;

    cv_ring_header *hdr = ring->hdr;
    cv_desc_write(cv_slot_descriptor(ring, ring->position), info);
    ring->outstanding = false;
    ring->position++;
    cv_store_release_u64(&hdr->prod_head, ring->position);   /* SYNC POINT A */

    cv_bump_u64(&hdr->prod_frames, 1);
    cv_bump_u64(&hdr->prod_bytes, info->byte_length);
    uint64_t occupancy = ring->position - ring->peer_cache;
    if (occupancy > cv_load_relaxed_u64(&hdr->prod_peak))
        cv_store_relaxed_u64(&hdr->prod_peak, occupancy);
    cv_doorbell_ring(&hdr->prod_doorbell, &hdr->cons_sleeping, &hdr->prod_wakes);
    return CONVEYOR_OK;
}

int conveyor_ring_abandon(conveyor_ring *ring) {
    int status = cv_enter(ring, CONVEYOR_RING_PRODUCER);
    if (status != CONVEYOR_OK) return status;
    if (!ring->outstanding) return CONVEYOR_E_BAD_STATE;
    ring->outstanding = false;
    return CONVEYOR_OK;
}

int conveyor_ring_push(conveyor_ring *ring, int64_t timeout_ns, const void *bytes,
                       const conveyor_frame_info *info) {
    if (info == NULL || (bytes == NULL && info->byte_length > 0)) return CONVEYOR_E_NULL_POINTER;
    if (ring != NULL && ring->role == CONVEYOR_RING_PRODUCER) {
        int status = cv_check_frame(info, ring->slot_bytes);
        if (status != CONVEYOR_OK) return status;  /* before waiting for a slot */
    }
    void *slot;
    int status = conveyor_ring_loan(ring, timeout_ns, &slot, NULL);
    if (status != CONVEYOR_OK) return status;
    if (info->byte_length > 0) memcpy(slot, bytes, info->byte_length);  /* bytes may be NULL */
    return conveyor_ring_commit(ring, info);
}

int conveyor_ring_close(conveyor_ring *ring) {
    int status = cv_enter(ring, CONVEYOR_RING_PRODUCER);
    if (status != CONVEYOR_OK) return status;
    ring->outstanding = false;
    cv_ring_header *hdr = ring->hdr;
    cv_store_release_u32(&hdr->prod_closed, 1);                  /* SYNC POINT D */
    cv_doorbell_ring(&hdr->prod_doorbell, &hdr->cons_sleeping, &hdr->prod_wakes);
    return CONVEYOR_OK;
}

/* ---- consumer -------------------------------------------------------------------- */

/* The consumer's next frame is position + held: the frames it holds come first. */
static int cv_frame_ready(void *ctx) {
    conveyor_ring *ring = ctx;
    uint64_t next = ring->position + ring->held;
    if (ring->peer_cache != next) return CONVEYOR_OK;
    /* closed first (SYNC POINT D), then head: a close seen implies all its commits seen. */
    uint32_t closed = cv_load_acquire_u32(&ring->hdr->prod_closed);  /* SYNC POINT D */
    uint64_t head = cv_load_acquire_u64(&ring->hdr->prod_head);  /* SYNC POINT A */
    if (head - ring->position > ring->slot_count || head - ring->position < ring->held)
        return CONVEYOR_E_CORRUPT;
    ring->peer_cache = head;
    if (head != next) return CONVEYOR_OK;
    return closed ? CONVEYOR_E_END_OF_STREAM : CONVEYOR_E_TIMEOUT;
}

int conveyor_ring_receive(conveyor_ring *ring, int64_t timeout_ns, const void **data,
                          conveyor_frame_info *info) {
    int status = cv_enter(ring, CONVEYOR_RING_CONSUMER);
    if (status != CONVEYOR_OK) return status;
    if (data == NULL || info == NULL) return CONVEYOR_E_NULL_POINTER;
    if (ring->held >= ring->hold_limit) return CONVEYOR_E_BAD_STATE;
    cv_ring_header *hdr = ring->hdr;
    status = cv_ring_wait(ring, timeout_ns, cv_frame_ready, &hdr->prod_doorbell, &hdr->cons_sleeping,
                     &hdr->cons_waits);
    if (status != CONVEYOR_OK) return status;

    /* The descriptor is copied out once and the copy checked: the producer's process may
     * change the shared copy at any time (cv_desc_read). */
    uint64_t sequence = ring->position + ring->held;
    status = cv_desc_read(cv_slot_descriptor(ring, sequence), ring->slot_bytes, info);
    if (status != CONVEYOR_OK) return status;
    ring->held++;
    *data = cv_slot_address(ring, sequence);
    return CONVEYOR_OK;
}

int conveyor_ring_release(conveyor_ring *ring) {
    int status = cv_enter(ring, CONVEYOR_RING_CONSUMER);
    if (status != CONVEYOR_OK) return status;
    if (ring->held == 0) return CONVEYOR_E_BAD_STATE;
    cv_ring_header *hdr = ring->hdr;
    ring->held--;
    ring->position++;  /* the oldest held frame */
    cv_store_release_u64(&hdr->cons_tail, ring->position);   /* SYNC POINT B */
    cv_bump_u64(&hdr->cons_frames, 1);
    cv_doorbell_ring(&hdr->cons_doorbell, &hdr->prod_sleeping, &hdr->cons_wakes);
    return CONVEYOR_OK;
}

int conveyor_ring_set_spin(conveyor_ring *ring, uint32_t spin) {
    if (ring == NULL) return CONVEYOR_E_NULL_POINTER;
    ring->spin = spin;
    return CONVEYOR_OK;
}

int conveyor_ring_set_hold_limit(conveyor_ring *ring, uint32_t frames) {
    if (ring == NULL) return CONVEYOR_E_NULL_POINTER;
    if (ring->role != CONVEYOR_RING_CONSUMER) return CONVEYOR_E_WRONG_ROLE;
    if (frames < 1 || frames > ring->slot_count) return CONVEYOR_E_INVALID_ARGUMENT;
    ring->hold_limit = frames;
    return CONVEYOR_OK;
}

void *conveyor_ring_slot_address(const conveyor_ring *ring, uint32_t index) {
    if (ring == NULL || index >= ring->slot_count) return NULL;
    return cv_slot_address(ring, index);
}

/* The 0.2 layout is what get_stats fills, for callers built against 0.2 and 0.3. */
_Static_assert(sizeof(conveyor_ring_stats) == CONVEYOR_RING_STATS_SIZE_0_2 &&
                   offsetof(conveyor_ring_stats, mapped_bytes) == CONVEYOR_RING_STATS_SIZE_0_1,
               "conveyor_ring_stats changed size: grow it only through read_stats");

int conveyor_ring_get_stats(const conveyor_ring *ring, conveyor_ring_stats *stats) {
    return conveyor_ring_read_stats(ring, stats, CONVEYOR_RING_STATS_SIZE_0_2);
}

int conveyor_ring_read_stats(const conveyor_ring *ring, conveyor_ring_stats *stats, size_t size) {
    if (ring == NULL || stats == NULL) return CONVEYOR_E_NULL_POINTER;
    if (size < CONVEYOR_RING_STATS_SIZE_0_1 || size % 8 != 0) return CONVEYOR_E_INVALID_ARGUMENT;
    cv_ring_header *hdr = ring->hdr;
    conveyor_ring_stats all = {
        .frames_committed = cv_load_relaxed_u64(&hdr->prod_frames),
        .bytes_committed = cv_load_relaxed_u64(&hdr->prod_bytes),
        .frames_released = cv_load_relaxed_u64(&hdr->cons_frames),
        .producer_waits = cv_load_relaxed_u64(&hdr->prod_waits),
        .producer_wakes = cv_load_relaxed_u64(&hdr->prod_wakes),
        .consumer_waits = cv_load_relaxed_u64(&hdr->cons_waits),
        .consumer_wakes = cv_load_relaxed_u64(&hdr->cons_wakes),
        .peak_occupancy = cv_load_relaxed_u64(&hdr->prod_peak),
        .slot_count = ring->slot_count,
        .closed = cv_load_relaxed_u32(&hdr->prod_closed) != 0,  /* 0 or 1, whatever a peer wrote */
        .slot_bytes = ring->slot_bytes,
        .mapped_bytes = ring->map->bytes,
    };
    /* A newer caller's fields past ours read as zero; an older caller's struct ends sooner. */
    if (size > sizeof all) memset((char *)stats + sizeof all, 0, size - sizeof all);
    memcpy(stats, &all, size < sizeof all ? size : sizeof all);
    return CONVEYOR_OK;
}
