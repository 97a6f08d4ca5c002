/*
 * wait.h — how one end of a shared object waits for its peer and wakes it: the spin, then
 * sliced futex sleep with the no-lost-wake-up handshake of ring_layout.h ("WAITING WITHOUT
 * LOST WAKE-UPS"), deadlines, rate-limited peer-liveness checks, and the two doorbells (one
 * ringer: a ring's sides, a channel's receiver; several ringers: a channel's senders on the
 * receiver's doorbell). Rings and channels wait through this file only. Not API.
 */
#ifndef CONVEYOR_WAIT_H
#define CONVEYOR_WAIT_H

#include "atomics.h"
#include "futex.h"
#include "internal.h"

#include <stdbool.h>
#include <stdint.h>

/* What a waiting end waits for. `ready` returns CONVEYOR_OK when the end can proceed,
 * CONVEYOR_E_TIMEOUT while it must keep waiting, or a final status (end of stream,
 * corrupt...); it is called again after every wake-up. `peer_gone` says whether the peer
 * that would ring the doorbell is gone (rate-limited by the caller with cv_check_due, since
 * a liveness probe costs system calls). */
typedef struct cv_waiter {
    void *ctx;
    int (*ready)(void *ctx);
    bool (*peer_gone)(void *ctx, int64_t now);
    cv_atomic_u32 *doorbell;  /* the futex word this end sleeps on; the peer rings it */
    cv_atomic_u32 *sleeping;  /* this end's flag: 1 while it may be asleep on doorbell */
    cv_atomic_u64 *waits;     /* counts the waits that slept */
    uint32_t spin;            /* spin iterations before sleeping */
} cv_waiter;

/* Waits until ready() says so, the timeout passes (< 0: no limit, 0: one check) or the peer
 * is gone; then one last ready() decides (CONVEYOR_E_PEER_DEAD if still nothing). The
 * out-of-line part of cv_wait: call cv_wait. */
int cv_wait_slow(const cv_waiter *w, int64_t timeout_ns);

/* The first check inline (a streaming end almost never waits), then cv_wait_slow. */
static inline int cv_wait(const cv_waiter *w, int64_t timeout_ns) {
    int status = w->ready(w->ctx);
    if (status != CONVEYOR_E_TIMEOUT) return status;
    return cv_wait_slow(w, timeout_ns);
}

/* Rate limit of liveness checks: true at most once per CONVEYOR_RING_PEER_CHECK_NS (the
 * first time at once when *next_check_ns is 0), advancing *next_check_ns. */
static inline bool cv_check_due(int64_t *next_check_ns, int64_t now) {
    if (now < *next_check_ns) return false;
    *next_check_ns = now + CONVEYOR_RING_PEER_CHECK_NS;
    return true;
}

/* After a release store (SYNC POINT A or B): rings the doorbell a peer sleeps on if its
 * flag says it may be asleep. One ringer: the doorbell has no other writer, so a plain
 * increment (cv_bump_u32) keeps it changing. */
static inline void cv_doorbell_ring(cv_atomic_u32 *doorbell, cv_atomic_u32 *peer_sleeping,
                                    cv_atomic_u64 *wakes) {
    cv_fence_full();                                        /* SYNC POINT C */
    if (cv_load_relaxed_u32(peer_sleeping)) {
        cv_bump_u32(doorbell, 1);
        cv_futex_wake(doorbell);
        cv_bump_u64(wakes, 1);
    }
}

/* The same for a doorbell several processes ring (a channel's senders on its receiver's
 * doorbell): the increment is an atomic read-modify-write (cv_bell_add_u32), so no ring is
 * lost to a concurrent one and each leaves a value the sleeper has not seen. */
static inline void cv_doorbell_ring_shared(cv_atomic_u32 *doorbell, cv_atomic_u32 *peer_sleeping,
                                           cv_atomic_u64 *wakes) {
    cv_fence_full();                                        /* SYNC POINT C */
    if (cv_load_relaxed_u32(peer_sleeping)) {
        cv_bell_add_u32(doorbell);
        cv_futex_wake(doorbell);
        cv_bump_u64(wakes, 1);
    }
}

#endif /* CONVEYOR_WAIT_H */
