/*
 * shm.c — the backings of shm.h: creating anonymous, memfd and named mappings, attaching
 * to an existing one, names and reference counts. The same for rings, pools and channels;
 * each validates its own header (ring_open.c, pool.c, channel_open.c).
 */
#include "shm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define CV_NAME_MAX 200
/* The seals a file passed by fd must carry: its size is then fixed for good. */
#define CV_SEALS (F_SEAL_SHRINK | F_SEAL_GROW)
/* What every object's file holds at least: the header page with the magic. */
#define CV_MIN_BYTES 4096u

bool cv_valid_name(const char *name) {
    if (name == NULL || name[0] != '/') return false;
    size_t len = strnlen(name, CV_NAME_MAX + 1);
    return len >= 2 && len <= CV_NAME_MAX && strchr(name + 1, '/') == NULL;
}

static cv_mapping *cv_mapping_new(void *base, uint64_t bytes, int fd) {
    cv_mapping *map = calloc(1, sizeof *map);
    if (map == NULL) return NULL;
    *map = (cv_mapping){.base = base, .bytes = bytes, .fd = fd};
    return map;
}

/* A forked child destroying its inherited copy must not remove the name, nor may a second
 * call remove a newer object that took the name meanwhile. */
int cv_mapping_remove_name(cv_mapping *map) {
    if (map->name == NULL || getpid() != map->creator_pid) return CONVEYOR_OK;
    if (!cv_take_flag_u32(&map->unlinks)) return CONVEYOR_OK;
    return shm_unlink(map->name) == 0 ? CONVEYOR_OK : CONVEYOR_E_SYSTEM;
}

void cv_mapping_ref(cv_mapping *map) { cv_ref_acquire_u32(&map->handles); }

void cv_mapping_unref(cv_mapping *map) {
    if (map == NULL || cv_ref_release_u32(&map->handles) > 0) return;
    munmap(map->base, map->bytes);
    if (map->fd >= 0) close(map->fd);
    cv_mapping_remove_name(map);
    free(map->name);
    free(map);
}

void cv_mapping_discard(cv_mapping *map) {
    cv_mapping_ref(map);
    cv_mapping_unref(map);
}

/* Creates the fd of a MEMFD or NAMED object, sized to `bytes`. */
static int cv_create_fd(int32_t backing, const char *name, const char *label, uint64_t bytes,
                        int *fd_out) {
    int fd;
    if (backing == CONVEYOR_RING_MEMFD) {
        fd = memfd_create(label, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    } else {
        fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 && errno == EEXIST) return CONVEYOR_E_EXISTS;
    }
    if (fd < 0) return CONVEYOR_E_SYSTEM;
    /* A memfd is sealed at its size, so no process holding it can shrink it under the
     * mappings of the others (which would raise SIGBUS in them). */
    bool memfd = backing == CONVEYOR_RING_MEMFD;
    if (ftruncate(fd, (off_t)bytes) != 0 ||
        (memfd && fcntl(fd, F_ADD_SEALS, CV_SEALS | F_SEAL_SEAL) != 0)) {
        int saved = errno;
        close(fd);
        if (backing == CONVEYOR_RING_NAMED) shm_unlink(name);
        errno = saved;
        return CONVEYOR_E_SYSTEM;
    }
    *fd_out = fd;
    return CONVEYOR_OK;
}

int cv_mapping_create(int32_t backing, const char *name, const char *label, uint64_t bytes,
                      cv_mapping **out) {
    if (backing < CONVEYOR_RING_ANONYMOUS || backing > CONVEYOR_RING_NAMED)
        return CONVEYOR_E_INVALID_ARGUMENT;
    if (backing == CONVEYOR_RING_NAMED && !cv_valid_name(name)) return CONVEYOR_E_INVALID_ARGUMENT;

    int fd = -1, status;
    if (backing != CONVEYOR_RING_ANONYMOUS &&
        (status = cv_create_fd(backing, name, label, bytes, &fd)) != CONVEYOR_OK)
        return status;
    int flags = fd < 0 ? MAP_SHARED | MAP_ANONYMOUS : MAP_SHARED;
    void *base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, flags, fd, 0);
    cv_mapping *map = base == MAP_FAILED ? NULL : cv_mapping_new(base, bytes, fd);
    if (map != NULL && backing == CONVEYOR_RING_NAMED) {
        map->name = strdup(name);
        map->creator_pid = getpid();
        cv_store_relaxed_u32(&map->unlinks, 1);
    }
    if (map == NULL || (backing == CONVEYOR_RING_NAMED && map->name == NULL)) {
        int saved = errno;
        if (base != MAP_FAILED) munmap(base, bytes);
        if (fd >= 0) close(fd);
        if (backing == CONVEYOR_RING_NAMED) shm_unlink(name);
        free(map);
        errno = saved;
        return base == MAP_FAILED ? CONVEYOR_E_SYSTEM : CONVEYOR_E_NO_MEMORY;
    }
    *out = map;
    return CONVEYOR_OK;
}

int cv_mapping_attach(int fd, uint64_t magic, bool require_seals, const char *name,
                      cv_mapping **out) {
    struct stat st;
    if (fstat(fd, &st) != 0) return CONVEYOR_E_SYSTEM;
    if (!S_ISREG(st.st_mode)) return CONVEYOR_E_NOT_A_RING;
    /* The magic is read with pread, not through a mapping, so even an unsealed file that
     * shrinks meanwhile cannot raise SIGBUS here. */
    uint64_t size = (uint64_t)st.st_size, found = 0;
    bool starts_right = pread(fd, &found, sizeof found, 0) == (ssize_t)sizeof found &&
                        found == magic;
    if (!starts_right) return CONVEYOR_E_NOT_A_RING;
    if (size < CV_MIN_BYTES) return CONVEYOR_E_TRUNCATED;
    if (require_seals) {
        int seals = fcntl(fd, F_GET_SEALS);
        if (seals < 0 || (seals & CV_SEALS) != CV_SEALS) return CONVEYOR_E_NOT_SEALED;
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
    if (map != NULL && name != NULL && (map->name = strdup(name)) == NULL) {
        free(map);
        map = NULL;
    }
    if (map == NULL) {
        munmap(base, size);
        close(own);
        return CONVEYOR_E_NO_MEMORY;
    }
    *out = map;
    return CONVEYOR_OK;
}

int cv_shm_open_existing(const char *name, int *fd) {
    if (!cv_valid_name(name)) return CONVEYOR_E_INVALID_ARGUMENT;
    *fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
    return *fd < 0 ? CONVEYOR_E_SYSTEM : CONVEYOR_OK;
}
