/*
 * channel_internal.h — the private channel handle shared by channel_open.c (creating,
 * attaching, validating, ownership) and channel.c (protocol). Not API.
 */
#ifndef CONVEYOR_CHANNEL_INTERNAL_H
#define CONVEYOR_CHANNEL_INTERNAL_H

#include "channel_layout.h"
#include "internal.h"
#include "owner.h"
#include "shm.h"

#include <stdbool.h>
#include <stdint.h>

struct conveyor_channel {
    cv_mapping *map;
    cv_channel_header *hdr;
    int role;
    uint32_t lane;           /* a sender's lane; 0 otherwise */

    /* geometry, validated once and never re-read from shared memory */
    uint32_t lanes;
    uint32_t capacity;
    uint64_t lanes_offset;
    uint64_t words_offset;
    uint64_t word_stride;

    uint32_t spin;
    uint32_t default_spin;   /* the channel's, for handles opened from this one */

    /* ownership of this end (OWNERSHIP in channel_layout.h) */
    cv_claim claim;
    int64_t next_peer_check_ns;
    uint32_t sends_since_check;

    /* sender: its head and its cache of the lane's tail */
    uint64_t position;
    uint64_t peer_cache;

    /* receiver: per lane, its tail and its cache of the head */
    uint64_t tail[CONVEYOR_CHANNEL_MAX_LANES];
    uint64_t head_cache[CONVEYOR_CHANNEL_MAX_LANES];
    uint64_t done;           /* bit l: lane l closed and drained, for good */
    uint64_t bad;            /* bit l: receive_any reported lane l CORRUPT and skips it */
    /* per lane: the dead sender's owner word receive_any last reported as PEER_DEAD (0:
     * none), not reported again until the lane's owner word changes */
    uint64_t dead_owner[CONVEYOR_CHANNEL_MAX_LANES];
    uint32_t next_lane;      /* receive_any tries this lane first */
    uint32_t want_lane;      /* receive(lane): the lane waited for */
    uint32_t found_lane;     /* the lane the last check (or takeover) found ready or corrupt */
    uint32_t dead_lane;      /* the lane the last liveness check found gone */
    uint64_t dead_word;      /* and the owner word it found there */
};

static inline cv_channel_lane *cv_lane(const conveyor_channel *ch, uint32_t lane) {
    return (cv_channel_lane *)((char *)ch->map->base + ch->lanes_offset) + lane;
}

static inline cv_atomic_u64 *cv_lane_words(const conveyor_channel *ch, uint32_t lane) {
    return (cv_atomic_u64 *)((char *)ch->map->base + ch->words_offset + lane * ch->word_stride);
}

/* The owner word of this handle's end (a HOLDER has none: NULL). */
static inline cv_atomic_u64 *cv_channel_own_owner(const conveyor_channel *ch) {
    if (ch->role == CONVEYOR_CHANNEL_SENDER) return &cv_lane(ch, ch->lane)->send_owner;
    if (ch->role == CONVEYOR_CHANNEL_RECEIVER) return &ch->hdr->recv_owner;
    return NULL;
}

/* Claims this handle's end (channel.c, OWNERSHIP in channel_layout.h), resuming at the
 * shared position on a takeover: BUSY while a live handle holds it, CORRUPT (nothing
 * claimed) if the reloaded counters are impossible. */
int cv_channel_claim_end(conveyor_channel *ch);

#endif /* CONVEYOR_CHANNEL_INTERNAL_H */
