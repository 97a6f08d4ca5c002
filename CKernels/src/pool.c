/*
 * pool.c — slot pools as pool_layout.h specifies them: creation on a backing (shm.c),
 * attach and validation, slot addresses and frame descriptors.
 */
#include "internal.h"
#include "pool_layout.h"
#include "shm.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

struct conveyor_pool {
    cv_mapping *map;
    /* geometry, validated once and never re-read from shared memory (TRUST) */
    uint32_t slot_count;
    uint64_t slot_bytes;
    cv_slot_geometry g;
};

/* A handle on `map` with the validated geometry; takes the mapping's reference. */
static int cv_pool_open(cv_mapping *map, uint32_t slot_count, uint64_t slot_bytes,
                        const cv_slot_geometry *g, conveyor_pool **out) {
    conveyor_pool *pool = calloc(1, sizeof *pool);
    if (pool == NULL) return CONVEYOR_E_NO_MEMORY;
    *pool = (conveyor_pool){.map = map, .slot_count = slot_count, .slot_bytes = slot_bytes,
                            .g = *g};
    cv_mapping_ref(map);
    *out = pool;
    return CONVEYOR_OK;
}

/* Validates what another process put in the header (TRUST), then opens a handle. */
static int cv_pool_validate_and_open(cv_mapping *map, conveyor_pool **out) {
    cv_pool_header *hdr = map->base;
    if (map->bytes < CV_HEADER_BYTES) return CONVEYOR_E_TRUNCATED;
    if (cv_load_acquire_u64(&hdr->magic) != CV_POOL_MAGIC)  /* SYNC POINT P */
        return CONVEYOR_E_NOT_A_RING;
    cv_pool_header copy;  /* copied once: only the copy's geometry is used */
    cv_copy_from_peer(&copy, hdr, sizeof copy);
    if (copy.layout_version != CV_POOL_LAYOUT_VERSION) return CONVEYOR_E_VERSION;
    cv_slot_geometry g;
    if (copy.header_bytes != CV_HEADER_BYTES || copy.reserved != 0 ||
        !cv_slot_geometry_for(copy.slot_count, copy.slot_bytes, &g) ||
        copy.slot_stride != g.slot_stride || copy.descriptors_offset != g.descriptors_offset ||
        copy.slots_offset != g.slots_offset || copy.total_bytes != g.total_bytes)
        return CONVEYOR_E_CORRUPT;
    if (copy.total_bytes > map->bytes) return CONVEYOR_E_TRUNCATED;
    return cv_pool_open(map, copy.slot_count, copy.slot_bytes, &g, out);
}

int conveyor_pool_create(const conveyor_pool_config *config, conveyor_pool **pool) {
    if (config == NULL || pool == NULL) return CONVEYOR_E_NULL_POINTER;
    if (config->reserved != 0 || config->reserved2 != 0) return CONVEYOR_E_INVALID_ARGUMENT;
    if (config->slot_count < 1 || config->slot_count > CONVEYOR_POOL_MAX_SLOTS ||
        config->slot_bytes < 1 || config->slot_bytes > CONVEYOR_RING_MAX_SLOT_BYTES)
        return CONVEYOR_E_INVALID_ARGUMENT;
    cv_slot_geometry g;
    if (!cv_slot_geometry_for(config->slot_count, config->slot_bytes, &g))
        return CONVEYOR_E_OVERFLOW;  /* in range, but too large to map */
    cv_mapping *map;
    int status = cv_mapping_create(config->backing, config->name, "conveyor-pool",
                                   g.total_bytes, &map);
    if (status != CONVEYOR_OK) return status;
    cv_pool_header *hdr = map->base;
    hdr->layout_version = CV_POOL_LAYOUT_VERSION;
    hdr->header_bytes = CV_HEADER_BYTES;
    hdr->slot_count = config->slot_count;
    hdr->slot_bytes = config->slot_bytes;
    hdr->slot_stride = g.slot_stride;
    hdr->descriptors_offset = g.descriptors_offset;
    hdr->slots_offset = g.slots_offset;
    hdr->total_bytes = g.total_bytes;
    cv_store_release_u64(&hdr->magic, CV_POOL_MAGIC);          /* SYNC POINT P */
    status = cv_pool_open(map, config->slot_count, config->slot_bytes, &g, pool);
    if (status != CONVEYOR_OK) cv_mapping_discard(map);
    return status;
}

/* `name` set: a NAMED pool attached by name (POSIX shared memory has no seals). */
static int cv_pool_attach(int fd, const char *name, conveyor_pool **pool) {
    if (pool == NULL) return CONVEYOR_E_NULL_POINTER;
    if (fd < 0) return CONVEYOR_E_INVALID_ARGUMENT;
    cv_mapping *map;
    int status = cv_mapping_attach(fd, CV_POOL_MAGIC, name == NULL, name, &map);
    if (status != CONVEYOR_OK) return status;
    status = cv_pool_validate_and_open(map, pool);
    if (status != CONVEYOR_OK) cv_mapping_discard(map);
    return status;
}

int conveyor_pool_attach_fd(int fd, conveyor_pool **pool) { return cv_pool_attach(fd, NULL, pool); }

int conveyor_pool_attach_named(const char *name, conveyor_pool **pool) {
    if (pool == NULL || name == NULL) return CONVEYOR_E_NULL_POINTER;
    int fd;
    int status = cv_shm_open_existing(name, &fd);
    if (status != CONVEYOR_OK) return status;
    status = cv_pool_attach(fd, name, pool);
    int saved = errno;
    close(fd);
    errno = saved;
    return status;
}

void conveyor_pool_destroy(conveyor_pool *pool) {
    if (pool == NULL) return;
    cv_mapping_unref(pool->map);  /* the creator's last handle unlinks a NAMED pool's name */
    free(pool);
}

int conveyor_pool_remove_name(conveyor_pool *pool) {
    if (pool == NULL) return CONVEYOR_E_NULL_POINTER;
    return cv_mapping_remove_name(pool->map);
}

int conveyor_pool_fd(const conveyor_pool *pool) { return pool ? pool->map->fd : -1; }

const char *conveyor_pool_name(const conveyor_pool *pool) { return pool ? pool->map->name : NULL; }

uint32_t conveyor_pool_slot_count(const conveyor_pool *pool) { return pool ? pool->slot_count : 0; }

uint64_t conveyor_pool_slot_bytes(const conveyor_pool *pool) { return pool ? pool->slot_bytes : 0; }

uint64_t conveyor_pool_mapped_bytes(const conveyor_pool *pool) {
    return pool ? pool->map->bytes : 0;
}

/* Addresses from local geometry and a checked index only (TRUST). */
void *conveyor_pool_slot(const conveyor_pool *pool, uint32_t index) {
    if (pool == NULL || index >= pool->slot_count) return NULL;
    return (char *)pool->map->base + pool->g.slots_offset + (uint64_t)index * pool->g.slot_stride;
}

static cv_slot_desc *cv_pool_desc(const conveyor_pool *pool, uint32_t index) {
    return (cv_slot_desc *)((char *)pool->map->base + pool->g.descriptors_offset) + index;
}

int conveyor_pool_describe(conveyor_pool *pool, uint32_t index, const conveyor_frame_info *info) {
    if (pool == NULL || info == NULL) return CONVEYOR_E_NULL_POINTER;
    if (index >= pool->slot_count) return CONVEYOR_E_INVALID_ARGUMENT;
    int status = cv_check_frame(info, pool->slot_bytes);
    if (status != CONVEYOR_OK) return status;
    cv_desc_write(cv_pool_desc(pool, index), info);  /* published by the channel send */
    return CONVEYOR_OK;
}

int conveyor_pool_frame(const conveyor_pool *pool, uint32_t index, const void **data,
                        conveyor_frame_info *info) {
    if (pool == NULL || data == NULL || info == NULL) return CONVEYOR_E_NULL_POINTER;
    if (index >= pool->slot_count) return CONVEYOR_E_INVALID_ARGUMENT;
    /* Copied once, then checked: what is checked is what is returned (TRUST). */
    int status = cv_desc_read(cv_pool_desc(pool, index), pool->slot_bytes, info);
    if (status != CONVEYOR_OK) return status;
    *data = conveyor_pool_slot(pool, index);
    return CONVEYOR_OK;
}
