/*
 * channel_open.c — a channel's life outside its protocol: creation on a backing (shm.c),
 * attach and validation of the header (TRUST in channel_layout.h), opening ends from a
 * handle, names, destroying handles (which hands their end back), accessors. The
 * protocol, takeover included, is channel.c's.
 */
#include "channel_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

/* Where everything is, computed from (lanes, capacity) alone: the creator writes it, an
 * attacher recomputes it and requires the shared copy to agree. */
typedef struct cv_channel_geometry {
    uint64_t lanes_offset, words_offset, word_stride, total_bytes;
} cv_channel_geometry;

static bool cv_channel_geometry_for(uint32_t lanes, uint32_t capacity, cv_channel_geometry *g) {
    if (lanes < 1 || lanes > CONVEYOR_CHANNEL_MAX_LANES) return false;
    if (capacity < 1 || capacity > CONVEYOR_CHANNEL_MAX_CAPACITY) return false;
    g->lanes_offset = CV_HEADER_BYTES;
    g->words_offset = g->lanes_offset + (uint64_t)lanes * CV_CHANNEL_LANE_BYTES;
    g->word_stride = cv_round_up((uint64_t)capacity * 8, CV_CHANNEL_WORD_ALIGN);
    /* At most 64 lanes of 2^19 bytes: a few MiB, no overflow. */
    g->total_bytes = cv_round_up(g->words_offset + lanes * g->word_stride, cv_page_size());
    return true;
}

/* A new handle of `role` (on `lane`) on `map`, with the validated geometry of `from`: it
 * claims its end (a HOLDER claims none) and then takes a reference on the mapping. */
static int cv_channel_open_on(cv_mapping *map, const conveyor_channel *from, int role,
                              uint32_t lane, conveyor_channel **out) {
    if (role < CONVEYOR_CHANNEL_SENDER || role > CONVEYOR_CHANNEL_HOLDER)
        return CONVEYOR_E_INVALID_ARGUMENT;
    if (role == CONVEYOR_CHANNEL_SENDER ? lane >= from->lanes : lane != 0)
        return CONVEYOR_E_INVALID_ARGUMENT;
    conveyor_channel *ch = calloc(1, sizeof *ch);
    if (ch == NULL) return CONVEYOR_E_NO_MEMORY;
    *ch = (conveyor_channel){
        .map = map, .hdr = map->base, .role = role, .lane = lane, .lanes = from->lanes,
        .capacity = from->capacity, .lanes_offset = from->lanes_offset,
        .words_offset = from->words_offset, .word_stride = from->word_stride,
        .spin = from->default_spin, .default_spin = from->default_spin,
        .claim = {.nonce = cv_next_nonce()},
    };
    /* Claiming loads the position where the previous owner of this end stopped (a
     * takeover resumes there) and claims nothing if the counters are impossible. */
    int status = role == CONVEYOR_CHANNEL_HOLDER ? CONVEYOR_OK : cv_channel_claim_end(ch);
    if (status != CONVEYOR_OK) {
        free(ch);
        return status;
    }
    cv_mapping_ref(map);
    *out = ch;
    return CONVEYOR_OK;
}

/* Validates what another process put in the header, then opens a handle. */
static int cv_channel_validate_and_open(cv_mapping *map, int role, uint32_t lane,
                                        const uint32_t *own_spin, conveyor_channel **out) {
    cv_channel_header *hdr = map->base;
    if (map->bytes < CV_HEADER_BYTES) return CONVEYOR_E_TRUNCATED;
    if (cv_load_acquire_u64(&hdr->magic) != CV_CHANNEL_MAGIC)    /* SYNC POINT G */
        return CONVEYOR_E_NOT_A_RING;
    cv_channel_header copy;  /* copied once: only the copy's geometry is used */
    cv_copy_from_peer(&copy, hdr, sizeof copy);
    if (copy.layout_version != CV_CHANNEL_LAYOUT_VERSION) return CONVEYOR_E_VERSION;
    cv_channel_geometry g;
    if (copy.header_bytes != CV_HEADER_BYTES || copy.reserved != 0 ||
        !cv_channel_geometry_for(copy.lanes, copy.capacity, &g) ||
        copy.lanes_offset != g.lanes_offset || copy.words_offset != g.words_offset ||
        copy.word_stride != g.word_stride || copy.total_bytes != g.total_bytes)
        return CONVEYOR_E_CORRUPT;
    if (copy.total_bytes > map->bytes) return CONVEYOR_E_TRUNCATED;
    conveyor_channel geometry = {
        .lanes = copy.lanes, .capacity = copy.capacity, .lanes_offset = g.lanes_offset,
        .words_offset = g.words_offset, .word_stride = g.word_stride,
        /* the creator's own value, or the shared one bounded (TRUST in channel_layout.h) */
        .default_spin = own_spin != NULL ? *own_spin : cv_peer_spin(copy.default_spin),
    };
    return cv_channel_open_on(map, &geometry, role, lane, out);
}

int conveyor_channel_create(const conveyor_channel_config *config, conveyor_channel **holder) {
    if (config == NULL || holder == NULL) return CONVEYOR_E_NULL_POINTER;
    cv_channel_geometry g;
    if (config->reserved != 0 || !cv_channel_geometry_for(config->lanes, config->capacity, &g))
        return CONVEYOR_E_INVALID_ARGUMENT;
    cv_mapping *map;
    int status = cv_mapping_create(config->backing, config->name, "conveyor-channel",
                                   g.total_bytes, &map);
    if (status != CONVEYOR_OK) return status;
    cv_channel_header *hdr = map->base;
    hdr->layout_version = CV_CHANNEL_LAYOUT_VERSION;
    hdr->header_bytes = CV_HEADER_BYTES;
    hdr->lanes = config->lanes;
    hdr->capacity = config->capacity;
    hdr->default_spin = config->spin;
    hdr->lanes_offset = g.lanes_offset;
    hdr->words_offset = g.words_offset;
    hdr->word_stride = g.word_stride;
    hdr->total_bytes = g.total_bytes;
    /* An attacher that sees the magic (acquire) sees all of the above. */
    cv_store_release_u64(&hdr->magic, CV_CHANNEL_MAGIC);          /* SYNC POINT G */
    status = cv_channel_validate_and_open(map, CONVEYOR_CHANNEL_HOLDER, 0, &config->spin, holder);
    if (status != CONVEYOR_OK) cv_mapping_discard(map);
    return status;
}

int conveyor_channel_open(const conveyor_channel *channel, int role, uint32_t lane,
                          conveyor_channel **end) {
    if (channel == NULL || end == NULL) return CONVEYOR_E_NULL_POINTER;
    return cv_channel_open_on(channel->map, channel, role, lane, end);
}

/* `name` set: a NAMED channel attached by name (POSIX shared memory has no seals). */
static int cv_channel_attach(int fd, int role, uint32_t lane, const char *name,
                             conveyor_channel **end) {
    if (end == NULL) return CONVEYOR_E_NULL_POINTER;
    if (fd < 0 || role < CONVEYOR_CHANNEL_SENDER || role > CONVEYOR_CHANNEL_HOLDER)
        return CONVEYOR_E_INVALID_ARGUMENT;
    cv_mapping *map;
    int status = cv_mapping_attach(fd, CV_CHANNEL_MAGIC, name == NULL, name, &map);
    if (status != CONVEYOR_OK) return status;
    status = cv_channel_validate_and_open(map, role, lane, NULL, end);
    if (status != CONVEYOR_OK) cv_mapping_discard(map);
    return status;
}

int conveyor_channel_attach_fd(int fd, int role, uint32_t lane, conveyor_channel **end) {
    return cv_channel_attach(fd, role, lane, NULL, end);
}

int conveyor_channel_attach_named(const char *name, int role, uint32_t lane,
                                  conveyor_channel **end) {
    if (end == NULL || name == NULL) return CONVEYOR_E_NULL_POINTER;
    int fd;
    int status = cv_shm_open_existing(name, &fd);
    if (status != CONVEYOR_OK) return status;
    status = cv_channel_attach(fd, role, lane, name, end);
    int saved = errno;
    close(fd);
    errno = saved;
    return status;
}

void conveyor_channel_destroy(conveyor_channel *end) {
    if (end == NULL) return;
    cv_atomic_u64 *owner = cv_channel_own_owner(end);
    if (owner != NULL) cv_hand_back_owner(&end->claim, owner);  /* peers: PEER_DEAD */
    cv_mapping_unref(end->map);  /* the creator's last handle unlinks a NAMED name */
    free(end);
}

int conveyor_channel_remove_name(conveyor_channel *channel) {
    if (channel == NULL) return CONVEYOR_E_NULL_POINTER;
    return cv_mapping_remove_name(channel->map);
}

int conveyor_channel_fd(const conveyor_channel *channel) { return channel ? channel->map->fd : -1; }

const char *conveyor_channel_name(const conveyor_channel *channel) {
    return channel ? channel->map->name : NULL;
}

int conveyor_channel_role_of(const conveyor_channel *channel) { return channel ? channel->role : 0; }

uint32_t conveyor_channel_lane(const conveyor_channel *channel) { return channel ? channel->lane : 0; }

uint32_t conveyor_channel_lanes(const conveyor_channel *channel) {
    return channel ? channel->lanes : 0;
}

uint32_t conveyor_channel_capacity(const conveyor_channel *channel) {
    return channel ? channel->capacity : 0;
}
