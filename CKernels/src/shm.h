/*
 * shm.h — the backings of every shared object (rings, pools, channels): anonymous memory,
 * a sealed memfd or a NAMED POSIX shared-memory object; creating one, attaching to one by
 * fd or by name, and the once-only removal of a name by the process that created it. What
 * lies in the memory is the object's business: these functions know only that it starts
 * with a 64-bit magic in a CV_HEADER_BYTES header page. Not API.
 */
#ifndef CONVEYOR_SHM_H
#define CONVEYOR_SHM_H

#include "atomics.h"
#include "internal.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* One mapping of an object, shared by the handles of this process that use it (both sides
 * of an anonymous ring, the ends of a channel opened from one holder). Freed with its last
 * handle. */
typedef struct cv_mapping {
    void *base;
    uint64_t bytes;
    int fd;                 /* -1 for anonymous memory */
    cv_atomic_u32 handles;  /* handles of this process using the mapping (an open may run
                               on one handle while another is destroyed) */
    char *name;             /* a NAMED object's name, created or attached by name */
    cv_atomic_u32 unlinks;  /* 1 while this process created the name and has not removed it */
    pid_t creator_pid;      /* the process that may unlink it (not a forked child) */
} cv_mapping;

/* Creates and maps `bytes` of zero-filled memory of `backing` (a conveyor_ring_backing;
 * `name` for NAMED, exclusive: CONVEYOR_E_EXISTS if taken; a MEMFD is sealed at its size).
 * `label` names the memfd in /proc. No handle refers to the mapping yet: the caller formats
 * the header (magic last, release) and takes a reference, or discards it.
 * Errors: CONVEYOR_E_INVALID_ARGUMENT (backing, name), CONVEYOR_E_EXISTS,
 * CONVEYOR_E_SYSTEM (errno kept), CONVEYOR_E_NO_MEMORY. */
int cv_mapping_create(int32_t backing, const char *name, const char *label, uint64_t bytes,
                      cv_mapping **out);

/* Maps the whole file behind `fd` (dup'd) after the checks every attach makes, in this
 * order: a regular file starting with `magic` (pread, so a shrinking file cannot raise
 * SIGBUS here: else CONVEYOR_E_NOT_A_RING), at least a header page (TRUNCATED), sealed
 * against resizing when `require_seals` (NOT_SEALED), mappable (CORRUPT). `name` (or NULL)
 * is recorded as the mapping's name, not to be unlinked by this process. The object then
 * validates its header from the mapping. */
int cv_mapping_attach(int fd, uint64_t magic, bool require_seals, const char *name,
                      cv_mapping **out);

/* Opens the existing NAMED object `name` (O_RDWR): CONVEYOR_E_INVALID_ARGUMENT for a bad
 * name, CONVEYOR_E_SYSTEM (errno ENOENT when absent). The caller closes *fd. */
int cv_shm_open_existing(const char *name, int *fd);

/* Whether `name` is a valid NAMED object name: "/name", 2...200 bytes, no other '/'. */
bool cv_valid_name(const char *name);

/* Reference counting by the handles of this process. */
void cv_mapping_ref(cv_mapping *map);
void cv_mapping_unref(cv_mapping *map);
/* Frees a mapping no handle took a reference on yet (a failed create or attach). */
void cv_mapping_discard(cv_mapping *map);

/* Removes the name if this process created it and has not removed it yet (once only, and
 * never in a forked child). */
int cv_mapping_remove_name(cv_mapping *map);

#endif /* CONVEYOR_SHM_H */
