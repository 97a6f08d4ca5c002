/*
 * hostile_view.h — a test's own writable view of a channel's shared memory, to play the
 * buggy or hostile peer: the private layout (channel_layout.h) mapped from the fd.
 * For the CChannel tests that rewrite shared words (channel_hostile.c,
 * channel_regressions.c); the others use conveyor.h alone.
 */
#ifndef CONVEYOR_TEST_HOSTILE_VIEW_H
#define CONVEYOR_TEST_HOSTILE_VIEW_H

#include "channel_check.h"
#include "../../CKernels/src/channel_layout.h"

#include <sys/mman.h>
#include <sys/stat.h>

typedef struct {
    char *base;
    size_t bytes;
} view;

/* Maps all of `fd` read-write; a failure ends `program` with its report. */
static inline view map_fd(int fd, const char *program) {
    struct stat st;
    view v = {NULL, 0};
    CHECK(fstat(fd, &st) == 0);
    v.bytes = (size_t)st.st_size;
    v.base = mmap(NULL, v.bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(v.base != MAP_FAILED);
    if (v.base == MAP_FAILED) exit(finish(program));
    return v;
}

static inline void unmap(view v) { munmap(v.base, v.bytes); }

static inline cv_channel_header *header_of(view v) { return (cv_channel_header *)v.base; }

static inline cv_channel_lane *lane_of(view v, uint32_t lane) {
    return (cv_channel_lane *)(v.base + header_of(v)->lanes_offset) + lane;
}

#endif
