/*
 * ring_layout.h — the shared-memory layout of a ring and its wait/wake protocol.
 * This comment is the specification; ring.c implements it line by line.
 *
 * LAYOUT (all offsets from the start of the mapping; no pointers are ever stored)
 *
 *   0                    cv_ring_header (below), in a 4096-byte page:
 *                          lines 0-1  geometry, written once by the creator before the
 *                                     ring is published; read-only after
 *                          lines 2-3  producer, hot: head, counters   (prod_*)
 *                          lines 4-5  consumer, hot: tail, counters   (cons_*)
 *                          lines 6-7  producer, cold: sleeping flag, doorbell
 *                          lines 8-9  consumer, cold: sleeping flag, doorbell
 *                        Fields are named after their only writer, and each group has its
 *                        own pair of 64-byte lines (128 bytes: the adjacent-line
 *                        prefetcher pairs lines), so no line has two writers, and the flag
 *                        each side checks after every operation sits on a line that
 *                        changes only when its owner goes to sleep.
 *   descriptors_offset   slot_count cv_slot_desc of 64 bytes (slots.h): frame metadata,
 *                        written by the producer before it publishes the frame
 *   slots_offset         slot_count slots of slot_stride bytes (slot_bytes rounded up to
 *                        the page size), page-aligned
 *   total_bytes          end of mapping
 *
 * SEQUENCE NUMBERS
 *   prod_head = frames committed so far; cons_tail = frames released so far (64-bit, never
 *   wrap). Frame s lives in slot s % slot_count. Invariant: 0 <= head - tail <= slot_count.
 *   Each side keeps its own counter locally (it is the only writer) and a cached copy of
 *   the other's, re-read only when the cache says "full" or "empty" (SPSCQueue's trick:
 *   no shared-line traffic while there is room). A consumer may hold several received
 *   frames (its hold limit): it holds tail...tail+held-1, receives tail+held next, and
 *   releases tail first, so the shared counters mean the same with any limit.
 *
 * SYNC POINTS (release store -> acquire load pairs; atomics.h names the orderings)
 *   A  producer: descriptor + payload writes; cv_store_release(prod_head)
 *      consumer: cv_load_acquire(prod_head) sees it; then reads descriptor + payload
 *   B  consumer: its reads of the slot; cv_store_release(cons_tail)
 *      producer: cv_load_acquire(cons_tail) sees it; then overwrites the slot
 *   D  producer: all commits; cv_store_release(prod_closed = 1)
 *      consumer: cv_load_acquire(prod_closed) == 1, then reads prod_head: every committed
 *      frame is visible, so it drains them before reporting end of stream
 *
 * WAITING WITHOUT LOST WAKE-UPS (Drepper, "Futexes Are Tricky"; a Dekker handshake;
 * implemented once in wait.c, used by rings and channels)
 *   A side that finds nothing to do spins `spin` times re-checking (reading the clock
 *   every CV_SPINS_PER_CLOCK_READ spins, never before the first batch, so spinning counts
 *   against the timeout and a dead peer is noticed while spinning too), then sleeps on
 *   the doorbell the other side rings. Consumer (producer symmetric with cons_doorbell,
 *   prod_sleeping, cons_tail):
 *       bell = load(prod_doorbell)                  (1)
 *       cons_sleeping = 1
 *       FENCE                                       (C)
 *       if prod_head != tail or closed: sleeping = 0, go
 *       futex_wait(&prod_doorbell, bell, slice)     kernel: sleep only if still == bell
 *   Producer, after every commit or close:
 *       store_release(prod_head)                    (A)
 *       FENCE                                       (C)
 *       if cons_sleeping: prod_doorbell += 1; futex_wake(&prod_doorbell)
 *   Why no wake-up is lost: the two FENCEs are sequentially consistent, so of "consumer
 *   stores sleeping=1 then loads head" and "producer stores head then loads sleeping" at
 *   least one side sees the other's store. If the consumer sees the new head it does not
 *   sleep. Otherwise the producer sees sleeping=1 and bumps the doorbell after (1) was
 *   read, so futex_wait either finds the doorbell changed and returns at once, or is
 *   already queued when futex_wake runs. If (1) already read the bumped doorbell, the
 *   producer's fence synchronizes with the consumer's, so the head load sees the commit.
 *   A ring that never fills or empties never sets sleeping, so it makes no syscalls.
 *   Sleeps are sliced (CONVEYOR_RING_PEER_CHECK_NS) so a sleeper also notices a dead peer,
 *   which cannot ring anything. A poll (timeout 0) that finds nothing checks the peer at
 *   most once per slice, so a polling side notices a death as soon as a sleeping one.
 *   Deadlines saturate at INT64_MAX: a huge timeout waits, it never wraps to "expired".
 *
 * OWNERSHIP
 *   prod_owner / cons_owner: the handle owning each side, as its process id (high 32 bits,
 *   used to tell whether the owner is alive) and a nonce unique to the handle within its
 *   process (low 32 bits, never 0). Two reserved words have pid 0:
 *       CV_OWNER_NONE (0)  never claimed yet: the side is free and its peer waits for it
 *       CV_OWNER_LEFT (1)  handed back by conveyor_ring_destroy: free, and its peer treats
 *                          it as a dead owner (PEER_DEAD), since nobody will act on it
 *   The word changes only by compare-and-swap (cv_claim_owner in owner.c, which channels
 *   use for their ends too), to a handle's own word
 *   from one of:
 *       - NONE, LEFT, or the word of a dead process             takeover
 *       - the handle's own word before it ever claimed: left by
 *         a dead predecessor with our pid (reused) and nonce      takeover
 *       - the handle's own earlier word (we are the forked child
 *         that inherited it, the parent leaves it alone)         hand-over
 *   A second handle on a live side, even in the same process, is refused (BUSY). A HOLDER
 *   handle (conveyor_ring_create_holder, or attach as HOLDER) claims no side: it only keeps
 *   the mapping, from which conveyor_ring_open_side opens sides that claim as above.
 *   On takeover the handle reloads its position from the shared counter (prod_head or
 *   cons_tail) and forgets any loan or frame it thought it held, so a frame a dead
 *   consumer held is received again; then it clears its own side's sleeping flag
 *   (prod_sleeping or cons_sleeping: a previous owner killed while asleep left it at 1,
 *   and only its own side clears it, so the peer would otherwise make a futex wake after
 *   every commit or release; nobody of this side is inside a wait, since its previous
 *   owner is dead or LEFT), and then rings the peer's doorbell as after a commit or
 *   release, whose FENCE (C) orders the clear first (the previous owner may have died
 *   between its store and its doorbell, with the peer already asleep: found by
 *   Tests/Model/ring.pml). On hand-over it keeps
 *   its state, which the parent left exactly at the shared counter. A claim whose
 *   reloaded counters fail validation puts the previous word back: a failed claim claims
 *   nothing.
 *   Giving a side back: conveyor_ring_destroy swaps the handle's own word for LEFT, but
 *   only if no fork happened since the handle last claimed (a fork bumps an epoch in
 *   parent and child, cv_fork_epoch), because after a fork the side may be the child's
 *   to keep: a parent destroying its copies of handles its children use must not free
 *   their sides. Only the creating process unlinks a NAMED ring's name (shm.c, for every
 *   kind of object).
 *
 * TRUST
 *   Geometry is copied out once at attach (cv_copy_from_peer), validated and kept in the
 *   handle; the shared copy is never read again. head - tail is checked against
 *   slot_count on every load; a descriptor is copied out once (cv_copy_from_peer:
 *   volatile word reads, so the compiler cannot read shared memory twice) before it is
 *   validated, and only the validated copy is returned; slot addresses come from local
 *   geometry. The default spin an attach takes from the header is bounded by
 *   CV_MAX_PEER_SPIN (2^24 pauses, internal.h): a larger one, which would keep every
 *   untimed wait spinning for minutes, is taken as 2^24 (the creator's own handles keep
 *   its configured value; set_spin is local and unbounded).
 *   The liveness check loads the peer's owner word with acquire (as a channel's): a peer
 *   that closes and then destroys its handle (LEFT, by an acq_rel CAS) is seen in that
 *   order, so the loads of prod_closed and prod_head that follow a LEFT seen see the close
 *   and every commit before it (END_OF_STREAM, not PEER_DEAD, on weakly ordered CPUs).
 */
#ifndef CONVEYOR_RING_LAYOUT_H
#define CONVEYOR_RING_LAYOUT_H

#include "atomics.h"
#include "owner.h" /* CV_OWNER_NONE, CV_OWNER_LEFT */
#include "slots.h" /* cv_slot_desc, the slot geometry */

#include <stdint.h>

#define CV_RING_MAGIC 0x474E495259564E43ull /* "CNVYRING" in little-endian bytes */
#define CV_RING_LAYOUT_VERSION 2u /* 2: CV_OWNER_LEFT */
#define CV_RING_HEADER_BYTES CV_HEADER_BYTES

typedef struct cv_ring_header {
    /* line 0: geometry, immutable once published */
    cv_atomic_u64 magic; /* written last by the creator (release), read first (acquire) */
    uint32_t layout_version;
    uint32_t header_bytes;
    uint32_t slot_count;
    uint32_t default_spin;
    uint64_t slot_bytes;
    uint64_t slot_stride;
    uint64_t descriptors_offset;
    uint64_t slots_offset;
    uint64_t total_bytes;
    uint8_t pad0[128 - 64];

    /* lines 2-3: written only by the producer, on every commit */
    cv_atomic_u64 prod_head;
    cv_atomic_u32 prod_closed;
    uint32_t prod_reserved;
    cv_atomic_u64 prod_owner;    /* pid << 32 | handle nonce, or CV_OWNER_NONE/LEFT */
    cv_atomic_u64 prod_frames;
    cv_atomic_u64 prod_bytes;
    cv_atomic_u64 prod_peak;
    uint8_t pad1[128 - 48];

    /* lines 4-5: written only by the consumer, on every release */
    cv_atomic_u64 cons_tail;
    cv_atomic_u64 cons_owner;    /* pid << 32 | handle nonce, or CV_OWNER_NONE/LEFT */
    cv_atomic_u64 cons_frames;
    uint8_t pad2[128 - 24];

    /* lines 6-7: written only by the producer, and only when it sleeps or wakes the
     * consumer. Kept off the hot lines so that the consumer's check of prod_sleeping on
     * every release reads a line that is almost never invalidated. */
    cv_atomic_u32 prod_sleeping; /* 1 while the producer may be asleep on cons_doorbell */
    cv_atomic_u32 prod_doorbell; /* the consumer sleeps on this; the producer rings it */
    cv_atomic_u64 prod_waits;
    cv_atomic_u64 prod_wakes;
    uint8_t pad3[128 - 24];

    /* lines 8-9: the consumer's counterpart of lines 6-7 */
    cv_atomic_u32 cons_sleeping; /* 1 while the consumer may be asleep on prod_doorbell */
    cv_atomic_u32 cons_doorbell; /* the producer sleeps on this; the consumer rings it */
    cv_atomic_u64 cons_waits;
    cv_atomic_u64 cons_wakes;
    uint8_t pad4[128 - 24];
} cv_ring_header;

_Static_assert(sizeof(cv_ring_header) == 640, "ring header layout changed: bump the version");
_Static_assert(sizeof(cv_ring_header) <= CV_RING_HEADER_BYTES, "header must fit its page");

_Static_assert(sizeof(cv_ring_header) % 8 == 0, "cv_copy_from_peer copies whole 64-bit words");

#endif /* CONVEYOR_RING_LAYOUT_H */
