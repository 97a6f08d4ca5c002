/*
 * ring_defects.c — one test per promise of conveyor.h that a hostile-peer review found
 * broken (issue "Hardening"), and one per plausible one-line bug that the other tests let
 * through. Each test failed on the code before its fix (or on the planted bug); the
 * comment above it says how.
 *
 * Black-box through conveyor.h, except where it plays a hostile peer: there it maps the
 * ring's memfd a second time and writes the private layout's fields. Tests that need the
 * other side to be asleep wait for the event (its wait counter), never for a sleep to be
 * long enough. Built and run by scripts/test, also under ASan+UBSan.
 */
#include "check.h"
#include "../../CKernels/src/ring_layout.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers -------------------------------------------------------------------- */

/* A second, hostile view of a MEMFD ring's header page and descriptors. */
static cv_ring_header *hostile_view(conveyor_ring *ring) {
    void *view = mmap(NULL, 2 * CV_RING_HEADER_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED,
                      conveyor_ring_fd(ring), 0);
    CHECK(view != MAP_FAILED);
    return view;
}

static void drop_view(cv_ring_header *hdr) { munmap(hdr, 2 * CV_RING_HEADER_BYTES); }

static cv_slot_desc *descriptor(cv_ring_header *hdr, uint32_t slot) {
    return (cv_slot_desc *)((char *)hdr + CV_RING_HEADER_BYTES) + slot;
}

static int commit_tagged(conveyor_ring *p, uint64_t tag) {
    void *slot;
    int s = conveyor_ring_loan(p, 1000000000, &slot, NULL);
    if (s != CONVEYOR_OK) return s;
    memcpy(slot, &tag, 8);
    conveyor_frame_info info = u64_frame(tag);
    return conveyor_ring_commit(p, &info);
}

static uint64_t stat_of(conveyor_ring *ring, size_t offset) {
    conveyor_ring_stats st;
    conveyor_ring_get_stats(ring, &st);
    return *(uint64_t *)((char *)&st + offset);
}

/* Waits until a counter of the ring's stats reaches `at_least`: the event that the other
 * side went to sleep. A 10 s guard turns a bug into a failed check, not a hang. */
static bool wait_for_counter(conveyor_ring *ring, size_t offset, uint64_t at_least) {
    double give_up = now_ms() + 10000;
    while (stat_of(ring, offset) < at_least) {
        if (now_ms() > give_up) return false;
        usleep(100);
    }
    return true;
}

/* A call made on another thread, so this one can act while it waits. */
typedef struct {
    conveyor_ring *ring;
    int64_t timeout_ns;
    int status;
    conveyor_frame_info info;
} blocked_call;

static void *receive_on_thread(void *arg) {
    blocked_call *call = arg;
    const void *data;
    call->status = conveyor_ring_receive(call->ring, call->timeout_ns, &data, &call->info);
    return NULL;
}

static void *loan_on_thread(void *arg) {
    blocked_call *call = arg;
    void *slot;
    call->status = conveyor_ring_loan(call->ring, call->timeout_ns, &slot, NULL);
    return NULL;
}

/* ---- 1: huge timeouts wait ------------------------------------------------------- */

/* Before: now + INT64_MAX overflowed to a deadline in the past, so receive and loan
 * returned TIMEOUT at once. */
static void huge_timeouts_wait_instead_of_expiring(void) {
    int64_t timeouts[] = {INT64_MAX, INT64_MAX - 1, INT64_MAX / 2 + 1};
    for (size_t t = 0; t < sizeof timeouts / sizeof timeouts[0]; t++) {
        conveyor_ring_config c = config(1, 64, CONVEYOR_RING_ANONYMOUS);
        conveyor_ring *p, *q;
        CHECK_STATUS(conveyor_ring_create(&c, &p, &q), CONVEYOR_OK);

        blocked_call receive = {.ring = q, .timeout_ns = timeouts[t]};
        pthread_t thread;
        pthread_create(&thread, NULL, receive_on_thread, &receive);
        CHECK(wait_for_counter(q, offsetof(conveyor_ring_stats, consumer_waits), 1));
        CHECK_STATUS(commit_tagged(p, 7), CONVEYOR_OK);
        pthread_join(thread, NULL);
        CHECK_STATUS(receive.status, CONVEYOR_OK);
        CHECK(receive.info.tag == 7);

        blocked_call loan = {.ring = p, .timeout_ns = timeouts[t]};  /* the one slot is held */
        pthread_create(&thread, NULL, loan_on_thread, &loan);
        CHECK(wait_for_counter(p, offsetof(conveyor_ring_stats, producer_waits), 1));
        CHECK_STATUS(conveyor_ring_release(q), CONVEYOR_OK);
        pthread_join(thread, NULL);
        CHECK_STATUS(loan.status, CONVEYOR_OK);
        conveyor_ring_destroy(p);
        conveyor_ring_destroy(q);
    }
    printf("  1. timeouts up to INT64_MAX wait for the frame or the slot\n");
}

/* ---- 2: spinning counts against the timeout -------------------------------------- */

/* Before: 2^28 spins ran to the end before the clock was first read (seconds for a 1 ms
 * timeout). The bound is loose because it is one sample on a shared machine; the
 * overrun it catches is a thousand times larger. */
static void spinning_counts_against_the_timeout(void) {
    conveyor_ring_config c = config(1, 64, CONVEYOR_RING_ANONYMOUS);
    conveyor_ring *p, *q;
    CHECK_STATUS(conveyor_ring_create(&c, &p, &q), CONVEYOR_OK);
    CHECK_STATUS(conveyor_ring_set_spin(q, 1u << 28), CONVEYOR_OK);
    CHECK_STATUS(conveyor_ring_set_spin(p, 1u << 28), CONVEYOR_OK);
    const void *data;
    conveyor_frame_info info;
    double start = now_ms();
    CHECK_STATUS(conveyor_ring_receive(q, 1000000, &data, &info), CONVEYOR_E_TIMEOUT);
    double receive_ms = now_ms() - start;
    CHECK(receive_ms < 500);
    CHECK_STATUS(commit_tagged(p, 0), CONVEYOR_OK);  /* now the ring is full */
    void *slot;
    start = now_ms();
    CHECK_STATUS(conveyor_ring_loan(p, 1000000, &slot, NULL), CONVEYOR_E_TIMEOUT);
    double loan_ms = now_ms() - start;
    CHECK(loan_ms < 500);
    printf("  2. 1 ms timeouts with 2^28 spins returned after %.2f ms (receive), %.2f ms (loan)\n",
           receive_ms, loan_ms);
    conveyor_ring_destroy(p);
    conveyor_ring_destroy(q);
}

/* ---- 3: a failed attach claims nothing ------------------------------------------ */

/* Before: the consumer side was claimed before the counters were checked, so after one
 * CORRUPT attach every later attach got BUSY until the process exited. */
static void a_failed_attach_claims_nothing(void) {
    conveyor_ring_config c = config(2, 64, CONVEYOR_RING_MEMFD);
    conveyor_ring *p, *q = NULL;
    CHECK_STATUS(conveyor_ring_create(&c, &p, NULL), CONVEYOR_OK);
    cv_ring_header *hdr = hostile_view(p);
    atomic_store(&hdr->prod_head, 3);  /* head - tail = 3 > 2 slots */
    CHECK_STATUS(conveyor_ring_attach_fd(conveyor_ring_fd(p), CONVEYOR_RING_CONSUMER, &q),
                 CONVEYOR_E_CORRUPT);
    CHECK(atomic_load(&hdr->cons_owner) == CV_OWNER_NONE);
    atomic_store(&hdr->prod_head, 0);
    pid_t child = fork();  /* another process first, then this one */
    if (child == 0) {
        conveyor_ring *r;
        int s = conveyor_ring_attach_fd(conveyor_ring_fd(p), CONVEYOR_RING_CONSUMER, &r);
        conveyor_ring_destroy(r);
        _exit(s == CONVEYOR_OK ? 0 : 10 + s);
    }
    int status = 0;
    waitpid(child, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    q = NULL;
    CHECK_STATUS(conveyor_ring_attach_fd(conveyor_ring_fd(p), CONVEYOR_RING_CONSUMER, &q),
                 CONVEYOR_OK);
    conveyor_ring_destroy(q);
    drop_view(hdr);
    conveyor_ring_destroy(p);
    printf("  3. a CORRUPT attach leaves the side free for this and other processes\n");
}

/* ---- 4: destroy hands the side back --------------------------------------------- */

/* Before: destroy kept the owner word, so the same process (or another live one) got
 * BUSY, and the held frame came back only after the process exited. */
static void destroy_hands_the_side_back(void) {
    conveyor_ring_config c = config(2, 64, CONVEYOR_RING_MEMFD);
    c.spin = 0;
    conveyor_ring *p, *q;
    CHECK_STATUS(conveyor_ring_create(&c, &p, NULL), CONVEYOR_OK);
    int fd = conveyor_ring_fd(p);
    CHECK_STATUS(conveyor_ring_attach_fd(fd, CONVEYOR_RING_CONSUMER, &q), CONVEYOR_OK);
    CHECK_STATUS(commit_tagged(p, 0), CONVEYOR_OK);
    CHECK_STATUS(commit_tagged(p, 1), CONVEYOR_OK);
    const void *data;
    conveyor_frame_info info;
    CHECK_STATUS(conveyor_ring_receive(q, 0, &data, &info), CONVEYOR_OK);
    conveyor_ring_destroy(q);  /* frame 0 held at destroy */

    /* The producer, blocked on a full ring, learns that nobody will release a slot. */
    void *slot;
    CHECK_STATUS(conveyor_ring_loan(p, 5000000000LL, &slot, NULL), CONVEYOR_E_PEER_DEAD);

    int attached = conveyor_ring_attach_fd(fd, CONVEYOR_RING_CONSUMER, &q);
    CHECK_STATUS(attached, CONVEYOR_OK);
    if (attached == CONVEYOR_OK) {
        CHECK_STATUS(conveyor_ring_receive(q, 0, &data, &info), CONVEYOR_OK);
        CHECK(info.tag == 0);  /* received again */
        conveyor_ring_destroy(q);
    }

    pid_t child = fork();  /* and a consumer in another live process */
    if (child == 0) {
        conveyor_ring *r;
        if (conveyor_ring_attach_fd(fd, CONVEYOR_RING_CONSUMER, &r) != CONVEYOR_OK) _exit(2);
        if (conveyor_ring_receive(r, 0, &data, &info) != CONVEYOR_OK || info.tag != 0) _exit(3);
        conveyor_ring_release(r);
        if (conveyor_ring_receive(r, 0, &data, &info) != CONVEYOR_OK || info.tag != 1) _exit(4);
        _exit(0);
    }
    int status = 0;
    waitpid(child, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    conveyor_ring_destroy(p);
    printf("  4. destroy hands the side back: re-attach here and elsewhere, held frame again\n");
}

/* ---- 5: only the creating process unlinks a name -------------------------------- */

/* Before: a forked child destroying its inherited copy of the creator's handle removed
 * the name, and attach_named failed with ENOENT while the creator was alive. */
static void a_forked_child_does_not_unlink_the_name(void) {
    char name[64];
    snprintf(name, sizeof name, "/conveyor-defects-%d", (int)getpid());
    conveyor_ring_config c = config(2, 64, CONVEYOR_RING_NAMED);
    c.name = name;
    conveyor_ring *p, *q;
    CHECK_STATUS(conveyor_ring_create(&c, &p, NULL), CONVEYOR_OK);
    pid_t child = fork();
    if (child == 0) {
        conveyor_ring_destroy(p);
        _exit(0);
    }
    waitpid(child, NULL, 0);
    q = NULL;
    CHECK_STATUS(conveyor_ring_attach_named(name, CONVEYOR_RING_CONSUMER, &q), CONVEYOR_OK);
    conveyor_ring_destroy(q);
    conveyor_ring_destroy(p);
    CHECK_STATUS(conveyor_ring_attach_named(name, CONVEYOR_RING_CONSUMER, &q), CONVEYOR_E_SYSTEM);
    CHECK(errno == ENOENT);  /* the creator's destroy did remove it */
    printf("  5. a forked child's destroy leaves the name; the creator's removes it\n");
}

/* ---- 6: takeover through an inherited handle resumes at the shared position ------ */

/* Before: the replacement kept its handle's stale position (0), so it received frame 0,
 * already released by the dead consumer, instead of frame 1, which that one held. */
static void takeover_through_an_inherited_handle_resumes_at_the_shared_tail(void) {
    conveyor_ring_config c = config(4, 64, CONVEYOR_RING_ANONYMOUS);
    c.spin = 0;
    conveyor_ring *p, *q;
    CHECK_STATUS(conveyor_ring_create(&c, &p, &q), CONVEYOR_OK);
    for (uint64_t i = 0; i < 4; i++) CHECK_STATUS(commit_tagged(p, i), CONVEYOR_OK);
    int held[2], tags[2];
    CHECK(pipe(held) == 0 && pipe(tags) == 0);
    pid_t first = fork();
    if (first == 0) {
        const void *data;
        conveyor_frame_info info;
        conveyor_ring_receive(q, 0, &data, &info);  /* frame 0: released */
        conveyor_ring_release(q);
        conveyor_ring_receive(q, 0, &data, &info);  /* frame 1: held until killed */
        char ok = info.tag == 1;
        if (write(held[1], &ok, 1) != 1) _exit(2);
        pause();
        _exit(0);
    }
    char ok = 0;
    CHECK(read(held[0], &ok, 1) == 1 && ok);
    kill(first, SIGKILL);
    waitpid(first, NULL, 0);
    pid_t second = fork();  /* inherits the parent's copy of q, never used: position 0 */
    if (second == 0) {
        uint64_t seen[3] = {99, 99, 99};
        const void *data;
        conveyor_frame_info info;
        for (int i = 0; i < 3; i++) {
            if (conveyor_ring_receive(q, 0, &data, &info) != CONVEYOR_OK) break;
            seen[i] = info.tag;
            conveyor_ring_release(q);
        }
        if (write(tags[1], seen, sizeof seen) != sizeof seen) _exit(2);
        _exit(0);
    }
    uint64_t seen[3] = {0};
    CHECK(read(tags[0], seen, sizeof seen) == sizeof seen);
    waitpid(second, NULL, 0);
    CHECK(seen[0] == 1 && seen[1] == 2 && seen[2] == 3);
    for (int i = 0; i < 2; i++) {
        close(held[i]);
        close(tags[i]);
    }
    conveyor_ring_destroy(p);
    conveyor_ring_destroy(q);
    printf("  6. takeover through an inherited handle: frames %llu %llu %llu\n",
           (unsigned long long)seen[0], (unsigned long long)seen[1], (unsigned long long)seen[2]);
}

/* ---- 7: no peer can shrink a memfd ring under another ---------------------------- */

/* Before: the memfd could not be sealed; a peer's ftruncate made the victim die of
 * SIGBUS inside receive, and attach_fd accepted any fd. */
static void a_memfd_ring_cannot_be_shrunk_under_its_peer(void) {
    conveyor_ring_config c = config(2, 4096, CONVEYOR_RING_MEMFD);
    conveyor_ring *p, *q;
    CHECK_STATUS(conveyor_ring_create(&c, &p, &q), CONVEYOR_OK);
    int fd = conveyor_ring_fd(p);
    int seals = fcntl(fd, F_GET_SEALS);
    CHECK(seals >= 0 && (seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)) ==
                            (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL));
    CHECK_STATUS(commit_tagged(p, 5), CONVEYOR_OK);
    pid_t victim = fork();  /* receives after a hostile truncation attempt */
    if (victim == 0) {
        int shrunk = ftruncate(fd, 4096) == 0 || ftruncate(fd, 0) == 0;
        const void *data;
        conveyor_frame_info info;
        int s = conveyor_ring_receive(q, 0, &data, &info);
        uint64_t value = 0;
        if (s == CONVEYOR_OK) memcpy(&value, data, 8);  /* SIGBUS here if it had shrunk */
        _exit(shrunk ? 2 : s != CONVEYOR_OK ? 3 : value != 5 ? 4 : 0);
    }
    int status = 0;
    waitpid(victim, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    /* The same bytes in an fd that can be resized are refused. */
    int loose = memfd_create("unsealed", MFD_CLOEXEC);
    struct stat st;
    CHECK(fstat(fd, &st) == 0 && ftruncate(loose, st.st_size) == 0);
    char page[4096];
    CHECK(pread(fd, page, sizeof page, 0) == (ssize_t)sizeof page);
    CHECK(pwrite(loose, page, sizeof page, 0) == (ssize_t)sizeof page);
    conveyor_ring *r = NULL;
    CHECK_STATUS(conveyor_ring_attach_fd(loose, CONVEYOR_RING_PRODUCER, &r), CONVEYOR_E_NOT_SEALED);
    close(loose);
    conveyor_ring_destroy(p);
    conveyor_ring_destroy(q);
    printf("  7. memfd rings are sealed; an unsealed fd is refused\n");
}

/* ---- 8: no undefined behaviour for an empty push --------------------------------- */

/* Before: memcpy(slot, NULL, 0), which UBSan reports (this test runs under UBSan). */
static void an_empty_push_from_null_is_defined(void) {
    conveyor_ring_config c = config(2, 64, CONVEYOR_RING_ANONYMOUS);
    conveyor_ring *p, *q;
    CHECK_STATUS(conveyor_ring_create(&c, &p, &q), CONVEYOR_OK);
    conveyor_frame_info empty = {.dtype = CONVEYOR_DTYPE_BYTES, .rank = 1, .shape = {0},
                                 .byte_length = 0, .tag = 3};
    CHECK_STATUS(conveyor_ring_push(p, 0, NULL, &empty), CONVEYOR_OK);
    const void *data;
    conveyor_frame_info info;
    CHECK_STATUS(conveyor_ring_receive(q, 0, &data, &info), CONVEYOR_OK);
    CHECK(info.byte_length == 0 && info.tag == 3);
    conveyor_ring_destroy(p);
    conveyor_ring_destroy(q);
    printf("  8. push(NULL, 0 bytes) is a frame, not undefined behaviour\n");
}

/* ---- 9: pollers notice a dead peer ----------------------------------------------- */

/* Before: a consumer polling with timeout 0 never checked its producer (11 million polls
 * in 1 s, no PEER_DEAD). Polls until PEER_DEAD, with a 10 s guard. */
static double poll_until_peer_dead(conveyor_ring *ring, int role, double since) {
    const void *data;
    void *slot;
    conveyor_frame_info info;
    while (now_ms() - since < 10000) {
        int s = role == CONVEYOR_RING_CONSUMER ? conveyor_ring_receive(ring, 0, &data, &info)
                                               : conveyor_ring_loan(ring, 0, &slot, NULL);
        if (s == CONVEYOR_E_PEER_DEAD) return now_ms() - since;
        if (s == CONVEYOR_OK && role == CONVEYOR_RING_CONSUMER) conveyor_ring_release(ring);
        if (s != CONVEYOR_OK && s != CONVEYOR_E_TIMEOUT) return -s;
    }
    return -1;
}

static void pollers_notice_a_dead_peer(void) {
    for (int role = CONVEYOR_RING_PRODUCER; role <= CONVEYOR_RING_CONSUMER; role++) {
        conveyor_ring_config c = config(2, 64, CONVEYOR_RING_ANONYMOUS);
        conveyor_ring *p, *q;
        CHECK_STATUS(conveyor_ring_create(&c, &p, &q), CONVEYOR_OK);
        conveyor_ring *mine = role == CONVEYOR_RING_CONSUMER ? q : p;
        conveyor_ring *theirs = role == CONVEYOR_RING_CONSUMER ? p : q;
        int ready[2];
        CHECK(pipe(ready) == 0);
        pid_t peer = fork();
        if (peer == 0) {
            char ok = conveyor_ring_claim(theirs) == CONVEYOR_OK;
            if (role == CONVEYOR_RING_PRODUCER) {  /* the consumer drains: producer may poll */
                const void *data;
                conveyor_frame_info info;
                ok = ok && conveyor_ring_receive(theirs, 1000000000, &data, &info) == CONVEYOR_OK;
            } else {
                ok = ok && commit_tagged(theirs, 0) == CONVEYOR_OK;
            }
            if (write(ready[1], &ok, 1) != 1) _exit(2);
            pause();
            _exit(0);
        }
        if (role == CONVEYOR_RING_PRODUCER) {
            CHECK_STATUS(commit_tagged(p, 0), CONVEYOR_OK);
            CHECK_STATUS(commit_tagged(p, 1), CONVEYOR_OK);  /* full once the peer holds 0 */
        }
        char ok = 0;
        CHECK(read(ready[0], &ok, 1) == 1 && ok);
        double killed = now_ms();
        kill(peer, SIGKILL);
        waitpid(peer, NULL, 0);
        double detected = poll_until_peer_dead(mine, role, killed);
        CHECK(detected >= 0 && detected < 1000);
        printf("  9. a polling %s saw PEER_DEAD %.1f ms after the kill\n",
               role == CONVEYOR_RING_CONSUMER ? "consumer" : "producer", detected);
        close(ready[0]);
        close(ready[1]);
        conveyor_ring_destroy(p);
        conveyor_ring_destroy(q);
    }
}

/* ---- messages -------------------------------------------------------------------- */

/* Before: an empty file was "smaller than its header says" (it has none), and BUSY said
 * "another live process" for a second handle in the same process. */
static void messages_say_what_happened(void) {
    int empty = memfd_create("empty", MFD_CLOEXEC);
    conveyor_ring *r;
    CHECK_STATUS(conveyor_ring_attach_fd(empty, CONVEYOR_RING_CONSUMER, &r), CONVEYOR_E_NOT_A_RING);
    close(empty);
    CHECK(strstr(conveyor_status_message(CONVEYOR_E_BUSY), "handle") != NULL);
    CHECK(strcmp(conveyor_status_name(CONVEYOR_E_NOT_SEALED), "CONVEYOR_E_NOT_SEALED") == 0);
    conveyor_ring_config c = config(2, 64, CONVEYOR_RING_MEMFD);
    conveyor_ring *p, *q, *second = NULL;
    CHECK_STATUS(conveyor_ring_create(&c, &p, &q), CONVEYOR_OK);
    CHECK_STATUS(conveyor_ring_attach_fd(conveyor_ring_fd(p), CONVEYOR_RING_CONSUMER, &second),
                 CONVEYOR_E_BUSY);
    conveyor_ring_destroy(second);
    conveyor_ring_destroy(p);
    conveyor_ring_destroy(q);
    printf("  an empty file is no ring; BUSY names a live handle\n");
}

/* ---- planted bugs the older tests let through ------------------------------------ */

/* Planted: the producer never rings a sleeping consumer (`if (peer_sleeping)` false).
 * Every test passed, only slower, because the sleep slice woke the consumer. Here the
 * consumer is asleep for certain (its wait counter says so), so a commit must wake it
 * with a futex wake, which the producer counts. */
static void a_sleeping_consumer_is_woken_by_the_commit(void) {
    conveyor_ring_config c = config(2, 64, CONVEYOR_RING_ANONYMOUS);
    c.spin = 0;
    conveyor_ring *p, *q;
    CHECK_STATUS(conveyor_ring_create(&c, &p, &q), CONVEYOR_OK);
    blocked_call receive = {.ring = q, .timeout_ns = -1};
    pthread_t thread;
    pthread_create(&thread, NULL, receive_on_thread, &receive);
    CHECK(wait_for_counter(q, offsetof(conveyor_ring_stats, consumer_waits), 1));
    CHECK_STATUS(commit_tagged(p, 1), CONVEYOR_OK);
    pthread_join(thread, NULL);
    CHECK_STATUS(receive.status, CONVEYOR_OK);
    CHECK(stat_of(p, offsetof(conveyor_ring_stats, producer_wakes)) >= 1);

    blocked_call loan = {.ring = p, .timeout_ns = -1};  /* and the producer, symmetrically */
    CHECK_STATUS(commit_tagged(p, 2), CONVEYOR_OK);    /* 2 slots: frame 1 held, 2 queued */
    pthread_create(&thread, NULL, loan_on_thread, &loan);
    CHECK(wait_for_counter(p, offsetof(conveyor_ring_stats, producer_waits), 1));
    CHECK_STATUS(conveyor_ring_release(q), CONVEYOR_OK);
    pthread_join(thread, NULL);
    CHECK_STATUS(loan.status, CONVEYOR_OK);
    CHECK(stat_of(q, offsetof(conveyor_ring_stats, consumer_wakes)) >= 1);
    conveyor_ring_destroy(p);
    conveyor_ring_destroy(q);
    printf("  a sleeping side is woken by its peer's doorbell, not by its sleep slice\n");
}

/* Planted: receive's `head - position > slot_count` check deleted. The older test's
 * hostile head landed on an invalid descriptor, which failed another check. Here every
 * descriptor is valid, so only the index check can refuse. */
static void a_hostile_head_over_valid_descriptors_is_corrupt(void) {
    conveyor_ring_config c = config(4, 64, CONVEYOR_RING_MEMFD);
    c.spin = 0;
    conveyor_ring *p, *q;
    CHECK_STATUS(conveyor_ring_create(&c, &p, &q), CONVEYOR_OK);
    const void *data;
    conveyor_frame_info info;
    for (uint64_t i = 0; i < 4; i++) {  /* every descriptor now holds a valid frame */
        CHECK_STATUS(commit_tagged(p, i), CONVEYOR_OK);
        CHECK_STATUS(conveyor_ring_receive(q, 0, &data, &info), CONVEYOR_OK);
        CHECK_STATUS(conveyor_ring_release(q), CONVEYOR_OK);
    }
    cv_ring_header *hdr = hostile_view(p);
    atomic_store(&hdr->prod_head, 4 + 4 + 1);  /* 5 frames "in flight" in 4 slots */
    CHECK_STATUS(conveyor_ring_receive(q, 0, &data, &info), CONVEYOR_E_CORRUPT);
    atomic_store(&hdr->prod_head, 4 + 4 * 1000);
    CHECK_STATUS(conveyor_ring_receive(q, 0, &data, &info), CONVEYOR_E_CORRUPT);
    drop_view(hdr);
    conveyor_ring_destroy(p);
    conveyor_ring_destroy(q);
    printf("  a hostile head over valid descriptors is CORRUPT\n");
}

/* Planted: commit's `rank > CONVEYOR_FRAME_MAX_RANK` bound deleted. The older test used
 * rank 9 with zero extents, refused by another check. Rank 5 with unit extents is refused
 * only by the rank bound, at commit and, from a hostile descriptor, at receive. */
static void rank_five_with_nonzero_extents_is_refused(void) {
    conveyor_ring_config c = config(2, 64, CONVEYOR_RING_MEMFD);
    c.spin = 0;
    conveyor_ring *p, *q;
    CHECK_STATUS(conveyor_ring_create(&c, &p, &q), CONVEYOR_OK);
    void *slot;
    CHECK_STATUS(conveyor_ring_loan(p, 0, &slot, NULL), CONVEYOR_OK);
    conveyor_frame_info five = {.dtype = CONVEYOR_DTYPE_BYTES, .rank = 5, .shape = {1, 1, 1, 1},
                                .byte_length = 8};
    CHECK_STATUS(conveyor_ring_commit(p, &five), CONVEYOR_E_INVALID_ARGUMENT);
    conveyor_frame_info valid = u64_frame(0);  /* the loan stays outstanding after an error */
    CHECK_STATUS(conveyor_ring_commit(p, &valid), CONVEYOR_OK);
    cv_ring_header *hdr = hostile_view(p);
    descriptor(hdr, 0)->rank = 5;
    for (int d = 0; d < 4; d++) descriptor(hdr, 0)->shape[d] = 1;
    const void *data;
    conveyor_frame_info info;
    CHECK_STATUS(conveyor_ring_receive(q, 0, &data, &info), CONVEYOR_E_CORRUPT);
    drop_view(hdr);
    conveyor_ring_destroy(p);
    conveyor_ring_destroy(q);
    printf("  rank 5 with unit extents: refused at commit and at receive\n");
}

/* ---- found by the fuzzers ----------------------------------------------------------- */

/* Found by fuzz_peer: a new handle whose owner word equals the word a dead predecessor
 * left (its pid reused; forked children continue the parent's nonce counter, so both got
 * the same nonce) was taken for "already mine" and started at position 0, delivering a
 * released frame again. The reused pid is emulated by rewriting the dead word's pid. */
static void a_reused_owner_word_is_a_takeover(void) {
    conveyor_ring_config c = config(4, 64, CONVEYOR_RING_MEMFD);
    conveyor_ring *p;
    CHECK_STATUS(conveyor_ring_create(&c, &p, NULL), CONVEYOR_OK);
    for (uint64_t i = 0; i < 3; i++) CHECK_STATUS(commit_tagged(p, i), CONVEYOR_OK);
    int fd = conveyor_ring_fd(p);
    cv_ring_header *hdr = hostile_view(p);
    pid_t first = fork();
    if (first == 0) {  /* takes frame 0, releases it, dies without destroy */
        conveyor_ring *q;
        const void *data;
        conveyor_frame_info info;
        if (conveyor_ring_attach_fd(fd, CONVEYOR_RING_CONSUMER, &q) != CONVEYOR_OK) _exit(2);
        if (conveyor_ring_receive(q, 0, &data, &info) != CONVEYOR_OK || info.tag != 0) _exit(3);
        conveyor_ring_release(q);
        _exit(0);
    }
    int status = 0;
    waitpid(first, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    pid_t second = fork();
    if (second == 0) {
        uint64_t dead = atomic_load(&hdr->cons_owner);
        atomic_store(&hdr->cons_owner, (uint64_t)(uint32_t)getpid() << 32 | (uint32_t)dead);
        conveyor_ring *q;
        const void *data;
        conveyor_frame_info info;
        if (conveyor_ring_attach_fd(fd, CONVEYOR_RING_CONSUMER, &q) != CONVEYOR_OK) _exit(2);
        if (conveyor_ring_receive(q, 0, &data, &info) != CONVEYOR_OK) _exit(3);
        _exit(info.tag == 1 ? 0 : 4);
    }
    waitpid(second, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    drop_view(hdr);
    conveyor_ring_destroy(p);
    printf("  an owner word left by a dead process with our pid and nonce is taken over\n");
}

/* Found by fuzz_peer: the overflow test ran before a zero extent was seen, so an empty
 * frame with huge other extents was TOO_LARGE (and CORRUPT from a descriptor); and stats
 * passed a hostile prod_closed through instead of 0 or 1. */
static void empty_frames_with_huge_extents_and_hostile_closed(void) {
    conveyor_ring_config c = config(2, 64, CONVEYOR_RING_MEMFD);
    conveyor_ring *p, *q;
    CHECK_STATUS(conveyor_ring_create(&c, &p, &q), CONVEYOR_OK);
    void *slot;
    CHECK_STATUS(conveyor_ring_loan(p, 0, &slot, NULL), CONVEYOR_OK);
    conveyor_frame_info empty = {.dtype = CONVEYOR_DTYPE_F32, .rank = 4,
                                 .shape = {1ull << 61, 14, 31, 0}, .byte_length = 1};
    CHECK_STATUS(conveyor_ring_commit(p, &empty), CONVEYOR_E_INVALID_ARGUMENT);
    empty.byte_length = 0;
    CHECK_STATUS(conveyor_ring_commit(p, &empty), CONVEYOR_OK);
    const void *data;
    conveyor_frame_info info;
    CHECK_STATUS(conveyor_ring_receive(q, 0, &data, &info), CONVEYOR_OK);
    CHECK(info.byte_length == 0 && info.shape[0] == 1ull << 61);
    cv_ring_header *hdr = hostile_view(p);
    atomic_store(&hdr->prod_closed, 4294967040u);
    conveyor_ring_stats st;
    CHECK_STATUS(conveyor_ring_get_stats(q, &st), CONVEYOR_OK);
    CHECK(st.closed == 1);
    drop_view(hdr);
    conveyor_ring_destroy(p);
    conveyor_ring_destroy(q);
    printf("  empty frames with huge extents pass; stats.closed is 0 or 1\n");
}

/* Found by the spin model (FINDING in Tests/Model/ring.pml): a consumer killed between its
 * release and its doorbell, then replaced, left a producer that had gone to sleep on the
 * full ring asleep with a free slot until its 10 ms slice. A takeover now rings the
 * peer's doorbell. Here the peer's sleeping flag is set through the hostile view (the
 * state the race leaves), and the replacement's attach must ring. */
static void a_takeover_rings_the_peers_doorbell(void) {
    conveyor_ring_config c = config(2, 64, CONVEYOR_RING_MEMFD);
    conveyor_ring *p, *q;
    CHECK_STATUS(conveyor_ring_create(&c, &p, NULL), CONVEYOR_OK);
    cv_ring_header *hdr = hostile_view(p);
    atomic_store(&hdr->prod_sleeping, 1);
    uint32_t bell = atomic_load(&hdr->cons_doorbell);
    CHECK_STATUS(conveyor_ring_attach_fd(conveyor_ring_fd(p), CONVEYOR_RING_CONSUMER, &q),
                 CONVEYOR_OK);
    CHECK(atomic_load(&hdr->cons_doorbell) == bell + 1);
    CHECK(stat_of(p, offsetof(conveyor_ring_stats, consumer_wakes)) == 1);
    atomic_store(&hdr->prod_sleeping, 0);
    drop_view(hdr);
    conveyor_ring_destroy(q);
    conveyor_ring_destroy(p);
    printf("  a takeover rings the doorbell of a peer that may be asleep\n");
}

/* ---- found by planting mutants ---------------------------------------------------- */

/* Planted: cv_load_position no longer forgets a frame the handle thought it held. The
 * parent holds frame 0 when it forks; a child releases it and dies holding frame 1; the
 * next child's inherited handle still says "holding", and must forget it on takeover. */
static void a_takeover_forgets_a_frame_the_inherited_handle_held(void) {
    conveyor_ring_config c = config(4, 64, CONVEYOR_RING_ANONYMOUS);
    c.spin = 0;
    conveyor_ring *p, *q;
    CHECK_STATUS(conveyor_ring_create(&c, &p, &q), CONVEYOR_OK);
    for (uint64_t i = 0; i < 4; i++) CHECK_STATUS(commit_tagged(p, i), CONVEYOR_OK);
    const void *data;
    conveyor_frame_info info;
    CHECK_STATUS(conveyor_ring_receive(q, 0, &data, &info), CONVEYOR_OK);  /* holds 0 */
    pid_t first = fork();
    if (first == 0) {  /* hand-over: releases 0, holds 1, dies */
        if (conveyor_ring_release(q) != CONVEYOR_OK) _exit(2);
        if (conveyor_ring_receive(q, 0, &data, &info) != CONVEYOR_OK) _exit(3);
        _exit(info.tag == 1 ? 0 : 4);
    }
    int status = 0;
    waitpid(first, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    pid_t second = fork();  /* the parent's copy: position 0, "holding" */
    if (second == 0) {
        int s = conveyor_ring_receive(q, 0, &data, &info);
        _exit(s == CONVEYOR_OK && info.tag == 1 ? 0 : 5);
    }
    waitpid(second, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    conveyor_ring_destroy(p);
    conveyor_ring_destroy(q);
    printf("  a takeover forgets the frame an inherited handle thought it held\n");
}

/* Planted: no last look after the peer's death (PEER_DEAD at once). A frame committed
 * between the consumer's last check and its liveness check must still be delivered. The
 * library's only poll() is that liveness check (on the dead producer's pidfd), so this
 * program's poll() publishes a frame through the hostile view just before answering. */
static cv_ring_header *last_look_view;
static bool last_look_armed;

int poll(struct pollfd *fds, nfds_t count, int timeout_ms) {
    static int (*libc_poll)(struct pollfd *, nfds_t, int);
    if (libc_poll == NULL) libc_poll = (int (*)(struct pollfd *, nfds_t, int))dlsym(RTLD_NEXT, "poll");
    if (last_look_armed) {
        last_look_armed = false;
        uint64_t head = atomic_load(&last_look_view->prod_head);
        cv_slot_desc *d = descriptor(last_look_view, (uint32_t)(head % 4));
        *d = (cv_slot_desc){.dtype = CONVEYOR_DTYPE_BYTES, .rank = 1, .shape = {8},
                            .byte_length = 8, .tag = 77};
        atomic_store(&last_look_view->prod_head, head + 1);
    }
    return libc_poll(fds, count, timeout_ms);
}

static void a_frame_committed_as_the_producer_dies_is_delivered(void) {
    conveyor_ring_config c = config(4, 64, CONVEYOR_RING_MEMFD);
    c.spin = 0;
    conveyor_ring *q;
    CHECK_STATUS(conveyor_ring_create(&c, NULL, &q), CONVEYOR_OK);
    pid_t producer = fork();
    if (producer == 0) {  /* claims the producer side and exits without destroy */
        conveyor_ring *p;
        _exit(conveyor_ring_attach_fd(conveyor_ring_fd(q), CONVEYOR_RING_PRODUCER, &p) == CONVEYOR_OK ? 0 : 2);
    }
    siginfo_t ended;
    CHECK(waitid(P_PID, (id_t)producer, &ended, WEXITED | WNOWAIT) == 0);  /* dead, unreaped */
    last_look_view = hostile_view(q);
    last_look_armed = true;
    const void *data;
    conveyor_frame_info info = {0};
    CHECK_STATUS(conveyor_ring_receive(q, 0, &data, &info), CONVEYOR_OK);
    CHECK(info.tag == 77);
    CHECK(!last_look_armed);  /* the liveness check did run */
    waitpid(producer, NULL, 0);
    drop_view(last_look_view);
    conveyor_ring_destroy(q);
    printf("  a frame committed as the producer died is delivered before PEER_DEAD\n");
}

/* Planted: receive returns the shared descriptor re-read after validation. (Unplanted,
 * clang -O2 did the same: it re-read byte_length from shared memory after the check.) A
 * thread plays a hostile producer that keeps flipping the descriptor between valid and
 * impossible; every frame receive returns must be a valid one. Correct code can never
 * fail this; broken code failed it within a second in every run tried. */
static atomic_bool scribbling;

static void *scribble_descriptor(void *arg) {
    volatile cv_slot_desc *d = arg;
    while (atomic_load_explicit(&scribbling, memory_order_relaxed)) {
        d->rank = 7;
        d->byte_length = 1u << 30;
        d->rank = 1;
        d->byte_length = 8;
    }
    return NULL;
}

static void receive_returns_only_what_it_validated(void) {
    conveyor_ring_config c = config(1, 64, CONVEYOR_RING_MEMFD);
    c.spin = 0;
    conveyor_ring *p, *q;
    CHECK_STATUS(conveyor_ring_create(&c, &p, &q), CONVEYOR_OK);
    cv_ring_header *hdr = hostile_view(p);
    uint64_t zero = 0;
    conveyor_frame_info frame = u64_frame(0);
    CHECK_STATUS(conveyor_ring_push(p, 0, &zero, &frame), CONVEYOR_OK);
    atomic_store(&scribbling, true);
    pthread_t thread;
    pthread_create(&thread, NULL, scribble_descriptor, descriptor(hdr, 0));
    long delivered = 0, refused = 0, inconsistent = 0;
    double until = now_ms() + 1000;
    while (now_ms() < until) {
        const void *data;
        conveyor_frame_info info;
        int s = conveyor_ring_receive(q, 0, &data, &info);
        if (s == CONVEYOR_E_CORRUPT) {
            refused++;
            continue;
        }
        CHECK_STATUS(s, CONVEYOR_OK);
        if (s != CONVEYOR_OK) break;
        delivered++;
        if (info.rank != 1 || info.byte_length != 8) {
            if (inconsistent++ == 0)
                fprintf(stderr, "  not as validated: rank %u, byte_length %llu, shape0 %llu\n", info.rank,
                        (unsigned long long)info.byte_length, (unsigned long long)info.shape[0]);
        }
        conveyor_ring_release(q);
        conveyor_ring_push(p, 0, &zero, &frame);
    }
    atomic_store(&scribbling, false);
    pthread_join(thread, NULL);
    CHECK(inconsistent == 0);
    printf("  receive returned only validated frames: %ld delivered, %ld refused, %ld not as validated\n",
           delivered, refused, inconsistent);
    drop_view(hdr);
    conveyor_ring_destroy(p);
    conveyor_ring_destroy(q);
}

static const struct {
    const char *name;
    void (*run)(void);
} tests[] = {
    {"huge_timeouts", huge_timeouts_wait_instead_of_expiring},
    {"spin_timeout", spinning_counts_against_the_timeout},
    {"failed_attach", a_failed_attach_claims_nothing},
    {"destroy_hands_back", destroy_hands_the_side_back},
    {"child_unlink", a_forked_child_does_not_unlink_the_name},
    {"inherited_takeover", takeover_through_an_inherited_handle_resumes_at_the_shared_tail},
    {"memfd_sealed", a_memfd_ring_cannot_be_shrunk_under_its_peer},
    {"empty_push", an_empty_push_from_null_is_defined},
    {"pollers", pollers_notice_a_dead_peer},
    {"messages", messages_say_what_happened},
    {"doorbell", a_sleeping_consumer_is_woken_by_the_commit},
    {"hostile_head", a_hostile_head_over_valid_descriptors_is_corrupt},
    {"rank_five", rank_five_with_nonzero_extents_is_refused},
    {"reused_word", a_reused_owner_word_is_a_takeover},
    {"empty_frames", empty_frames_with_huge_extents_and_hostile_closed},
    {"takeover_doorbell", a_takeover_rings_the_peers_doorbell},
    {"inherited_holding", a_takeover_forgets_a_frame_the_inherited_handle_held},
    {"last_look", a_frame_committed_as_the_producer_dies_is_delivered},
    {"validated_copy", receive_returns_only_what_it_validated},
};

/* `ring_defects [NAME...]` runs the tests whose names contain one of the arguments
 * (all without arguments). */
int main(int argc, char **argv) {
    printf("ring_defects:\n");
    static shm_snapshot shm_before;
    shm_snapshot_take(&shm_before);
    alarm(300);  /* a hang is a failure too */
    for (size_t t = 0; t < sizeof tests / sizeof tests[0]; t++) {
        bool selected = argc < 2;
        for (int a = 1; a < argc; a++) selected = selected || strstr(tests[t].name, argv[a]);
        if (selected) tests[t].run();
    }
    failures += shm_entries_added_since(&shm_before);
    return finish("ring_defects");
}
