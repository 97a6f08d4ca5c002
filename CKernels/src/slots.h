/*
 * slots.h — a region of described slots, as rings and pools lay it out: one 64-byte frame
 * descriptor per slot after a header page, then the slots, each page-aligned. The geometry,
 * the descriptor and the one frame check live here so that a ring's slots and a pool's
 * slots are the same thing, checked the same way. Not API.
 */
#ifndef CONVEYOR_SLOTS_H
#define CONVEYOR_SLOTS_H

#include "conveyor.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The header page in front of the descriptors (a ring's, a pool's, a channel's). */
#define CV_HEADER_BYTES 4096u
#define CV_RING_DESC_BYTES 64u

/* Frame metadata of one slot, written by whoever holds the slot before it publishes the
 * slot (a ring's SYNC POINT A, a channel send's for a pool). Begins with the fields of a
 * conveyor_frame_info at the same offsets (checked in slots.c), so a validated copy is one. */
typedef struct cv_slot_desc {
    uint32_t dtype;
    uint32_t rank;
    uint64_t shape[4];
    uint64_t byte_length;
    uint64_t tag;
    uint8_t pad[CV_RING_DESC_BYTES - 56];
} cv_slot_desc;

_Static_assert(sizeof(cv_slot_desc) == CV_RING_DESC_BYTES, "descriptor layout changed");
_Static_assert(sizeof(cv_slot_desc) % 8 == 0, "cv_copy_from_peer copies whole 64-bit words");

/* Where everything of a slot region is, computed from (slot_count, slot_bytes) alone: the
 * creator writes it, an attacher recomputes it and requires the shared copy to agree. */
typedef struct cv_slot_geometry {
    uint64_t slot_stride, descriptors_offset, slots_offset, total_bytes;
} cv_slot_geometry;

/* The geometry of slot_count slots of slot_bytes each (1...65536, 1...2^40); false if out
 * of range or too large to map. */
bool cv_slot_geometry_for(uint32_t slot_count, uint64_t slot_bytes, cv_slot_geometry *g);

/* A frame description is consistent: known dtype, rank <= 4, shape * size == length, and
 * the length fits slot_bytes. CONVEYOR_E_INVALID_ARGUMENT or CONVEYOR_E_TOO_LARGE if not. */
int cv_check_frame(const conveyor_frame_info *info, uint64_t slot_bytes);

/* Writes a (checked) frame description into a shared descriptor. */
void cv_desc_write(cv_slot_desc *desc, const conveyor_frame_info *info);

/* Copies a shared descriptor out once, then checks the copy: CONVEYOR_OK and *info is
 * what was checked, or CONVEYOR_E_CORRUPT (the writer's process may be hostile). */
int cv_desc_read(const cv_slot_desc *desc, uint64_t slot_bytes, conveyor_frame_info *info);

/* The system page size (4096 if sysconf cannot tell), and value rounded up to a multiple. */
uint64_t cv_page_size(void);
static inline uint64_t cv_round_up(uint64_t value, uint64_t multiple) {
    return (value + multiple - 1) / multiple * multiple;
}

#endif /* CONVEYOR_SLOTS_H */
