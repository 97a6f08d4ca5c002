/*
 * atomics.h — every memory ordering the shared-memory objects use, by name (and how
 * untrusted shared memory is read exactly once: cv_copy_from_peer). The code of rings,
 * pools and channels (ring*.c, pool.c, channel*.c, owner.c, wait.*, shm.c) never says
 * memory_order_*: a reviewer checks each protocol by reading its SYNC POINT labels
 * against these helpers.
 *
 * Shared-memory words are _Atomic and lock-free (static_assert below), so they work across
 * processes that map the same pages at different addresses.
 */
#ifndef CONVEYOR_ATOMICS_H
#define CONVEYOR_ATOMICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "the ring needs lock-free 64-bit atomics");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the ring needs lock-free 32-bit atomics");

typedef _Atomic uint64_t cv_atomic_u64;
typedef _Atomic uint32_t cv_atomic_u32;

/* Publishes everything written before it to a thread that reads `p` with cv_load_acquire
 * and sees `v` (C++: store(v, memory_order_release)). */
static inline void cv_store_release_u64(cv_atomic_u64 *p, uint64_t v) {
    atomic_store_explicit(p, v, memory_order_release);
}

/* Sees everything written before the cv_store_release that wrote the value it returns
 * (C++: load(memory_order_acquire)). */
static inline uint64_t cv_load_acquire_u64(cv_atomic_u64 *p) {
    return atomic_load_explicit(p, memory_order_acquire);
}

/* No ordering: counters, flags whose ordering a cv_fence_full provides, and values only
 * this side writes (C++: memory_order_relaxed). */
static inline uint64_t cv_load_relaxed_u64(cv_atomic_u64 *p) {
    return atomic_load_explicit(p, memory_order_relaxed);
}
static inline void cv_store_relaxed_u64(cv_atomic_u64 *p, uint64_t v) {
    atomic_store_explicit(p, v, memory_order_relaxed);
}
static inline void cv_add_relaxed_u64(cv_atomic_u64 *p, uint64_t v) {
    atomic_fetch_add_explicit(p, v, memory_order_relaxed);
}
/* p += v for a word only the calling side ever writes: a plain load and store, no locked
 * instruction (readers may see the old or the new value, never a torn one). */
static inline void cv_bump_u64(cv_atomic_u64 *p, uint64_t v) {
    atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + v,
                          memory_order_relaxed);
}
static inline void cv_bump_u32(cv_atomic_u32 *p, uint32_t v) {
    atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + v,
                          memory_order_relaxed);
}
/* Rings a doorbell that several processes ring (a channel's receiver doorbell, rung by
 * every lane's sender): an atomic read-modify-write, unlike cv_bump_u32, so two concurrent
 * rings never collapse into one value. That matters twice over: the sleeper's futex_wait
 * compares against the value it read before sleeping, so every ring must leave a new value;
 * and a sleeper that reads a later ringer's value still synchronizes with the fence of
 * every earlier ringer, since only read-modify-writes continue a release sequence (C11
 * 5.1.2.4; channel_layout.h, "WAIT-ANY"). Relaxed: the ringer's cv_fence_full orders it. */
static inline void cv_bell_add_u32(cv_atomic_u32 *p) {
    atomic_fetch_add_explicit(p, 1, memory_order_relaxed);
}
static inline void cv_store_release_u32(cv_atomic_u32 *p, uint32_t v) {
    atomic_store_explicit(p, v, memory_order_release);
}
static inline uint32_t cv_load_acquire_u32(cv_atomic_u32 *p) {
    return atomic_load_explicit(p, memory_order_acquire);
}
static inline uint32_t cv_load_relaxed_u32(cv_atomic_u32 *p) {
    return atomic_load_explicit(p, memory_order_relaxed);
}
static inline void cv_store_relaxed_u32(cv_atomic_u32 *p, uint32_t v) {
    atomic_store_explicit(p, v, memory_order_relaxed);
}
static inline uint32_t cv_add_relaxed_u32(cv_atomic_u32 *p, uint32_t v) {
    return atomic_fetch_add_explicit(p, v, memory_order_relaxed);
}
/* Reference counts of process-private objects shared by several handles (a mapping):
 * taking a reference needs no ordering (the taker already holds one, or owns the object);
 * dropping one is acq_rel, so the thread that drops the last reference sees every other
 * thread's use of the object before it frees it (Boost's intrusive_ptr argument). */
static inline void cv_ref_acquire_u32(cv_atomic_u32 *p) {
    atomic_fetch_add_explicit(p, 1, memory_order_relaxed);
}
static inline uint32_t cv_ref_release_u32(cv_atomic_u32 *p) {
    return atomic_fetch_sub_explicit(p, 1, memory_order_acq_rel) - 1;
}
/* Takes a once-only flag of process-private state: returns the previous value and leaves 0,
 * so of several threads exactly one sees 1. */
static inline uint32_t cv_take_flag_u32(cv_atomic_u32 *p) {
    return atomic_exchange_explicit(p, 0, memory_order_acq_rel);
}
static inline int cv_cas_u64(cv_atomic_u64 *p, uint64_t *expected, uint64_t desired) {
    return atomic_compare_exchange_strong_explicit(p, expected, desired, memory_order_acq_rel,
                                                   memory_order_acquire);
}

/* A full (sequentially consistent) fence: orders this side's earlier stores before its
 * later loads. The wait/wake handshake needs exactly this, on both sides (Dekker): see
 * "WAITING WITHOUT LOST WAKE-UPS" in ring_layout.h and "WAIT-ANY" in channel_layout.h
 * (C++: atomic_thread_fence(memory_order_seq_cst)). */
static inline void cv_fence_full(void) { atomic_thread_fence(memory_order_seq_cst); }

/* Copies memory that another process may rewrite at any moment into private memory,
 * reading each word exactly once. A plain read (memcpy included) of shared memory may
 * legally be repeated by the compiler, which assumes nobody else writes it: clang -O2 did
 * read a descriptor's byte_length once for the copy it returned and once more for the
 * check, so a hostile peer could slip an unchecked value through. A compiler barrier after
 * a memcpy does not help (both reads happen before it); volatile word reads do: everything
 * after uses the copy, so what is validated is what is used. The copy may be torn between
 * words; the caller validates it. `bytes` is a multiple of 8, both pointers 8-aligned. */
static inline void cv_copy_from_peer(void *private_copy, const void *shared, size_t bytes) {
    const volatile uint64_t *from = shared;
    unsigned char *to = private_copy;
    for (size_t i = 0; i < bytes / 8; i++) {
        uint64_t word = from[i];
        memcpy(to + 8 * i, &word, 8);  /* as bytes: the copy is not a uint64_t array */
    }
}

/* A polite pause inside a spin loop. */
static inline void cv_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif /* CONVEYOR_ATOMICS_H */
