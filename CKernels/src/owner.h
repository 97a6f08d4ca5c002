/*
 * owner.h — who holds one end of a shared object (a ring's side, a channel's lane sender or
 * receiver): the owner word in shared memory, claiming it, handing it back, and telling
 * whether its holder is gone. The rules are OWNERSHIP in ring_layout.h; rings, channels
 * and their lanes all follow them through these functions. Not API.
 */
#ifndef CONVEYOR_OWNER_H
#define CONVEYOR_OWNER_H

#include "atomics.h"

#include <stdbool.h>
#include <stdint.h>

/* The two owner words with pid 0 (OWNERSHIP in ring_layout.h). */
#define CV_OWNER_NONE 0u /* never claimed: free, and its peer waits for an owner to come */
#define CV_OWNER_LEFT 1u /* handed back: free, and its peer treats it as a dead owner */

/* A handle's claim on one owner word. Zero-initialize, then set `nonce`. */
typedef struct cv_claim {
    uint32_t nonce;          /* this handle's half of the owner word, never 0 */
    uint64_t claimed_owner;  /* the word this handle last wrote (CV_OWNER_NONE: none yet) */
    uint64_t fork_epoch;     /* cv_fork_epoch() when it did */
} cv_claim;

/* What a new owner does after a takeover (not a hand-over), before the claim counts:
 * reload its position from the shared counters and ring its peer's doorbell. Returns
 * CONVEYOR_OK, or a status (CONVEYOR_E_CORRUPT) that makes the claim put the previous
 * word back, so a failed claim claims nothing. */
typedef int (*cv_takeover_fn)(void *ctx);

/* Claims `owner` for this handle by compare-and-swap, as OWNERSHIP says: takeover from
 * NONE, LEFT, a dead process or a dead predecessor with our word (then `takeover` runs),
 * hand-over from the handle's own earlier word (a forked child), BUSY otherwise. */
int cv_claim_owner(cv_claim *claim, cv_atomic_u64 *owner, cv_takeover_fn takeover, void *ctx);

/* Gives `owner` back (CV_OWNER_LEFT) if this handle claimed it and no fork happened since
 * (after a fork the claim may be the child's to keep). */
void cv_hand_back_owner(const cv_claim *claim, cv_atomic_u64 *owner);

/* True when a fork happened since the handle last claimed: its next operation must claim
 * again (a hand-over in the child, a no-op in a parent that still owns it). One relaxed
 * load: the check every operation makes. */
bool cv_claim_stale(const cv_claim *claim);

/* Whether nobody will act on an end owned by `owner` again: handed back (LEFT), or its
 * process is gone. CV_OWNER_NONE is not gone: its owner is yet to come. Costs a pidfd
 * probe (a few system calls) unless the word is LEFT or NONE: rate-limit it. */
bool cv_owner_gone(uint64_t owner);

/* The fork epoch: changes in parent and child at every fork(). */
uint64_t cv_fork_epoch(void);

/* A nonce for a new handle, unique within this process and never 0. */
uint32_t cv_next_nonce(void);

#endif /* CONVEYOR_OWNER_H */
