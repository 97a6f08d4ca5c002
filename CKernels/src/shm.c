/*
 * shm.c — ring backings: creating anonymous, memfd and named mappings, attaching to an
 * existing one, and validating what another process put there. The protocol is ring.c's.
 */
#include "ring_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define CV_RING_NAME_MAX 200
/* The seals a ring file passed by fd must carry: its size is then fixed for good. */
#define CV_RING_SEALS (F_SEAL_SHRINK | F_SEAL_GROW)

static uint64_t cv_page_size(void) {
    long page = sysconf(_SC_PAGESIZE);
    return page > 0 ? (uint64_t)page : 4096;
}

static uint64_t cv_round_up(uint64_t value, uint64_t multiple) {
    return (value + multiple - 1) / multiple * multiple;
}

/* The layout a ring of this geometry must have; false if the numbers are out of range. */
typedef struct {
    uint64_t slot_stride, descriptors_offset, slots_offset, total_bytes;
} cv_geometry;

static bool cv_geometry_for(uint32_t slot_count, uint64_t slot_bytes, cv_geometry *g) {
    if (slot_count < 1 || slot_count > CONVEYOR_RING_MAX_SLOTS) return false;
    if (slot_bytes < 1 || slot_bytes > CONVEYOR_RING_MAX_SLOT_BYTES) return false;
    uint64_t page = cv_page_size();
    g->slot_stride = cv_round_up(slot_bytes, page);
    g->descriptors_offset = CV_RING_HEADER_BYTES;
    g->slots_offset = cv_round_up(CV_RING_HEADER_BYTES + (uint64_t)slot_count * CV_RING_DESC_BYTES, page);
    /* At most 2^16 slots of 2^40 bytes: no overflow in 64 bits. */
    g->total_bytes = g->slots_offset + (uint64_t)slot_count * g->slot_stride;
    return g->total_bytes <= (uint64_t)PTRDIFF_MAX && g->total_bytes <= (uint64_t)INT64_MAX;
}

static bool cv_valid_name(const char *name) {
    if (name == NULL || name[0] != '/') return false;
    size_t len = strnlen(name, CV_RING_NAME_MAX + 1);
    return len >= 2 && len <= CV_RING_NAME_MAX && strchr(name + 1, '/') == NULL;
}

static cv_mapping *cv_mapping_new(void *base, uint64_t bytes, int fd) {
    cv_mapping *map = calloc(1, sizeof *map);
    if (map == NULL) return NULL;
    *map = (cv_mapping){.base = base, .bytes = bytes, .fd = fd};
    return map;
}

/* Removes the name if this process created it and has not removed it yet. A forked child
 * destroying its inherited copy must not remove the name, nor may a second call remove a
 * newer ring that took the name meanwhile. */
static int cv_mapping_remove_name(cv_mapping *map) {
    if (map->name == NULL || getpid() != map->creator_pid) return CONVEYOR_OK;
    if (!cv_take_flag_u32(&map->unlinks)) return CONVEYOR_OK;
    return shm_unlink(map->name) == 0 ? CONVEYOR_OK : CONVEYOR_E_SYSTEM;
}

static void cv_mapping_unref(cv_mapping *map) {
    if (map == NULL || cv_ref_release_u32(&map->handles) > 0) return;
    munmap(map->base, map->bytes);
    if (map->fd >= 0) close(map->fd);
    cv_mapping_remove_name(map);
    free(map->name);
    free(map);
}

/* Frees a mapping no handle took a reference on yet (a failed create or attach). */
static void cv_mapping_discard(cv_mapping *map) {
    cv_ref_acquire_u32(&map->handles);
    cv_mapping_unref(map);
}

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
        .default_spin = geometry->default_spin, .nonce = cv_next_nonce(), .hold_limit = 1,
    };
    /* Claiming loads the position where the previous owner of this side stopped (a
     * takeover resumes there) and claims nothing if the counters are impossible. */
    int status = role == CONVEYOR_RING_HOLDER ? CONVEYOR_OK : cv_ring_claim_side(ring);
    if (status != CONVEYOR_OK) {
        free(ring);
        return status;
    }
    cv_ref_acquire_u32(&map->handles);
    *out = ring;
    return CONVEYOR_OK;
}

int cv_ring_validate_and_open(cv_mapping *map, int role, conveyor_ring **out) {
    cv_ring_header *hdr = map->base;
    if (map->bytes < CV_RING_HEADER_BYTES) return CONVEYOR_E_TRUNCATED;
    if (cv_load_acquire_u64(&hdr->magic) != CV_RING_MAGIC)
        return CONVEYOR_E_NOT_A_RING;
    /* Copy the header out once; from here on only the copy's geometry is used. */
    cv_ring_header copy;
    cv_copy_from_peer(&copy, hdr, sizeof copy);
    if (copy.layout_version != CV_RING_LAYOUT_VERSION) return CONVEYOR_E_VERSION;
    cv_geometry g;
    if (copy.header_bytes != CV_RING_HEADER_BYTES ||
        !cv_geometry_for(copy.slot_count, copy.slot_bytes, &g) ||
        copy.slot_stride != g.slot_stride || copy.descriptors_offset != g.descriptors_offset ||
        copy.slots_offset != g.slots_offset || copy.total_bytes != g.total_bytes)
        return CONVEYOR_E_CORRUPT;
    if (copy.total_bytes > map->bytes) return CONVEYOR_E_TRUNCATED;

    conveyor_ring geometry = {
        .slot_count = copy.slot_count, .slot_bytes = copy.slot_bytes,
        .slot_stride = g.slot_stride, .descriptors_offset = g.descriptors_offset,
        .slots_offset = g.slots_offset, .default_spin = copy.default_spin,
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
                           const cv_geometry *g) {
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

/* Creates the fd of a MEMFD or NAMED ring, sized to `bytes`. */
static int cv_ring_create_fd(const conveyor_ring_config *config, uint64_t bytes, int *fd_out) {
    int fd;
    if (config->backing == CONVEYOR_RING_MEMFD) {
        fd = memfd_create("conveyor-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    } else {
        fd = shm_open(config->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 && errno == EEXIST) return CONVEYOR_E_EXISTS;
    }
    if (fd < 0) return CONVEYOR_E_SYSTEM;
    /* A memfd is sealed at its size, so no process holding it can shrink it under the
     * mappings of the others (which would raise SIGBUS in them). */
    bool memfd = config->backing == CONVEYOR_RING_MEMFD;
    if (ftruncate(fd, (off_t)bytes) != 0 ||
        (memfd && fcntl(fd, F_ADD_SEALS, CV_RING_SEALS | F_SEAL_SEAL) != 0)) {
        int saved = errno;
        close(fd);
        if (config->backing == CONVEYOR_RING_NAMED) shm_unlink(config->name);
        errno = saved;
        return CONVEYOR_E_SYSTEM;
    }
    *fd_out = fd;
    return CONVEYOR_OK;
}

/* Creates, maps and formats the memory of a new ring; no handle refers to it yet. */
static int cv_ring_new_mapping(const conveyor_ring_config *config, cv_mapping **out) {
    cv_geometry g;
    if (config->reserved != 0 || !cv_geometry_for(config->slot_count, config->slot_bytes, &g))
        return CONVEYOR_E_INVALID_ARGUMENT;
    if (config->backing < CONVEYOR_RING_ANONYMOUS || config->backing > CONVEYOR_RING_NAMED)
        return CONVEYOR_E_INVALID_ARGUMENT;
    if (config->backing == CONVEYOR_RING_NAMED && !cv_valid_name(config->name))
        return CONVEYOR_E_INVALID_ARGUMENT;

    int fd = -1, status;
    if (config->backing != CONVEYOR_RING_ANONYMOUS &&
        (status = cv_ring_create_fd(config, g.total_bytes, &fd)) != CONVEYOR_OK)
        return status;
    int flags = fd < 0 ? MAP_SHARED | MAP_ANONYMOUS : MAP_SHARED;
    void *base = mmap(NULL, g.total_bytes, PROT_READ | PROT_WRITE, flags, fd, 0);
    cv_mapping *map = base == MAP_FAILED ? NULL : cv_mapping_new(base, g.total_bytes, fd);
    if (map != NULL && config->backing == CONVEYOR_RING_NAMED) {
        map->name = strdup(config->name);
        map->creator_pid = getpid();
        cv_store_relaxed_u32(&map->unlinks, 1);
    }
    if (map == NULL || (config->backing == CONVEYOR_RING_NAMED && map->name == NULL)) {
        int saved = errno;
        if (base != MAP_FAILED) munmap(base, g.total_bytes);
        if (fd >= 0) close(fd);
        if (config->backing == CONVEYOR_RING_NAMED) shm_unlink(config->name);
        free(map);
        errno = saved;
        return base == MAP_FAILED ? CONVEYOR_E_SYSTEM : CONVEYOR_E_NO_MEMORY;
    }
    cv_ring_format(map->base, config, &g);
    *out = map;
    return CONVEYOR_OK;
}

int conveyor_ring_create(const conveyor_ring_config *config, conveyor_ring **producer,
                         conveyor_ring **consumer) {
    if (config == NULL || (producer == NULL && consumer == NULL)) return CONVEYOR_E_NULL_POINTER;
    cv_mapping *map;
    int status = cv_ring_new_mapping(config, &map);
    if (status != CONVEYOR_OK) return status;
    conveyor_ring *p = NULL, *c = NULL;
    if (producer != NULL) status = cv_ring_validate_and_open(map, CONVEYOR_RING_PRODUCER, &p);
    if (status == CONVEYOR_OK && consumer != NULL)
        status = cv_ring_validate_and_open(map, CONVEYOR_RING_CONSUMER, &c);
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
    status = cv_ring_validate_and_open(map, CONVEYOR_RING_HOLDER, holder);
    if (status != CONVEYOR_OK) cv_mapping_discard(map);
    return status;
}

/* Maps the whole file (its size bounds every access), then validates from the mapping.
 * `require_seals`: the file must be sealed against resizing (every fd but a NAMED ring's,
 * which POSIX shared memory cannot seal: see "Trust" in conveyor.h). */
static int cv_ring_attach(int fd, int role, bool require_seals, conveyor_ring **ring) {
    if (ring == NULL) return CONVEYOR_E_NULL_POINTER;
    if (fd < 0 || role < CONVEYOR_RING_PRODUCER || role > CONVEYOR_RING_HOLDER)
        return CONVEYOR_E_INVALID_ARGUMENT;
    struct stat st;
    if (fstat(fd, &st) != 0) return CONVEYOR_E_SYSTEM;
    if (!S_ISREG(st.st_mode)) return CONVEYOR_E_NOT_A_RING;
    /* The magic is read with pread, not through a mapping, so even an unsealed file that
     * shrinks meanwhile cannot raise SIGBUS here. */
    uint64_t size = (uint64_t)st.st_size, magic = 0;
    bool starts_like_a_ring = pread(fd, &magic, sizeof magic, 0) == (ssize_t)sizeof magic &&
                              magic == CV_RING_MAGIC;
    if (!starts_like_a_ring) return CONVEYOR_E_NOT_A_RING;
    if (size < CV_RING_HEADER_BYTES) return CONVEYOR_E_TRUNCATED;
    if (require_seals) {
        int seals = fcntl(fd, F_GET_SEALS);
        if (seals < 0 || (seals & CV_RING_SEALS) != CV_RING_SEALS) return CONVEYOR_E_NOT_SEALED;
    }
    if (size > (uint64_t)PTRDIFF_MAX) return CONVEYOR_E_CORRUPT;
    int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (own < 0) return CONVEYOR_E_SYSTEM;
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, own, 0);
    if (base == MAP_FAILED) {
        int saved = errno;
        close(own);
        errno = saved;
        return CONVEYOR_E_SYSTEM;
    }
    cv_mapping *map = cv_mapping_new(base, size, own);
    if (map == NULL) {
        munmap(base, size);
        close(own);
        return CONVEYOR_E_NO_MEMORY;
    }
    int status = cv_ring_validate_and_open(map, role, ring);
    if (status != CONVEYOR_OK) cv_mapping_discard(map);
    return status;
}

int conveyor_ring_attach_fd(int fd, int role, conveyor_ring **ring) {
    return cv_ring_attach(fd, role, true, ring);
}

int conveyor_ring_attach_named(const char *name, int role, conveyor_ring **ring) {
    if (ring == NULL || name == NULL) return CONVEYOR_E_NULL_POINTER;
    if (!cv_valid_name(name)) return CONVEYOR_E_INVALID_ARGUMENT;
    int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) return CONVEYOR_E_SYSTEM;
    int status = cv_ring_attach(fd, role, false, ring);
    int saved = errno;
    close(fd);
    if (status == CONVEYOR_OK && ((*ring)->map->name = strdup(name)) == NULL) {
        conveyor_ring_destroy(*ring);
        *ring = NULL;
        status = CONVEYOR_E_NO_MEMORY;
    }
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
