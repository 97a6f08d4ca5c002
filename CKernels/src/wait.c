/*
 * wait.c — the spin-then-sleep loop of wait.h, as ring_layout.h specifies it ("WAITING
 * WITHOUT LOST WAKE-UPS"), for any end that waits on one doorbell.
 */
#include "wait.h"

/* Spins between two clock reads: a pause costs tens of nanoseconds, a clock read ~20 ns,
 * so 64 keeps the clock's share small and the overrun of a timeout to a few microseconds. */
#define CV_SPINS_PER_CLOCK_READ 64

/* now + timeout, saturated: a timeout too large to add waits forever instead of wrapping
 * to a deadline in the past. timeout_ns < 0 means no limit. */
static int64_t cv_deadline_after(int64_t now, int64_t timeout_ns) {
    if (timeout_ns < 0 || timeout_ns > INT64_MAX - now) return INT64_MAX;
    return now + timeout_ns;
}

/* The peer is gone and cannot act any more: one last look at what it left, then give up. */
static int cv_after_peer_death(const cv_waiter *w) {
    int status = w->ready(w->ctx);
    return status == CONVEYOR_E_TIMEOUT ? CONVEYOR_E_PEER_DEAD : status;
}

/*
 * Timeout 0 is a poll: one check (made by cv_wait) and, at most once per peer-check slice,
 * a look at the peer's liveness, so pollers learn of a death too.
 */
int cv_wait_slow(const cv_waiter *w, int64_t timeout_ns) {
    int status = CONVEYOR_E_TIMEOUT;
    if (timeout_ns == 0)
        return w->peer_gone(w->ctx, cv_now_ns()) ? cv_after_peer_death(w) : status;
    /* The clock is first read after CV_SPINS_PER_CLOCK_READ spins, not before the first:
     * a streaming end waits briefly on almost every item, so a read there would be paid
     * per item. The deadline counts from that read (a few microseconds of spinning
     * later). */
    int64_t now = 0, deadline = 0;
    bool clock_started = false;
    for (uint32_t i = 1; i <= w->spin; i++) {
        cv_cpu_relax();
        if ((status = w->ready(w->ctx)) != CONVEYOR_E_TIMEOUT) return status;
        if (i % CV_SPINS_PER_CLOCK_READ != 0) continue;
        now = cv_now_ns();
        if (!clock_started) {
            deadline = cv_deadline_after(now, timeout_ns);
            clock_started = true;
        } else if (now >= deadline) {
            return CONVEYOR_E_TIMEOUT;
        }
        if (w->peer_gone(w->ctx, now)) return cv_after_peer_death(w);
    }
    if (!clock_started) deadline = cv_deadline_after(cv_now_ns(), timeout_ns);
    bool counted = false;
    for (;;) {
        uint32_t bell = cv_load_relaxed_u32(w->doorbell);  /* (1) before the fence */
        cv_store_relaxed_u32(w->sleeping, 1);
        cv_fence_full();                                    /* SYNC POINT C */
        status = w->ready(w->ctx);
        if (status != CONVEYOR_E_TIMEOUT) break;
        now = cv_now_ns();
        if (now >= deadline) break;
        if (w->peer_gone(w->ctx, now)) {
            status = cv_after_peer_death(w);
            break;
        }
        if (!counted) {
            cv_bump_u64(w->waits, 1);
            counted = true;
        }
        int64_t slice = deadline - now;
        if (slice > CONVEYOR_RING_PEER_CHECK_NS) slice = CONVEYOR_RING_PEER_CHECK_NS;
        cv_futex_wait(w->doorbell, bell, slice);
    }
    cv_store_relaxed_u32(w->sleeping, 0);
    return status;
}
