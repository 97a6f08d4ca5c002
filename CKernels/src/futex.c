/* futex.c — FUTEX_WAIT / FUTEX_WAKE on shared memory (see futex.h). */
#include "internal.h"
#include "futex.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void cv_futex_wait(cv_atomic_u32 *word, uint32_t expected, int64_t timeout_ns) {
    struct timespec relative, *timeout = NULL;
    if (timeout_ns >= 0) {
        relative.tv_sec = (time_t)(timeout_ns / 1000000000);
        relative.tv_nsec = (long)(timeout_ns % 1000000000);
        timeout = &relative;
    }
    /* EAGAIN (value changed), EINTR and ETIMEDOUT all mean "re-check": ignore the result. */
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, expected, timeout, NULL, 0);
}

void cv_futex_wake(cv_atomic_u32 *word) {
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, 1, NULL, NULL, 0);
}

int64_t cv_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
