/*
 * fuzz_common.h — what the fuzz targets fuzz_attach.c and fuzz_peer.c share, as static
 * inline helpers: the contract-violation reporter and tracing; status sets and what
 * conveyor.h documents each call may return; the documented frame rule; ring_layout.h's
 * geometry and attach_fd's checks of it; the ownership rules (OWNERSHIP in ring_layout.h)
 * and the doorbell rule of the wake model; the fd and mapping leak checks.
 *
 * A target defines FUZZ_TARGET (its name, which starts every violation report) before
 * including this, and may define FUZZ_WHERE() to print where in the input it was.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <conveyor.h>
#include "../../CKernels/src/ring_layout.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef FUZZ_TARGET
#error "define FUZZ_TARGET (the target's name) before including fuzz_common.h"
#endif
#ifndef FUZZ_WHERE
#define FUZZ_WHERE() ((void)0)
#endif

/* ---- violations and tracing ------------------------------------------------------ */

__attribute__((noreturn, format(printf, 1, 2))) static inline void bug(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("\n" FUZZ_TARGET ": CONTRACT VIOLATION", stderr);
    FUZZ_WHERE();
    fputs(": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

static bool g_trace; /* FUZZ_TRACE is set: print every call and status */

#define TRACE(...) \
    do { if (g_trace) fprintf(stderr, __VA_ARGS__); } while (0)

/* ---- statuses -------------------------------------------------------------------- */

typedef uint32_t status_set; /* bit s set: status s allowed */
#define B(s) ((status_set)1u << (s))

static inline const char *name(int s) { return conveyor_status_name(s); }

static inline bool in_set(int s, status_set set) { return s >= 0 && s < 32 && (set & B(s)); }

/* What conveyor.h documents each call may return (NULL_POINTER for a NULL handle or
 * argument is the header's general convention). */
#define DOC_ATTACH (B(CONVEYOR_OK) | B(CONVEYOR_E_NOT_SEALED) | B(CONVEYOR_E_NOT_A_RING) | \
                    B(CONVEYOR_E_VERSION) | B(CONVEYOR_E_TRUNCATED) | B(CONVEYOR_E_CORRUPT) | \
                    B(CONVEYOR_E_BUSY) | B(CONVEYOR_E_INVALID_ARGUMENT) | B(CONVEYOR_E_SYSTEM) | \
                    B(CONVEYOR_E_NULL_POINTER))
#define DOC_LOAN (B(CONVEYOR_OK) | B(CONVEYOR_E_TIMEOUT) | B(CONVEYOR_E_CLOSED) | \
                  B(CONVEYOR_E_PEER_DEAD) | B(CONVEYOR_E_BAD_STATE) | B(CONVEYOR_E_WRONG_ROLE) | \
                  B(CONVEYOR_E_CORRUPT) | B(CONVEYOR_E_NULL_POINTER))
#define DOC_COMMIT (B(CONVEYOR_OK) | B(CONVEYOR_E_BAD_STATE) | B(CONVEYOR_E_TOO_LARGE) | \
                    B(CONVEYOR_E_INVALID_ARGUMENT) | B(CONVEYOR_E_WRONG_ROLE) | \
                    B(CONVEYOR_E_NULL_POINTER))
#define DOC_ABANDON (B(CONVEYOR_OK) | B(CONVEYOR_E_BAD_STATE) | B(CONVEYOR_E_WRONG_ROLE) | \
                     B(CONVEYOR_E_NULL_POINTER))
#define DOC_PUSH (DOC_LOAN | DOC_COMMIT)
#define DOC_CLOSE (B(CONVEYOR_OK) | B(CONVEYOR_E_WRONG_ROLE) | B(CONVEYOR_E_NULL_POINTER))
#define DOC_RECEIVE (B(CONVEYOR_OK) | B(CONVEYOR_E_TIMEOUT) | B(CONVEYOR_E_END_OF_STREAM) | \
                     B(CONVEYOR_E_PEER_DEAD) | B(CONVEYOR_E_BAD_STATE) | B(CONVEYOR_E_CORRUPT) | \
                     B(CONVEYOR_E_WRONG_ROLE) | B(CONVEYOR_E_NULL_POINTER))
#define DOC_RELEASE (B(CONVEYOR_OK) | B(CONVEYOR_E_BAD_STATE) | B(CONVEYOR_E_WRONG_ROLE) | \
                     B(CONVEYOR_E_NULL_POINTER))
#define DOC_STATS (B(CONVEYOR_OK) | B(CONVEYOR_E_NULL_POINTER))
#define DOC_CLAIM (B(CONVEYOR_OK) | B(CONVEYOR_E_BUSY) | B(CONVEYOR_E_CORRUPT) | \
                   B(CONVEYOR_E_NULL_POINTER))
#define DOC_SPIN (B(CONVEYOR_OK) | B(CONVEYOR_E_NULL_POINTER))

/* The call returned `s`: it must be documented (`doc`) and predicted (`model`). */
static inline void check_status(const char *call, int s, status_set doc, status_set model) {
    TRACE("  %-34s -> %s\n", call, name(s));
    if (!in_set(s, doc)) bug("%s returned %d (%s), which conveyor.h does not document for it",
                             call, s, name(s));
    if (!in_set(s, model)) {
        char allowed[512] = "";
        for (int i = 0; i < 32; i++)
            if (model & B(i)) {
                strncat(allowed, " ", sizeof allowed - strlen(allowed) - 1);
                strncat(allowed, name(i), sizeof allowed - strlen(allowed) - 1);
            }
        bug("%s returned %s; the model allows only:%s", call, name(s), allowed);
    }
}

/* ---- frames ---------------------------------------------------------------------- */

static inline uint64_t dtype_size(uint32_t dtype) {
    switch (dtype) {
    case CONVEYOR_DTYPE_BYTES: return 1;
    case CONVEYOR_DTYPE_F32: return 4;
    case CONVEYOR_DTYPE_F64: return 8;
    default: return 0;
    }
}

/* The documented rule for a frame, computed exactly: known dtype, rank <= 4, byte_length
 * equal to the true (unbounded) product of the shape times the element size, and at
 * most slot_bytes. A zero extent makes the product 0 however large the other extents
 * are: such a frame is valid iff byte_length is 0, and INVALID_ARGUMENT otherwise (never
 * TOO_LARGE). Returns the statuses commit may give for the frame; `*valid` tells whether
 * it is valid. */
static inline status_set frame_expect(const conveyor_frame_info *info, uint64_t slot_bytes,
                                      bool *valid) {
    *valid = false;
    uint64_t size = dtype_size(info->dtype);
    if (size == 0 || info->rank > CONVEYOR_FRAME_MAX_RANK) return B(CONVEYOR_E_INVALID_ARGUMENT);
    bool overflow = false;
    unsigned __int128 product = size;
    for (uint32_t d = 0; d < info->rank; d++) {
        if (info->shape[d] == 0) {  /* an empty frame: the product is 0 */
            if (info->byte_length != 0) return B(CONVEYOR_E_INVALID_ARGUMENT);
            *valid = true;
            return B(CONVEYOR_OK);
        }
        product *= info->shape[d];
        if (product > UINT64_MAX) {
            overflow = true;
            product = UINT64_MAX; /* saturate; only "too big" matters now */
        }
    }
    bool too_large = info->byte_length > slot_bytes;
    if (overflow || product != info->byte_length)  /* shape and byte_length disagree */
        return B(CONVEYOR_E_INVALID_ARGUMENT) |
               (too_large || overflow ? B(CONVEYOR_E_TOO_LARGE) : 0);
    if (too_large) return B(CONVEYOR_E_TOO_LARGE);
    *valid = true;
    return B(CONVEYOR_OK);
}

static inline bool frame_valid(const conveyor_frame_info *info, uint64_t slot_bytes) {
    bool valid;
    frame_expect(info, slot_bytes, &valid);
    return valid;
}

/* The frame info a consumer reads from descriptor `d`. */
static inline conveyor_frame_info desc_info(const cv_slot_desc *d) {
    conveyor_frame_info info = {.dtype = d->dtype, .rank = d->rank, .byte_length = d->byte_length,
                                .tag = d->tag};
    memcpy(info.shape, d->shape, sizeof info.shape);
    return info;
}

/* ---- geometry -------------------------------------------------------------------- */

static inline uint64_t round_up(uint64_t v, uint64_t m) { return (v + m - 1) / m * m; }

typedef struct {
    uint32_t count;
    uint64_t slot_bytes, stride, slots_offset, total;
} geometry;

/* ring_layout.h's geometry of `count` slots of `slot_bytes` (64-bit arithmetic: absurd
 * values wrap). */
static inline geometry geometry_of(uint32_t count, uint64_t slot_bytes, uint64_t page) {
    geometry g = {.count = count, .slot_bytes = slot_bytes, .stride = round_up(slot_bytes, page)};
    g.slots_offset = round_up(CV_RING_HEADER_BYTES + (uint64_t)count * CV_RING_DESC_BYTES, page);
    g.total = g.slots_offset + (uint64_t)count * g.stride;
    return g;
}

/* What attach_fd's checks of the geometry line `h` (a copy of the file's first 64 bytes)
 * give in a file of `file_size` bytes: CORRUPT if it is not ring_layout.h's geometry for
 * its slot_count and slot_bytes (or those are out of range), else TRUNCATED if the file
 * is shorter than total_bytes, else 0. *g: slot_count and slot_bytes, and the derived
 * geometry if they are in range (else 0s). */
static inline status_set geometry_expect(const cv_ring_header *h, uint64_t page,
                                         uint64_t file_size, geometry *g) {
    uint32_t n = h->slot_count;
    uint64_t bytes = h->slot_bytes;
    bool ok = h->header_bytes == CV_RING_HEADER_BYTES && n >= 1 && n <= CONVEYOR_RING_MAX_SLOTS &&
              bytes >= 1 && bytes <= CONVEYOR_RING_MAX_SLOT_BYTES;
    *g = ok ? geometry_of(n, bytes, page) : (geometry){.count = n, .slot_bytes = bytes};
    ok = ok && h->slot_stride == g->stride && h->descriptors_offset == CV_RING_HEADER_BYTES &&
         h->slots_offset == g->slots_offset && h->total_bytes == g->total;
    if (!ok) return B(CONVEYOR_E_CORRUPT);
    return g->total > file_size ? B(CONVEYOR_E_TRUNCATED) : 0;
}

/* ---- ownership ------------------------------------------------------------------- */

#define PID_LIMIT 4194304u  /* PID_MAX_LIMIT on 64-bit Linux: larger pids never exist */

/* Whether an owner word means "gone" to its peer (handed back or its process exited), in
 * process `mypid`: 1 gone, 0 alive (or never claimed), -1 cannot tell. */
static inline int owner_gone(uint64_t w, uint32_t mypid) {
    if (w == CV_OWNER_LEFT) return 1;
    if (w == CV_OWNER_NONE) return 0;
    uint32_t pid = (uint32_t)(w >> 32);
    if (pid == 0 || pid == 1 || pid == mypid) return 0;
    if (pid >= PID_LIMIT && pid < 0x80000000u) return 1;
    return -1;
}

/* Whether a handle in process `mypid` may claim a side whose owner word is `w` (not its
 * own): 1 yes, 0 no (BUSY), -1 either. */
static inline int owner_free(uint64_t w, uint32_t mypid) {
    if (w == CV_OWNER_NONE) return 1;
    return owner_gone(w, mypid);
}

/* What claiming a side gives, `fr` being owner_free's answer for its owner word: the
 * shared counters must be possible (head - tail <= count) for a claim to succeed. */
static inline status_set claim_expect(int fr, uint64_t head, uint64_t tail, uint32_t count) {
    status_set take = head - tail > count ? B(CONVEYOR_E_CORRUPT) : B(CONVEYOR_OK);
    return fr == 1 ? take : fr == 0 ? B(CONVEYOR_E_BUSY) : take | B(CONVEYOR_E_BUSY);
}

/* The nonce after n: ring.c hands nonces out in sequence, skipping 0. */
static inline uint32_t nonce_after(uint32_t n) { return n + 1 == 0 ? 1 : n + 1; }

/* ---- the wake model -------------------------------------------------------------- */

/* Sleeping flags, doorbells and wake counters, as the file holds them or the model
 * predicts them. */
typedef struct {
    uint32_t prod_sleeping, cons_sleeping, prod_doorbell, cons_doorbell;
    uint64_t prod_wakes, cons_wakes;
} wake_model;

/* A side committed, closed, released or took its side over: it rings its peer's doorbell,
 * adding 1 to it and to its own wake counter, iff the peer's sleeping flag is set. */
static inline void wake_rang(wake_model *w, bool producer) {
    if (producer && w->cons_sleeping != 0) {
        w->prod_doorbell++;
        w->prod_wakes++;
    } else if (!producer && w->prod_sleeping != 0) {
        w->cons_doorbell++;
        w->cons_wakes++;
    }
}

/* A side took its side over: it first clears its own sleeping flag (a previous owner
 * killed asleep left it at 1; OWNERSHIP in ring_layout.h), then rings its peer as after a
 * commit or release. */
static inline void wake_took_over(wake_model *w, bool producer) {
    if (producer) w->prod_sleeping = 0;
    else w->cons_sleeping = 0;
    wake_rang(w, producer);
}

/* The file's wake fields `now` must be the model's (no call a target makes sleeps, so
 * the sleeping flags keep their values). */
static inline void wake_check(const wake_model *now, const wake_model *model, const char *after) {
    if (now->prod_sleeping != model->prod_sleeping || now->cons_sleeping != model->cons_sleeping)
        bug("after %s: sleeping flags %u/%u, model %u/%u (no call here sleeps)", after,
            now->prod_sleeping, now->cons_sleeping, model->prod_sleeping, model->cons_sleeping);
    if (now->prod_doorbell != model->prod_doorbell || now->cons_doorbell != model->cons_doorbell ||
        now->prod_wakes != model->prod_wakes || now->cons_wakes != model->cons_wakes)
        bug("after %s: doorbells %u/%u, wakes %llu/%llu (producer/consumer); model %u/%u, "
            "%llu/%llu (a side rings iff its peer's sleeping flag is set)", after,
            now->prod_doorbell, now->cons_doorbell, (unsigned long long)now->prod_wakes,
            (unsigned long long)now->cons_wakes, model->prod_doorbell, model->cons_doorbell,
            (unsigned long long)model->prod_wakes, (unsigned long long)model->cons_wakes);
}

/* ---- leaks ----------------------------------------------------------------------- */

static inline int lowest_free_fd(void) {
    int fd = fcntl(0, F_DUPFD_CLOEXEC, 0);
    if (fd >= 0) close(fd);
    return fd;
}

/* How many of this process's mappings have a /proc/self/maps line containing `needle`. */
static inline int count_mappings(const char *needle) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (f == NULL) return 0;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle)) n++;
    fclose(f);
    return n;
}

static int g_baseline_fd = -1;

/* At the start of every input: the first records the lowest free fd. */
static inline void leak_baseline(void) {
    if (g_baseline_fd < 0) g_baseline_fd = lowest_free_fd();
}

/* At the end of every input: no fd outlived it (the lowest free fd is within 16 of the
 * first input's), nor, checked every 256th input, a mapping whose name contains
 * `mapping` (`what` says what it maps). */
static inline void check_leaks(const char *mapping, const char *what) {
    static unsigned long runs;
    int fd = lowest_free_fd();
    if (fd > g_baseline_fd + 16)
        bug("file descriptors leak: lowest free fd %d, was %d", fd, g_baseline_fd);
    if (runs++ % 256 == 0 && count_mappings(mapping) != 0)
        bug("a mapping of %s outlived every handle", what);
}

#endif /* FUZZ_COMMON_H */
