/*
 * ring.c — the single-producer/single-consumer protocol specified in ring_layout.h:
 * loan/commit/abandon/close on the producer side, receive/release on the consumer side,
 * waiting, ownership and peer liveness. Every shared access names its SYNC POINT.
 */
#include "ring_internal.h"
#include "futex.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- ownership and liveness ------------------------------------------------------ */

/* The fork epoch: bumped in both parent and child at every fork(), so a handle can tell
 * that its claim may have passed to another process (OWNERSHIP in ring_layout.h). */
static cv_atomic_u64 cv_forks = 0;
static pthread_once_t cv_atfork_once = PTHREAD_ONCE_INIT;

static void cv_after_fork(void) { cv_bump_u64(&cv_forks, 1); }
static void cv_register_atfork(void) { pthread_atfork(NULL, cv_after_fork, cv_after_fork); }

static cv_atomic_u32 cv_nonces = 0;

uint32_t cv_next_nonce(void) {
    uint32_t nonce;
    do nonce = cv_add_relaxed_u32(&cv_nonces, 1) + 1;
    while (nonce == 0);
    return nonce;
}

uint64_t cv_fork_epoch(void) {
    pthread_once(&cv_atfork_once, cv_register_atfork);
    return cv_load_relaxed_u64(&cv_forks);
}

/* True unless `pid` has exited (a zombie counts as exited) or does not exist. A pidfd
 * polls readable once its process has terminated, which kill(pid, 0) cannot tell. */
static bool cv_process_alive(uint32_t pid) {
    if (pid == 0 || (pid_t)pid == getpid()) return true;
    int fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
    if (fd < 0) {
        if (errno == ESRCH) return false;
        return kill((pid_t)pid, 0) == 0 || errno != ESRCH; /* no pidfd support: best effort */
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int ready = poll(&p, 1, 0);
    close(fd);
    return ready <= 0;
}

static cv_atomic_u64 *cv_own_owner(conveyor_ring *ring) {
    return ring->role == CONVEYOR_RING_PRODUCER ? &ring->hdr->prod_owner : &ring->hdr->cons_owner;
}

static cv_atomic_u64 *cv_peer_owner(conveyor_ring *ring) {
    return ring->role == CONVEYOR_RING_PRODUCER ? &ring->hdr->cons_owner : &ring->hdr->prod_owner;
}

static uint32_t cv_owner_pid(uint64_t owner) { return (uint32_t)(owner >> 32); }

/* Whether nobody will act on a side owned by `owner` again: it was handed back, or its
 * process is gone. A side never claimed (CV_OWNER_NONE) is not gone: its owner is yet to
 * come. */
static bool cv_owner_gone(uint64_t owner) {
    return owner == CV_OWNER_LEFT || !cv_process_alive(cv_owner_pid(owner));
}

static void cv_ring_doorbell(cv_atomic_u32 *doorbell, cv_atomic_u32 *peer_sleeping,
                             cv_atomic_u64 *wakes);

/* Rings the doorbell this side rings after every commit (producer) or release (consumer). */
static void cv_ring_peer_after_takeover(conveyor_ring *ring) {
    cv_ring_header *hdr = ring->hdr;
    if (ring->role == CONVEYOR_RING_PRODUCER)
        cv_ring_doorbell(&hdr->prod_doorbell, &hdr->cons_sleeping, &hdr->prod_wakes);
    else
        cv_ring_doorbell(&hdr->cons_doorbell, &hdr->prod_sleeping, &hdr->cons_wakes);
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

int cv_ring_claim_side(conveyor_ring *ring) {
    cv_atomic_u64 *owner = cv_own_owner(ring);
    uint64_t me = (uint64_t)(uint32_t)getpid() << 32 | ring->nonce;
    uint64_t current = cv_load_acquire_u64(owner);
    bool handover = false;
    /* `current == me` for a handle that never claimed is a dead predecessor's word (its pid
     * reused, its nonce counter restarted like ours): a takeover, not ours already. */
    if (current != me || ring->claimed_owner != me) {
        for (;;) {
            handover = ring->claimed_owner != CV_OWNER_NONE && current == ring->claimed_owner;
            bool free = current == CV_OWNER_NONE || current == me || cv_owner_gone(current);
            if (!handover && !free) return CONVEYOR_E_BUSY;
            if (cv_cas_u64(owner, &current, me)) break;  /* else `current` is the new word */
        }
        if (!handover) {
            int status = cv_load_position(ring);
            if (status != CONVEYOR_OK) {
                uint64_t expected = me;  /* put the previous word back: claim nothing */
                cv_cas_u64(owner, &expected, current);
                return status;
            }
            ring->loans_since_check = 0;
            ring->next_peer_check_ns = 0;
            /* The previous owner may have died between its store and its doorbell: wake
             * a peer that went to sleep on that doorbell, or it would sleep out its slice
             * (found by the spin model: FINDING in Tests/Model/ring.pml). */
            cv_ring_peer_after_takeover(ring);
        }
    }
    ring->claimed_owner = me;
    ring->fork_epoch = cv_fork_epoch();
    return CONVEYOR_OK;
}

void cv_ring_hand_back(conveyor_ring *ring) {
    /* After a fork the claim may be the child's now (OWNERSHIP): then leave it alone. */
    if (ring->claimed_owner == CV_OWNER_NONE || ring->fork_epoch != cv_fork_epoch()) return;
    uint64_t expected = ring->claimed_owner;
    cv_cas_u64(cv_own_owner(ring), &expected, CV_OWNER_LEFT);
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
    if (ring->fork_epoch != cv_load_relaxed_u64(&cv_forks)) return cv_ring_claim_side(ring);
    return CONVEYOR_OK;
}

/* Rate-limited: whether the other side's process is gone (or handed its side back). */
static bool cv_peer_dead(conveyor_ring *ring, int64_t now) {
    if (now < ring->next_peer_check_ns) return false;
    ring->next_peer_check_ns = now + CONVEYOR_RING_PEER_CHECK_NS;
    return cv_owner_gone(cv_load_relaxed_u64(cv_peer_owner(ring)));
}

/* Loans between two liveness checks of the consumer when the ring never fills. */
#define CV_PEER_CHECK_EVERY 4096

/* ---- waiting --------------------------------------------------------------------- */

/* What a waiting side checks: returns CONVEYOR_OK when it can proceed, CONVEYOR_E_TIMEOUT
 * while it must keep waiting, or a final status (end of stream, corrupt...). */
typedef int (*cv_ready_fn)(conveyor_ring *ring);

/* Spins between two clock reads: a pause costs tens of nanoseconds, a clock read ~20 ns,
 * so 64 keeps the clock's share small and the overrun of a timeout to a few microseconds. */
#define CV_SPINS_PER_CLOCK_READ 64

/* now + timeout, saturated: a timeout too large to add waits forever instead of wrapping
 * to a deadline in the past. timeout_ns < 0 means no limit. */
static int64_t cv_deadline_after(int64_t now, int64_t timeout_ns) {
    if (timeout_ns < 0 || timeout_ns > INT64_MAX - now) return INT64_MAX;
    return now + timeout_ns;
}

/* The peer is gone and cannot act any more: one last look at what it left, then give up. */
static int cv_after_peer_death(conveyor_ring *ring, cv_ready_fn ready) {
    int status = ready(ring);
    return status == CONVEYOR_E_TIMEOUT ? CONVEYOR_E_PEER_DEAD : status;
}

/*
 * Spin, then sleep on `doorbell` with the handshake of ring_layout.h, until ready() says
 * so, the deadline passes or the peer dies. `sleeping` is this side's flag; `waits`
 * counts sleeps. Timeout 0 is a poll: one check (and, at most once per peer-check slice,
 * a look at the peer's liveness, so pollers learn of a death too).
 */
static int cv_wait(conveyor_ring *ring, int64_t timeout_ns, cv_ready_fn ready,
                   cv_atomic_u32 *doorbell, cv_atomic_u32 *sleeping, cv_atomic_u64 *waits) {
    int status = ready(ring);
    if (status != CONVEYOR_E_TIMEOUT) return status;
    if (timeout_ns == 0)
        return cv_peer_dead(ring, cv_now_ns()) ? cv_after_peer_death(ring, ready) : status;
    /* The clock is first read after CV_SPINS_PER_CLOCK_READ spins, not before the first:
     * a streaming ring waits briefly on almost every frame, so a read there would be paid
     * per frame. The deadline counts from that read (a few microseconds of spinning
     * later). */
    int64_t now = 0, deadline = 0;
    bool clock_started = false;
    for (uint32_t i = 1; i <= ring->spin; i++) {
        cv_cpu_relax();
        if ((status = ready(ring)) != CONVEYOR_E_TIMEOUT) return status;
        if (i % CV_SPINS_PER_CLOCK_READ != 0) continue;
        now = cv_now_ns();
        if (!clock_started) {
            deadline = cv_deadline_after(now, timeout_ns);
            clock_started = true;
        } else if (now >= deadline) {
            return CONVEYOR_E_TIMEOUT;
        }
        if (cv_peer_dead(ring, now)) return cv_after_peer_death(ring, ready);
    }
    if (!clock_started) deadline = cv_deadline_after(cv_now_ns(), timeout_ns);
    bool counted = false;
    for (;;) {
        uint32_t bell = cv_load_relaxed_u32(doorbell);  /* (1) before the fence */
        cv_store_relaxed_u32(sleeping, 1);
        cv_fence_full();                                   /* SYNC POINT C */
        status = ready(ring);
        if (status != CONVEYOR_E_TIMEOUT) break;
        now = cv_now_ns();
        if (now >= deadline) break;
        if (cv_peer_dead(ring, now)) {
            status = cv_after_peer_death(ring, ready);
            break;
        }
        if (!counted) {
            cv_bump_u64(waits, 1);
            counted = true;
        }
        int64_t slice = deadline - now;
        if (slice > CONVEYOR_RING_PEER_CHECK_NS) slice = CONVEYOR_RING_PEER_CHECK_NS;
        cv_futex_wait(doorbell, bell, slice);
    }
    cv_store_relaxed_u32(sleeping, 0);
    return status;
}

/* Rings the other side's doorbell if it may be asleep. Called after a release store. */
static void cv_ring_doorbell(cv_atomic_u32 *doorbell, cv_atomic_u32 *peer_sleeping,
                             cv_atomic_u64 *wakes) {
    cv_fence_full();                                        /* SYNC POINT C */
    if (cv_load_relaxed_u32(peer_sleeping)) {
        cv_bump_u32(doorbell, 1);
        cv_futex_wake(doorbell);
        cv_bump_u64(wakes, 1);
    }
}

/* ---- producer -------------------------------------------------------------------- */

static int cv_slot_free(conveyor_ring *ring) {
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
    status = cv_wait(ring, timeout_ns, cv_slot_free, &hdr->cons_doorbell, &hdr->prod_sleeping,
                     &hdr->prod_waits);
    if (status != CONVEYOR_OK) return status;
    ring->outstanding = true;
    *data = cv_slot_address(ring, ring->position);
    if (capacity != NULL) *capacity = ring->slot_bytes;
    return CONVEYOR_OK;
}

/* receive copies a descriptor straight into a conveyor_frame_info: the same fields at the
 * same offsets, the descriptor's padding after them. */
_Static_assert(offsetof(cv_slot_desc, rank) == offsetof(conveyor_frame_info, rank) &&
                   offsetof(cv_slot_desc, shape) == offsetof(conveyor_frame_info, shape) &&
                   offsetof(cv_slot_desc, byte_length) == offsetof(conveyor_frame_info, byte_length) &&
                   offsetof(cv_slot_desc, tag) == offsetof(conveyor_frame_info, tag) &&
                   sizeof(conveyor_frame_info) == offsetof(cv_slot_desc, pad) &&
                   sizeof(conveyor_frame_info) % 8 == 0,
               "a slot descriptor must begin with a conveyor_frame_info");

static uint64_t cv_dtype_size(uint32_t dtype) {
    switch (dtype) {
    case CONVEYOR_DTYPE_BYTES: return 1;
    case CONVEYOR_DTYPE_F32: return 4;
    case CONVEYOR_DTYPE_F64: return 8;
    default: return 0;
    }
}

/* A frame description is consistent: known dtype, rank <= 4, shape * size == length. */
static int cv_check_frame(const conveyor_frame_info *info, uint64_t slot_bytes) {
    uint64_t bytes = cv_dtype_size(info->dtype);
    if (bytes == 0 || info->rank > CONVEYOR_FRAME_MAX_RANK) return CONVEYOR_E_INVALID_ARGUMENT;
    bool empty = false;  /* a zero extent makes the product 0, however large the others */
    for (uint32_t d = 0; d < info->rank; d++) empty = empty || info->shape[d] == 0;
    for (uint32_t d = 0; d < info->rank && !empty; d++) {
        if (bytes > UINT64_MAX / info->shape[d]) return CONVEYOR_E_TOO_LARGE;
        bytes *= info->shape[d];
    }
    if (empty) bytes = 0;
    if (bytes != info->byte_length) return CONVEYOR_E_INVALID_ARGUMENT;
    return info->byte_length <= slot_bytes ? CONVEYOR_OK : CONVEYOR_E_TOO_LARGE;
}

int conveyor_ring_commit(conveyor_ring *ring, const conveyor_frame_info *info) {
    int status = cv_enter(ring, CONVEYOR_RING_PRODUCER);
    if (status != CONVEYOR_OK) return status;
    if (info == NULL) return CONVEYOR_E_NULL_POINTER;
    if (!ring->outstanding) return CONVEYOR_E_BAD_STATE;
    if ((status = cv_check_frame(info, ring->slot_bytes)) != CONVEYOR_OK) return status;

    cv_ring_header *hdr = ring->hdr;
    cv_slot_desc *desc = cv_slot_descriptor(ring, ring->position);
    desc->dtype = info->dtype;
    desc->rank = info->rank;
    memcpy(desc->shape, info->shape, sizeof desc->shape);
    desc->byte_length = info->byte_length;
    desc->tag = info->tag;
    ring->outstanding = false;
    ring->position++;
    cv_store_release_u64(&hdr->prod_head, ring->position);   /* SYNC POINT A */

    cv_bump_u64(&hdr->prod_frames, 1);
    cv_bump_u64(&hdr->prod_bytes, info->byte_length);
    uint64_t occupancy = ring->position - ring->peer_cache;
    if (occupancy > cv_load_relaxed_u64(&hdr->prod_peak))
        cv_store_relaxed_u64(&hdr->prod_peak, occupancy);
    cv_ring_doorbell(&hdr->prod_doorbell, &hdr->cons_sleeping, &hdr->prod_wakes);
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
    cv_ring_doorbell(&hdr->prod_doorbell, &hdr->cons_sleeping, &hdr->prod_wakes);
    return CONVEYOR_OK;
}

/* ---- consumer -------------------------------------------------------------------- */

/* The consumer's next frame is position + held: the frames it holds come first. */
static int cv_frame_ready(conveyor_ring *ring) {
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
    status = cv_wait(ring, timeout_ns, cv_frame_ready, &hdr->prod_doorbell, &hdr->cons_sleeping,
                     &hdr->cons_waits);
    if (status != CONVEYOR_OK) return status;

    /* Copy the descriptor out before checking it: the producer's process may change the
     * shared copy at any time, and only the checked copy is used. */
    uint64_t sequence = ring->position + ring->held;
    conveyor_frame_info copy;  /* a descriptor is a frame_info and padding: see below */
    cv_copy_from_peer(&copy, cv_slot_descriptor(ring, sequence), sizeof copy);
    if (cv_check_frame(&copy, ring->slot_bytes) != CONVEYOR_OK) return CONVEYOR_E_CORRUPT;
    ring->held++;
    *data = cv_slot_address(ring, sequence);
    *info = copy;
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
    cv_ring_doorbell(&hdr->cons_doorbell, &hdr->prod_sleeping, &hdr->cons_wakes);
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
