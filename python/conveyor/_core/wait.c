/*
 * wait.c — blocking calls that stay responsive: the C call waits in slices of at most
 * 20 ms with the GIL released; between slices the waiting thread takes the GIL back,
 * runs releases and abandons other threads queued, notices a close() or detach() made by
 * another thread and lets signal handlers run (Ctrl-C raises KeyboardInterrupt here).
 * A deadline counts from the start of the call, so the time spent waiting for another
 * thread's call on the same side (side.c) is part of it.
 */
#include "core.h"

#include <time.h>

int64_t cvpy_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t cvpy_deadline(int64_t timeout_ns) {
    if (timeout_ns < 0) return CVPY_FOREVER;
    if (timeout_ns == 0) return 0;
    int64_t now = cvpy_now_ns();
    return timeout_ns >= CVPY_FOREVER - now ? CVPY_FOREVER : now + timeout_ns;
}

int cvpy_wait(cvpy_side *side, int64_t deadline, cvpy_attempt_fn attempt, void *context) {
    if (side->closed || side->stopping || side->handle == NULL) return CONVEYOR_E_CLOSED;
    /* First a poll with the GIL held: a frame or slot that is ready costs no GIL
     * hand-off. */
    int status = attempt(side->handle, 0, context);
    if (status != CONVEYOR_E_TIMEOUT) return status;
    for (;;) {
        int64_t slice = CVPY_SLICE_NS;
        if (deadline != CVPY_FOREVER) {
            int64_t left = deadline - cvpy_now_ns();
            if (left <= 0) return CONVEYOR_E_TIMEOUT;
            if (left < slice) slice = left;
        }
        conveyor_ring *handle = side->handle;
        Py_BEGIN_ALLOW_THREADS
        status = attempt(handle, slice, context);
        Py_END_ALLOW_THREADS
        if (status != CONVEYOR_E_TIMEOUT) return status;
        /* Views and loans that died in other threads while we held the lock queued their
         * release or abandon: a producer waiting on a full ring may be waiting for
         * exactly those. */
        cvpy_side_run_pending(side);
        /* A close() or detach() waiting for the lock: give it up (closed itself is only
         * set under the lock, so by the closer once we are out). */
        if (side->stopping) return CONVEYOR_E_CLOSED;
        if (PyErr_CheckSignals() < 0) return -1;
    }
}
