/*
 * ring_sides.c — the 0.4 additions to the ring API, through conveyor.h only: holders that
 * keep a ring without a side, sides opened from a holder (here and in a forked child),
 * a consumer that holds several frames and releases them oldest first, slot addresses,
 * sized stats, and a creator's once-only removal of a NAMED ring's name.
 */
#include "check.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static int push_tag(conveyor_ring *producer, uint64_t tag) {
    conveyor_frame_info info = u64_frame(tag);
    return conveyor_ring_push(producer, 0, &tag, &info);
}

/* A holder claims no side: sides open from it, producer calls on it are refused, and a
 * side opened twice is BUSY until the first handle is destroyed. */
static void test_holder_opens_sides(int backing) {
    conveyor_ring_config c = config(4, 64, backing);
    conveyor_ring *holder = NULL, *p = NULL, *c1 = NULL, *c2 = NULL;
    CHECK_STATUS(conveyor_ring_create_holder(&c, &holder), CONVEYOR_OK);
    CHECK(conveyor_ring_role_of(holder) == CONVEYOR_RING_HOLDER);
    void *data;
    CHECK_STATUS(conveyor_ring_loan(holder, 0, &data, NULL), CONVEYOR_E_WRONG_ROLE);
    CHECK_STATUS(conveyor_ring_claim(holder), CONVEYOR_E_WRONG_ROLE);
    CHECK_STATUS(conveyor_ring_open_side(holder, CONVEYOR_RING_HOLDER, &p), CONVEYOR_E_INVALID_ARGUMENT);
    CHECK_STATUS(conveyor_ring_open_side(holder, CONVEYOR_RING_PRODUCER, &p), CONVEYOR_OK);
    CHECK_STATUS(conveyor_ring_open_side(holder, CONVEYOR_RING_CONSUMER, &c1), CONVEYOR_OK);
    CHECK_STATUS(conveyor_ring_open_side(p, CONVEYOR_RING_CONSUMER, &c2), CONVEYOR_E_BUSY);
    CHECK_STATUS(push_tag(p, 7), CONVEYOR_OK);
    conveyor_frame_info info;
    const void *frame;
    CHECK_STATUS(conveyor_ring_receive(c1, 0, &frame, &info), CONVEYOR_OK);
    CHECK(info.tag == 7);
    /* The first consumer leaves holding the frame: the next one receives it again. */
    conveyor_ring_destroy(c1);
    CHECK_STATUS(conveyor_ring_open_side(holder, CONVEYOR_RING_CONSUMER, &c2), CONVEYOR_OK);
    CHECK_STATUS(conveyor_ring_receive(c2, 0, &frame, &info), CONVEYOR_OK);
    CHECK(info.tag == 7);
    CHECK_STATUS(conveyor_ring_release(c2), CONVEYOR_OK);
    /* The mapping outlives the holder while sides use it. */
    conveyor_ring_destroy(holder);
    CHECK_STATUS(push_tag(p, 8), CONVEYOR_OK);
    CHECK_STATUS(conveyor_ring_receive(c2, 0, &frame, &info), CONVEYOR_OK);
    CHECK(info.tag == 8 && *(const uint64_t *)frame == 8);
    conveyor_ring_destroy(c2);
    conveyor_ring_destroy(p);
}

/* A forked child opens the consumer from the holder it inherited and reads what the
 * parent's producer commits. */
static void test_side_opened_in_forked_child(void) {
    conveyor_ring_config c = config(2, 64, CONVEYOR_RING_ANONYMOUS);
    conveyor_ring *holder = NULL, *p = NULL;
    CHECK_STATUS(conveyor_ring_create_holder(&c, &holder), CONVEYOR_OK);
    CHECK_STATUS(conveyor_ring_open_side(holder, CONVEYOR_RING_PRODUCER, &p), CONVEYOR_OK);
    fflush(NULL);
    pid_t child = fork();
    if (child == 0) {
        conveyor_ring *cons = NULL;
        uint64_t sum = 0;
        if (conveyor_ring_open_side(holder, CONVEYOR_RING_CONSUMER, &cons) != CONVEYOR_OK) _exit(2);
        const void *frame;
        conveyor_frame_info info;
        while (conveyor_ring_receive(cons, -1, &frame, &info) == CONVEYOR_OK) {
            sum += *(const uint64_t *)frame;
            conveyor_ring_release(cons);
        }
        _exit(sum == 1 + 2 + 3 + 4 + 5 ? 0 : 3);
    }
    for (uint64_t tag = 1; tag <= 5; tag++) {
        conveyor_frame_info info = u64_frame(tag);
        CHECK_STATUS(conveyor_ring_push(p, -1, &tag, &info), CONVEYOR_OK);
    }
    CHECK_STATUS(conveyor_ring_close(p), CONVEYOR_OK);
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    conveyor_ring_destroy(p);
    conveyor_ring_destroy(holder);
}

/* With a hold limit of 3, three frames are held at once, released oldest first; the
 * producer sees slots come back in that order; a fourth receive is BAD_STATE. */
static void test_hold_limit(void) {
    conveyor_ring_config c = config(3, 64, CONVEYOR_RING_ANONYMOUS);
    conveyor_ring *p = NULL, *cons = NULL;
    CHECK_STATUS(conveyor_ring_create(&c, &p, &cons), CONVEYOR_OK);
    CHECK_STATUS(conveyor_ring_set_hold_limit(p, 2), CONVEYOR_E_WRONG_ROLE);
    CHECK_STATUS(conveyor_ring_set_hold_limit(cons, 0), CONVEYOR_E_INVALID_ARGUMENT);
    CHECK_STATUS(conveyor_ring_set_hold_limit(cons, 4), CONVEYOR_E_INVALID_ARGUMENT);
    const void *frame[4];
    conveyor_frame_info info;
    for (uint64_t tag = 0; tag < 3; tag++) CHECK_STATUS(push_tag(p, tag), CONVEYOR_OK);
    CHECK_STATUS(conveyor_ring_receive(cons, 0, &frame[0], &info), CONVEYOR_OK);
    CHECK_STATUS(conveyor_ring_receive(cons, 0, &frame[1], &info), CONVEYOR_E_BAD_STATE);
    CHECK_STATUS(conveyor_ring_set_hold_limit(cons, 3), CONVEYOR_OK);
    for (int i = 1; i < 3; i++) {
        CHECK_STATUS(conveyor_ring_receive(cons, 0, &frame[i], &info), CONVEYOR_OK);
        CHECK(info.tag == (uint64_t)i && *(const uint64_t *)frame[i] == (uint64_t)i);
        CHECK(frame[i] == conveyor_ring_slot_address(cons, (uint32_t)i));
    }
    CHECK(frame[0] == conveyor_ring_slot_address(cons, 0));
    CHECK(conveyor_ring_slot_address(cons, 3) == NULL);
    CHECK_STATUS(conveyor_ring_receive(cons, 0, &frame[3], &info), CONVEYOR_E_BAD_STATE);
    CHECK_STATUS(push_tag(p, 3), CONVEYOR_E_TIMEOUT);  /* all three slots held */
    CHECK_STATUS(conveyor_ring_release(cons), CONVEYOR_OK);  /* frees slot 0 only */
    CHECK_STATUS(push_tag(p, 3), CONVEYOR_OK);
    CHECK_STATUS(push_tag(p, 4), CONVEYOR_E_TIMEOUT);
    /* Frames 1 and 2 are still intact while frame 3 went into slot 0. */
    CHECK(*(const uint64_t *)frame[1] == 1 && *(const uint64_t *)frame[2] == 2);
    CHECK_STATUS(conveyor_ring_receive(cons, 0, &frame[3], &info), CONVEYOR_OK);
    CHECK(info.tag == 3 && frame[3] == frame[0]);
    for (int i = 0; i < 3; i++) CHECK_STATUS(conveyor_ring_release(cons), CONVEYOR_OK);
    CHECK_STATUS(conveyor_ring_release(cons), CONVEYOR_E_BAD_STATE);
    conveyor_ring_destroy(cons);
    conveyor_ring_destroy(p);
}

/* A consumer that dies holding two frames: its successor receives both again. */
static void test_takeover_forgets_held_frames(void) {
    conveyor_ring_config c = config(3, 64, CONVEYOR_RING_ANONYMOUS);
    conveyor_ring *holder = NULL, *p = NULL, *cons = NULL;
    CHECK_STATUS(conveyor_ring_create_holder(&c, &holder), CONVEYOR_OK);
    CHECK_STATUS(conveyor_ring_open_side(holder, CONVEYOR_RING_PRODUCER, &p), CONVEYOR_OK);
    for (uint64_t tag = 0; tag < 3; tag++) CHECK_STATUS(push_tag(p, tag), CONVEYOR_OK);
    CHECK_STATUS(conveyor_ring_open_side(holder, CONVEYOR_RING_CONSUMER, &cons), CONVEYOR_OK);
    CHECK_STATUS(conveyor_ring_set_hold_limit(cons, 3), CONVEYOR_OK);
    const void *frame;
    conveyor_frame_info info;
    CHECK_STATUS(conveyor_ring_receive(cons, 0, &frame, &info), CONVEYOR_OK);
    CHECK_STATUS(conveyor_ring_receive(cons, 0, &frame, &info), CONVEYOR_OK);
    CHECK_STATUS(conveyor_ring_release(cons), CONVEYOR_OK);  /* frame 0; frame 1 still held */
    conveyor_ring_destroy(cons);
    CHECK_STATUS(conveyor_ring_open_side(holder, CONVEYOR_RING_CONSUMER, &cons), CONVEYOR_OK);
    CHECK_STATUS(conveyor_ring_receive(cons, 0, &frame, &info), CONVEYOR_OK);
    CHECK(info.tag == 1);
    CHECK_STATUS(conveyor_ring_release(cons), CONVEYOR_OK);
    conveyor_ring_destroy(cons);
    conveyor_ring_destroy(p);
    conveyor_ring_destroy(holder);
}

/* read_stats fills what the caller knows: an 0.1-sized struct stops before mapped_bytes,
 * a bigger (future) one reads zeros past ours; bad sizes are refused. */
static void test_sized_stats(void) {
    conveyor_ring_config c = config(2, 64, CONVEYOR_RING_ANONYMOUS);
    conveyor_ring *p = NULL, *cons = NULL;
    CHECK_STATUS(conveyor_ring_create(&c, &p, &cons), CONVEYOR_OK);
    CHECK_STATUS(push_tag(p, 1), CONVEYOR_OK);
    unsigned char buffer[sizeof(conveyor_ring_stats) + 16];
    memset(buffer, 0xAB, sizeof buffer);
    conveyor_ring_stats *stats = (conveyor_ring_stats *)buffer;
    CHECK_STATUS(conveyor_ring_read_stats(p, stats, CONVEYOR_RING_STATS_SIZE_0_1), CONVEYOR_OK);
    CHECK(stats->frames_committed == 1 && stats->slot_count == 2 && stats->slot_bytes == 64);
    CHECK(buffer[CONVEYOR_RING_STATS_SIZE_0_1] == 0xAB);  /* mapped_bytes untouched */
    CHECK_STATUS(conveyor_ring_read_stats(p, stats, sizeof buffer), CONVEYOR_OK);
    CHECK(stats->mapped_bytes > 0);
    CHECK(buffer[sizeof buffer - 1] == 0);  /* future fields read as zero */
    CHECK_STATUS(conveyor_ring_read_stats(p, stats, 72), CONVEYOR_E_INVALID_ARGUMENT);
    CHECK_STATUS(conveyor_ring_read_stats(p, stats, 84), CONVEYOR_E_INVALID_ARGUMENT);
    conveyor_ring_stats old;
    CHECK_STATUS(conveyor_ring_get_stats(p, &old), CONVEYOR_OK);
    CHECK(old.mapped_bytes == stats->mapped_bytes);
    conveyor_ring_destroy(cons);
    conveyor_ring_destroy(p);
}

/* A NAMED ring's creator removes the name once: a second ring under the same name
 * survives the first ring's later destroy; an attacher knows the name but never removes it. */
static void test_remove_name_once(void) {
    char name[64];
    snprintf(name, sizeof name, "/conveyor-sides-%d", (int)getpid());
    conveyor_ring_config c = config(2, 64, CONVEYOR_RING_NAMED);
    c.name = name;
    conveyor_ring *first = NULL, *attached = NULL, *second = NULL;
    CHECK_STATUS(conveyor_ring_create_holder(&c, &first), CONVEYOR_OK);
    CHECK(conveyor_ring_name(first) != NULL && strcmp(conveyor_ring_name(first), name) == 0);
    CHECK_STATUS(conveyor_ring_attach_named(name, CONVEYOR_RING_HOLDER, &attached), CONVEYOR_OK);
    CHECK(attached != NULL && strcmp(conveyor_ring_name(attached), name) == 0);
    CHECK_STATUS(conveyor_ring_remove_name(attached), CONVEYOR_OK);  /* not the creator */
    conveyor_ring *probe = NULL;
    CHECK_STATUS(conveyor_ring_create_holder(&c, &probe), CONVEYOR_E_EXISTS);  /* still there */
    CHECK_STATUS(conveyor_ring_remove_name(first), CONVEYOR_OK);
    CHECK_STATUS(conveyor_ring_create_holder(&c, &second), CONVEYOR_OK);  /* the name is free */
    conveyor_ring_destroy(first);     /* must not remove the second ring's name */
    conveyor_ring_destroy(attached);
    CHECK_STATUS(conveyor_ring_attach_named(name, CONVEYOR_RING_HOLDER, &probe), CONVEYOR_OK);
    conveyor_ring_destroy(probe);
    conveyor_ring_destroy(second);    /* the second creator's last handle removes it */
    CHECK_STATUS(conveyor_ring_attach_named(name, CONVEYOR_RING_HOLDER, &probe), CONVEYOR_E_SYSTEM);
    conveyor_ring_config anonymous = config(2, 64, CONVEYOR_RING_ANONYMOUS);
    CHECK_STATUS(conveyor_ring_create_holder(&anonymous, &probe), CONVEYOR_OK);
    CHECK(conveyor_ring_name(probe) == NULL);
    CHECK_STATUS(conveyor_ring_remove_name(probe), CONVEYOR_OK);
    conveyor_ring_destroy(probe);
}

int main(void) {
    printf("ring_sides:\n");
    static shm_snapshot shm_before;
    shm_snapshot_take(&shm_before);
    test_holder_opens_sides(CONVEYOR_RING_ANONYMOUS);
    test_holder_opens_sides(CONVEYOR_RING_MEMFD);
    test_side_opened_in_forked_child();
    test_hold_limit();
    test_takeover_forgets_held_frames();
    test_sized_stats();
    test_remove_name_once();
    CHECK(shm_entries_added_since(&shm_before) == 0);
    if (failures) {
        fprintf(stderr, "ring_sides: %d check(s) failed\n", failures);
        return 1;
    }
    printf("ring_sides: all checks passed\n");
    return 0;
}
