/*
 * pool_layout.h — the shared-memory layout of a slot pool. This comment is the
 * specification; pool.c implements it line by line.
 *
 * LAYOUT (all offsets from the start of the mapping; no pointers are ever stored)
 *
 *   0                    cv_pool_header (below), in a 4096-byte page: the geometry, written
 *                        once by the creator before the pool is published (magic last,
 *                        SYNC POINT P), read-only after
 *   descriptors_offset   slot_count cv_slot_desc of 64 bytes (slots.h): what each slot
 *                        holds, written by whoever holds the slot's number
 *   slots_offset         slot_count slots of slot_stride bytes (slot_bytes rounded up to the
 *                        page size), page-aligned
 *   total_bytes          end of mapping
 *   The geometry is a ring's (cv_slot_geometry_for, slots.h): the same formulas, limits and
 *   frame descriptor, so a frame is the same thing in a ring slot and in a pool slot.
 *
 * SYNC POINTS
 *   P  creator: geometry writes; cv_store_release(magic)
 *      attacher: cv_load_acquire(magic) == CV_POOL_MAGIC, then copies the geometry out
 *   The pool has no protocol of its own. Who may touch a slot is decided by who holds its
 *   number, and numbers travel on channels: a sender's descriptor and payload writes are
 *   published to the receiver by the channel's SYNC POINT A (store_release of the lane's
 *   head / load_acquire of it), and the receiver's reads of the slot are ordered before the
 *   number's return by the return channel's SYNC POINT A the other way. Nothing in the pool
 *   itself is atomic, nothing waits, and no side is owned.
 *
 * OWNERSHIP
 *   None in shared memory: a pool handle claims nothing and hands nothing back. A NAMED
 *   pool's name is unlinked once, by the creating process only (shm.c), when its handle is
 *   destroyed or at conveyor_pool_remove_name.
 *
 * TRUST
 *   Another process may be buggy or hostile, and any process that holds the pool may
 *   rewrite any byte of it at any time. Geometry is copied out once at attach
 *   (cv_copy_from_peer), recomputed from (slot_count, slot_bytes), required to agree and to
 *   fit the file; the handle keeps its own copy and never reads the shared one again, so
 *   slot and descriptor addresses come from local geometry and an index below slot_count:
 *   no value in shared memory can make us address outside the mapping. A descriptor is
 *   copied out once (cv_desc_read) and the copy checked (known dtype, rank <= 4, shape
 *   agrees with byte_length, byte_length <= slot_bytes) before it is returned: a rewritten
 *   descriptor yields CONVEYOR_E_CORRUPT, never a length past the slot. A MEMFD pool is
 *   sealed at its size and attach_fd refuses unsealed fds; a NAMED pool cannot be sealed
 *   (as for rings: trust the processes of that user not to truncate it).
 */
#ifndef CONVEYOR_POOL_LAYOUT_H
#define CONVEYOR_POOL_LAYOUT_H

#include "atomics.h"
#include "slots.h"

#include <stdint.h>

#define CV_POOL_MAGIC 0x4C4F4F5059564E43ull /* "CNVYPOOL" in little-endian bytes */
#define CV_POOL_LAYOUT_VERSION 1u

typedef struct cv_pool_header {
    /* lines 0-1: geometry, immutable once published */
    cv_atomic_u64 magic; /* written last by the creator (release), read first (acquire) */
    uint32_t layout_version;
    uint32_t header_bytes;
    uint32_t slot_count;
    uint32_t reserved;
    uint64_t slot_bytes;
    uint64_t slot_stride;
    uint64_t descriptors_offset;
    uint64_t slots_offset;
    uint64_t total_bytes;
    uint8_t pad0[128 - 64];
} cv_pool_header;

_Static_assert(sizeof(cv_pool_header) == 128, "pool header layout changed: bump the version");
_Static_assert(sizeof(cv_pool_header) <= CV_HEADER_BYTES, "header must fit its page");
_Static_assert(sizeof(cv_pool_header) % 8 == 0, "cv_copy_from_peer copies whole 64-bit words");

#endif /* CONVEYOR_POOL_LAYOUT_H */
