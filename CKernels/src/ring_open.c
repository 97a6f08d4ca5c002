/*
 * ring_open.c — a ring's life outside its protocol: creating it on a backing (shm.c),
 * attaching to one, validating what another process put in the header, opening sides,
 * names, destroying handles. The protocol is ring.c's.
 */
#include "ring_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* A new handle of `role` on `map`, with the validated geometry of `geometry`: it claims its
 * side (a HOLDER claims none) and then takes a reference on the mapping. */
static int cv_open_on(cv_mapping *map, const conveyor_ring *geometry, int role,
                      conveyor_ring **out) {
    conveyor_ring *ring = calloc(1, sizeof *ring);
    if (ring == NULL) return CONVEYOR_E_NO_MEMORY;
    *ring = (conveyor_ring){
        .map = map, .hdr = map->base, .role = role, .slot_count = geometry->slot_count,
        .slot_bytes = geometry->slot_bytes, .slot_stride = geometry->slot_stride,
        .descriptors_offset = geometry->descriptors_offset,
        .slots_offset = geometry->slots_offset, .spin = geometry->default_spin,
        .default_spin = geometry->default_spin, .claim = {.nonce = cv_next_nonce()},
        .hold_limit = 1,
    };
    /* Claiming loads the position where the previous owner of this side stopped (a
     * takeover resumes there) and claims nothing if the counters are impossible. */
    int status = role == CONVEYOR_RING_HOLDER ? CONVEYOR_OK : cv_ring_claim_side(ring);
    if (status != CONVEYOR_OK) {
        free(ring);
        return status;
    }
    cv_mapping_ref(map);
    *out = ring;
    return CONVEYOR_OK;
}

int cv_ring_validate_and_open(cv_mapping *map, int role, const uint32_t *own_spin,
                              conveyor_ring **out) {
    cv_ring_header *hdr = map->base;
    if (map->bytes < CV_RING_HEADER_BYTES) return CONVEYOR_E_TRUNCATED;
    if (cv_load_acquire_u64(&hdr->magic) != CV_RING_MAGIC)
        return CONVEYOR_E_NOT_A_RING;
    /* Copy the header out once; from here on only the copy's geometry is used. */
    cv_ring_header copy;
    cv_copy_from_peer(&copy, hdr, sizeof copy);
    if (copy.layout_version != CV_RING_LAYOUT_VERSION) return CONVEYOR_E_VERSION;
    cv_slot_geometry g;
    if (copy.header_bytes != CV_RING_HEADER_BYTES ||
        !cv_slot_geometry_for(copy.slot_count, copy.slot_bytes, &g) ||
        copy.slot_stride != g.slot_stride || copy.descriptors_offset != g.descriptors_offset ||
        copy.slots_offset != g.slots_offset || copy.total_bytes != g.total_bytes)
        return CONVEYOR_E_CORRUPT;
    if (copy.total_bytes > map->bytes) return CONVEYOR_E_TRUNCATED;

    conveyor_ring geometry = {
        .slot_count = copy.slot_count, .slot_bytes = copy.slot_bytes,
        .slot_stride = g.slot_stride, .descriptors_offset = g.descriptors_offset,
        .slots_offset = g.slots_offset,
        /* the creator's own value, or the shared one bounded (TRUST in ring_layout.h) */
        .default_spin = own_spin != NULL ? *own_spin : cv_peer_spin(copy.default_spin),
    };
    return cv_open_on(map, &geometry, role, out);
}

int conveyor_ring_open_side(const conveyor_ring *ring, int role, conveyor_ring **side) {
    if (ring == NULL || side == NULL) return CONVEYOR_E_NULL_POINTER;
    if (role != CONVEYOR_RING_PRODUCER && role != CONVEYOR_RING_CONSUMER)
        return CONVEYOR_E_INVALID_ARGUMENT;
    return cv_open_on(ring->map, ring, role, side);
}

/* Writes the geometry of a fresh (zero-filled) mapping, magic last. */
static void cv_ring_format(cv_ring_header *hdr, const conveyor_ring_config *config,
                           const cv_slot_geometry *g) {
    hdr->layout_version = CV_RING_LAYOUT_VERSION;
    hdr->header_bytes = CV_RING_HEADER_BYTES;
    hdr->slot_count = config->slot_count;
    hdr->default_spin = config->spin;
    hdr->slot_bytes = config->slot_bytes;
    hdr->slot_stride = g->slot_stride;
    hdr->descriptors_offset = g->descriptors_offset;
    hdr->slots_offset = g->slots_offset;
    hdr->total_bytes = g->total_bytes;
    /* An attacher that sees the magic (acquire) sees all of the above. */
    cv_store_release_u64(&hdr->magic, CV_RING_MAGIC);
}

/* Creates, maps and formats the memory of a new ring; no handle refers to it yet. */
static int cv_ring_new_mapping(const conveyor_ring_config *config, cv_mapping **out) {
    cv_slot_geometry g;
    if (config->reserved != 0 || !cv_slot_geometry_for(config->slot_count, config->slot_bytes, &g))
        return CONVEYOR_E_INVALID_ARGUMENT;
    int status = cv_mapping_create(config->backing, config->name, "conveyor-ring", g.total_bytes, out);
    if (status == CONVEYOR_OK) cv_ring_format((*out)->base, config, &g);
    return status;
}

int conveyor_ring_create(const conveyor_ring_config *config, conveyor_ring **producer,
                         conveyor_ring **consumer) {
    if (config == NULL || (producer == NULL && consumer == NULL)) return CONVEYOR_E_NULL_POINTER;
    cv_mapping *map;
    int status = cv_ring_new_mapping(config, &map);
    if (status != CONVEYOR_OK) return status;
    conveyor_ring *p = NULL, *c = NULL;
    if (producer != NULL) status = cv_ring_validate_and_open(map, CONVEYOR_RING_PRODUCER, &config->spin, &p);
    if (status == CONVEYOR_OK && consumer != NULL)
        status = cv_ring_validate_and_open(map, CONVEYOR_RING_CONSUMER, &config->spin, &c);
    if (status != CONVEYOR_OK) {
        if (p != NULL) conveyor_ring_destroy(p);
        else cv_mapping_discard(map);  /* no handle refers to the mapping yet */
        return status;
    }
    if (producer != NULL) *producer = p;
    if (consumer != NULL) *consumer = c;
    return CONVEYOR_OK;
}

int conveyor_ring_create_holder(const conveyor_ring_config *config, conveyor_ring **holder) {
    if (config == NULL || holder == NULL) return CONVEYOR_E_NULL_POINTER;
    cv_mapping *map;
    int status = cv_ring_new_mapping(config, &map);
    if (status != CONVEYOR_OK) return status;
    status = cv_ring_validate_and_open(map, CONVEYOR_RING_HOLDER, &config->spin, holder);
    if (status != CONVEYOR_OK) cv_mapping_discard(map);
    return status;
}

/* Maps the whole file (its size bounds every access), then validates from the mapping.
 * `name`: set for a NAMED ring attached by name, which POSIX shared memory cannot seal
 * (see "Trust" in conveyor.h); every other fd must be sealed against resizing. */
static int cv_ring_attach(int fd, int role, const char *name, conveyor_ring **ring) {
    if (ring == NULL) return CONVEYOR_E_NULL_POINTER;
    if (fd < 0 || role < CONVEYOR_RING_PRODUCER || role > CONVEYOR_RING_HOLDER)
        return CONVEYOR_E_INVALID_ARGUMENT;
    cv_mapping *map;
    int status = cv_mapping_attach(fd, CV_RING_MAGIC, name == NULL, name, &map);
    if (status != CONVEYOR_OK) return status;
    status = cv_ring_validate_and_open(map, role, NULL, ring);
    if (status != CONVEYOR_OK) cv_mapping_discard(map);
    return status;
}

int conveyor_ring_attach_fd(int fd, int role, conveyor_ring **ring) {
    return cv_ring_attach(fd, role, NULL, ring);
}

int conveyor_ring_attach_named(const char *name, int role, conveyor_ring **ring) {
    if (ring == NULL || name == NULL) return CONVEYOR_E_NULL_POINTER;
    int fd;
    int status = cv_shm_open_existing(name, &fd);
    if (status != CONVEYOR_OK) return status;
    status = cv_ring_attach(fd, role, name, ring);
    int saved = errno;
    close(fd);
    errno = saved;
    return status;
}

int conveyor_ring_unlink_named(const char *name) {
    if (name == NULL) return CONVEYOR_E_NULL_POINTER;
    if (!cv_valid_name(name)) return CONVEYOR_E_INVALID_ARGUMENT;
    return shm_unlink(name) == 0 ? CONVEYOR_OK : CONVEYOR_E_SYSTEM;
}

int conveyor_ring_remove_name(conveyor_ring *ring) {
    if (ring == NULL) return CONVEYOR_E_NULL_POINTER;
    return cv_mapping_remove_name(ring->map);
}

const char *conveyor_ring_name(const conveyor_ring *ring) { return ring ? ring->map->name : NULL; }

int conveyor_ring_fd(const conveyor_ring *ring) { return ring ? ring->map->fd : -1; }

int conveyor_ring_role_of(const conveyor_ring *ring) { return ring ? ring->role : 0; }

void conveyor_ring_destroy(conveyor_ring *ring) {
    if (ring == NULL) return;
    cv_ring_hand_back(ring);  /* the next handle may claim the side and resume there */
    cv_mapping_unref(ring->map);
    free(ring);
}
