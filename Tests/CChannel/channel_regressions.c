/*
 * channel_regressions.c — one test per defect fixed after the 0.5 review of the index
 * channels (and the ring pieces they share), each failing before its fix:
 *   1. receive_any: one corrupt lane no longer blocks the others (reported once, named,
 *      then skipped; also named when the CORRUPT comes from the re-claim after a fork),
 *      and a dead lane is reported once per owner word, not on every call, while the other
 *      lanes are served and a new sender of the dead lane is served and watched again;
 *   2. a takeover clears the taking side's own sleeping flag, left at 1 by an owner killed
 *      asleep: a new owner that never sleeps then costs its peer no futex wakes (channel
 *      receiver and sender, ring consumer and producer);
 *   3. the default spin an attach reads from a header is bounded (2^24): an attached
 *      waiter with a hostile 2^32-1 sleeps within seconds, not minutes (ring and channel);
 *   4. conveyor_channel_config.reserved must be 0.
 * It plays a hostile peer through the private layout (channel_layout.h), as
 * channel_hostile.c does. Tests wait for events (stats counters, statuses), never for a
 * sleep to be long enough. Built and run by scripts/test-c.
 */
#include "hostile_view.h"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>

static const char *program = "channel_regressions";

static conveyor_channel *must_open(conveyor_channel *holder, int role, uint32_t lane) {
    conveyor_channel *end = open_end(holder, role, lane);
    if (end == NULL) exit(finish(program));
    return end;
}

/* ---- 1. receive_any and one bad lane ------------------------------------------------ */

/* Lane 0's head is impossible while lane 1 has words: lane 1 is served first, then lane 0
 * is reported CORRUPT once (named), then skipped for good: lane 1 goes on, and the stream
 * ends when lane 1 ends. Before the fix every call returned CORRUPT for lane 0. */
static void test_corrupt_lane_does_not_block(void) {
    conveyor_channel_config c = channel_config(2, 4, 0, CONVEYOR_RING_MEMFD);
    conveyor_channel *holder = NULL;
    CHECK_STATUS(conveyor_channel_create(&c, &holder), CONVEYOR_OK);
    if (holder == NULL) exit(finish(program));
    conveyor_channel *s0 = must_open(holder, CONVEYOR_CHANNEL_SENDER, 0);
    conveyor_channel *s1 = must_open(holder, CONVEYOR_CHANNEL_SENDER, 1);
    conveyor_channel *r = must_open(holder, CONVEYOR_CHANNEL_RECEIVER, 0);
    view v = map_fd(conveyor_channel_fd(holder), program);
    atomic_store(&lane_of(v, 0)->send_head, 1000);  /* lane 0's sender is hostile */
    for (uint64_t i = 0; i < 3; i++)
        CHECK_STATUS(conveyor_channel_send(s1, lane_word(1, i), 0), CONVEYOR_OK);
    uint32_t lane;
    uint64_t word;
    for (uint64_t i = 0; i < 3; i++) {
        lane = 99;
        CHECK_STATUS(conveyor_channel_receive_any(r, 0, &lane, &word), CONVEYOR_OK);
        CHECK(lane == 1 && word == lane_word(1, i));
    }
    lane = 99;
    CHECK_STATUS(conveyor_channel_receive_any(r, 0, &lane, &word), CONVEYOR_E_CORRUPT);
    CHECK(lane == 0);
    lane = 99;
    CHECK_STATUS(conveyor_channel_receive_any(r, 0, &lane, &word), CONVEYOR_E_TIMEOUT);
    CHECK(lane == 99);
    CHECK_STATUS(conveyor_channel_send(s1, lane_word(1, 3), 0), CONVEYOR_OK);
    CHECK_STATUS(conveyor_channel_receive_any(r, GUARD_NS, &lane, &word), CONVEYOR_OK);
    CHECK(lane == 1 && word == lane_word(1, 3));
    CHECK_STATUS(conveyor_channel_close(s1), CONVEYOR_OK);
    CHECK_STATUS(conveyor_channel_receive_any(r, GUARD_NS, &lane, &word), CONVEYOR_E_END_OF_STREAM);
    /* receive(lane) names its lane: it still reports it */
    CHECK_STATUS(conveyor_channel_receive(r, 0, 0, &word), CONVEYOR_E_CORRUPT);

    /* The re-claim after a fork is a takeover (the owner word is no longer ours) that finds
     * lane 0 impossible: CORRUPT, and *lane names lane 0 (before the fix: left unset). */
    atomic_store(&header_of(v)->recv_owner, CV_OWNER_LEFT);
    pid_t child = fork_child();
    if (child == 0) _exit(0);
    CHECK(reap(child) == 0);
    lane = 99;
    CHECK_STATUS(conveyor_channel_receive_any(r, 0, &lane, &word), CONVEYOR_E_CORRUPT);
    CHECK(lane == 0);
    CHECK(atomic_load(&header_of(v)->recv_owner) == CV_OWNER_LEFT);  /* nothing claimed */
    /* Put back: the next call's claim succeeds, and the takeover forgets the masks. */
    atomic_store(&lane_of(v, 0)->send_head, 0);
    CHECK_STATUS(conveyor_channel_send(s0, lane_word(0, 0), 0), CONVEYOR_OK);
    lane = 99;
    CHECK_STATUS(conveyor_channel_receive_any(r, 0, &lane, &word), CONVEYOR_OK);
    CHECK(lane == 0 && word == lane_word(0, 0));
    unmap(v);
    conveyor_channel_destroy(s0);
    conveyor_channel_destroy(s1);
    conveyor_channel_destroy(r);
    conveyor_channel_destroy(holder);
    printf("  a corrupt lane: ready lanes first, then CORRUPT once naming it, then skipped"
           " (also named from a failed re-claim)\n");
}

/* A dead lane (LEFT, then a killed process) is reported once per owner word while
 * another lane can deliver: the next calls serve the other lane and otherwise wait their
 * full timeout (TIMEOUT, not PEER_DEAD after one 10 ms slice). A new sender of the lane is
 * served, and its own death is reported again; once no other lane can deliver, the dead
 * lane is reported again. */
static void test_dead_lane_reported_once(void) {
    conveyor_channel *holder = make_channel(2, 4, 0, CONVEYOR_RING_ANONYMOUS);
    if (holder == NULL) exit(finish(program));
    conveyor_channel *s0 = must_open(holder, CONVEYOR_CHANNEL_SENDER, 0);
    conveyor_channel *s1 = must_open(holder, CONVEYOR_CHANNEL_SENDER, 1);
    conveyor_channel *r = must_open(holder, CONVEYOR_CHANNEL_RECEIVER, 0);
    uint32_t lane;
    uint64_t word;
    conveyor_channel_destroy(s0);  /* leaves without closing: LEFT */
    lane = 99;
    CHECK_STATUS(conveyor_channel_receive_any(r, GUARD_NS, &lane, &word), CONVEYOR_E_PEER_DEAD);
    CHECK(lane == 0);
    for (int round = 0; round < 3; round++) {
        lane = 99;
        /* 50 ms: several peer-check slices, each of which used to report lane 0 again */
        CHECK_STATUS(conveyor_channel_receive_any(r, 50000000, &lane, &word), CONVEYOR_E_TIMEOUT);
        CHECK(lane == 99);
        CHECK_STATUS(conveyor_channel_send(s1, lane_word(1, (uint64_t)round), 0), CONVEYOR_OK);
        CHECK_STATUS(conveyor_channel_receive_any(r, GUARD_NS, &lane, &word), CONVEYOR_OK);
        CHECK(lane == 1 && word == lane_word(1, (uint64_t)round));
    }
    /* A new sender takes lane 0 over and is served; when it leaves, that is a new report. */
    s0 = must_open(holder, CONVEYOR_CHANNEL_SENDER, 0);
    CHECK_STATUS(conveyor_channel_send(s0, lane_word(0, 0), 0), CONVEYOR_OK);
    CHECK_STATUS(conveyor_channel_receive_any(r, GUARD_NS, &lane, &word), CONVEYOR_OK);
    CHECK(lane == 0 && word == lane_word(0, 0));
    conveyor_channel_destroy(s0);
    lane = 99;
    CHECK_STATUS(conveyor_channel_receive_any(r, GUARD_NS, &lane, &word), CONVEYOR_E_PEER_DEAD);
    CHECK(lane == 0);
    CHECK_STATUS(conveyor_channel_receive_any(r, 50000000, &lane, &word), CONVEYOR_E_TIMEOUT);

    /* A sender process killed on lane 0 (another owner word): reported once, then not. */
    signal_pipe ready;
    pipe_open(&ready);
    pid_t child = fork_child();
    if (child == 0) {
        conveyor_channel *cs = open_end(holder, CONVEYOR_CHANNEL_SENDER, 0);
        pipe_say(&ready, cs != NULL);
        pause();
        _exit(0);
    }
    CHECK(pipe_ready(&ready));
    kill_and_reap(child);
    pipe_close(&ready);
    lane = 99;
    CHECK_STATUS(conveyor_channel_receive_any(r, GUARD_NS, &lane, &word), CONVEYOR_E_PEER_DEAD);
    CHECK(lane == 0);
    lane = 99;
    CHECK_STATUS(conveyor_channel_receive_any(r, 50000000, &lane, &word), CONVEYOR_E_TIMEOUT);
    CHECK(lane == 99);
    /* Once the other lane is closed and drained no lane can deliver: the dead lane is
     * reported again (within a slice), so a receiver of dead senders never waits for good. */
    CHECK_STATUS(conveyor_channel_close(s1), CONVEYOR_OK);
    lane = 99;
    CHECK_STATUS(conveyor_channel_receive_any(r, GUARD_NS, &lane, &word), CONVEYOR_E_PEER_DEAD);
    CHECK(lane == 0);
    conveyor_channel_destroy(s1);
    conveyor_channel_destroy(r);
    conveyor_channel_destroy(holder);
    printf("  a dead lane: PEER_DEAD once per owner word; the other lane served, full"
           " timeouts; a new sender served and watched again\n");
}

/* ---- 2. takeover clears the taking side's sleeping flag ----------------------------- */

#define OPS 2000

/* The receiver is killed asleep in receive_any (recv_sleeping left at 1); after the
 * takeover, OPS sends to a receiver that never sleeps make no futex wake. Before the fix:
 * sender_wakes + OPS. */
static void test_channel_receiver_takeover_clears_flag(void) {
    conveyor_channel *holder = make_channel(1, 64, 0, CONVEYOR_RING_ANONYMOUS);
    if (holder == NULL) exit(finish(program));
    conveyor_channel *s = must_open(holder, CONVEYOR_CHANNEL_SENDER, 0);
    pid_t child = fork_child();
    if (child == 0) {
        conveyor_channel *cr = open_end(holder, CONVEYOR_CHANNEL_RECEIVER, 0);
        uint32_t l;
        uint64_t w;
        conveyor_channel_receive_any(cr, -1, &l, &w);
        _exit(1);
    }
    CHECK(WAIT_FOR_STAT(holder, receiver_waits, 1));  /* it went to sleep */
    kill_and_reap(child);
    conveyor_channel *r = must_open(holder, CONVEYOR_CHANNEL_RECEIVER, 0);  /* takeover */
    uint64_t wakes = STAT(holder, sender_wakes);
    uint32_t lane;
    uint64_t word;
    for (uint64_t i = 0; i < OPS; i++) {
        CHECK_STATUS(conveyor_channel_send(s, i, 0), CONVEYOR_OK);
        CHECK_STATUS(conveyor_channel_receive_any(r, 0, &lane, &word), CONVEYOR_OK);
    }
    CHECK(STAT(holder, sender_wakes) == wakes);
    conveyor_channel_destroy(s);
    conveyor_channel_destroy(r);
    conveyor_channel_destroy(holder);
}

/* A lane's sender is killed asleep on a full lane (send_sleeping left at 1); after the
 * takeover, OPS receives from the lane make no futex wake. Before: receiver_wakes + OPS. */
static void test_channel_sender_takeover_clears_flag(void) {
    conveyor_channel *holder = make_channel(1, 1, 0, CONVEYOR_RING_ANONYMOUS);
    if (holder == NULL) exit(finish(program));
    conveyor_channel *r = must_open(holder, CONVEYOR_CHANNEL_RECEIVER, 0);
    pid_t child = fork_child();
    if (child == 0) {
        conveyor_channel *cs = open_end(holder, CONVEYOR_CHANNEL_SENDER, 0);
        conveyor_channel_send(cs, 1, -1);
        conveyor_channel_send(cs, 2, -1);  /* the lane is full: sleeps */
        _exit(1);
    }
    CHECK(WAIT_FOR_STAT(holder, sender_waits, 1));
    kill_and_reap(child);
    conveyor_channel *s = must_open(holder, CONVEYOR_CHANNEL_SENDER, 0);  /* takeover */
    uint64_t word;
    CHECK_STATUS(conveyor_channel_receive(r, 0, 0, &word), CONVEYOR_OK);
    CHECK(word == 1);
    uint64_t wakes = STAT(holder, receiver_wakes);
    for (uint64_t i = 0; i < OPS; i++) {
        CHECK_STATUS(conveyor_channel_send(s, i, 0), CONVEYOR_OK);
        CHECK_STATUS(conveyor_channel_receive(r, 0, 0, &word), CONVEYOR_OK);
    }
    CHECK(STAT(holder, receiver_wakes) == wakes);
    conveyor_channel_destroy(s);
    conveyor_channel_destroy(r);
    conveyor_channel_destroy(holder);
}

static uint64_t ring_stat(const conveyor_ring *ring, size_t offset) {
    conveyor_ring_stats st;
    if (conveyor_ring_read_stats(ring, &st, sizeof st) != CONVEYOR_OK) return UINT64_MAX;
    return *(const uint64_t *)((const char *)&st + offset);
}

#define RING_STAT(ring, field) ring_stat((ring), offsetof(conveyor_ring_stats, field))

static bool wait_for_ring_stat(const conveyor_ring *ring, size_t offset, uint64_t at_least) {
    double give_up = now_ms() + 10000;
    uint64_t value;
    while ((value = ring_stat(ring, offset)) < at_least || value == UINT64_MAX) {
        if (now_ms() > give_up) return false;
        usleep(100);
    }
    return true;
}

#define WAIT_FOR_RING_STAT(ring, field, n) \
    wait_for_ring_stat((ring), offsetof(conveyor_ring_stats, field), (n))

static conveyor_ring *ring_side(conveyor_ring *holder, int role) {
    conveyor_ring *side = NULL;
    int s = conveyor_ring_open_side(holder, role, &side);
    if (s != CONVEYOR_OK) {
        if (getpid() != test_main_pid) _exit(80 + s);
        fprintf(stderr, "open_side(%d): %s\n", role, conveyor_status_name(s));
        failures++;
        exit(finish(program));
    }
    return side;
}

/* The same for a ring: the consumer killed asleep (cons_sleeping left at 1), then the
 * producer killed asleep on a full ring (prod_sleeping left at 1). */
static void test_ring_takeover_clears_flags(void) {
    conveyor_ring_config cfg = config(1, 64, CONVEYOR_RING_ANONYMOUS);
    cfg.spin = 0;
    conveyor_ring *holder = NULL;
    CHECK_STATUS(conveyor_ring_create_holder(&cfg, &holder), CONVEYOR_OK);
    if (holder == NULL) exit(finish(program));
    conveyor_frame_info info = u64_frame(0);
    uint64_t payload = 7;
    const void *data;
    conveyor_frame_info got;

    conveyor_ring *p = ring_side(holder, CONVEYOR_RING_PRODUCER);
    pid_t child = fork_child();
    if (child == 0) {
        conveyor_ring *cc = ring_side(holder, CONVEYOR_RING_CONSUMER);
        conveyor_ring_receive(cc, -1, &data, &got);
        _exit(1);
    }
    CHECK(WAIT_FOR_RING_STAT(holder, consumer_waits, 1));
    kill_and_reap(child);
    conveyor_ring *c = ring_side(holder, CONVEYOR_RING_CONSUMER);  /* takeover */
    uint64_t wakes = RING_STAT(holder, producer_wakes);
    for (int i = 0; i < OPS; i++) {
        CHECK_STATUS(conveyor_ring_push(p, 0, &payload, &info), CONVEYOR_OK);
        CHECK_STATUS(conveyor_ring_receive(c, 0, &data, &got), CONVEYOR_OK);
        CHECK_STATUS(conveyor_ring_release(c), CONVEYOR_OK);
    }
    CHECK(RING_STAT(holder, producer_wakes) == wakes);
    conveyor_ring_destroy(p);

    uint64_t waits = RING_STAT(holder, producer_waits);
    child = fork_child();
    if (child == 0) {
        conveyor_ring *cp = ring_side(holder, CONVEYOR_RING_PRODUCER);
        conveyor_ring_push(cp, -1, &payload, &info);
        conveyor_ring_push(cp, -1, &payload, &info);  /* one slot, full: sleeps */
        _exit(1);
    }
    CHECK(WAIT_FOR_RING_STAT(holder, producer_waits, waits + 1));
    kill_and_reap(child);
    p = ring_side(holder, CONVEYOR_RING_PRODUCER);  /* takeover */
    CHECK_STATUS(conveyor_ring_receive(c, 0, &data, &got), CONVEYOR_OK);
    CHECK_STATUS(conveyor_ring_release(c), CONVEYOR_OK);
    wakes = RING_STAT(holder, consumer_wakes);
    for (int i = 0; i < OPS; i++) {
        CHECK_STATUS(conveyor_ring_push(p, 0, &payload, &info), CONVEYOR_OK);
        CHECK_STATUS(conveyor_ring_receive(c, 0, &data, &got), CONVEYOR_OK);
        CHECK_STATUS(conveyor_ring_release(c), CONVEYOR_OK);
    }
    CHECK(RING_STAT(holder, consumer_wakes) == wakes);
    conveyor_ring_destroy(p);
    conveyor_ring_destroy(c);
    conveyor_ring_destroy(holder);
}

/* ---- 3. the default spin an attach reads is bounded ---------------------------------- */

typedef struct {
    conveyor_ring *ring;
    conveyor_channel *channel;
    int status;
} waiter_args;

static void *ring_waiter(void *arg) {
    waiter_args *a = arg;
    const void *data;
    conveyor_frame_info info;
    a->status = conveyor_ring_receive(a->ring, GUARD_NS * 3, &data, &info);
    return NULL;
}

static void *channel_waiter(void *arg) {
    waiter_args *a = arg;
    uint32_t lane;
    uint64_t word;
    a->status = conveyor_channel_receive_any(a->channel, GUARD_NS * 3, &lane, &word);
    return NULL;
}

/* A header whose default spin a hostile creator set to 2^32-1: an attached waiter takes
 * at most 2^24 and sleeps (the waits counter moves) within the 10 s guard; before the
 * fix it spun for minutes. The creator's own handles keep the configured value. */
static void test_attach_spin_bounded(void) {
    conveyor_ring_config rc = config(2, 64, CONVEYOR_RING_MEMFD);
    rc.spin = UINT32_MAX;
    conveyor_ring *p = NULL;
    CHECK_STATUS(conveyor_ring_create(&rc, &p, NULL), CONVEYOR_OK);
    if (p == NULL) exit(finish(program));
    waiter_args ra = {.status = -1};
    CHECK_STATUS(conveyor_ring_attach_fd(conveyor_ring_fd(p), CONVEYOR_RING_CONSUMER, &ra.ring),
                 CONVEYOR_OK);
    if (ra.ring == NULL) exit(finish(program));
    pthread_t t;
    CHECK(pthread_create(&t, NULL, ring_waiter, &ra) == 0);
    CHECK(WAIT_FOR_RING_STAT(p, consumer_waits, 1));
    conveyor_frame_info info = u64_frame(0);
    uint64_t payload = 1;
    CHECK_STATUS(conveyor_ring_push(p, 0, &payload, &info), CONVEYOR_OK);
    pthread_join(t, NULL);
    CHECK_STATUS(ra.status, CONVEYOR_OK);
    conveyor_ring_destroy(ra.ring);
    conveyor_ring_destroy(p);

    conveyor_channel *holder = make_channel(1, 4, UINT32_MAX, CONVEYOR_RING_MEMFD);
    if (holder == NULL) exit(finish(program));
    conveyor_channel *s = must_open(holder, CONVEYOR_CHANNEL_SENDER, 0);
    waiter_args ca = {.status = -1};
    CHECK_STATUS(conveyor_channel_attach_fd(conveyor_channel_fd(holder), CONVEYOR_CHANNEL_RECEIVER,
                                            0, &ca.channel),
                 CONVEYOR_OK);
    if (ca.channel == NULL) exit(finish(program));
    CHECK(pthread_create(&t, NULL, channel_waiter, &ca) == 0);
    CHECK(WAIT_FOR_STAT(holder, receiver_waits, 1));
    CHECK_STATUS(conveyor_channel_send(s, 5, 0), CONVEYOR_OK);
    pthread_join(t, NULL);
    CHECK_STATUS(ca.status, CONVEYOR_OK);
    conveyor_channel_destroy(ca.channel);
    conveyor_channel_destroy(s);
    conveyor_channel_destroy(holder);
    printf("  a hostile default spin of 2^32-1: an attached ring or channel waiter sleeps"
           " after at most 2^24 pauses\n");
}

/* ---- 4. the channel config's reserved field ------------------------------------------ */

static void test_config_reserved(void) {
    conveyor_channel_config c = channel_config(1, 4, 0, CONVEYOR_RING_ANONYMOUS);
    c.reserved = 1;
    conveyor_channel *holder = NULL;
    CHECK_STATUS(conveyor_channel_create(&c, &holder), CONVEYOR_E_INVALID_ARGUMENT);
    CHECK(holder == NULL);
}

int main(void) {
    test_start(program, 120);
    test_corrupt_lane_does_not_block();
    test_dead_lane_reported_once();
    test_channel_receiver_takeover_clears_flag();
    test_channel_sender_takeover_clears_flag();
    test_ring_takeover_clears_flags();
    printf("  takeover from an owner killed asleep: %d operations of a new owner that never"
           " sleeps make no futex wake (channel receiver and sender, ring consumer and"
           " producer)\n", OPS);
    test_attach_spin_bounded();
    test_config_reserved();
    printf("  channel_config.reserved != 0: INVALID_ARGUMENT\n");
    CHECK(no_children_left());
    return finish(program);
}
