/*
 * ring_faults.c — the ring across real processes, and under faults: a million frames each
 * way with checksums, peers killed with SIGKILL in both directions, a dead consumer's slot
 * recovered, named rings cleaned up, garbage and hostile shared memory rejected.
 *
 * Black-box through conveyor.h, except where it plays a hostile peer: there it includes
 * the private layout to corrupt the exact fields. Built and run by scripts/test.
 */
#include "check.h"
#include "../../CKernels/src/ring_layout.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* One detection time is one sample of a scheduler on a shared machine: here it only has to
 * be far from a hang. kill_storm.c holds the 100 ms promise over hundreds of kills. */
#define LATENCY_GUARD_MS 1000

/* Produces `frames` frames of value i*K; returns the checksum (sum of values). */
static uint64_t produce(conveyor_ring *p, uint64_t frames, int close_at_end) {
    uint64_t checksum = 0;
    for (uint64_t i = 0; i < frames; i++) {
        void *slot;
        if (conveyor_ring_loan(p, -1, &slot, NULL) != CONVEYOR_OK) return UINT64_MAX;
        uint64_t value = i * 0x9E3779B97F4A7C15ull;
        memcpy(slot, &value, 8);
        checksum += value;
        conveyor_frame_info info = u64_frame(i);
        if (conveyor_ring_commit(p, &info) != CONVEYOR_OK) return UINT64_MAX;
    }
    if (close_at_end) conveyor_ring_close(p);
    return checksum;
}

/* Consumes until end of stream; returns the checksum, or UINT64_MAX on disorder/error. */
static uint64_t consume(conveyor_ring *c, uint64_t *count) {
    uint64_t checksum = 0, n = 0;
    const void *data;
    conveyor_frame_info info;
    int status;
    while ((status = conveyor_ring_receive(c, 10000000000LL, &data, &info)) == CONVEYOR_OK) {
        uint64_t value;
        memcpy(&value, data, 8);
        if (info.tag != n || value != n * 0x9E3779B97F4A7C15ull) return UINT64_MAX;
        checksum += value;
        n++;
        conveyor_ring_release(c);
    }
    *count = n;
    return status == CONVEYOR_E_END_OF_STREAM ? checksum : UINT64_MAX;
}

static void million_frames_each_way(void) {
    const uint64_t frames = 1000000;
    for (int direction = 0; direction < 2; direction++) {
        conveyor_ring_config c = config(8, 64, CONVEYOR_RING_MEMFD);
        conveyor_ring *p, *q;
        CHECK_STATUS(conveyor_ring_create(&c, &p, &q), CONVEYOR_OK);
        int fds[2];
        CHECK(pipe(fds) == 0);
        pid_t child = fork();
        if (child == 0) {
            uint64_t result, count = 0;
            if (direction == 0) {
                conveyor_ring_claim(q);
                result = consume(q, &count);
            } else {
                conveyor_ring_claim(p);
                result = produce(p, frames, 1);
            }
            if (write(fds[1], &result, 8) != 8) _exit(2);
            _exit(0);
        }
        uint64_t mine, theirs = 0, count = frames;
        mine = direction == 0 ? produce(p, frames, 1) : consume(q, &count);
        CHECK(read(fds[0], &theirs, 8) == 8);
        int status;
        waitpid(child, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CHECK(mine != UINT64_MAX && mine == theirs && count == frames);
        conveyor_ring_stats st;
        conveyor_ring_get_stats(p, &st);
        CHECK(st.frames_committed == frames && st.frames_released == frames && st.peak_occupancy <= 8);
        printf("  %s: %llu frames across processes, checksums agree\n",
               direction == 0 ? "parent -> child" : "child -> parent", (unsigned long long)frames);
        close(fds[0]);
        close(fds[1]);
        conveyor_ring_destroy(p);
        conveyor_ring_destroy(q);
    }
}

static void killed_producer_is_detected(void) {
    conveyor_ring_config c = config(4, 64, CONVEYOR_RING_ANONYMOUS);
    c.spin = 0;
    conveyor_ring *p, *q;
    CHECK_STATUS(conveyor_ring_create(&c, &p, &q), CONVEYOR_OK);
    int produced[2];
    CHECK(pipe(produced) == 0);
    pid_t child = fork();
    if (child == 0) {
        conveyor_ring_claim(p);
        char ok = produce(p, 3, 0) != UINT64_MAX;  /* three frames, never closed */
        if (write(produced[1], &ok, 1) != 1) _exit(2);
        pause();
        _exit(0);
    }
    conveyor_ring_destroy(p);  /* the parent's copy: local only */
    char ok = 0;
    CHECK(read(produced[0], &ok, 1) == 1 && ok);
    close(produced[0]);
    close(produced[1]);
    double killed = now_ms();
    kill(child, SIGKILL);
    const void *data;
    conveyor_frame_info info;
    for (uint64_t i = 0; i < 3; i++) {  /* committed frames are still delivered */
        CHECK_STATUS(conveyor_ring_receive(q, 1000000000, &data, &info), CONVEYOR_OK);
        CHECK(info.tag == i);
        conveyor_ring_release(q);
    }
    CHECK_STATUS(conveyor_ring_receive(q, 5000000000LL, &data, &info), CONVEYOR_E_PEER_DEAD);
    double detected = now_ms() - killed;
    CHECK(detected < LATENCY_GUARD_MS);
    printf("  producer killed: consumer drained 3 frames, then PEER_DEAD after %.1f ms\n", detected);
    waitpid(child, NULL, 0);
    conveyor_ring_destroy(q);
}

static void killed_consumer_is_detected_and_its_slot_recovered(void) {
    conveyor_ring_config c = config(4, 64, CONVEYOR_RING_MEMFD);
    c.spin = 0;
    conveyor_ring *p, *q;
    CHECK_STATUS(conveyor_ring_create(&c, &p, &q), CONVEYOR_OK);
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t child = fork();
    if (child == 0) {
        conveyor_ring_claim(q);
        const void *data;
        conveyor_frame_info info;
        conveyor_ring_receive(q, -1, &data, &info);  /* frame 0: released */
        conveyor_ring_release(q);
        conveyor_ring_receive(q, -1, &data, &info);  /* frame 1: held until killed */
        char ok = 1;
        if (write(fds[1], &ok, 1) != 1) _exit(2);
        pause();
        _exit(0);
    }
    conveyor_ring_destroy(q);
    for (uint64_t i = 0; i < 5; i++) {  /* 5 = 1 released + 4 slots */
        void *slot;
        CHECK_STATUS(conveyor_ring_loan(p, 1000000000, &slot, NULL), CONVEYOR_OK);
        conveyor_frame_info info = u64_frame(i);
        memcpy(slot, &i, 8);
        CHECK_STATUS(conveyor_ring_commit(p, &info), CONVEYOR_OK);
    }
    char ok;
    CHECK(read(fds[0], &ok, 1) == 1);
    double killed = now_ms();
    kill(child, SIGKILL);
    void *slot;
    CHECK_STATUS(conveyor_ring_loan(p, 5000000000LL, &slot, NULL), CONVEYOR_E_PEER_DEAD);
    double detected = now_ms() - killed;
    CHECK(detected < LATENCY_GUARD_MS);
    waitpid(child, NULL, 0);
    printf("  consumer killed: full producer got PEER_DEAD after %.1f ms\n", detected);

    /* A new consumer takes the dead one's place and receives the frame it held. */
    conveyor_ring *again;
    CHECK_STATUS(conveyor_ring_attach_fd(conveyor_ring_fd(p), CONVEYOR_RING_CONSUMER, &again), CONVEYOR_OK);
    const void *data;
    conveyor_frame_info info;
    for (uint64_t i = 1; i < 5; i++) {
        CHECK_STATUS(conveyor_ring_receive(again, 0, &data, &info), CONVEYOR_OK);
        CHECK(info.tag == i);
        CHECK_STATUS(conveyor_ring_release(again), CONVEYOR_OK);
    }
    CHECK_STATUS(conveyor_ring_receive(again, 0, &data, &info), CONVEYOR_E_TIMEOUT);
    /* The live new consumer cannot be displaced. */
    conveyor_ring *third = NULL;
    CHECK_STATUS(conveyor_ring_attach_fd(conveyor_ring_fd(p), CONVEYOR_RING_CONSUMER, &third), CONVEYOR_E_BUSY);
    printf("  a new consumer received the dead consumer's held frame again\n");
    close(fds[0]);
    close(fds[1]);
    conveyor_ring_destroy(again);
    conveyor_ring_destroy(p);
}

static int shm_entries_with_prefix(const char *prefix) {
    DIR *dir = opendir("/dev/shm");
    if (dir == NULL) return 0;
    int found = 0;
    for (struct dirent *e; (e = readdir(dir)) != NULL;)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) found++;
    closedir(dir);
    return found;
}

static void named_rings_leave_nothing_behind(void) {
    char name[64];
    snprintf(name, sizeof name, "/conveyor-faults-%d", (int)getpid());
    conveyor_ring_config c = config(2, 64, CONVEYOR_RING_NAMED);
    c.name = name;
    conveyor_ring *p, *dup = NULL;
    CHECK_STATUS(conveyor_ring_create(&c, &p, NULL), CONVEYOR_OK);
    CHECK_STATUS(conveyor_ring_create(&c, &dup, NULL), CONVEYOR_E_EXISTS);
    int attached[2];
    CHECK(pipe(attached) == 0);
    pid_t child = fork();
    if (child == 0) {
        conveyor_ring *q;
        char ok = conveyor_ring_attach_named(name, CONVEYOR_RING_CONSUMER, &q) == CONVEYOR_OK;
        if (write(attached[1], &ok, 1) != 1) _exit(4);
        pause();
        _exit(0);
    }
    char ok = 0;
    CHECK(read(attached[0], &ok, 1) == 1 && ok);  /* the peer holds the ring when killed */
    close(attached[0]);
    close(attached[1]);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    conveyor_ring_destroy(p);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "conveyor-faults-%d", (int)getpid());
    CHECK(shm_entries_with_prefix(prefix) == 0);
    conveyor_ring *none;
    CHECK_STATUS(conveyor_ring_attach_named(name, CONVEYOR_RING_CONSUMER, &none), CONVEYOR_E_SYSTEM);
    CHECK(errno == ENOENT);
    CHECK_STATUS(conveyor_ring_attach_named("no-slash", CONVEYOR_RING_CONSUMER, &none), CONVEYOR_E_INVALID_ARGUMENT);
    printf("  named ring: exclusive, removed by its creator even after a killed peer\n");
}

/* A sealed memfd holding the first `keep` bytes of `image` (a ring file), `size` bytes
 * long: what a hostile or broken creator could hand over. */
static int sealed_copy(int image, uint64_t keep, uint64_t size) {
    int fd = memfd_create("hostile", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    char page[4096];
    for (uint64_t at = 0; at < keep; at += sizeof page) {
        ssize_t n = pread(image, page, sizeof page, (off_t)at);
        CHECK(n > 0 && pwrite(fd, page, (size_t)n, (off_t)at) == n);
    }
    CHECK(ftruncate(fd, (off_t)size) == 0);
    CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0);
    return fd;
}

static void garbage_and_other_versions_are_rejected(void) {
    conveyor_ring *r;
    int fd = memfd_create("garbage", MFD_CLOEXEC);
    CHECK(ftruncate(fd, 8192) == 0);
    CHECK(pwrite(fd, "not a ring at all", 17, 0) == 17);
    CHECK_STATUS(conveyor_ring_attach_fd(fd, CONVEYOR_RING_CONSUMER, &r), CONVEYOR_E_NOT_A_RING);
    CHECK(ftruncate(fd, 100) == 0);
    CHECK_STATUS(conveyor_ring_attach_fd(fd, CONVEYOR_RING_CONSUMER, &r), CONVEYOR_E_NOT_A_RING);
    CHECK(ftruncate(fd, 0) == 0);  /* an empty file has no header at all */
    CHECK_STATUS(conveyor_ring_attach_fd(fd, CONVEYOR_RING_CONSUMER, &r), CONVEYOR_E_NOT_A_RING);
    close(fd);
    CHECK_STATUS(conveyor_ring_attach_fd(-1, CONVEYOR_RING_CONSUMER, &r), CONVEYOR_E_INVALID_ARGUMENT);
    CHECK_STATUS(conveyor_ring_attach_fd(0, 7, &r), CONVEYOR_E_INVALID_ARGUMENT);

    conveyor_ring_config c = config(2, 4096, CONVEYOR_RING_MEMFD);
    conveyor_ring *p;
    CHECK_STATUS(conveyor_ring_create(&c, &p, NULL), CONVEYOR_OK);
    fd = conveyor_ring_fd(p);
    uint32_t version = CV_RING_LAYOUT_VERSION + 1, good = CV_RING_LAYOUT_VERSION;
    CHECK(pwrite(fd, &version, 4, offsetof(cv_ring_header, layout_version)) == 4);
    CHECK_STATUS(conveyor_ring_attach_fd(fd, CONVEYOR_RING_CONSUMER, &r), CONVEYOR_E_VERSION);
    CHECK(pwrite(fd, &good, 4, offsetof(cv_ring_header, layout_version)) == 4);
    uint32_t slots = 1000;
    CHECK(pwrite(fd, &slots, 4, offsetof(cv_ring_header, slot_count)) == 4);
    CHECK_STATUS(conveyor_ring_attach_fd(fd, CONVEYOR_RING_CONSUMER, &r), CONVEYOR_E_CORRUPT);
    slots = 2;
    CHECK(pwrite(fd, &slots, 4, offsetof(cv_ring_header, slot_count)) == 4);
    int cut = sealed_copy(fd, 4096, 8192);  /* shorter than header + 2 slots */
    CHECK_STATUS(conveyor_ring_attach_fd(cut, CONVEYOR_RING_CONSUMER, &r), CONVEYOR_E_TRUNCATED);
    close(cut);
    cut = sealed_copy(fd, 8, 8);  /* the magic and nothing else */
    CHECK_STATUS(conveyor_ring_attach_fd(cut, CONVEYOR_RING_CONSUMER, &r), CONVEYOR_E_TRUNCATED);
    close(cut);
    conveyor_ring_destroy(p);
    printf("  garbage, other versions, bad geometry and truncation rejected\n");
}

static void hostile_peer_cannot_cause_out_of_bounds_access(void) {
    conveyor_ring_config c = config(4, 64, CONVEYOR_RING_ANONYMOUS);
    c.spin = 0;
    conveyor_ring *p, *q;
    CHECK_STATUS(conveyor_ring_create(&c, &p, &q), CONVEYOR_OK);
    /* Find the shared header through a frame address: slots follow header + descriptors. */
    void *slot;
    CHECK_STATUS(conveyor_ring_loan(p, 0, &slot, NULL), CONVEYOR_OK);
    long page = sysconf(_SC_PAGESIZE);
    cv_ring_header *hdr = (cv_ring_header *)((char *)slot - ((CV_RING_HEADER_BYTES + 4 * 64 + page - 1) / page * page));
    CHECK(atomic_load(&hdr->magic) == CV_RING_MAGIC);
    conveyor_frame_info info = u64_frame(0);
    CHECK_STATUS(conveyor_ring_commit(p, &info), CONVEYOR_OK);

    /* A descriptor claiming more bytes than a slot holds. */
    cv_slot_desc *desc = (cv_slot_desc *)((char *)hdr + CV_RING_HEADER_BYTES);
    desc[0].byte_length = 1ull << 40;
    desc[0].shape[0] = 1ull << 40;
    const void *data;
    CHECK_STATUS(conveyor_ring_receive(q, 0, &data, &info), CONVEYOR_E_CORRUPT);
    desc[0].byte_length = 8;
    desc[0].shape[0] = 8;
    desc[0].rank = 9;
    CHECK_STATUS(conveyor_ring_receive(q, 0, &data, &info), CONVEYOR_E_CORRUPT);
    desc[0].rank = 1;
    CHECK_STATUS(conveyor_ring_receive(q, 0, &data, &info), CONVEYOR_OK);
    CHECK_STATUS(conveyor_ring_release(q), CONVEYOR_OK);

    /* A head far beyond the tail, then a tail beyond the head. */
    atomic_store(&hdr->prod_head, 1000);
    CHECK_STATUS(conveyor_ring_receive(q, 0, &data, &info), CONVEYOR_E_CORRUPT);
    atomic_store(&hdr->prod_head, 1);
    atomic_store(&hdr->cons_tail, 500);
    for (int i = 0; i < 4; i++) {  /* fill the cached room, then the producer re-reads */
        int s = conveyor_ring_loan(p, 0, &slot, NULL);
        if (s != CONVEYOR_OK) {
            CHECK(s == CONVEYOR_E_CORRUPT);
            break;
        }
        info = u64_frame(1 + i);
        conveyor_ring_commit(p, &info);
    }
    conveyor_ring_destroy(p);
    conveyor_ring_destroy(q);
    printf("  corrupted descriptors and indices give CONVEYOR_E_CORRUPT\n");
}

static void misuse_gets_clear_statuses(void) {
    conveyor_ring_config c = config(2, 64, CONVEYOR_RING_ANONYMOUS);
    conveyor_ring *p, *q;
    const void *data;
    void *slot;
    conveyor_frame_info info = u64_frame(0);
    CHECK_STATUS(conveyor_ring_create(&c, &p, &q), CONVEYOR_OK);
    CHECK_STATUS(conveyor_ring_commit(p, &info), CONVEYOR_E_BAD_STATE);
    CHECK_STATUS(conveyor_ring_abandon(p), CONVEYOR_E_BAD_STATE);
    CHECK_STATUS(conveyor_ring_release(q), CONVEYOR_E_BAD_STATE);
    CHECK_STATUS(conveyor_ring_loan(q, 0, &slot, NULL), CONVEYOR_E_WRONG_ROLE);
    CHECK_STATUS(conveyor_ring_receive(p, 0, &data, &info), CONVEYOR_E_WRONG_ROLE);
    CHECK_STATUS(conveyor_ring_close(q), CONVEYOR_E_WRONG_ROLE);
    CHECK_STATUS(conveyor_ring_loan(p, 0, &slot, NULL), CONVEYOR_OK);
    CHECK_STATUS(conveyor_ring_loan(p, 0, &slot, NULL), CONVEYOR_E_BAD_STATE);
    info.byte_length = 65;
    info.shape[0] = 65;
    CHECK_STATUS(conveyor_ring_commit(p, &info), CONVEYOR_E_TOO_LARGE);
    info.byte_length = 9;
    CHECK_STATUS(conveyor_ring_commit(p, &info), CONVEYOR_E_INVALID_ARGUMENT);
    info = u64_frame(0);
    info.dtype = 77;
    CHECK_STATUS(conveyor_ring_commit(p, &info), CONVEYOR_E_INVALID_ARGUMENT);
    info = u64_frame(0);
    CHECK_STATUS(conveyor_ring_commit(p, &info), CONVEYOR_OK);
    CHECK_STATUS(conveyor_ring_receive(q, 0, &data, &info), CONVEYOR_OK);
    CHECK_STATUS(conveyor_ring_receive(q, 0, &data, &info), CONVEYOR_E_BAD_STATE);
    CHECK_STATUS(conveyor_ring_release(q), CONVEYOR_OK);
    CHECK_STATUS(conveyor_ring_release(q), CONVEYOR_E_BAD_STATE);
    CHECK_STATUS(conveyor_ring_close(p), CONVEYOR_OK);
    CHECK_STATUS(conveyor_ring_loan(p, 0, &slot, NULL), CONVEYOR_E_CLOSED);
    CHECK_STATUS(conveyor_ring_receive(q, -1, &data, &info), CONVEYOR_E_END_OF_STREAM);
    conveyor_ring *extra;
    conveyor_ring_config zero = config(0, 64, CONVEYOR_RING_ANONYMOUS);
    CHECK_STATUS(conveyor_ring_create(&zero, &extra, NULL), CONVEYOR_E_INVALID_ARGUMENT);
    conveyor_ring_config huge = config(2, (uint64_t)1 << 41, CONVEYOR_RING_ANONYMOUS);
    CHECK_STATUS(conveyor_ring_create(&huge, &extra, NULL), CONVEYOR_E_INVALID_ARGUMENT);
    CHECK_STATUS(conveyor_ring_create(&c, NULL, NULL), CONVEYOR_E_NULL_POINTER);
    conveyor_ring_destroy(NULL);
    conveyor_ring_destroy(p);
    conveyor_ring_destroy(q);
    printf("  misuse: every out-of-order call has its status\n");
}

int main(void) {
    printf("ring_faults:\n");
    static shm_snapshot shm_before;
    shm_snapshot_take(&shm_before);
    million_frames_each_way();
    killed_producer_is_detected();
    killed_consumer_is_detected_and_its_slot_recovered();
    named_rings_leave_nothing_behind();
    garbage_and_other_versions_are_rejected();
    hostile_peer_cannot_cause_out_of_bounds_access();
    misuse_gets_clear_statuses();
    failures += shm_entries_added_since(&shm_before);
    return finish("ring_faults");
}
