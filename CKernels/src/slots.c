/*
 * slots.c — geometry, descriptors and the frame check of a slot region (slots.h), shared by
 * rings and pools.
 */
#include "internal.h"
#include "atomics.h"
#include "slots.h"

#include <string.h>
#include <unistd.h>

uint64_t cv_page_size(void) {
    long page = sysconf(_SC_PAGESIZE);
    return page > 0 ? (uint64_t)page : 4096;
}

bool cv_slot_geometry_for(uint32_t slot_count, uint64_t slot_bytes, cv_slot_geometry *g) {
    if (slot_count < 1 || slot_count > CONVEYOR_RING_MAX_SLOTS) return false;
    if (slot_bytes < 1 || slot_bytes > CONVEYOR_RING_MAX_SLOT_BYTES) return false;
    uint64_t page = cv_page_size();
    g->slot_stride = cv_round_up(slot_bytes, page);
    g->descriptors_offset = CV_HEADER_BYTES;
    g->slots_offset = cv_round_up(CV_HEADER_BYTES + (uint64_t)slot_count * CV_RING_DESC_BYTES, page);
    /* At most 2^16 slots of 2^40 bytes: no overflow in 64 bits. */
    g->total_bytes = g->slots_offset + (uint64_t)slot_count * g->slot_stride;
    return g->total_bytes <= (uint64_t)PTRDIFF_MAX && g->total_bytes <= (uint64_t)INT64_MAX;
}

/* A descriptor is copied straight into a conveyor_frame_info: the same fields at the same
 * offsets, the descriptor's padding after them. */
_Static_assert(offsetof(cv_slot_desc, rank) == offsetof(conveyor_frame_info, rank) &&
                   offsetof(cv_slot_desc, shape) == offsetof(conveyor_frame_info, shape) &&
                   offsetof(cv_slot_desc, byte_length) == offsetof(conveyor_frame_info, byte_length) &&
                   offsetof(cv_slot_desc, tag) == offsetof(conveyor_frame_info, tag) &&
                   sizeof(conveyor_frame_info) == offsetof(cv_slot_desc, pad) &&
                   sizeof(conveyor_frame_info) % 8 == 0,
               "a slot descriptor must begin with a conveyor_frame_info");

static uint64_t cv_dtype_size(uint32_t dtype) {
    switch (dtype) {
    case CONVEYOR_DTYPE_BYTES: return 1;
    case CONVEYOR_DTYPE_F32: return 4;
    case CONVEYOR_DTYPE_F64: return 8;
    default: return 0;
    }
}

int cv_check_frame(const conveyor_frame_info *info, uint64_t slot_bytes) {
    uint64_t bytes = cv_dtype_size(info->dtype);
    if (bytes == 0 || info->rank > CONVEYOR_FRAME_MAX_RANK) return CONVEYOR_E_INVALID_ARGUMENT;
    bool empty = false;  /* a zero extent makes the product 0, however large the others */
    for (uint32_t d = 0; d < info->rank; d++) empty = empty || info->shape[d] == 0;
    for (uint32_t d = 0; d < info->rank && !empty; d++) {
        if (bytes > UINT64_MAX / info->shape[d]) return CONVEYOR_E_TOO_LARGE;
        bytes *= info->shape[d];
    }
    if (empty) bytes = 0;
    if (bytes != info->byte_length) return CONVEYOR_E_INVALID_ARGUMENT;
    return info->byte_length <= slot_bytes ? CONVEYOR_OK : CONVEYOR_E_TOO_LARGE;
}

void cv_desc_write(cv_slot_desc *desc, const conveyor_frame_info *info) {
    desc->dtype = info->dtype;
    desc->rank = info->rank;
    memcpy(desc->shape, info->shape, sizeof desc->shape);
    desc->byte_length = info->byte_length;
    desc->tag = info->tag;
}

int cv_desc_read(const cv_slot_desc *desc, uint64_t slot_bytes, conveyor_frame_info *info) {
    /* Copy out before checking: the writer's process may change the shared copy at any
     * time, and only the checked copy is used. */
    conveyor_frame_info copy;
    cv_copy_from_peer(&copy, desc, sizeof copy);
    if (cv_check_frame(&copy, slot_bytes) != CONVEYOR_OK) return CONVEYOR_E_CORRUPT;
    *info = copy;
    return CONVEYOR_OK;
}
