/*
 * fuzz_peer.c — libFuzzer target: a ring's two handles driven by a fuzzer-written
 * program, interleaved with a hostile peer that rewrites the shared memory.
 *
 * Each input creates a small MEMFD ring (1-8 slots, spin 0) with both handles, maps its
 * fd a second time as the hostile view, and runs the input as a program of
 * (op, args) bytes: producer calls (loan, commit, abandon, close, push), consumer calls
 * (receive, release), get_stats, claim, set_spin, destroy-and-reattach through
 * conveyor_ring_attach_fd, and hostile writes of fuzzer-chosen values into any field of
 * the shared header (indices, flags, owners, doorbells, counters, geometry) or of a slot
 * descriptor, or of a whole other consistent geometry (which a new attach then uses while
 * the live handles keep theirs). Every timeout is 0, so no input can block.
 *
 * After every call the API contract is checked:
 *   - the status is one the header documents for that call;
 *   - while the hostile peer has not touched what decides it, the status is exactly what
 *     a model of the ring predicts (frames arrive once, in order, with their info and
 *     payload; backpressure at slot_count; end of stream after close; BUSY/takeover per
 *     OWNERSHIP in ring_layout.h), and the shared counters and flags match the model;
 *   - a frame is checked as conveyor.h describes it: known dtype, rank <= 4, byte_length
 *     == product(shape[0..<rank]) * element size <= slot_bytes, the product taken
 *     exactly, so a zero extent makes it 0 however large the others are (such a frame is
 *     valid iff byte_length is 0, and INVALID_ARGUMENT otherwise, never TOO_LARGE); a
 *     received frame's info must satisfy these invariants, and an in-flight descriptor
 *     the hostile peer rewrote must be received as written if valid, CORRUPT if not;
 *   - ownership: a handle's owner word is its process id and a nonce; the model predicts
 *     the nonce of the next handle (ring.c hands them out in sequence, one per handle
 *     that passes header validation, and a wrong prediction is reported), so an attach
 *     over an owner word that is exactly the new handle's (a dead predecessor with the
 *     same pid and nonce) must be a takeover: it resumes at the shared position;
 *   - doorbells, sleeping flags and wake counters exactly: no call here sleeps, so the
 *     sleeping flags keep what the hostile peer wrote, and every commit, close, release
 *     and takeover (a successful attach, or a claim of a side that changed hands) rings
 *     the peer's doorbell, adding 1 to it and to the ringer's wake counter, iff the
 *     peer's sleeping flag is non-zero; stats.closed is 0 or 1, whatever prod_closed
 *     holds;
 *   - every pointer the library returns is the start of one of the handle's slots in the
 *     mapping (checked with markers written through the hostile view), and the whole
 *     slot / payload is then read or written, so a stray pointer faults here.
 * Everything is destroyed at the end of each input (LeakSanitizer checks the heap; the
 * target checks that no fd and no mapping of the ring outlives it).
 *
 * Violations abort (libFuzzer saves the input). FUZZ_TRACE=1 prints every operation and
 * status (use it on a reproducer).
 *
 * Black-box through conveyor.h (but for the nonce sequence); ring_layout.h only to play
 * the hostile peer.
 * Built and run by scripts/fuzz.
 */
#include <conveyor.h>
#include "../../CKernels/src/ring_layout.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- violations ------------------------------------------------------------------ */

static unsigned g_op_index;  /* the operation running, named in every violation report */

#define FUZZ_TARGET "fuzz_peer"
#define FUZZ_WHERE() fprintf(stderr, " at op %u", g_op_index)
#include "fuzz_common.h"

#define MAX_SLOTS 8    /* slots of the ring a program creates */
#define MAX_OPS 512    /* operations per input */

/* ---- input reader ---------------------------------------------------------------- */

typedef struct { const uint8_t *p; size_t n, i; } reader;

static uint8_t u8(reader *r) { return r->i < r->n ? r->p[r->i++] : 0; }
static uint32_t u32raw(reader *r) {
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) v |= (uint32_t)u8(r) << (8 * k);
    return v;
}
static uint64_t u64raw(reader *r) {
    uint64_t v = 0;
    for (int k = 0; k < 8; k++) v |= (uint64_t)u8(r) << (8 * k);
    return v;
}
/* A dimension: mostly small, sometimes huge or exactly at a boundary. */
static uint64_t dim(reader *r) {
    uint8_t b = u8(r);
    if (b < 0xF0) return b & 31;
    switch (b) {
    case 0xF0: return u64raw(r);
    case 0xF1: return (uint64_t)1 << (u8(r) & 63);
    case 0xF2: return UINT64_MAX - u8(r);
    case 0xF3: return 0;
    default: return (uint64_t)(b - 0xF0) << 8;
    }
}

/* ---- the ring under test and its model ------------------------------------------- */

typedef struct {
    conveyor_ring *r;
    uint32_t count;          /* geometry this handle validated */
    uint64_t slot_bytes, stride, slots_offset;
    uint64_t me;             /* the owner word it wrote */
    bool busy;               /* producer: a loan; consumer: a held frame */
} side;

enum { P = 0, C = 1 };

typedef struct {
    conveyor_frame_info info;  /* as the consumer will read it from the descriptor */
    uint8_t seed;              /* payload: pattern(seed, i) for i < payload_bytes */
    uint64_t payload_bytes;
    bool rewritten;            /* the hostile peer rewrote the descriptor after commit */
} frame_rec;

static struct {
    int fd;                  /* our dup of the ring's memfd */
    uint8_t *view;           /* the hostile view: a second mapping of the whole file */
    uint64_t total;          /* file size = the ring's total_bytes */
    uint64_t page;
    uint32_t count;          /* geometry the ring was created with */
    uint64_t slot_bytes, stride, slots_offset;
    cv_ring_header geometry; /* the first line as created */
    side s[2];

    /* frame model: exact while the hostile peer has not touched head, tail or closed, and
     * both sides use the created geometry (a rewritten in-flight descriptor is followed) */
    bool frames_tainted;
    uint64_t committed, released;
    bool closed;
    frame_rec q[MAX_SLOTS];  /* frame seq lives in q[seq % count] */
    uint8_t loan_seed, next_seed;

    /* counter model: exact while no counter was rewritten */
    bool counters_tainted, geom_dirty;
    uint64_t n_commits, n_releases, n_bytes;
    uint32_t max_count;      /* largest slot_count any producer handle used */
    /* wake model, always exact: a hostile write of one of these is taken as the new value */
    wake_model wake;

    uint8_t marker_round;
    uint32_t mypid;
} S;

static uint8_t pattern(uint8_t seed, uint64_t i) {
    return (uint8_t)(seed * 0x9Du + (uint8_t)i * 0x3Bu + (uint8_t)(i >> 8) * 0x11u + 1u);
}

static uint64_t rd64(uint64_t off) {
    uint64_t v;
    memcpy(&v, S.view + off, 8);
    return v;
}
static uint32_t rd32(uint64_t off) {
    uint32_t v;
    memcpy(&v, S.view + off, 4);
    return v;
}
#define HDR64(field) rd64(offsetof(cv_ring_header, field))
#define HDR32(field) rd32(offsetof(cv_ring_header, field))

/* The nonce the next handle of this process will get (0: not known yet). ring.c hands
 * nonces out in sequence, one to every handle that passes header validation (whether
 * its claim then succeeds or not), skipping 0; the model follows that sequence so it
 * knows when a side's owner word is exactly the word a new handle will have. */
static uint32_t g_next_nonce;

/* The owner word of the next handle (or a word no handle will have, if not known). */
static uint64_t next_handle_word(void) {
    return g_next_nonce ? (uint64_t)S.mypid << 32 | g_next_nonce : CV_OWNER_NONE;
}

/* A handle passed header validation and took the next nonce; `word` is its owner word
 * if it claimed its side (else 0). */
static void took_nonce(uint64_t word, const char *who) {
    if (word != 0 && ((uint32_t)(word >> 32) != S.mypid ||
                      (g_next_nonce != 0 && (uint32_t)word != g_next_nonce)))
        bug("%s has owner word %llx; the model predicted pid %u, nonce %u (nonces are handed "
            "out in sequence: see the header)", who, (unsigned long long)word, S.mypid,
            g_next_nonce);
    if (word != 0) g_next_nonce = (uint32_t)word;
    if (g_next_nonce != 0) g_next_nonce = nonce_after(g_next_nonce);
}

/* As owner_free, for the new handle of an attach: its own word (a dead predecessor's with
 * the same pid and nonce) is free too: a takeover. */
static int owner_free_for_new_handle(uint64_t w) {
    if (g_next_nonce != 0 && w == next_handle_word()) return 1;
    if (g_next_nonce == 0 && (uint32_t)(w >> 32) == S.mypid) return -1;
    return owner_free(w, S.mypid);
}

/* Side k (P or C) committed, closed, released or took its side over (no call here sleeps,
 * so the peer's sleeping flag holds what the hostile peer last wrote). */
static void rang(int k) { wake_rang(&S.wake, k == P); }
/* Side k's handle took the side over. */
static void took_over(int k) { wake_took_over(&S.wake, k == P); }

/* The wake fields as the view shows them. */
static wake_model view_wake(void) {
    return (wake_model){.prod_sleeping = HDR32(prod_sleeping),
                        .cons_sleeping = HDR32(cons_sleeping),
                        .prod_doorbell = HDR32(prod_doorbell),
                        .cons_doorbell = HDR32(cons_doorbell),
                        .prod_wakes = HDR64(prod_wakes),
                        .cons_wakes = HDR64(cons_wakes)};
}

static uint64_t owner_off(int k) {
    return k == P ? offsetof(cv_ring_header, prod_owner) : offsetof(cv_ring_header, cons_owner);
}

/* ---- pointer checks -------------------------------------------------------------- */

/* `p`, returned by the library for handle h, must be the start of one of h's slots in a
 * mapping of the ring: returns that slot. Markers are written through the hostile view at
 * the first and last byte of every slot, read back through p, then restored. */
static uint32_t slot_of(const side *h, const volatile uint8_t *p, const char *what) {
    if ((uintptr_t)p % S.page != 0) bug("%s returned %p, not page-aligned (slots are)", what, (void *)p);
    uint32_t n = h->count;
    if (n > 120) bug("handle geometry has %u slots (> 120) in a %llu-byte file", n,
                     (unsigned long long)S.total);
    uint8_t saved[2][120];
    uint8_t round = (uint8_t)(++S.marker_round * 0x35u);
    for (uint32_t s = 0; s < n; s++) {
        uint64_t o0 = h->slots_offset + s * h->stride, o1 = o0 + h->slot_bytes - 1;
        if (o1 >= S.total) bug("handle geometry puts slot %u past the file", s);
        saved[0][s] = S.view[o0];
        saved[1][s] = S.view[o1];
    }
    for (uint32_t s = 0; s < n; s++) {
        uint64_t o0 = h->slots_offset + s * h->stride, o1 = o0 + h->slot_bytes - 1;
        S.view[o1] = (uint8_t)(round + 2 * s + 1);
        S.view[o0] = (uint8_t)(round + 2 * s);  /* wins when the slot has one byte */
    }
    uint8_t first = p[0], last = p[h->slot_bytes - 1];
    uint32_t found = UINT32_MAX;
    for (uint32_t s = 0; s < n; s++)
        if (first == (uint8_t)(round + 2 * s) &&
            (h->slot_bytes == 1 || last == (uint8_t)(round + 2 * s + 1)))
            found = s;
    for (uint32_t s = n; s-- > 0;) {
        uint64_t o0 = h->slots_offset + s * h->stride, o1 = o0 + h->slot_bytes - 1;
        S.view[o0] = saved[0][s];
        S.view[o1] = saved[1][s];
    }
    if (found == UINT32_MAX)
        bug("%s returned %p, which is not the start of any of the ring's %u slots "
            "(first byte %02x, byte %llu %02x)", what, (void *)p, n, first,
            (unsigned long long)h->slot_bytes - 1, last);
    return found;
}

/* ---- hostile writes -------------------------------------------------------------- */

enum fclass { F_NONE, F_GEOM, F_FRAMES, F_OWNER, F_COUNTER, F_WAKE };

typedef struct { const char *name; uint32_t off, size; enum fclass cls; } field;

#define HF(f, c) {#f, offsetof(cv_ring_header, f), sizeof(((cv_ring_header *)0)->f), c}
static const field hdr_fields[] = {
    HF(magic, F_GEOM), HF(layout_version, F_GEOM), HF(header_bytes, F_GEOM),
    HF(slot_count, F_GEOM), HF(default_spin, F_GEOM), HF(slot_bytes, F_GEOM),
    HF(slot_stride, F_GEOM), HF(descriptors_offset, F_GEOM), HF(slots_offset, F_GEOM),
    HF(total_bytes, F_GEOM),
    HF(prod_head, F_FRAMES), HF(prod_closed, F_FRAMES), HF(prod_reserved, F_NONE),
    HF(prod_owner, F_OWNER), HF(prod_frames, F_COUNTER), HF(prod_bytes, F_COUNTER),
    HF(prod_peak, F_COUNTER),
    HF(cons_tail, F_FRAMES), HF(cons_owner, F_OWNER), HF(cons_frames, F_COUNTER),
    HF(prod_sleeping, F_WAKE), HF(prod_doorbell, F_WAKE), HF(prod_waits, F_COUNTER),
    HF(prod_wakes, F_WAKE),
    HF(cons_sleeping, F_WAKE), HF(cons_doorbell, F_WAKE), HF(cons_waits, F_COUNTER),
    HF(cons_wakes, F_WAKE),
};
#define N_HDR_FIELDS (sizeof hdr_fields / sizeof hdr_fields[0])

#define DF(f) {#f, offsetof(cv_slot_desc, f), sizeof(((cv_slot_desc *)0)->f), F_FRAMES}
static const field desc_fields[] = {
    DF(dtype), DF(rank),
    {"shape[0]", offsetof(cv_slot_desc, shape) + 0, 8, F_FRAMES},
    {"shape[1]", offsetof(cv_slot_desc, shape) + 8, 8, F_FRAMES},
    {"shape[2]", offsetof(cv_slot_desc, shape) + 16, 8, F_FRAMES},
    {"shape[3]", offsetof(cv_slot_desc, shape) + 24, 8, F_FRAMES},
    DF(byte_length), DF(tag), {"pad", offsetof(cv_slot_desc, pad), 8, F_NONE},
};
#define N_DESC_FIELDS (sizeof desc_fields / sizeof desc_fields[0])

/* Whether descriptor slot s holds a frame the consumer will read (again). */
static bool slot_in_flight(uint32_t s) {
    for (uint64_t seq = S.released; seq < S.committed; seq++)
        if (seq % S.count == s) return true;
    return false;
}

/* The frame info the consumer will read from descriptor slot s. */
static conveyor_frame_info view_descriptor(uint32_t s) {
    cv_slot_desc d;
    memcpy(&d, S.view + CV_RING_HEADER_BYTES + (uint64_t)s * 64, sizeof d);
    return desc_info(&d);
}

/* Whether two frame infos say the same (the shape up to the rank). */
static bool same_info(const conveyor_frame_info *a, const conveyor_frame_info *b) {
    bool same = a->dtype == b->dtype && a->rank == b->rank && a->byte_length == b->byte_length &&
                a->tag == b->tag;
    for (uint32_t k = 0; same && k < a->rank && k < 4; k++) same = a->shape[k] == b->shape[k];
    return same;
}

/* Writes `size` bytes of v at `off` (header or descriptors) and records what the model
 * can no longer predict, or takes the value written as the model's. */
static void hostile_write(uint64_t off, uint32_t size, uint64_t v) {
    uint8_t before[8], after[8];
    memcpy(before, S.view + off, size);
    memcpy(S.view + off, &v, size);
    memcpy(after, S.view + off, size);
    TRACE("  hostile write @%llu (%u bytes) = 0x%llx\n", (unsigned long long)off, size,
          (unsigned long long)v);
    if (memcmp(before, after, size) == 0) return;
    for (uint64_t b = off; b < off + size; b++) {
        if (before[b - off] == after[b - off]) continue;
        if (b < sizeof(cv_ring_header)) {
            for (size_t i = 0; i < N_HDR_FIELDS; i++) {
                const field *f = &hdr_fields[i];
                if (b < f->off || b >= f->off + f->size) continue;
                switch (f->cls) {
                case F_GEOM: S.geom_dirty = true; break;
                case F_FRAMES: S.frames_tainted = true; break;
                case F_COUNTER: S.counters_tainted = true; break;
                case F_WAKE:  /* the library adds to these or leaves them: follow the new values */
                    S.wake = view_wake();
                    break;
                case F_OWNER: case F_NONE: break; /* owners are read back from the view */
                }
            }
        } else if (b >= CV_RING_HEADER_BYTES && b < CV_RING_HEADER_BYTES + (uint64_t)S.count * 64) {
            uint32_t s = (uint32_t)((b - CV_RING_HEADER_BYTES) / 64), in = (b - CV_RING_HEADER_BYTES) % 64;
            if (in < offsetof(cv_slot_desc, pad) && !S.frames_tainted && slot_in_flight(s)) {
                /* The consumer will read (again) what is written now. */
                S.q[s].info = view_descriptor(s);
                S.q[s].rewritten = true;
            }
        }
    }
}

/* A value for a hostile write over a field currently holding `cur`. */
static uint64_t hostile_value(reader *r, uint64_t cur) {
    uint8_t m = u8(r) % 8, a = u8(r);
    switch (m) {
    case 0: return a;
    case 1: return u64raw(r);
    case 2: return cur + 1 + a;
    case 3: return cur - 1 - a;
    case 4: return cur ^ ((uint64_t)1 << (a & 63));
    case 5:
        switch (a % 7) {
        case 0: return CV_OWNER_NONE;
        case 1: return CV_OWNER_LEFT;
        case 2: return (uint64_t)S.mypid << 32 | (uint64_t)(0x1000u + a);  /* alive */
        case 3: return (uint64_t)1 << 32 | a;                            /* init: alive */
        case 4: return (uint64_t)0x7FFFFFF0u << 32 | 1;                  /* never exists */
        case 5: return S.s[a & 1].me;
        default: return next_handle_word();  /* a dead predecessor's, reused by the next */
        }
    case 6: return S.committed + (uint64_t)(int64_t)(int8_t)a;
    default: return UINT64_MAX - a;
    }
}

/* ---- checks after every operation ------------------------------------------------ */

static void check_shared_state(void) {
    if (!S.geom_dirty && memcmp(S.view, &S.geometry, 64) != 0)
        bug("the library rewrote the ring's geometry line");
    if (!S.frames_tainted) {
        if (HDR64(prod_head) != S.committed)
            bug("prod_head is %llu, model %llu", (unsigned long long)HDR64(prod_head),
                (unsigned long long)S.committed);
        if (HDR64(cons_tail) != S.released)
            bug("cons_tail is %llu, model %llu", (unsigned long long)HDR64(cons_tail),
                (unsigned long long)S.released);
        if (HDR32(prod_closed) != (S.closed ? 1u : 0u))
            bug("prod_closed is %u, model %d", HDR32(prod_closed), S.closed);
        for (uint64_t seq = S.released; seq < S.committed; seq++) {
            conveyor_frame_info d = view_descriptor((uint32_t)(seq % S.count));
            if (!same_info(&S.q[seq % S.count].info, &d))
                bug("descriptor of in-flight frame %llu changed", (unsigned long long)seq);
        }
    }
    if (!S.counters_tainted) {
        if (HDR64(prod_frames) != S.n_commits || HDR64(cons_frames) != S.n_releases ||
            HDR64(prod_bytes) != S.n_bytes)
            bug("shared counters frames/released/bytes = %llu/%llu/%llu, model %llu/%llu/%llu",
                (unsigned long long)HDR64(prod_frames), (unsigned long long)HDR64(cons_frames),
                (unsigned long long)HDR64(prod_bytes), (unsigned long long)S.n_commits,
                (unsigned long long)S.n_releases, (unsigned long long)S.n_bytes);
        if (HDR64(prod_waits) != 0 || HDR64(cons_waits) != 0)
            bug("a timeout-0 call slept (waits %llu/%llu)", (unsigned long long)HDR64(prod_waits),
                (unsigned long long)HDR64(cons_waits));
        if (HDR64(prod_peak) > S.max_count)
            bug("peak occupancy %llu > slot count %u", (unsigned long long)HDR64(prod_peak), S.max_count);
    }
    wake_model now = view_wake();
    wake_check(&now, &S.wake, "the last call");
}

/* ---- operations ------------------------------------------------------------------ */

static side *handle(int k) { return &S.s[k]; }

/* What a loan on the producer handle h may return now. */
static status_set loan_expect(const side *h) {
    if (h->busy) return B(CONVEYOR_E_BAD_STATE);
    if (S.frames_tainted)
        return B(CONVEYOR_OK) | B(CONVEYOR_E_TIMEOUT) | B(CONVEYOR_E_CLOSED) |
               B(CONVEYOR_E_CORRUPT) | B(CONVEYOR_E_PEER_DEAD);
    if (S.closed) return B(CONVEYOR_E_CLOSED);
    status_set e = S.committed - S.released >= S.count ? B(CONVEYOR_E_TIMEOUT) : B(CONVEYOR_OK);
    /* A gone consumer is reported by a poll that finds no room (at most once per peer
     * check slice) and every few thousand loans: either may come up. */
    if (owner_gone(rd64(owner_off(C)), S.mypid) != 0) e |= B(CONVEYOR_E_PEER_DEAD);
    return e;
}

static status_set receive_expect(const side *h) {
    if (h->busy) return B(CONVEYOR_E_BAD_STATE);
    if (S.frames_tainted)
        return B(CONVEYOR_OK) | B(CONVEYOR_E_TIMEOUT) | B(CONVEYOR_E_END_OF_STREAM) |
               B(CONVEYOR_E_CORRUPT) | B(CONVEYOR_E_PEER_DEAD);
    if (S.released < S.committed) {
        const frame_rec *next = &S.q[S.released % S.count];
        bool valid = !next->rewritten || frame_valid(&next->info, h->slot_bytes);
        return valid ? B(CONVEYOR_OK) : B(CONVEYOR_E_CORRUPT);
    }
    if (S.closed) return B(CONVEYOR_E_END_OF_STREAM);
    status_set e = B(CONVEYOR_E_TIMEOUT);
    if (owner_gone(rd64(owner_off(P)), S.mypid) != 0) e |= B(CONVEYOR_E_PEER_DEAD);
    return e;
}

static void after_loan_ok(side *h, void *data, uint64_t capacity, const char *call) {
    if (capacity != h->slot_bytes)
        bug("%s gave capacity %llu, slot_bytes is %llu", call, (unsigned long long)capacity,
            (unsigned long long)h->slot_bytes);
    uint32_t s = slot_of(h, data, call);
    if (!S.frames_tainted && s != S.committed % S.count)
        bug("%s lent slot %u, frame %llu lives in slot %llu", call, s,
            (unsigned long long)S.committed, (unsigned long long)(S.committed % S.count));
    h->busy = true;
    S.loan_seed = S.next_seed++;
    uint8_t *d = data;
    for (uint64_t i = 0; i < capacity; i++) d[i] = pattern(S.loan_seed, i);
}

static void op_loan(int k, uint8_t v) {
    side *h = handle(k);
    void *data = NULL;
    uint64_t capacity = 0;
    if (v == 7) {
        check_status("loan(NULL handle)", conveyor_ring_loan(NULL, 0, &data, &capacity), DOC_LOAN,
                     B(CONVEYOR_E_NULL_POINTER));
        return;
    }
    status_set model;
    if (h->r == NULL) model = B(CONVEYOR_E_NULL_POINTER);
    else if (k != P) model = B(CONVEYOR_E_WRONG_ROLE);
    else if (v == 6) model = B(CONVEYOR_E_NULL_POINTER);
    else model = loan_expect(h);
    int s = conveyor_ring_loan(h->r, 0, v == 6 ? NULL : &data, &capacity);
    check_status(k == P ? "loan" : "loan(on consumer)", s, DOC_LOAN, model);
    if (s == CONVEYOR_OK) after_loan_ok(h, data, capacity, "loan");
}

static void commit_done(side *h, const conveyor_frame_info *info, uint8_t seed) {
    h->busy = false;
    if (!S.frames_tainted) {
        S.q[S.committed % S.count] = (frame_rec){*info, seed, info->byte_length, false};
        S.committed++;
    }
    S.n_commits++;
    S.n_bytes += info->byte_length;
    rang(P);
}

static void op_commit(int k, const conveyor_frame_info *info, bool null_info) {
    side *h = handle(k);
    bool valid = false;
    status_set model;
    if (h->r == NULL) model = B(CONVEYOR_E_NULL_POINTER);
    else if (k != P) model = B(CONVEYOR_E_WRONG_ROLE);
    else if (null_info) model = B(CONVEYOR_E_NULL_POINTER);
    else {
        status_set fe = frame_expect(info, h->slot_bytes, &valid);
        model = h->busy ? fe : B(CONVEYOR_E_BAD_STATE) | (fe & ~B(CONVEYOR_OK));
    }
    int s = conveyor_ring_commit(h->r, null_info ? NULL : info);
    check_status(k == P ? "commit" : "commit(on consumer)", s, DOC_COMMIT, model);
    if (s == CONVEYOR_OK) commit_done(h, info, S.loan_seed);
}

/* What abandon (a producer's call: `role` P) or release (C) on side k may return: each
 * ends what the handle holds, a loan or a received frame. */
static status_set ending_expect(int k, int role) {
    const side *h = handle(k);
    return h->r == NULL ? B(CONVEYOR_E_NULL_POINTER)
           : k != role  ? B(CONVEYOR_E_WRONG_ROLE)
           : h->busy    ? B(CONVEYOR_OK)
                        : B(CONVEYOR_E_BAD_STATE);
}

static void op_abandon(int k) {
    side *h = handle(k);
    status_set model = ending_expect(k, P);
    int s = conveyor_ring_abandon(h->r);
    check_status(k == P ? "abandon" : "abandon(on consumer)", s, DOC_ABANDON, model);
    if (s == CONVEYOR_OK) h->busy = false;
}

static void op_close(int k) {
    side *h = handle(k);
    status_set model = h->r == NULL ? B(CONVEYOR_E_NULL_POINTER)
                       : k != P     ? B(CONVEYOR_E_WRONG_ROLE)
                                    : B(CONVEYOR_OK);
    int s = conveyor_ring_close(h->r);
    check_status(k == P ? "close" : "close(on consumer)", s, DOC_CLOSE, model);
    if (s == CONVEYOR_OK) {
        h->busy = false;
        S.closed = true;
        if (HDR32(prod_closed) != 1) bug("close did not set prod_closed");
        rang(P);
    }
}

static void op_push(int k, const conveyor_frame_info *info, bool null_bytes) {
    side *h = handle(k);
    uint64_t n = info->byte_length;
    uint8_t seed = S.next_seed++;
    /* Exactly byte_length bytes (when that is small), so an over-read is a heap overflow. */
    size_t alloc = n <= 65536 ? (size_t)n : 64;
    uint8_t *bytes = malloc(alloc ? alloc : 1);
    if (bytes == NULL) abort();
    for (size_t i = 0; i < alloc; i++) bytes[i] = pattern(seed, i);
    bool valid = false;
    status_set model;
    if (null_bytes && n > 0) model = B(CONVEYOR_E_NULL_POINTER);
    else if (h->r == NULL) model = B(CONVEYOR_E_NULL_POINTER);
    else if (k != P) model = B(CONVEYOR_E_WRONG_ROLE);
    else {
        status_set fe = frame_expect(info, h->slot_bytes, &valid);
        status_set le = loan_expect(h);
        model = valid ? le : fe | (le & ~B(CONVEYOR_OK));
    }
    int s = conveyor_ring_push(h->r, 0, null_bytes ? NULL : bytes, info);
    free(bytes);
    check_status(k == P ? "push" : "push(on consumer)", s, DOC_PUSH, model);
    if (s == CONVEYOR_OK) {
        if (n > alloc) bug("push accepted %llu bytes from a %zu-byte buffer", (unsigned long long)n, alloc);
        commit_done(h, info, seed);
    }
}

static void check_received(side *h, const void *data, const conveyor_frame_info *info) {
    if (!frame_valid(info, h->slot_bytes))
        bug("receive delivered an invalid frame: dtype %u rank %u shape %llu,%llu,%llu,%llu "
            "byte_length %llu (slot %llu)", info->dtype, info->rank,
            (unsigned long long)info->shape[0], (unsigned long long)info->shape[1],
            (unsigned long long)info->shape[2], (unsigned long long)info->shape[3],
            (unsigned long long)info->byte_length, (unsigned long long)h->slot_bytes);
    const volatile uint8_t *d = data;
    uint32_t s = slot_of(h, d, "receive");
    uint8_t sum = 0;
    for (uint64_t i = 0; i < info->byte_length; i++) sum ^= d[i];  /* all of it is readable */
    (void)sum;
    if (S.frames_tainted) return;
    uint64_t seq = S.released;
    if (s != seq % S.count)
        bug("receive gave slot %u for frame %llu (slot %llu)", s, (unsigned long long)seq,
            (unsigned long long)(seq % S.count));
    const frame_rec *want = &S.q[seq % S.count];
    if (!same_info(info, &want->info))
        bug("frame %llu arrived with another info (tag %llu, expected %llu%s)",
            (unsigned long long)seq, (unsigned long long)info->tag,
            (unsigned long long)want->info.tag,
            want->rewritten ? ", as the hostile peer rewrote its descriptor" : "");
    uint64_t n = info->byte_length < want->payload_bytes ? info->byte_length : want->payload_bytes;
    for (uint64_t i = 0; i < n; i++)
        if (d[i] != pattern(want->seed, i))
            bug("frame %llu payload differs at byte %llu", (unsigned long long)seq,
                (unsigned long long)i);
}

static int op_receive(int k, uint8_t v) {
    side *h = handle(k);
    const void *data = NULL;
    conveyor_frame_info info;
    memset(&info, 0xA5, sizeof info);
    status_set model = h->r == NULL ? B(CONVEYOR_E_NULL_POINTER)
                       : k != C     ? B(CONVEYOR_E_WRONG_ROLE)
                       : v >= 6     ? B(CONVEYOR_E_NULL_POINTER)
                                    : receive_expect(h);
    int s = conveyor_ring_receive(h->r, 0, v == 7 ? NULL : &data, v == 6 ? NULL : &info);
    check_status(k == C ? "receive" : "receive(on producer)", s, DOC_RECEIVE, model);
    if (s == CONVEYOR_OK) {
        check_received(h, data, &info);
        h->busy = true;
    }
    return s;
}

static int op_release(int k) {
    side *h = handle(k);
    status_set model = ending_expect(k, C);
    int s = conveyor_ring_release(h->r);
    check_status(k == C ? "release" : "release(on producer)", s, DOC_RELEASE, model);
    if (s == CONVEYOR_OK) {
        h->busy = false;
        if (!S.frames_tainted) S.released++;
        S.n_releases++;
        rang(C);
    }
    return s;
}

static void op_stats(int k, bool null_stats) {
    side *h = handle(k);
    conveyor_ring_stats st;
    memset(&st, 0x5A, sizeof st);
    status_set model = h->r == NULL || null_stats ? B(CONVEYOR_E_NULL_POINTER) : B(CONVEYOR_OK);
    int s = conveyor_ring_get_stats(h->r, null_stats ? NULL : &st);
    check_status("get_stats", s, DOC_STATS, model);
    if (s != CONVEYOR_OK) return;
    if (st.slot_count != h->count || st.slot_bytes != h->slot_bytes || st.mapped_bytes != S.total)
        bug("stats geometry %u x %llu (%llu mapped), handle has %u x %llu in %llu bytes",
            st.slot_count, (unsigned long long)st.slot_bytes, (unsigned long long)st.mapped_bytes,
            h->count, (unsigned long long)h->slot_bytes, (unsigned long long)S.total);
    if (st.closed != (HDR32(prod_closed) != 0))
        bug("stats.closed is %u, prod_closed %u (stats.closed is 0 or 1)", st.closed,
            HDR32(prod_closed));
    if (!S.frames_tainted && st.closed != (S.closed ? 1u : 0u))
        bug("stats.closed %u, model %d", st.closed, S.closed);
    if (!S.counters_tainted) {
        if (st.frames_committed != S.n_commits || st.frames_released != S.n_releases ||
            st.bytes_committed != S.n_bytes || st.producer_waits != 0 || st.consumer_waits != 0 ||
            st.peak_occupancy > S.max_count || (S.n_commits > 0 && st.peak_occupancy == 0))
            bug("stats counters disagree with the model");
    }
    if (st.producer_wakes != S.wake.prod_wakes || st.consumer_wakes != S.wake.cons_wakes)
        bug("stats report wakes %llu/%llu, model %llu/%llu", (unsigned long long)st.producer_wakes,
            (unsigned long long)st.consumer_wakes, (unsigned long long)S.wake.prod_wakes,
            (unsigned long long)S.wake.cons_wakes);
}

static void op_claim(int k) {
    side *h = handle(k);
    if (h->r == NULL) {
        check_status("claim(NULL)", conveyor_ring_claim(NULL), DOC_CLAIM, B(CONVEYOR_E_NULL_POINTER));
        return;
    }
    uint64_t cur = rd64(owner_off(k));
    uint64_t head = HDR64(prod_head), tail = HDR64(cons_tail);
    status_set model;
    bool takeover = false;
    if (cur == h->me) {
        model = B(CONVEYOR_OK);
    } else {
        model = claim_expect(owner_free(cur, S.mypid), head, tail, h->count);
        takeover = true;
    }
    int s = conveyor_ring_claim(h->r);
    check_status(k == P ? "claim(producer)" : "claim(consumer)", s, DOC_CLAIM, model);
    uint64_t now = rd64(owner_off(k));
    if (s == CONVEYOR_OK) {
        if (now != h->me) bug("claim succeeded but the owner word is %llx, the handle's %llx",
                              (unsigned long long)now, (unsigned long long)h->me);
        if (takeover) {
            h->busy = false;  /* resumes at the shared position */
            took_over(k);
        }
    } else if (now != cur) {
        bug("a failed claim (%s) changed the owner word %llx -> %llx", name(s),
            (unsigned long long)cur, (unsigned long long)now);
    }
}

static void op_spin(int k, uint32_t spin) {
    side *h = handle(k);
    int s = conveyor_ring_set_spin(h->r, spin);
    check_status("set_spin", s, DOC_SPIN, h->r ? B(CONVEYOR_OK) : B(CONVEYOR_E_NULL_POINTER));
}

static void destroy_side(int k) {
    side *h = handle(k);
    if (h->r == NULL) return;
    uint64_t before = rd64(owner_off(k));
    conveyor_ring_destroy(h->r);
    uint64_t after = rd64(owner_off(k));
    uint64_t want = before == h->me ? CV_OWNER_LEFT : before;
    TRACE("  destroy %s: owner %llx -> %llx\n", k == P ? "producer" : "consumer",
          (unsigned long long)before, (unsigned long long)after);
    if (after != want)
        bug("destroy changed the owner word %llx -> %llx (handle %llx; expected %llx)",
            (unsigned long long)before, (unsigned long long)after, (unsigned long long)h->me,
            (unsigned long long)want);
    *h = (side){0};
}

/* What attach_fd must return for the ring file as the view shows it now, up to the claim;
 * *g: the geometry it finds there. */
static status_set attach_header_expect(geometry *g) {
    status_set fails = 0;
    if (HDR64(magic) != CV_RING_MAGIC) fails |= B(CONVEYOR_E_NOT_A_RING);
    if (HDR32(layout_version) != CV_RING_LAYOUT_VERSION) fails |= B(CONVEYOR_E_VERSION);
    cv_ring_header line;
    memcpy(&line, S.view, 64);
    return fails | geometry_expect(&line, S.page, S.total, g);
}

/* Destroys side k first (reattach) or not (a probe: a second handle on the side, which is
 * destroyed again at once), then attaches a handle to it through the fd. */
static void op_attach(int k, bool probe) {
    if (!probe) destroy_side(k);
    geometry g;
    status_set model = attach_header_expect(&g);
    uint64_t cur = rd64(owner_off(k));
    bool validated = model == 0;  /* the new handle gets a nonce and tries to claim */
    if (validated) {
        model = claim_expect(owner_free_for_new_handle(cur), HDR64(prod_head), HDR64(cons_tail),
                             g.count);
        TRACE("  owner word %llx, the new handle's %llx\n", (unsigned long long)cur,
              (unsigned long long)next_handle_word());
    }
    conveyor_ring *r = NULL;
    int s = conveyor_ring_attach_fd(S.fd, k == P ? CONVEYOR_RING_PRODUCER : CONVEYOR_RING_CONSUMER, &r);
    check_status(probe ? "attach_fd(probe)" : "attach_fd(reattach)", s, DOC_ATTACH, model);
    uint64_t now = rd64(owner_off(k));
    if (validated) took_nonce(s == CONVEYOR_OK ? now : 0, "the attached handle");
    if (s != CONVEYOR_OK) {
        if (now != cur) bug("a failed attach (%s) changed the owner word %llx -> %llx", name(s),
                            (unsigned long long)cur, (unsigned long long)now);
        return;
    }
    took_over(k);  /* a new handle's claim is always a takeover */
    if (conveyor_ring_role_of(r) != (k == P ? CONVEYOR_RING_PRODUCER : CONVEYOR_RING_CONSUMER))
        bug("attached handle has role %d", conveyor_ring_role_of(r));
    side fresh = {.r = r, .count = g.count, .slot_bytes = g.slot_bytes, .stride = g.stride,
                  .slots_offset = g.slots_offset, .me = now};
    if (probe) {
        /* Two handles on one side: hand the probe's claim back at once. */
        side *keep = handle(k);
        side saved = *keep;
        *keep = fresh;
        destroy_side(k);
        *keep = saved;
        return;
    }
    *handle(k) = fresh;
    if (g.count != S.count || g.slot_bytes != S.slot_bytes)
        S.frames_tainted = true;  /* the sides disagree */
    if (k == P && g.count > S.max_count) S.max_count = g.count;
}

/* ---- the program ----------------------------------------------------------------- */

static const uint64_t slot_bytes_choice[8] = {64, 1, 7, 8, 24, 100, 4096, 5000};

enum {
    OP_LOAN, OP_COMMIT, OP_ABANDON, OP_CLOSE, OP_PUSH, OP_RECEIVE, OP_RELEASE, OP_STATS,
    OP_HDR_WRITE, OP_DESC_WRITE, OP_RAW_WRITE, OP_ATTACH, OP_CLAIM, OP_SPIN, OP_CYCLE, OP_DRAIN
};

/* The frame an OP_COMMIT or OP_PUSH carries (traced). */
static void read_frame(reader *r, conveyor_frame_info *info, uint64_t slot_bytes) {
    memset(info, 0, sizeof *info);
    uint8_t d = u8(r), rb = u8(r);
    info->dtype = d == 0xFF ? u32raw(r) : d % 4u;
    info->rank = rb == 0xFF ? u32raw(r) : rb % 6u;
    for (uint32_t k = 0; k < info->rank && k < 4; k++) info->shape[k] = dim(r);
    uint64_t exact = dtype_size(info->dtype);  /* the product, wrapping at 2^64 */
    for (uint32_t k = 0; k < info->rank && k < 4; k++) exact *= info->shape[k];
    uint8_t m = u8(r), a = u8(r);
    switch (m % 4) {
    case 0: info->byte_length = exact; break;
    case 1: info->byte_length = exact + (uint64_t)(int64_t)(int8_t)a; break;
    case 2: info->byte_length = u64raw(r); break;
    default: info->byte_length = slot_bytes + a % 3u - 1; break;
    }
    info->tag = (uint64_t)u8(r) * 0x0101010101010101ull;
    TRACE("  frame: dtype %u rank %u shape %llu,%llu,%llu,%llu byte_length %llu tag %llu\n",
          info->dtype, info->rank, (unsigned long long)info->shape[0],
          (unsigned long long)info->shape[1], (unsigned long long)info->shape[2],
          (unsigned long long)info->shape[3], (unsigned long long)info->byte_length,
          (unsigned long long)info->tag);
}

static void run_program(reader *r) {
    for (g_op_index = 0; g_op_index < MAX_OPS && r->i < r->n; g_op_index++) {
        uint8_t b = u8(r), op = b & 15, v = b >> 5;
        int alt = (b >> 4) & 1;
        TRACE("op %u: %u alt %d v %u\n", g_op_index, op, alt, v);
        switch (op) {
        case OP_LOAN: op_loan(alt ? C : P, v); break;
        case OP_COMMIT: {
            conveyor_frame_info info;
            read_frame(r, &info, S.slot_bytes);
            op_commit(alt ? C : P, &info, v == 7);
            break;
        }
        case OP_ABANDON: op_abandon(alt ? C : P); break;
        case OP_CLOSE: op_close(alt ? C : P); break;
        case OP_PUSH: {
            conveyor_frame_info info;
            read_frame(r, &info, S.slot_bytes);
            op_push(alt ? C : P, &info, v == 7);
            break;
        }
        case OP_RECEIVE: op_receive(alt ? P : C, v); break;
        case OP_RELEASE: op_release(alt ? P : C); break;
        case OP_STATS: op_stats(alt ? C : P, v == 7); break;
        case OP_HDR_WRITE: {
            if (v == 7) {  /* reformat: another consistent geometry, as a hostile peer would */
                uint32_t n = 1 + u8(r) % 24u;
                geometry g = geometry_of(n, slot_bytes_choice[u8(r) % 8u], S.page);
                TRACE("  hostile: geometry %u x %llu (total %llu)\n", n,
                      (unsigned long long)g.slot_bytes, (unsigned long long)g.total);
                hostile_write(offsetof(cv_ring_header, slot_count), 4, n);
                hostile_write(offsetof(cv_ring_header, slot_bytes), 8, g.slot_bytes);
                hostile_write(offsetof(cv_ring_header, slot_stride), 8, g.stride);
                hostile_write(offsetof(cv_ring_header, slots_offset), 8, g.slots_offset);
                hostile_write(offsetof(cv_ring_header, total_bytes), 8, g.total);
                break;
            }
            const field *f = &hdr_fields[u8(r) % N_HDR_FIELDS];
            uint64_t cur = f->size == 8 ? rd64(f->off) : rd32(f->off);
            TRACE("  hostile: header.%s\n", f->name);
            hostile_write(f->off, f->size, hostile_value(r, cur));
            break;
        }
        case OP_DESC_WRITE: {
            uint32_t slot = u8(r) % S.count;
            const field *f = &desc_fields[u8(r) % N_DESC_FIELDS];
            uint64_t off = CV_RING_HEADER_BYTES + (uint64_t)slot * 64 + f->off;
            uint64_t cur = f->size == 8 ? rd64(off) : rd32(off);
            TRACE("  hostile: desc[%u].%s\n", slot, f->name);
            hostile_write(off, f->size, hostile_value(r, cur));
            break;
        }
        case OP_RAW_WRITE: {
            uint32_t span = CV_RING_HEADER_BYTES + S.count * 64;
            uint32_t off = ((uint32_t)u8(r) | (uint32_t)u8(r) << 8) % span / 8 * 8;
            hostile_write(off, 8, hostile_value(r, rd64(off)));
            break;
        }
        case OP_ATTACH: op_attach(alt ? C : P, v & 1); break;
        case OP_CLAIM: op_claim(alt ? C : P); break;
        case OP_SPIN: {
            uint8_t a = u8(r);
            op_spin(alt ? C : P, a < 0xF0 ? a : a == 0xF0 ? u32raw(r) : UINT32_MAX);
            break;
        }
        case OP_CYCLE: {  /* loan, commit a valid frame, receive, release */
            uint8_t a = u8(r);
            conveyor_frame_info info = {.dtype = v % 3u, .rank = 1, .tag = a};
            uint64_t size = dtype_size(info.dtype);
            if (S.slot_bytes < size) info.dtype = CONVEYOR_DTYPE_BYTES, size = 1;
            info.shape[0] = a % (S.slot_bytes / size) + 1;
            info.byte_length = info.shape[0] * size;
            void *data;
            uint64_t cap;
            side *p = handle(P);
            status_set model = p->r == NULL ? B(CONVEYOR_E_NULL_POINTER) : loan_expect(p);
            int s = conveyor_ring_loan(p->r, 0, &data, &cap);
            check_status("cycle: loan", s, DOC_LOAN, model);
            if (s == CONVEYOR_OK) {
                after_loan_ok(p, data, cap, "loan");
                op_commit(P, &info, false);
            }
            if (op_receive(C, 0) == CONVEYOR_OK) op_release(C);
            break;
        }
        case OP_DRAIN:
            for (uint32_t i = 0; i <= S.count; i++) {
                if (op_receive(C, 0) != CONVEYOR_OK) break;
                op_release(C);
            }
            break;
        }
        check_shared_state();
    }
}

/* ---- setup, teardown, leak checks ------------------------------------------------ */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    g_trace = getenv("FUZZ_TRACE") != NULL;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    leak_baseline();
    reader rd = {data, size, 0};
    uint8_t cfg = u8(&rd);

    memset(&S, 0, sizeof S);
    S.mypid = (uint32_t)getpid();
    S.page = (uint64_t)sysconf(_SC_PAGESIZE);
    S.count = 1 + (cfg & 7u);
    S.slot_bytes = slot_bytes_choice[(cfg >> 3) & 7u];
    geometry g = geometry_of(S.count, S.slot_bytes, S.page);
    S.stride = g.stride;
    S.slots_offset = g.slots_offset;
    S.total = g.total;
    S.max_count = S.count;
    g_op_index = 0;
    TRACE("ring: %u slots of %llu bytes\n", S.count, (unsigned long long)S.slot_bytes);

    conveyor_ring_config config = {.slot_count = S.count, .slot_bytes = S.slot_bytes, .spin = 0,
                                   .backing = CONVEYOR_RING_MEMFD};
    conveyor_ring *p = NULL, *c = NULL;
    int s = conveyor_ring_create(&config, &p, &c);
    if (s != CONVEYOR_OK) bug("conveyor_ring_create(%u x %llu, MEMFD) returned %s", S.count,
                              (unsigned long long)S.slot_bytes, name(s));
    int ring_fd = conveyor_ring_fd(p);
    if (ring_fd < 0 || conveyor_ring_fd(c) != ring_fd) bug("conveyor_ring_fd gave %d/%d", ring_fd,
                                                          conveyor_ring_fd(c));
    int seals = fcntl(ring_fd, F_GET_SEALS);
    if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
        bug("a MEMFD ring's fd is not sealed at its size (seals %#x)", seals);
    S.fd = fcntl(ring_fd, F_DUPFD_CLOEXEC, 0);
    if (S.fd < 0) abort();
    void *view = mmap(NULL, S.total, PROT_READ | PROT_WRITE, MAP_SHARED, S.fd, 0);
    if (view == MAP_FAILED) abort();
    S.view = view;
    memcpy(&S.geometry, S.view, 64);

    /* The layout is the one ring_layout.h specifies. */
    if (HDR64(magic) != CV_RING_MAGIC || HDR32(layout_version) != CV_RING_LAYOUT_VERSION ||
        HDR32(header_bytes) != CV_RING_HEADER_BYTES || HDR32(slot_count) != S.count ||
        HDR64(slot_bytes) != S.slot_bytes || HDR64(slot_stride) != S.stride ||
        HDR64(descriptors_offset) != CV_RING_HEADER_BYTES || HDR64(slots_offset) != S.slots_offset ||
        HDR64(total_bytes) != S.total)
        bug("the created ring's header does not follow ring_layout.h");
    for (int k = 0; k < 2; k++) {
        S.s[k] = (side){.r = k == P ? p : c, .count = S.count, .slot_bytes = S.slot_bytes,
                        .stride = S.stride, .slots_offset = S.slots_offset, .me = rd64(owner_off(k))};
        if ((S.s[k].me >> 32) != S.mypid) bug("side %d owner word %llx after create", k,
                                              (unsigned long long)S.s[k].me);
        took_nonce(S.s[k].me, k == P ? "the created producer" : "the created consumer");
    }
    if (S.s[P].me == S.s[C].me) bug("both sides have the same owner word");
    check_shared_state();

    run_program(&rd);

    g_op_index = MAX_OPS;
    destroy_side(P);
    destroy_side(C);
    munmap(S.view, S.total);
    close(S.fd);

    check_leaks("memfd:conveyor-ring", "the ring");
    return 0;
}
