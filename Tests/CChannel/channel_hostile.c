/*
 * channel_hostile.c — pools and channels whose shared memory a hostile or broken peer
 * rewrote. It plays that peer: it maps the MEMFD a second time and writes the private
 * layout's fields (CKernels/src/pool_layout.h, channel_layout.h), as ring_faults.c does
 * for rings. Every impossible lane index (head, tail), hostile closed and owner words,
 * rewritten descriptors and header geometry must give CONVEYOR_E_CORRUPT or another
 * documented status, promptly: never a crash, an access outside the mapping (this test
 * runs under ASan+UBSan too) or a hang (a watchdog and bounded timeouts). A failed attach
 * claims nothing; a handle keeps the geometry it validated. Built and run by scripts/test-c.
 */
#include "hostile_view.h"
#include "../../CKernels/src/pool_layout.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

/* ---- hostile views ------------------------------------------------------------------ */

/* A sealed memfd with the first `keep` bytes of `fd`, `size` bytes long. */
static int sealed_copy(int fd, uint64_t keep, uint64_t size) {
    int copy = memfd_create("hostile", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    CHECK(copy >= 0);
    char page[4096];
    for (uint64_t at = 0; at < keep; at += sizeof page) {
        ssize_t n = pread(fd, page, sizeof page, (off_t)at);
        CHECK(n > 0 && pwrite(copy, page, (size_t)n, (off_t)at) == n);
    }
    CHECK(ftruncate(copy, (off_t)size) == 0);
    CHECK(fcntl(copy, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0);
    return copy;
}

/* Statuses each call documents (besides OK). */
static bool receive_status_documented(int s) {
    return s == CONVEYOR_OK || s == CONVEYOR_E_TIMEOUT || s == CONVEYOR_E_END_OF_STREAM ||
           s == CONVEYOR_E_PEER_DEAD || s == CONVEYOR_E_CORRUPT;
}

static bool send_status_documented(int s) {
    return s == CONVEYOR_OK || s == CONVEYOR_E_TIMEOUT || s == CONVEYOR_E_CLOSED ||
           s == CONVEYOR_E_PEER_DEAD || s == CONVEYOR_E_CORRUPT;
}

static conveyor_channel *memfd_channel(uint32_t lanes, uint32_t capacity) {
    conveyor_channel_config c = channel_config(lanes, capacity, 0, CONVEYOR_RING_MEMFD);
    conveyor_channel *holder = NULL;
    CHECK_STATUS(conveyor_channel_create(&c, &holder), CONVEYOR_OK);
    if (!holder) exit(finish("channel_hostile"));
    return holder;
}

static conveyor_channel *open_end_or_exit(conveyor_channel *holder, int role, uint32_t lane) {
    conveyor_channel *end = NULL;
    CHECK_STATUS(conveyor_channel_open(holder, role, lane, &end), CONVEYOR_OK);
    if (!end) exit(finish("channel_hostile"));
    return end;
}

/* ---- lane indices --------------------------------------------------------------------- */

/* A head beyond tail + capacity, or behind the tail, is CORRUPT for receive and
 * receive_any (which names the lane), promptly even with a timeout; once the peer puts the
 * head back the receiver goes on where it was. The same for a tail as the sender sees it. */
static void test_impossible_indices(void) {
    conveyor_channel *holder = memfd_channel(2, 4);
    conveyor_channel *s = open_end_or_exit(holder, CONVEYOR_CHANNEL_SENDER, 1);
    conveyor_channel *r = open_end_or_exit(holder, CONVEYOR_CHANNEL_RECEIVER, 0);
    view v = map_fd(conveyor_channel_fd(holder), "channel_hostile");
    cv_channel_lane *lane = lane_of(v, 1);
    uint64_t word;
    uint32_t which = 99;
    for (uint64_t i = 0; i < 3; i++) CHECK_STATUS(conveyor_channel_send(s, lane_word(1, i), 0), CONVEYOR_OK);
    for (uint64_t i = 0; i < 3; i++) CHECK_STATUS(conveyor_channel_receive(r, 1, 0, &word), CONVEYOR_OK);
    /* head - tail = 5 > 4, then 2^64 - 1 (a head behind the tail) */
    uint64_t heads[] = {3 + 5, 3 + 1000000, 2, 0, UINT64_MAX};
    for (size_t h = 0; h < sizeof heads / sizeof heads[0]; h++) {
        atomic_store(&lane->send_head, heads[h]);
        CHECK_STATUS(conveyor_channel_receive(r, 1, 0, &word), CONVEYOR_E_CORRUPT);
        double start = now_ms();
        CHECK_STATUS(conveyor_channel_receive(r, 1, GUARD_NS, &word), CONVEYOR_E_CORRUPT);
        CHECK(now_ms() - start < LATENCY_GUARD_MS);
        which = 99;
        /* receive_any reports a corrupt lane once (naming it), then skips it for good
         * (RECEIVE-ANY ORDER AND ENDS): lane 0, never claimed, is all that is left. */
        CHECK_STATUS(conveyor_channel_receive_any(r, 0, &which, &word),
                     h == 0 ? CONVEYOR_E_CORRUPT : CONVEYOR_E_TIMEOUT);
        CHECK(which == (h == 0 ? 1u : 99u));
    }
    atomic_store(&lane->send_head, 3);  /* put back: the receiver resumes at tail 3 */
    CHECK_STATUS(conveyor_channel_send(s, lane_word(1, 3), 0), CONVEYOR_OK);
    CHECK_STATUS(conveyor_channel_receive_any(r, 0, &which, &word), CONVEYOR_E_TIMEOUT);
    CHECK_STATUS(conveyor_channel_receive(r, 1, 0, &word), CONVEYOR_OK);  /* named: served */
    CHECK(word == lane_word(1, 3));

    /* The sender re-reads the tail when its cache says "full". */
    for (uint64_t i = 4; i < 8; i++) CHECK_STATUS(conveyor_channel_send(s, lane_word(1, i), 0), CONVEYOR_OK);
    uint64_t tails[] = {8 + 3, 0, UINT64_MAX / 2};  /* beyond the head; far behind it */
    for (size_t t = 0; t < sizeof tails / sizeof tails[0]; t++) {
        atomic_store(&lane->take_tail, tails[t]);
        CHECK_STATUS(conveyor_channel_send(s, 99, 0), CONVEYOR_E_CORRUPT);
        double start = now_ms();
        CHECK_STATUS(conveyor_channel_send(s, 99, GUARD_NS), CONVEYOR_E_CORRUPT);
        CHECK(now_ms() - start < LATENCY_GUARD_MS);
    }
    atomic_store(&lane->take_tail, 4);
    CHECK_STATUS(conveyor_channel_send(s, 99, 0), CONVEYOR_E_TIMEOUT);  /* full, and sane again */
    for (uint64_t i = 4; i < 8; i++) {
        CHECK_STATUS(conveyor_channel_receive(r, 1, 0, &word), CONVEYOR_OK);
        CHECK(word == lane_word(1, i));
    }
    CHECK(STAT(r, words_received) == 8);
    unmap(v);
    conveyor_channel_destroy(s);
    conveyor_channel_destroy(r);
    conveyor_channel_destroy(holder);
    printf("  impossible heads and tails: CORRUPT at once (receive; receive_any naming the lane,"
           " once; send); put back, the ends go on\n");
}

/* Hostile closed and owner words give documented statuses, not hangs. */
static void test_hostile_closed_and_owner_words(void) {
    conveyor_channel *holder = memfd_channel(2, 4);
    conveyor_channel *s = open_end_or_exit(holder, CONVEYOR_CHANNEL_SENDER, 0);
    conveyor_channel *r = open_end_or_exit(holder, CONVEYOR_CHANNEL_RECEIVER, 0);
    view v = map_fd(conveyor_channel_fd(holder), "channel_hostile");
    cv_channel_lane *lane = lane_of(v, 0);
    uint64_t word;
    uint32_t which;
    CHECK_STATUS(conveyor_channel_send(s, 1, 0), CONVEYOR_OK);
    /* closed = garbage: the receiver drains, then takes it as closed (or waits); never more */
    atomic_store(&lane->send_closed, 0xFFFFFF00u);
    CHECK_STATUS(conveyor_channel_receive(r, 0, 0, &word), CONVEYOR_OK);
    int st = conveyor_channel_receive(r, 0, 0, &word);
    CHECK(st == CONVEYOR_E_END_OF_STREAM || st == CONVEYOR_E_TIMEOUT);
    st = conveyor_channel_send(s, 2, 0);
    CHECK(send_status_documented(st));
    atomic_store(&lane->send_closed, 0);

    /* The receiver's owner word names a process that does not exist: a sender on a full
     * lane gets PEER_DEAD, promptly. */
    conveyor_channel *holder2 = memfd_channel(1, 2);
    conveyor_channel *s2 = open_end_or_exit(holder2, CONVEYOR_CHANNEL_SENDER, 0);
    conveyor_channel *r2 = open_end_or_exit(holder2, CONVEYOR_CHANNEL_RECEIVER, 0);
    view v2 = map_fd(conveyor_channel_fd(holder2), "channel_hostile");
    CHECK_STATUS(conveyor_channel_send(s2, 1, 0), CONVEYOR_OK);
    CHECK_STATUS(conveyor_channel_send(s2, 2, 0), CONVEYOR_OK);
    uint64_t real = atomic_load(&header_of(v2)->recv_owner);
    atomic_store(&header_of(v2)->recv_owner, (uint64_t)0x7FFFFFF0u << 32 | 5u);  /* no such pid */
    double start = now_ms();
    CHECK_STATUS(conveyor_channel_send(s2, 3, GUARD_NS), CONVEYOR_E_PEER_DEAD);
    CHECK(now_ms() - start < LATENCY_GUARD_MS);
    /* A lane's sender word garbage: the receiver drains, then PEER_DEAD naming the lane. */
    atomic_store(&header_of(v2)->recv_owner, real);
    atomic_store(&lane_of(v2, 0)->send_owner, (uint64_t)0x7FFFFFF1u << 32 | 9u);
    CHECK_STATUS(conveyor_channel_receive_any(r2, 0, &which, &word), CONVEYOR_OK);
    CHECK_STATUS(conveyor_channel_receive_any(r2, 0, &which, &word), CONVEYOR_OK);
    which = 99;
    start = now_ms();
    CHECK_STATUS(conveyor_channel_receive_any(r2, GUARD_NS, &which, &word), CONVEYOR_E_PEER_DEAD);
    CHECK(which == 0 && now_ms() - start < LATENCY_GUARD_MS);
    /* Our own handle's word overwritten by another: our next call must not pretend it still
     * owns the end silently — any documented status, no crash. */
    atomic_store(&lane_of(v2, 0)->send_owner, CV_OWNER_LEFT);
    st = conveyor_channel_send(s2, 4, 0);
    CHECK(send_status_documented(st) || st == CONVEYOR_E_BUSY);
    unmap(v2);
    conveyor_channel_destroy(s2);
    conveyor_channel_destroy(r2);
    conveyor_channel_destroy(holder2);
    unmap(v);
    conveyor_channel_destroy(s);
    conveyor_channel_destroy(r);
    conveyor_channel_destroy(holder);
    printf("  hostile closed and owner words: END_OF_STREAM, PEER_DEAD or TIMEOUT, promptly\n");
}

/* ---- attach ----------------------------------------------------------------------------- */

/* Header geometry rewritten before an attach: each field's own status; a handle attached
 * before keeps its validated geometry. Impossible lane indices fail the attach of the
 * end that would use them, and that attach claims nothing. */
static void test_attach_validates(void) {
    conveyor_channel *holder = memfd_channel(4, 8);
    int fd = conveyor_channel_fd(holder);
    conveyor_channel *early = open_end_or_exit(holder, CONVEYOR_CHANNEL_RECEIVER, 0);
    view v = map_fd(fd, "channel_hostile");
    cv_channel_header *hdr = header_of(v);
    cv_channel_header good;
    memcpy(&good, hdr, sizeof good);
    conveyor_channel *end = NULL;

    struct {
        const char *what;
        size_t offset, size;
        uint64_t value;
        int expected;
    } cases[] = {
        {"magic", offsetof(cv_channel_header, magic), 8, CV_POOL_MAGIC, CONVEYOR_E_NOT_A_RING},
        {"layout_version", offsetof(cv_channel_header, layout_version), 4, CV_CHANNEL_LAYOUT_VERSION + 1,
         CONVEYOR_E_VERSION},
        {"header_bytes", offsetof(cv_channel_header, header_bytes), 4, 8192, CONVEYOR_E_CORRUPT},
        {"lanes 0", offsetof(cv_channel_header, lanes), 4, 0, CONVEYOR_E_CORRUPT},
        {"lanes 65", offsetof(cv_channel_header, lanes), 4, 65, CONVEYOR_E_CORRUPT},
        {"lanes 5", offsetof(cv_channel_header, lanes), 4, 5, CONVEYOR_E_CORRUPT},
        {"lanes 2^31", offsetof(cv_channel_header, lanes), 4, 1u << 31, CONVEYOR_E_CORRUPT},
        {"capacity 0", offsetof(cv_channel_header, capacity), 4, 0, CONVEYOR_E_CORRUPT},
        {"capacity 65537", offsetof(cv_channel_header, capacity), 4, 65537, CONVEYOR_E_CORRUPT},
        {"capacity 17", offsetof(cv_channel_header, capacity), 4, 17, CONVEYOR_E_CORRUPT},
        {"reserved", offsetof(cv_channel_header, reserved), 4, 1, CONVEYOR_E_CORRUPT},
        {"lanes_offset", offsetof(cv_channel_header, lanes_offset), 8, 1u << 30, CONVEYOR_E_CORRUPT},
        {"words_offset", offsetof(cv_channel_header, words_offset), 8, 8, CONVEYOR_E_CORRUPT},
        {"word_stride", offsetof(cv_channel_header, word_stride), 8, 0, CONVEYOR_E_CORRUPT},
        {"total_bytes", offsetof(cv_channel_header, total_bytes), 8, UINT64_MAX, CONVEYOR_E_CORRUPT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(v.base + cases[i].offset, &cases[i].value, cases[i].size);
        for (int role = CONVEYOR_CHANNEL_SENDER; role <= CONVEYOR_CHANNEL_HOLDER; role++) {
            end = NULL;
            int s = conveyor_channel_attach_fd(fd, role, role == CONVEYOR_CHANNEL_SENDER ? 3 : 0, &end);
            if (s != cases[i].expected) {
                fprintf(stderr, "header %s rewritten: attach as role %d gave %s, expected %s\n",
                        cases[i].what, role, conveyor_status_name(s), conveyor_status_name(cases[i].expected));
                failures++;
                conveyor_channel_destroy(s == CONVEYOR_OK ? end : NULL);
            }
        }
        memcpy(v.base + cases[i].offset, (char *)&good + cases[i].offset, cases[i].size);
    }
    /* The early handle validated its geometry once and never reads the shared copy again. */
    uint32_t lanes = 64, capacity = 1;
    memcpy(v.base + offsetof(cv_channel_header, lanes), &lanes, 4);
    memcpy(v.base + offsetof(cv_channel_header, capacity), &capacity, 4);
    CHECK(conveyor_channel_lanes(early) == 4 && conveyor_channel_capacity(early) == 8);
    uint64_t word;
    CHECK_STATUS(conveyor_channel_receive(early, 10, 0, &word), CONVEYOR_E_INVALID_ARGUMENT);
    CHECK_STATUS(conveyor_channel_receive(early, 3, 0, &word), CONVEYOR_E_TIMEOUT);
    memcpy(v.base, &good, sizeof good);

    /* Truncated copies: the header alone; header and lanes but not the words. */
    int cut = sealed_copy(fd, 4096, 4096);
    CHECK_STATUS(conveyor_channel_attach_fd(cut, CONVEYOR_CHANNEL_HOLDER, 0, &end), CONVEYOR_E_TRUNCATED);
    close(cut);
    cut = sealed_copy(fd, 8, 8);
    CHECK_STATUS(conveyor_channel_attach_fd(cut, CONVEYOR_CHANNEL_HOLDER, 0, &end), CONVEYOR_E_TRUNCATED);
    close(cut);
    cut = sealed_copy(fd, 4096, good.words_offset);
    CHECK_STATUS(conveyor_channel_attach_fd(cut, CONVEYOR_CHANNEL_HOLDER, 0, &end), CONVEYOR_E_TRUNCATED);
    close(cut);
    int loose = memfd_create("unsealed", MFD_CLOEXEC);
    CHECK(ftruncate(loose, (off_t)v.bytes) == 0 && pwrite(loose, v.base, 4096, 0) == 4096);
    CHECK_STATUS(conveyor_channel_attach_fd(loose, CONVEYOR_CHANNEL_HOLDER, 0, &end), CONVEYOR_E_NOT_SEALED);
    close(loose);

    /* Impossible indices on lane 2: the receiver attach (which reloads every lane) and lane
     * 2's sender attach fail and claim nothing; lane 1's sender is unaffected. */
    conveyor_channel_destroy(early);  /* the receiver is free again */
    cv_channel_lane *lane2 = lane_of(v, 2);
    atomic_store(&lane2->send_head, 9);  /* 9 words in an 8-word lane */
    CHECK_STATUS(conveyor_channel_attach_fd(fd, CONVEYOR_CHANNEL_RECEIVER, 0, &end), CONVEYOR_E_CORRUPT);
    CHECK(atomic_load(&hdr->recv_owner) == CV_OWNER_LEFT || atomic_load(&hdr->recv_owner) == CV_OWNER_NONE);
    CHECK_STATUS(conveyor_channel_open(holder, CONVEYOR_CHANNEL_RECEIVER, 0, &end), CONVEYOR_E_CORRUPT);
    CHECK_STATUS(conveyor_channel_attach_fd(fd, CONVEYOR_CHANNEL_SENDER, 2, &end), CONVEYOR_E_CORRUPT);
    CHECK(atomic_load(&lane2->send_owner) == CV_OWNER_NONE);
    end = NULL;
    CHECK_STATUS(conveyor_channel_attach_fd(fd, CONVEYOR_CHANNEL_SENDER, 1, &end), CONVEYOR_OK);
    conveyor_channel_destroy(end);
    atomic_store(&lane2->send_head, 0);
    end = NULL;
    CHECK_STATUS(conveyor_channel_attach_fd(fd, CONVEYOR_CHANNEL_RECEIVER, 0, &end), CONVEYOR_OK);
    conveyor_channel *sender2 = NULL;
    CHECK_STATUS(conveyor_channel_attach_fd(fd, CONVEYOR_CHANNEL_SENDER, 2, &sender2), CONVEYOR_OK);
    if (end && sender2) {
        CHECK_STATUS(conveyor_channel_send(sender2, 5, 0), CONVEYOR_OK);
        CHECK_STATUS(conveyor_channel_receive(end, 2, 0, &word), CONVEYOR_OK);
        CHECK(word == 5);
    }
    conveyor_channel_destroy(sender2);
    conveyor_channel_destroy(end);
    unmap(v);
    conveyor_channel_destroy(holder);
    printf("  attach: every rewritten header field, truncation and an unsealed fd refused with"
           " its status; impossible indices claim nothing\n");
}

/* ---- takeovers ring ------------------------------------------------------------------- */

/* The state a sender (or receiver) killed between its index store and its doorbell leaves:
 * the peer asleep with its flag set and nobody to ring. Set the flag through the hostile
 * view; whoever takes the end over must ring, as the ring's takeover does (the spin model's
 * finding for rings, Tests/Model/ring.pml). */
static void test_a_takeover_rings_the_sleeping_peer(void) {
    conveyor_channel *holder = memfd_channel(3, 4);
    int fd = conveyor_channel_fd(holder);
    view v = map_fd(fd, "channel_hostile");
    cv_channel_header *hdr = header_of(v);
    atomic_store(&hdr->recv_sleeping, 1);
    uint32_t bell = atomic_load(&hdr->recv_doorbell);
    conveyor_channel *s = NULL;
    CHECK_STATUS(conveyor_channel_attach_fd(fd, CONVEYOR_CHANNEL_SENDER, 2, &s), CONVEYOR_OK);
    CHECK(atomic_load(&hdr->recv_doorbell) != bell);
    CHECK(STAT(holder, sender_wakes) == 1);
    atomic_store(&hdr->recv_sleeping, 0);

    cv_channel_lane *lane = lane_of(v, 1);
    atomic_store(&lane->send_sleeping, 1);
    bell = atomic_load(&lane->take_doorbell);
    conveyor_channel *r = NULL;
    CHECK_STATUS(conveyor_channel_attach_fd(fd, CONVEYOR_CHANNEL_RECEIVER, 0, &r), CONVEYOR_OK);
    CHECK(atomic_load(&lane->take_doorbell) != bell);
    CHECK(STAT(holder, receiver_wakes) >= 1);
    atomic_store(&lane->send_sleeping, 0);
    unmap(v);
    conveyor_channel_destroy(s);
    conveyor_channel_destroy(r);
    conveyor_channel_destroy(holder);
    printf("  a new sender rings a receiver that may be asleep; a new receiver rings every lane's"
           " sleeping sender\n");
}

/* ---- pools ---------------------------------------------------------------------------- */

static void test_hostile_pool(void) {
    conveyor_pool_config c = pool_config(4, 64, CONVEYOR_RING_MEMFD);
    conveyor_pool *pool = NULL;
    CHECK_STATUS(conveyor_pool_create(&c, &pool), CONVEYOR_OK);
    if (!pool) return;
    int fd = conveyor_pool_fd(pool);
    view v = map_fd(fd, "channel_hostile");
    cv_pool_header *hdr = (cv_pool_header *)v.base;
    cv_pool_header good;
    memcpy(&good, hdr, sizeof good);
    cv_slot_desc *desc = (cv_slot_desc *)(v.base + good.descriptors_offset);
    conveyor_frame_info info = u64_frame(3);
    CHECK_STATUS(conveyor_pool_describe(pool, 1, &info), CONVEYOR_OK);
    const void *data;
    conveyor_frame_info got;
    CHECK_STATUS(conveyor_pool_frame(pool, 1, &data, &got), CONVEYOR_OK);

    /* Rewritten descriptors: CORRUPT, never a length past the slot. */
    struct {
        const char *what;
        cv_slot_desc value;
    } bad[] = {
        {"longer than the slot", {.dtype = 0, .rank = 1, .shape = {1u << 20}, .byte_length = 1u << 20}},
        {"2^40 bytes", {.dtype = 0, .rank = 1, .shape = {1ull << 40}, .byte_length = 1ull << 40}},
        {"rank 5", {.dtype = 0, .rank = 5, .shape = {1, 1, 1, 1}, .byte_length = 1}},
        {"rank 2^31", {.dtype = 0, .rank = 1u << 31, .shape = {8}, .byte_length = 8}},
        {"dtype 77", {.dtype = 77, .rank = 1, .shape = {8}, .byte_length = 8}},
        {"shape and length disagree", {.dtype = 2, .rank = 1, .shape = {2}, .byte_length = 8}},
        {"overflowing shape", {.dtype = 2, .rank = 2, .shape = {1ull << 62, 1ull << 62}, .byte_length = 0}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        desc[1] = bad[i].value;
        int s = conveyor_pool_frame(pool, 1, &data, &got);
        if (s != CONVEYOR_E_CORRUPT) {
            fprintf(stderr, "descriptor %s: frame gave %s, expected CONVEYOR_E_CORRUPT\n", bad[i].what,
                    conveyor_status_name(s));
            failures++;
        }
    }
    CHECK_STATUS(conveyor_pool_describe(pool, 1, &info), CONVEYOR_OK);  /* rewritten by us: fine */
    CHECK_STATUS(conveyor_pool_frame(pool, 1, &data, &got), CONVEYOR_OK);
    CHECK(got.tag == 3);

    /* Rewritten geometry: each attach refused; the old handle keeps its own geometry. */
    struct {
        const char *what;
        size_t offset, size;
        uint64_t value;
        int expected;
    } cases[] = {
        {"magic", offsetof(cv_pool_header, magic), 8, CV_CHANNEL_MAGIC, CONVEYOR_E_NOT_A_RING},
        {"layout_version", offsetof(cv_pool_header, layout_version), 4, CV_POOL_LAYOUT_VERSION + 1,
         CONVEYOR_E_VERSION},
        {"header_bytes", offsetof(cv_pool_header, header_bytes), 4, 0, CONVEYOR_E_CORRUPT},
        {"slot_count 0", offsetof(cv_pool_header, slot_count), 4, 0, CONVEYOR_E_CORRUPT},
        {"slot_count 65536", offsetof(cv_pool_header, slot_count), 4, 65536, CONVEYOR_E_CORRUPT},
        {"slot_count 2^31", offsetof(cv_pool_header, slot_count), 4, 1u << 31, CONVEYOR_E_CORRUPT},
        {"reserved", offsetof(cv_pool_header, reserved), 4, 7, CONVEYOR_E_CORRUPT},
        {"slot_bytes 0", offsetof(cv_pool_header, slot_bytes), 8, 0, CONVEYOR_E_CORRUPT},
        {"slot_bytes 2^41", offsetof(cv_pool_header, slot_bytes), 8, 1ull << 41, CONVEYOR_E_CORRUPT},
        {"slot_bytes 2^20", offsetof(cv_pool_header, slot_bytes), 8, 1ull << 20, CONVEYOR_E_CORRUPT},
        {"slot_stride", offsetof(cv_pool_header, slot_stride), 8, 64, CONVEYOR_E_CORRUPT},
        {"descriptors_offset", offsetof(cv_pool_header, descriptors_offset), 8, 1ull << 40, CONVEYOR_E_CORRUPT},
        {"slots_offset", offsetof(cv_pool_header, slots_offset), 8, 4096, CONVEYOR_E_CORRUPT},
        {"total_bytes", offsetof(cv_pool_header, total_bytes), 8, 1ull << 50, CONVEYOR_E_CORRUPT},
    };
    conveyor_pool *p = NULL;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(v.base + cases[i].offset, &cases[i].value, cases[i].size);
        p = NULL;
        int s = conveyor_pool_attach_fd(fd, &p);
        if (s != cases[i].expected) {
            fprintf(stderr, "pool header %s rewritten: attach gave %s, expected %s\n", cases[i].what,
                    conveyor_status_name(s), conveyor_status_name(cases[i].expected));
            failures++;
            if (s == CONVEYOR_OK) conveyor_pool_destroy(p);
        }
        /* The existing handle is untouched by the rewrite. */
        CHECK(conveyor_pool_slot_count(pool) == 4 && conveyor_pool_slot_bytes(pool) == 64);
        CHECK(conveyor_pool_slot(pool, 4) == NULL && conveyor_pool_slot(pool, 3) != NULL);
        CHECK_STATUS(conveyor_pool_frame(pool, 1, &data, &got), CONVEYOR_OK);
        memcpy(v.base + cases[i].offset, (char *)&good + cases[i].offset, cases[i].size);
    }
    int cut = sealed_copy(fd, 4096, good.slots_offset);  /* no room for the slots */
    CHECK_STATUS(conveyor_pool_attach_fd(cut, &p), CONVEYOR_E_TRUNCATED);
    close(cut);
    cut = sealed_copy(fd, 16, 16);
    CHECK_STATUS(conveyor_pool_attach_fd(cut, &p), CONVEYOR_E_TRUNCATED);
    close(cut);
    p = NULL;
    CHECK_STATUS(conveyor_pool_attach_fd(fd, &p), CONVEYOR_OK);  /* restored: fine again */
    conveyor_pool_destroy(p);
    unmap(v);
    conveyor_pool_destroy(pool);
    printf("  pool: rewritten descriptors are CORRUPT; rewritten geometry and truncation refused"
           " at attach; handles keep their geometry\n");
}

/* ---- random garbage -------------------------------------------------------------------- */

/* Random words written over the receiver's lines and the lanes' blocks (not the geometry)
 * between calls of every kind, half of them put back after the call (a transient
 * glitch), in epochs of fresh channels so no end stays stuck in a final state: each call
 * returns a documented status and comes back promptly; nothing reads or writes outside
 * the mapping (ASan would say so). */
static void test_random_garbage(void) {
    const uint32_t lanes = 4, capacity = 8;
    uint64_t state = 0xC0FFEE;
    int undocumented = 0, slow = 0, seen[32] = {0};
    double start = now_ms();
    for (int epoch = 0; epoch < 8; epoch++) {
        conveyor_channel *holder = memfd_channel(lanes, capacity);
        conveyor_channel *r = open_end_or_exit(holder, CONVEYOR_CHANNEL_RECEIVER, 0);
        conveyor_channel *s[4];
        for (uint32_t l = 0; l < lanes; l++) s[l] = open_end_or_exit(holder, CONVEYOR_CHANNEL_SENDER, l);
        view v = map_fd(conveyor_channel_fd(holder), "channel_hostile");
        uint64_t *words[256];
        int n = 0;
        /* the receiver's lines 2-5 of the header, then each lane's 384 bytes */
        for (size_t at = 128; at < 384; at += 8) words[n++] = (uint64_t *)(v.base + at);
        for (uint32_t l = 0; l < lanes; l++)
            for (size_t at = 0; at < CV_CHANNEL_LANE_BYTES && n < 256; at += 8)
                words[n++] = (uint64_t *)((char *)lane_of(v, l) + at);
        for (int i = 0; i < 500; i++) {
            uint64_t pick = next_random(&state), value = next_random(&state);
            switch (pick % 4) {  /* small values, values near the capacity, anything */
            case 0: value %= 16; break;
            case 1: value = (value % 3) + capacity - 1; break;
            default: break;
            }
            uint64_t *target = NULL, old = 0;
            if (pick >> 8 & 1) {
                target = words[(pick >> 16) % (uint64_t)n];
                old = *target;
                *target = value;
            }
            uint32_t l = (uint32_t)(pick >> 32) % lanes, which;
            uint64_t word;
            int64_t timeout = (pick >> 40) % 8 == 0 ? 1000000 : 0;  /* some 1 ms waits */
            double t0 = now_ms();
            int st;
            bool ok;
            const char *call;
            uint64_t op = (pick >> 44) % 100;
            if (op < 45) {
                call = "send";
                st = conveyor_channel_send(s[l], value, timeout);
                ok = send_status_documented(st);
            } else if (op < 70) {
                call = "receive";
                st = conveyor_channel_receive(r, l, timeout, &word);
                ok = receive_status_documented(st);
            } else if (op < 97) {
                call = "receive_any";
                which = 99;
                st = conveyor_channel_receive_any(r, timeout, &which, &word);
                ok = receive_status_documented(st) &&
                     (st == CONVEYOR_E_TIMEOUT || st == CONVEYOR_E_END_OF_STREAM || which < lanes);
            } else if (op < 98) {
                call = "close";
                st = conveyor_channel_close(s[l]);
                ok = st == CONVEYOR_OK;
            } else {
                call = "claim";
                st = conveyor_channel_claim(op == 98 ? r : s[l]);
                ok = st == CONVEYOR_OK || st == CONVEYOR_E_BUSY || st == CONVEYOR_E_CORRUPT;
            }
            if (target && (pick >> 9 & 1)) *target = old;
            if (st >= 0 && st < 32) seen[st]++;
            if (!ok && undocumented++ < 5)
                fprintf(stderr, "garbage epoch %d call %d: %s returned %s\n", epoch, i, call,
                        conveyor_status_name(st));
            slow += now_ms() - t0 > 2000;
        }
        conveyor_channel_stats st;
        CHECK_STATUS(conveyor_channel_read_stats(r, &st, sizeof st), CONVEYOR_OK);
        CHECK(st.lanes == lanes && st.capacity == capacity);  /* local geometry */
        unmap(v);
        for (uint32_t l = 0; l < lanes; l++) conveyor_channel_destroy(s[l]);
        conveyor_channel_destroy(r);
        conveyor_channel_destroy(holder);
    }
    CHECK(undocumented == 0);
    CHECK(slow == 0);
    printf("  4000 calls between random rewrites of indices, flags, owners and doorbells:"
           " documented statuses only (");
    for (int k = 0, first = 1; k < 32; k++)
        if (seen[k]) {
            printf("%s%s %d", first ? "" : ", ", conveyor_status_name(k) + 9, seen[k]);
            first = 0;
        }
    printf("), in %.0f ms\n", now_ms() - start);
}

int main(void) {
    test_start("channel_hostile", 120);
    static shm_snapshot shm_before;
    shm_snapshot_take(&shm_before);
    test_impossible_indices();
    test_hostile_closed_and_owner_words();
    test_attach_validates();
    test_a_takeover_rings_the_sleeping_peer();
    test_hostile_pool();
    test_random_garbage();
    return finish_channel_test("channel_hostile", &shm_before);
}
