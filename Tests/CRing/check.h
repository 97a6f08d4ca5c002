/*
 * check.h — the few helpers the C ring tests share: CHECK and CHECK_STATUS count a failure
 * and say where, without stopping the program, so one run reports every broken promise.
 * Each test program is one translation unit: `failures` is its own.
 */
#ifndef CONVEYOR_TEST_CHECK_H
#define CONVEYOR_TEST_CHECK_H

#include <conveyor.h>

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int failures = 0;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);    \
            failures++;                                                                 \
        }                                                                               \
    } while (0)

#define CHECK_STATUS(call, expected)                                                    \
    do {                                                                                \
        int s_ = (call);                                                                \
        if (s_ != (expected)) {                                                         \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s\n", __FILE__, __LINE__, \
                    #call, conveyor_status_name(s_), conveyor_status_name(expected));   \
            failures++;                                                                 \
        }                                                                               \
    } while (0)

static inline double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* A one-dimensional frame of eight raw bytes carrying `tag`. */
static inline conveyor_frame_info u64_frame(uint64_t tag) {
    conveyor_frame_info info = {.dtype = CONVEYOR_DTYPE_BYTES, .rank = 1, .shape = {8},
                                .byte_length = 8, .tag = tag};
    return info;
}

static inline conveyor_ring_config config(uint32_t slots, uint64_t bytes, int backing) {
    conveyor_ring_config c = {.slot_count = slots, .slot_bytes = bytes, .spin = 256,
                              .backing = backing};
    return c;
}

/* The names in /dev/shm, all of them (libomp's registration files included), so that a
 * test can say which entries it left behind. */
#define SHM_MAX_NAMES 512
typedef struct {
    int count;
    char names[SHM_MAX_NAMES][256];
} shm_snapshot;

static inline void shm_snapshot_take(shm_snapshot *snap) {
    snap->count = 0;
    DIR *dir = opendir("/dev/shm");
    if (dir == NULL) return;
    for (struct dirent *e; (e = readdir(dir)) != NULL && snap->count < SHM_MAX_NAMES;)
        if (e->d_name[0] != '.')
            snprintf(snap->names[snap->count++], sizeof snap->names[0], "%s", e->d_name);
    closedir(dir);
}

/* Counts (and names on stderr) the entries of /dev/shm that `before` did not have. */
static inline int shm_entries_added_since(const shm_snapshot *before) {
    static shm_snapshot now;
    shm_snapshot_take(&now);
    int added = 0;
    for (int i = 0; i < now.count; i++) {
        int known = 0;
        for (int j = 0; j < before->count && !known; j++)
            known = strcmp(now.names[i], before->names[j]) == 0;
        if (!known) {
            fprintf(stderr, "left in /dev/shm: %s\n", now.names[i]);
            added++;
        }
    }
    return added;
}

/* Ends a test program: prints the verdict, returns its exit status. */
static inline int finish(const char *program) {
    if (failures) fprintf(stderr, "%s: %d check(s) failed\n", program, failures);
    else printf("%s: all checks passed\n", program);
    return failures ? 1 : 0;
}

#endif /* CONVEYOR_TEST_CHECK_H */
