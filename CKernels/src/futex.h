/*
 * futex.h — the only place that says how a thread sleeps and wakes. Shared futexes
 * (never FUTEX_PRIVATE_FLAG: the waker may be another process, and a private futex is
 * keyed by address space, so its wake would find nobody).
 */
#ifndef CONVEYOR_FUTEX_H
#define CONVEYOR_FUTEX_H

#include "atomics.h"

#include <stdint.h>

/* Sleeps while *word == expected, at most timeout_ns (< 0: no limit). Returns at once if
 * *word != expected when the kernel checks it, atomically with queueing the sleeper. May
 * return spuriously: callers re-check their condition. */
void cv_futex_wait(cv_atomic_u32 *word, uint32_t expected, int64_t timeout_ns);

/* Wakes one sleeper on word. */
void cv_futex_wake(cv_atomic_u32 *word);

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t cv_now_ns(void);

#endif /* CONVEYOR_FUTEX_H */
