/*
 * ring_internal.h — the private handle shared by shm.c (mapping, validation) and ring.c
 * (protocol). Not API.
 */
#ifndef CONVEYOR_RING_INTERNAL_H
#define CONVEYOR_RING_INTERNAL_H

#include "internal.h"
#include "ring_layout.h"

#include <stdbool.h>
#include <sys/types.h>

/* One mapping of a ring, shared by the handles of this process that use it (both sides of
 * an anonymous ring). Freed with its last handle. */
typedef struct cv_mapping {
    void *base;
    uint64_t bytes;
    int fd;                 /* -1 for anonymous memory */
    cv_atomic_u32 handles;  /* handles of this process using the mapping (open_side may
                               run on one handle while another is destroyed) */
    char *name;             /* a NAMED ring's name, created or attached by name */
    cv_atomic_u32 unlinks;  /* 1 while this process created the name and has not removed it */
    pid_t creator_pid;      /* the process that may unlink it (not a forked child) */
} cv_mapping;

struct conveyor_ring {
    cv_mapping *map;
    cv_ring_header *hdr;
    int role;

    /* geometry, validated once and never re-read from shared memory */
    uint32_t slot_count;
    uint64_t slot_bytes;
    uint64_t slot_stride;
    uint64_t descriptors_offset;
    uint64_t slots_offset;

    uint32_t spin;
    uint32_t default_spin;   /* the ring's, for handles opened from this one */

    /* ownership of this side (see OWNERSHIP in ring_layout.h) */
    uint32_t nonce;          /* this handle's half of the owner word */
    uint64_t claimed_owner;  /* the owner word this handle last wrote (0: none yet) */
    uint64_t fork_epoch;     /* cv_fork_epoch() when it did */
    int64_t next_peer_check_ns;
    uint32_t loans_since_check;

    /* this side's position and its cache of the other side's */
    uint64_t position;      /* producer: head; consumer: tail */
    uint64_t peer_cache;    /* producer: last tail seen; consumer: last head seen */
    bool outstanding;       /* producer: a loan outstanding */
    uint32_t held;          /* consumer: frames received and not released, the oldest
                               at `position` */
    uint32_t hold_limit;    /* consumer: most frames it may hold (default 1) */
};

/* Validates the mapping's header and opens a handle of `role` on it, claiming its side
 * unless it is a HOLDER (shm.c). */
int cv_ring_validate_and_open(cv_mapping *map, int role, conveyor_ring **out);
/* Ownership (ring.c, OWNERSHIP in ring_layout.h): claims this handle's side, reloading
 * its position on a takeover; BUSY while another live handle holds it. */
int cv_ring_claim_side(conveyor_ring *ring);
/* Gives the side back (CV_OWNER_LEFT) if this handle still owns it in this process. */
void cv_ring_hand_back(conveyor_ring *ring);
/* The fork epoch: changes in parent and child at every fork(). */
uint64_t cv_fork_epoch(void);
/* A nonce for a new handle, unique within this process. */
uint32_t cv_next_nonce(void);

#endif /* CONVEYOR_RING_INTERNAL_H */
