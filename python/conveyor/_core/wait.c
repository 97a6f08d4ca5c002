/*
 * wait.c — blocking calls that stay responsive: the C call waits in slices of at most
 * 20 ms with the GIL released; between slices the waiting thread takes the GIL back,
 * runs releases other threads queued, lets signal handlers run (Ctrl-C raises
 * KeyboardInterrupt here) and notices a close() made by another thread.
 */
#include "core.h"

#include <time.h>

int64_t cvpy_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int cvpy_wait(cvpy_side *side, int64_t timeout_ns, cvpy_attempt_fn attempt, void *context) {
    /* First a poll with the GIL held: a frame or slot that is ready costs no GIL
     * hand-off. */
    int status = attempt(side->handle, 0, context);
    if (status != CONVEYOR_E_TIMEOUT || timeout_ns == 0) return status;
    int64_t deadline = INT64_MAX;
    if (timeout_ns > 0) {
        int64_t now = cvpy_now_ns();
        deadline = timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
    }
    for (;;) {
        int64_t slice = CVPY_SLICE_NS;
        if (deadline != INT64_MAX) {
            int64_t left = deadline - cvpy_now_ns();
            if (left <= 0) return CONVEYOR_E_TIMEOUT;
            if (left < slice) slice = left;
        }
        conveyor_ring *handle = side->handle;
        Py_BEGIN_ALLOW_THREADS
        status = attempt(handle, slice, context);
        Py_END_ALLOW_THREADS
        if (status != CONVEYOR_E_TIMEOUT) return status;
        /* Views that died in other threads while we held the lock queued their
         * release: a producer waiting on a full ring may be waiting for exactly those. */
        cvpy_side_drain(side);
        if (side->closed) return CONVEYOR_E_CLOSED;
        if (PyErr_CheckSignals() < 0) return -1;
    }
}
