/*
 * ring_internal.h — the private handle shared by ring_open.c (creating, attaching,
 * validating) and ring.c (protocol). Not API.
 */
#ifndef CONVEYOR_RING_INTERNAL_H
#define CONVEYOR_RING_INTERNAL_H

#include "internal.h"
#include "owner.h"
#include "ring_layout.h"
#include "shm.h"

#include <stdbool.h>
#include <sys/types.h>

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
    cv_claim claim;
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
 * unless it is a HOLDER (ring_open.c). `own_spin`: the creator's configured default spin,
 * or NULL for an attach, which takes the header's, bounded by CV_MAX_PEER_SPIN. */
int cv_ring_validate_and_open(cv_mapping *map, int role, const uint32_t *own_spin,
                              conveyor_ring **out);
/* Ownership (ring.c, OWNERSHIP in ring_layout.h): claims this handle's side, reloading
 * its position on a takeover; BUSY while another live handle holds it. */
int cv_ring_claim_side(conveyor_ring *ring);
/* Gives the side back (CV_OWNER_LEFT) if this handle still owns it in this process. */
void cv_ring_hand_back(conveyor_ring *ring);

#endif /* CONVEYOR_RING_INTERNAL_H */
