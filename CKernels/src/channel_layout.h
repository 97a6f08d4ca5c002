/*
 * channel_layout.h — the shared-memory layout of an index channel and its protocol: one
 * receiver, `lanes` senders, each lane a single-producer/single-consumer queue of 64-bit
 * words, and one receiver doorbell that every lane's sender rings (wait-any). This comment
 * is the specification; channel.c (protocol) and channel_open.c (creation, attach,
 * ownership) implement it line by line. It reuses the ring's pieces: owner words (owner.c,
 * OWNERSHIP in ring_layout.h), the wait loop (wait.c, "WAITING WITHOUT LOST WAKE-UPS" in
 * ring_layout.h) and the backings (shm.c).
 *
 * LAYOUT (all offsets from the start of the mapping; no pointers are ever stored)
 *
 *   0              cv_channel_header (below), in a 4096-byte page:
 *                    lines 0-1  geometry, written once by the creator before the channel
 *                               is published (magic last); read-only after
 *                    lines 2-3  receiver, cold: owner, sleeping flag, waits (recv_*); written
 *                               only by the receiver, and only when it claims or sleeps
 *                    lines 4-5  the receiver's doorbell: the receiver sleeps on it, and ANY
 *                               sender rings it (an atomic add), only when the receiver
 *                               sleeps
 *   lanes_offset   `lanes` cv_channel_lane blocks of 384 bytes, one per lane:
 *                    lines 0-1  sender, hot: head, closed, owner, words sent, wakes it
 *                               issued (send_*); written only by the lane's sender
 *                    lines 2-3  receiver, hot: tail, words received, the lane's doorbell
 *                               (the sender sleeps on it, the receiver rings it), wakes
 *                               (take_*); written only by the receiver
 *                    lines 4-5  sender, cold: sleeping flag, waits (send_sleeping,
 *                               send_waits); written only by the sender, when it sleeps
 *                  As for rings, each group has its own pair of 64-byte lines (the
 *                  adjacent-line prefetcher pairs lines): no line has two writers except the
 *                  receiver's doorbell, which has all the senders and is touched only while
 *                  the receiver sleeps; no two senders ever write the same line, and the
 *                  flag each side checks after every operation (recv_sleeping,
 *                  send_sleeping) sits on a line that changes only when its owner sleeps.
 *   words_offset   `lanes` word arrays of word_stride bytes (capacity * 8 rounded up to 128,
 *                  so two lanes' words never share a line): lane l's word s lives at
 *                  words_offset + l * word_stride + (s % capacity) * 8
 *   total_bytes    end of mapping (rounded up to the page size)
 *
 * SEQUENCE NUMBERS (per lane, as a ring's)
 *   send_head = words sent on the lane so far; take_tail = words received from it (64-bit,
 *   never wrap). Invariant: 0 <= head - tail <= capacity, checked on every load of either
 *   (else CONVEYOR_E_CORRUPT). Each side keeps its own counter locally (it is the only
 *   writer) and a cached copy of the other's, re-read only when the cache says "full"
 *   (sender) or "empty" (receiver): no shared-line traffic while there is room.
 *
 * SYNC POINTS (release store -> acquire load pairs; atomics.h names the orderings)
 *   A  sender: the word store (and, for a pool, the slot's payload and descriptor);
 *      cv_store_release(send_head)
 *      receiver: cv_load_acquire(send_head) sees it; then reads the word (and the slot)
 *   B  receiver: its read of the word; cv_store_release(take_tail)
 *      sender: cv_load_acquire(take_tail) sees it; then overwrites the word
 *   C  the full fences of the wait/wake handshake (below)
 *   D  sender: all sends; cv_store_release(send_closed = 1)
 *      receiver: cv_load_acquire(send_closed) == 1, then reads send_head: every word sent
 *      is visible, so the lane is drained before it reports end of stream
 *   G  creator: geometry; cv_store_release(magic); attacher: cv_load_acquire(magic)
 *
 * WAITING (the ring's handshake, wait.c; spin first, then futex sleeps sliced by
 * CONVEYOR_RING_PEER_CHECK_NS so a dead peer is noticed; a poll checks liveness at most
 * once per slice)
 *   Receiver, receive(lane) or receive_any (one waiter, one futex word for all lanes):
 *       bell = load(recv_doorbell)                      (1)
 *       recv_sleeping = 1
 *       FENCE                                           (C)
 *       check the lane (receive) or every lane (receive_any): a word, or an end
 *       futex_wait(&recv_doorbell, bell, slice)
 *   Sender of lane l, after every send or close:
 *       store_release(lane[l].send_head or send_closed)  (A or D)
 *       FENCE                                           (C)
 *       if recv_sleeping: atomic_add(recv_doorbell, 1); futex_wake(&recv_doorbell)
 *   Backpressure is the ring's producer wait, per lane: the sender sleeps on its lane's
 *   take_doorbell with send_sleeping, and the receiver after every receive from the lane
 *   stores take_tail (B), FENCEs (C) and rings take_doorbell if send_sleeping.
 *
 * WAIT-ANY: WHY NO WAKE-UP IS LOST WHICHEVER LANE FEEDS
 *   The ring's Dekker argument holds for each sender separately: of "receiver stores
 *   sleeping=1, FENCE, loads lane l's head" and "sender l stores head, FENCE, loads
 *   sleeping", the FENCEs are sequentially consistent, so at least one side sees the other's
 *   store. If the receiver sees the new head of any lane it does not sleep. Otherwise every
 *   sender whose word it missed sees sleeping=1 and rings. A ring is an atomic
 *   read-modify-write (cv_bell_add_u32), so concurrent rings never collapse: each leaves a
 *   value the doorbell never had since (1) was read, unless (1) already read it. Then
 *   either futex_wait finds the doorbell != bell and returns at once, or the receiver is
 *   already queued when that sender's futex_wake runs. If (1) already read a value written
 *   by a ring of sender l or by any ring after it (all rings are read-modify-writes, so they
 *   continue the release sequence), sender l's FENCE synchronizes with the receiver's, and
 *   the receiver's check sees lane l's head. Several senders only add rings; none can
 *   cancel another's. Spurious wake-ups (a ring for a lane receive(lane) is not waiting on)
 *   only cost a re-check.
 *
 * RECEIVE-ANY ORDER AND ENDS
 *   receive_any tries lanes round-robin from the lane after the one it served last; a lane
 *   whose head != tail is ready. A lane closed (D) and drained is done for good (kept in the
 *   handle). One bad lane never blocks the others:
 *     - CORRUPT: a lane whose indices are impossible is reported only when no lane has a
 *       word (a ready lane is served first), once, with *lane naming it; from then on this
 *       handle skips it for good (the `bad` mask, next to `done`). END_OF_STREAM when every
 *       lane is done or skipped as corrupt. A receiver takeover clears both masks.
 *     - PEER_DEAD, with the lane named, when no lane has a word and a lane's sender is gone
 *       (CV_OWNER_LEFT, or its process dead) without having closed: the liveness check, at
 *       most once per slice, loads the owner (acquire) and then send_closed, so a sender
 *       that closed and then left is seen closed. It is reported once per owner word: the
 *       handle remembers the word it reported for the lane (dead_owner) and does not report
 *       the lane again until its owner word changes or a word arrives on it (a new sender
 *       took it over). The lane is still waited for and served meanwhile, and so are the
 *       others. When no lane can deliver any more (every lane is done, skipped, or gone
 *       and reported), the first gone lane is reported again, at each liveness check: a
 *       receiver whose senders are all dead must never wait for good.
 *   Lanes never claimed (CV_OWNER_NONE) are waited for. receive(lane) reports the same for
 *   its one lane, every time (its caller names the lane). A sender reports PEER_DEAD when
 *   the receiver is gone (checked within a slice while waiting on a full lane, and every
 *   CV_PEER_CHECK_EVERY sends otherwise). A CORRUPT from the claim receive_any may make
 *   (a takeover after a fork) names the first impossible lane in *lane too.
 *
 * OWNERSHIP (owner words as OWNERSHIP in ring_layout.h: pid << 32 | nonce, CV_OWNER_NONE,
 * CV_OWNER_LEFT, claims by compare-and-swap, hand-over to a forked child, the fork epoch)
 *   recv_owner: the receiver; lane[l].send_owner: lane l's sender. A HOLDER claims nothing.
 *   Sender takeover: reload head and tail of the lane (checked), resume at head, clear the
 *   lane's send_sleeping, and ring the receiver's doorbell as after a send (the previous
 *   sender may have died between its head store and its ring, with the receiver asleep).
 *   Receiver takeover: reload every lane's head and tail (all checked before any is used),
 *   forget the done and corrupt lanes and the reported dead owners, start round-robin at
 *   lane 0, clear recv_sleeping, and ring every lane's take_doorbell as after a receive.
 *   The clear: a previous owner killed while asleep left its flag at 1, and only its own
 *   side clears it, so without it the peer would make a futex wake after every operation;
 *   nobody of the taking side is inside a wait (its previous owner is dead or LEFT), and
 *   the ring's FENCE (C) orders the clear before the load of the peer's flag. A word
 *   is the receiver's once take_tail passed it: a receiver that dies loses the words it
 *   received, never one it had not. A failed claim puts the previous word back.
 *   Destroying an end hands it back (LEFT) unless a fork happened since it claimed.
 *
 * TRUST
 *   Geometry is copied out once at attach (cv_copy_from_peer), recomputed from (lanes,
 *   capacity), required to agree and to fit the file, and kept in the handle; the shared
 *   copy is never read again. Lane and word addresses come from local geometry, a lane
 *   index below `lanes` and a sequence taken modulo capacity, so no shared value can make
 *   us address outside the mapping. head - tail is checked against capacity on every load.
 *   A word is read once (an atomic load) and returned as it is: what it means (a slot
 *   number) is checked by its user. The default spin an attach takes from the header is
 *   bounded by CV_MAX_PEER_SPIN (2^24 pauses), as a ring's (TRUST in ring_layout.h).
 */
#ifndef CONVEYOR_CHANNEL_LAYOUT_H
#define CONVEYOR_CHANNEL_LAYOUT_H

#include "atomics.h"
#include "owner.h"
#include "slots.h"

#include <stdint.h>

#define CV_CHANNEL_MAGIC 0x4C4E414859564E43ull /* "CNVYCHNL" in little-endian bytes */
#define CV_CHANNEL_LAYOUT_VERSION 1u
#define CV_CHANNEL_LANE_BYTES 384u
#define CV_CHANNEL_WORD_ALIGN 128u

typedef struct cv_channel_header {
    /* lines 0-1: geometry, immutable once published */
    cv_atomic_u64 magic; /* written last by the creator (release), read first (acquire) */
    uint32_t layout_version;
    uint32_t header_bytes;
    uint32_t lanes;
    uint32_t capacity;
    uint32_t default_spin;
    uint32_t reserved;
    uint64_t lanes_offset;
    uint64_t words_offset;
    uint64_t word_stride;
    uint64_t total_bytes;
    uint8_t pad0[128 - 64];

    /* lines 2-3: written only by the receiver, when it claims or sleeps. Every sender reads
     * recv_sleeping after every send: this line almost never changes. */
    cv_atomic_u64 recv_owner;    /* pid << 32 | handle nonce, or CV_OWNER_NONE/LEFT */
    cv_atomic_u32 recv_sleeping; /* 1 while the receiver may be asleep on recv_doorbell */
    uint32_t recv_reserved;
    cv_atomic_u64 recv_waits;
    uint8_t pad1[128 - 24];

    /* lines 4-5: the receiver sleeps on this; every sender rings it (cv_bell_add_u32) */
    cv_atomic_u32 recv_doorbell;
    uint8_t pad2[128 - 4];
} cv_channel_header;

typedef struct cv_channel_lane {
    /* lines 0-1: written only by the lane's sender, on every send */
    cv_atomic_u64 send_head;
    cv_atomic_u32 send_closed;
    uint32_t send_reserved;
    cv_atomic_u64 send_owner;    /* pid << 32 | handle nonce, or CV_OWNER_NONE/LEFT */
    cv_atomic_u64 send_words;
    cv_atomic_u64 send_wakes;    /* futex wakes this sender issued to the receiver */
    uint8_t pad0[128 - 40];

    /* lines 2-3: written only by the receiver, on every receive from this lane */
    cv_atomic_u64 take_tail;
    cv_atomic_u64 take_words;
    cv_atomic_u64 take_wakes;    /* futex wakes the receiver issued to this sender */
    cv_atomic_u32 take_doorbell; /* the sender sleeps on this; the receiver rings it */
    uint32_t take_reserved;
    uint8_t pad1[128 - 32];

    /* lines 4-5: written only by the lane's sender, and only when it sleeps */
    cv_atomic_u32 send_sleeping; /* 1 while the sender may be asleep on take_doorbell */
    uint32_t send_reserved2;
    cv_atomic_u64 send_waits;
    uint8_t pad2[128 - 16];
} cv_channel_lane;

_Static_assert(sizeof(cv_channel_header) == 384, "channel header changed: bump the version");
_Static_assert(sizeof(cv_channel_header) <= CV_HEADER_BYTES, "header must fit its page");
_Static_assert(sizeof(cv_channel_header) % 8 == 0, "cv_copy_from_peer copies 64-bit words");
_Static_assert(sizeof(cv_channel_lane) == CV_CHANNEL_LANE_BYTES, "lane layout changed");

#endif /* CONVEYOR_CHANNEL_LAYOUT_H */
