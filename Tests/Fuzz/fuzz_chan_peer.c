/*
 * fuzz_chan_peer.c — libFuzzer target: a channel's receiver and senders (and a pool) driven
 * by a fuzzer-written program, interleaved with a hostile peer that rewrites the shared
 * memory: lane heads, tails, closed flags, owner words, sleeping flags, doorbells,
 * counters, words, the header's geometry, and pool descriptors.
 *
 * Each input creates a small MEMFD channel (1-4 lanes of 1-4 words, spin 0) with a
 * receiver and one sender per lane opened from its holder, and a MEMFD pool of 4 slots of
 * 64 bytes, maps both fds a second time as the hostile view, and runs the input as a
 * program of (op, args) bytes: send, close, receive(lane) (past the last lane too),
 * receive_any, drain, read_stats, claim, set_spin, destroy-and-reattach of an end through
 * conveyor_channel_attach_fd, hostile writes, and the pool's describe and frame. Every
 * timeout is 0, so no input can block (libFuzzer's -timeout catches a hang).
 *
 * After every call:
 *   - the status is one conveyor.h documents for that call;
 *   - while the hostile peer has not touched what decides it (the lane's head, tail,
 *     closed flag, words and owner words; the receiver's owner word; the geometry of an
 *     end reattached since), the status is exactly what a model predicts: words arrive
 *     once, in order per lane, as sent; receive_any serves lanes round-robin from the one
 *     after the lane served last (from lane 0 after a receiver takeover); backpressure at
 *     capacity; END_OF_STREAM once the lane (every lane, for receive_any) is closed and
 *     drained; CLOSED after close; BUSY for a second handle on a live end; a reattached end
 *     resumes at the shared position;
 *   - whatever the hostile peer wrote, a word returned by receive_any comes with a lane
 *     below `lanes`, and PEER_DEAD / CORRUPT name such a lane too;
 *   - pool: frame() returns exactly the descriptor in the file iff it is a valid frame by
 *     conveyor.h's rule (a zero extent making the product 0), CORRUPT otherwise, and the
 *     data pointer is the start of the slot (marker check through the hostile view).
 * Everything is destroyed at the end of each input (LeakSanitizer checks the heap; the
 * target checks no fd and no mapping outlives it). Violations abort (libFuzzer saves the
 * input). FUZZ_TRACE=1 prints every operation and status.
 *
 * Black-box through conveyor.h; channel_layout.h / pool_layout.h only to play the hostile
 * peer. Built and run by scripts/fuzz.
 */
#include <conveyor.h>
#include "../../CKernels/src/channel_layout.h"
#include "../../CKernels/src/pool_layout.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static unsigned g_op_index;

#define FUZZ_TARGET "fuzz_chan_peer"
#define FUZZ_WHERE() fprintf(stderr, " at op %u", g_op_index)
#include "fuzz_common.h"

#define MAX_LANES 4
#define MAX_CAP 4
#define MAX_OPS 512
#define POOL_SLOTS 4
#define POOL_BYTES 64

#define DOC_SEND (B(CONVEYOR_OK) | B(CONVEYOR_E_TIMEOUT) | B(CONVEYOR_E_CLOSED) | \
                  B(CONVEYOR_E_PEER_DEAD) | B(CONVEYOR_E_CORRUPT) | B(CONVEYOR_E_WRONG_ROLE) | \
                  B(CONVEYOR_E_NULL_POINTER))
#define DOC_CHAN_CLOSE (B(CONVEYOR_OK) | B(CONVEYOR_E_WRONG_ROLE) | B(CONVEYOR_E_NULL_POINTER))
#define DOC_RECV (B(CONVEYOR_OK) | B(CONVEYOR_E_TIMEOUT) | B(CONVEYOR_E_END_OF_STREAM) | \
                  B(CONVEYOR_E_PEER_DEAD) | B(CONVEYOR_E_INVALID_ARGUMENT) | \
                  B(CONVEYOR_E_CORRUPT) | B(CONVEYOR_E_WRONG_ROLE) | B(CONVEYOR_E_NULL_POINTER))
#define DOC_RECV_ANY (DOC_RECV & ~B(CONVEYOR_E_INVALID_ARGUMENT))
#define DOC_CHAN_ATTACH (B(CONVEYOR_OK) | B(CONVEYOR_E_NOT_SEALED) | B(CONVEYOR_E_NOT_A_RING) | \
                         B(CONVEYOR_E_VERSION) | B(CONVEYOR_E_TRUNCATED) | B(CONVEYOR_E_CORRUPT) | \
                         B(CONVEYOR_E_BUSY) | B(CONVEYOR_E_INVALID_ARGUMENT) | \
                         B(CONVEYOR_E_SYSTEM) | B(CONVEYOR_E_NO_MEMORY) | B(CONVEYOR_E_NULL_POINTER))
#define DOC_CHAN_CLAIM (B(CONVEYOR_OK) | B(CONVEYOR_E_BUSY) | B(CONVEYOR_E_CORRUPT) | \
                        B(CONVEYOR_E_WRONG_ROLE) | B(CONVEYOR_E_NULL_POINTER))
#define DOC_CHAN_STATS (B(CONVEYOR_OK) | B(CONVEYOR_E_NULL_POINTER) | B(CONVEYOR_E_INVALID_ARGUMENT))
#define DOC_POOL_FRAME (B(CONVEYOR_OK) | B(CONVEYOR_E_INVALID_ARGUMENT) | B(CONVEYOR_E_CORRUPT) | \
                        B(CONVEYOR_E_NULL_POINTER))
#define DOC_POOL_DESCRIBE (B(CONVEYOR_OK) | B(CONVEYOR_E_INVALID_ARGUMENT) | \
                           B(CONVEYOR_E_TOO_LARGE) | B(CONVEYOR_E_NULL_POINTER))

typedef struct { const uint8_t *p; size_t n, i; } reader;
static uint8_t u8(reader *r) { return r->i < r->n ? r->p[r->i++] : 0; }
static uint64_t u64raw(reader *r) {
    uint64_t v = 0;
    for (int k = 0; k < 8; k++) v |= (uint64_t)u8(r) << (8 * k);
    return v;
}

/* ---- the channel under test and its model ---------------------------------------- */

static struct {
    int fd;                   /* our dup of the channel's memfd */
    uint8_t *view;            /* the hostile view */
    uint64_t total, page;
    uint32_t lanes, capacity;
    uint64_t lanes_offset, words_offset, word_stride;
    uint8_t geometry[128];    /* the first two lines as created */
    bool geom_dirty;          /* the hostile peer rewrote the geometry */
    conveyor_channel *holder, *recv, *send[MAX_LANES];
    uint32_t mypid;

    /* model, exact per lane while the lane is not tainted */
    bool tainted[MAX_LANES];  /* head, tail, closed, a word or the lane's owner rewritten */
    bool recv_tainted;        /* recv_owner rewritten, or an end reattached on other geometry */
    uint64_t head[MAX_LANES], tail[MAX_LANES];
    bool closed[MAX_LANES];
    uint64_t words[MAX_LANES][MAX_CAP];
    uint32_t next_lane;       /* receive_any starts here */
    uint64_t next_word;

    /* pool */
    conveyor_pool *pool;
    int pool_fd;
    uint8_t *pool_view;
    uint64_t pool_total, pool_slots_offset, pool_stride;
} S;

static uint64_t lane_off(uint32_t l) { return S.lanes_offset + (uint64_t)l * CV_CHANNEL_LANE_BYTES; }
static uint64_t rd64(uint64_t off) { uint64_t v; memcpy(&v, S.view + off, 8); return v; }
#define LN64(l, f) rd64(lane_off(l) + offsetof(cv_channel_lane, f))

static bool any_tainted(void) {
    if (S.recv_tainted) return true;
    for (uint32_t l = 0; l < S.lanes; l++)
        if (S.tainted[l]) return true;
    return false;
}

/* ---- hostile writes -------------------------------------------------------------- */

typedef struct { const char *name; uint32_t off, size; int cls; } field;
enum { C_NONE, C_LANE, C_RECV, C_GEOM };
#define LF(f, c) {#f, offsetof(cv_channel_lane, f), sizeof(((cv_channel_lane *)0)->f), c}
static const field lane_fields[] = {
    LF(send_head, C_LANE), LF(send_closed, C_LANE), LF(send_owner, C_LANE),
    LF(send_words, C_NONE), LF(send_wakes, C_NONE), LF(take_tail, C_LANE),
    LF(take_words, C_NONE), LF(take_wakes, C_NONE), LF(take_doorbell, C_NONE),
    LF(send_sleeping, C_NONE), LF(send_waits, C_NONE),
};
#define HF(f, c) {#f, offsetof(cv_channel_header, f), sizeof(((cv_channel_header *)0)->f), c}
static const field hdr_fields[] = {
    HF(magic, C_GEOM), HF(layout_version, C_GEOM), HF(header_bytes, C_GEOM), HF(lanes, C_GEOM),
    HF(capacity, C_GEOM), HF(default_spin, C_GEOM), HF(reserved, C_GEOM),
    HF(lanes_offset, C_GEOM), HF(words_offset, C_GEOM), HF(word_stride, C_GEOM),
    HF(total_bytes, C_GEOM), HF(recv_owner, C_RECV), HF(recv_sleeping, C_NONE),
    HF(recv_waits, C_NONE), HF(recv_doorbell, C_NONE),
};
#define N_LANE_FIELDS (sizeof lane_fields / sizeof lane_fields[0])
#define N_HDR_FIELDS (sizeof hdr_fields / sizeof hdr_fields[0])

static uint64_t hostile_value(reader *r, uint64_t cur) {
    uint8_t m = u8(r) % 8, a = u8(r);
    switch (m) {
    case 0: return a;
    case 1: return u64raw(r);
    case 2: return cur + 1 + a % 8;
    case 3: return cur - 1 - a % 8;
    case 4: return cur ^ ((uint64_t)1 << (a & 63));
    case 5:
        switch (a % 5) {
        case 0: return CV_OWNER_NONE;
        case 1: return CV_OWNER_LEFT;
        case 2: return (uint64_t)S.mypid << 32 | (0x10000u + a);  /* alive, not ours */
        case 3: return (uint64_t)0x7FFFFFF0u << 32 | 1;           /* never exists */
        default: return (uint64_t)1 << 32 | a;                    /* init: alive */
        }
    case 6: return cur + S.capacity + (a & 1);  /* just past the capacity */
    default: return UINT64_MAX - a;
    }
}

static void hostile_write(uint64_t off, uint32_t size, uint64_t v) {
    TRACE("  hostile write @%llu (%u bytes) = 0x%llx\n", (unsigned long long)off, size,
          (unsigned long long)v);
    memcpy(S.view + off, &v, size);
}

/* ---- checks ---------------------------------------------------------------------- */

static void check_shared(void) {
    if (!S.geom_dirty && memcmp(S.view, S.geometry, 128) != 0)
        bug("the library rewrote the channel's geometry");
    for (uint32_t l = 0; l < S.lanes; l++) {
        if (S.tainted[l]) continue;
        if (LN64(l, send_head) != S.head[l] || LN64(l, take_tail) != S.tail[l])
            bug("lane %u head/tail %llu/%llu, model %llu/%llu", l,
                (unsigned long long)LN64(l, send_head), (unsigned long long)LN64(l, take_tail),
                (unsigned long long)S.head[l], (unsigned long long)S.tail[l]);
    }
}

/* ---- operations ------------------------------------------------------------------ */

static void op_send(uint32_t l) {
    conveyor_channel *ch = S.send[l];
    uint64_t word = S.next_word++;
    status_set model;
    if (ch == NULL) model = B(CONVEYOR_E_NULL_POINTER);
    else if (S.tainted[l] || S.recv_tainted) model = DOC_SEND & ~B(CONVEYOR_E_WRONG_ROLE) & ~B(CONVEYOR_E_NULL_POINTER);
    else if (S.closed[l]) model = B(CONVEYOR_E_CLOSED);
    else if (S.head[l] - S.tail[l] < S.capacity) model = B(CONVEYOR_OK);
    /* a receiver handed back (destroyed, its reattach failed) is gone: PEER_DEAD */
    else model = B(CONVEYOR_E_TIMEOUT) | (S.recv == NULL ? B(CONVEYOR_E_PEER_DEAD) : 0);
    int s = conveyor_channel_send(ch, word, 0);
    check_status("send", s, DOC_SEND, model);
    if (s == CONVEYOR_OK && !S.tainted[l]) {
        S.words[l][S.head[l] % S.capacity] = word;
        S.head[l]++;
    }
}

static void op_close(uint32_t l) {
    conveyor_channel *ch = S.send[l];
    int s = conveyor_channel_close(ch);
    check_status("close", s, DOC_CHAN_CLOSE, ch ? B(CONVEYOR_OK) : B(CONVEYOR_E_NULL_POINTER));
    if (s == CONVEYOR_OK) S.closed[l] = true;
}

static void took(uint32_t l, uint64_t w, const char *call) {
    if (!S.tainted[l]) {
        if (S.head[l] == S.tail[l]) bug("%s returned a word on lane %u, which the model says is empty", call, l);
        uint64_t want = S.words[l][S.tail[l] % S.capacity];
        if (w != want) bug("%s returned word %llx on lane %u, model %llx", call,
                           (unsigned long long)w, l, (unsigned long long)want);
        S.tail[l]++;
    }
}

static int op_receive(uint32_t l) {
    uint64_t w = 0;
    status_set model;
    if (S.recv == NULL) model = B(CONVEYOR_E_NULL_POINTER);
    else if (l >= S.lanes) model = B(CONVEYOR_E_INVALID_ARGUMENT);
    else if (S.tainted[l]) model = DOC_RECV & ~B(CONVEYOR_E_WRONG_ROLE) & ~B(CONVEYOR_E_NULL_POINTER) & ~B(CONVEYOR_E_INVALID_ARGUMENT);
    else if (S.head[l] != S.tail[l]) model = B(CONVEYOR_OK);
    else if (S.closed[l]) model = B(CONVEYOR_E_END_OF_STREAM);
    else model = B(CONVEYOR_E_TIMEOUT) | (S.send[l] == NULL ? B(CONVEYOR_E_PEER_DEAD) : 0);
    int s = conveyor_channel_receive(S.recv, l, 0, &w);
    check_status("receive", s, DOC_RECV, model);
    if (s == CONVEYOR_OK) took(l, w, "receive");
    return s;
}

static int op_receive_any(void) {
    uint64_t w = 0;
    uint32_t lane = UINT32_MAX;
    status_set model;
    int expect_lane = -1;
    if (S.recv == NULL) {
        model = B(CONVEYOR_E_NULL_POINTER);
    } else if (any_tainted()) {
        model = DOC_RECV_ANY & ~B(CONVEYOR_E_WRONG_ROLE) & ~B(CONVEYOR_E_NULL_POINTER);
    } else {
        uint32_t ndone = 0;
        bool gone = false;
        for (uint32_t i = 0; i < S.lanes; i++) {
            uint32_t l = (S.next_lane + i) % S.lanes;
            if (S.head[l] != S.tail[l]) {
                if (expect_lane < 0) expect_lane = (int)l;
            } else if (S.closed[l]) {
                ndone++;
            } else if (S.send[l] == NULL) {
                gone = true;  /* handed back, its reattach failed */
            }
        }
        model = expect_lane >= 0 ? B(CONVEYOR_OK)
                : ndone == S.lanes ? B(CONVEYOR_E_END_OF_STREAM)
                                   : B(CONVEYOR_E_TIMEOUT) | (gone ? B(CONVEYOR_E_PEER_DEAD) : 0);
    }
    int s = conveyor_channel_receive_any(S.recv, 0, &lane, &w);
    check_status("receive_any", s, DOC_RECV_ANY, model);
    if (s == CONVEYOR_OK || s == CONVEYOR_E_PEER_DEAD || s == CONVEYOR_E_CORRUPT) {
        if (lane >= S.lanes) bug("receive_any (%s) named lane %u of %u", name(s), lane, S.lanes);
    }
    if (s == CONVEYOR_E_PEER_DEAD && !any_tainted() &&
        (S.send[lane] != NULL || S.closed[lane] || S.head[lane] != S.tail[lane]))
        bug("receive_any PEER_DEAD names lane %u, whose sender is alive, or which is closed or "
            "has a word", lane);
    if (s == CONVEYOR_OK) {
        if (expect_lane >= 0 && lane != (uint32_t)expect_lane)
            bug("receive_any served lane %u; round-robin from lane %u says %d", lane, S.next_lane,
                expect_lane);
        took(lane, w, "receive_any");
        S.next_lane = lane + 1 < S.lanes ? lane + 1 : 0;
    }
    return s;
}

/* Destroys an end (k < lanes: that lane's sender; else the receiver) and attaches it again
 * through the fd. probe: a second handle on the live end instead (BUSY, unless a hostile
 * owner word makes it free). */
static void op_reattach(uint32_t k, bool probe) {
    bool receiver = k >= S.lanes;
    uint32_t l = receiver ? 0 : k;
    conveyor_channel **slot = receiver ? &S.recv : &S.send[l];
    uint64_t owner_off = receiver ? offsetof(cv_channel_header, recv_owner)
                                  : lane_off(l) + offsetof(cv_channel_lane, send_owner);
    bool exact = !S.geom_dirty && !(receiver ? any_tainted() : S.tainted[l] || S.recv_tainted);
    if (!probe && *slot != NULL) {
        uint64_t before = rd64(owner_off);
        conveyor_channel_destroy(*slot);
        *slot = NULL;
        if (exact && rd64(owner_off) != CV_OWNER_LEFT)
            bug("destroy did not hand the end back (owner %llx -> %llx)",
                (unsigned long long)before, (unsigned long long)rd64(owner_off));
    }
    uint64_t cur = rd64(owner_off);
    conveyor_channel *ch = NULL;
    int s = conveyor_channel_attach_fd(S.fd, receiver ? CONVEYOR_CHANNEL_RECEIVER : CONVEYOR_CHANNEL_SENDER,
                                       l, &ch);
    status_set model = exact ? (probe && *slot != NULL ? B(CONVEYOR_E_BUSY) : B(CONVEYOR_OK))
                             : DOC_CHAN_ATTACH & ~B(CONVEYOR_E_NOT_SEALED) & ~B(CONVEYOR_E_NULL_POINTER);
    check_status(probe ? "attach_fd(probe)" : "attach_fd(reattach)", s, DOC_CHAN_ATTACH, model);
    if (s != CONVEYOR_OK) {
        if (rd64(owner_off) != cur) bug("a failed attach (%s) changed the owner word", name(s));
        return;
    }
    if (S.geom_dirty && (conveyor_channel_lanes(ch) != S.lanes || conveyor_channel_capacity(ch) != S.capacity)) {
        /* attached on another geometry: the ends disagree; only documented statuses now */
        for (uint32_t i = 0; i < S.lanes; i++) S.tainted[i] = true;
        S.recv_tainted = true;
    }
    if (probe) {
        conveyor_channel_destroy(ch);  /* hands the probe's claim back: the live end's is gone */
        if (*slot != NULL) {
            if (receiver) S.recv_tainted = true;
            else S.tainted[l] = true;
        }
        return;
    }
    *slot = ch;
    if (receiver) S.next_lane = 0;  /* a receiver takeover starts round-robin at lane 0 */
}

static void op_claim(uint32_t k) {
    bool receiver = k >= S.lanes;
    conveyor_channel *ch = receiver ? S.recv : S.send[k];
    bool exact = !(receiver ? any_tainted() : S.tainted[k] || S.recv_tainted);
    int s = conveyor_channel_claim(ch);
    status_set model = ch == NULL ? B(CONVEYOR_E_NULL_POINTER)
                       : exact ? B(CONVEYOR_OK)
                               : B(CONVEYOR_OK) | B(CONVEYOR_E_BUSY) | B(CONVEYOR_E_CORRUPT);
    check_status("claim", s, DOC_CHAN_CLAIM, model);
    if (s == CONVEYOR_OK && !exact && receiver) S.next_lane = 0;  /* maybe a takeover */
}

static void op_stats(uint8_t v) {
    /* A caller newer than the library passes a larger struct: the bytes past the library's
     * read as zero. The buffer is always large enough for `size`. */
    union { conveyor_channel_stats st; uint8_t bytes[512]; } buf;
    memset(&buf, 0xEE, sizeof buf);
    size_t size = v & 1 ? sizeof buf.st : (size_t)(v >> 1) * 4;
    int s = conveyor_channel_read_stats(S.holder, &buf.st, size);
    status_set model = size >= 8 && size % 8 == 0 ? B(CONVEYOR_OK) : B(CONVEYOR_E_INVALID_ARGUMENT);
    check_status("read_stats", s, DOC_CHAN_STATS, model);
    if (s != CONVEYOR_OK) {
        for (size_t i = 0; i < sizeof buf; i++)
            if (buf.bytes[i] != 0xEE) bug("a failed read_stats wrote byte %zu", i);
        return;
    }
    for (size_t i = size; i < sizeof buf; i++)
        if (buf.bytes[i] != 0xEE) bug("read_stats(%zu) wrote byte %zu", size, i);
    for (size_t i = sizeof buf.st; i < size; i++)
        if (buf.bytes[i] != 0) bug("read_stats(%zu): byte %zu past the struct is not zero", size, i);
    if (size >= sizeof buf.st && (buf.st.lanes != S.lanes || buf.st.capacity != S.capacity))
        bug("stats lanes/capacity %u/%u", buf.st.lanes, buf.st.capacity);
}

/* ---- pool ------------------------------------------------------------------------ */

static void op_pool_describe(reader *r) {
    uint32_t i = u8(r) % (POOL_SLOTS + 1);
    uint8_t d = u8(r);
    conveyor_frame_info info = {.dtype = d % 4u, .rank = (d >> 2) % 6u, .tag = u8(r)};
    uint64_t exact = dtype_size(info.dtype);
    for (uint32_t k = 0; k < info.rank && k < 4; k++) {
        info.shape[k] = u8(r) % 17;
        exact *= info.shape[k];
    }
    info.byte_length = (d >> 5) == 7 ? u64raw(r) : (d >> 5) == 6 ? exact + 1 : exact;
    bool valid;
    status_set model = i >= POOL_SLOTS ? B(CONVEYOR_E_INVALID_ARGUMENT) : frame_expect(&info, POOL_BYTES, &valid);
    check_status("pool_describe", conveyor_pool_describe(S.pool, i, &info), DOC_POOL_DESCRIBE, model);
}

static void op_pool_frame(uint32_t i) {
    const void *data = NULL;
    conveyor_frame_info got;
    status_set model;
    cv_slot_desc d;
    conveyor_frame_info want = {0};
    if (i >= POOL_SLOTS) {
        model = B(CONVEYOR_E_INVALID_ARGUMENT);
    } else {
        memcpy(&d, S.pool_view + 4096 + (uint64_t)i * 64, sizeof d);
        want = desc_info(&d);
        model = frame_valid(&want, POOL_BYTES) ? B(CONVEYOR_OK) : B(CONVEYOR_E_CORRUPT);
    }
    int s = conveyor_pool_frame(S.pool, i, &data, &got);
    check_status("pool_frame", s, DOC_POOL_FRAME, model);
    if (s != CONVEYOR_OK) return;
    if (got.dtype != want.dtype || got.rank != want.rank || got.byte_length != want.byte_length ||
        got.tag != want.tag)
        bug("pool_frame(%u) returned another descriptor than the file's", i);
    for (uint32_t k = 0; k < got.rank; k++)
        if (got.shape[k] != want.shape[k]) bug("pool_frame(%u) shape differs", i);
    uint64_t o = S.pool_slots_offset + i * S.pool_stride;
    uint8_t saved = S.pool_view[o];
    S.pool_view[o] = (uint8_t)(0x77 ^ i);
    if (*(const volatile uint8_t *)data != (uint8_t)(0x77 ^ i)) bug("pool_frame(%u) data is not the slot", i);
    S.pool_view[o] = saved;
    const volatile uint8_t *p = data;
    uint8_t sum = 0;
    for (uint64_t b = 0; b < got.byte_length; b++) sum ^= p[b];  /* the whole frame is readable */
    (void)sum;
}

/* ---- the program ----------------------------------------------------------------- */

enum {
    OP_SEND, OP_CLOSE, OP_RECV, OP_RECV_ANY, OP_LANE_WRITE, OP_HDR_WRITE, OP_WORD_WRITE,
    OP_REATTACH, OP_CLAIM, OP_STATS, OP_POOL_DESCRIBE, OP_POOL_WRITE, OP_POOL_FRAME, OP_DRAIN,
    OP_SPIN, OP_BURST
};

static void run_program(reader *r) {
    for (g_op_index = 0; g_op_index < MAX_OPS && r->i < r->n; g_op_index++) {
        uint8_t b = u8(r), op = b & 15, a = b >> 4;
        TRACE("op %u: %u a %u\n", g_op_index, op, a);
        switch (op) {
        case OP_SEND: op_send(a % S.lanes); break;
        case OP_CLOSE: op_close(a % S.lanes); break;
        case OP_RECV: op_receive(a % (S.lanes + 1)); break;
        case OP_RECV_ANY: op_receive_any(); break;
        case OP_LANE_WRITE: {
            uint32_t l = a % S.lanes;
            const field *f = &lane_fields[u8(r) % N_LANE_FIELDS];
            uint64_t off = lane_off(l) + f->off, cur = 0;
            memcpy(&cur, S.view + off, f->size);
            TRACE("  hostile: lane[%u].%s\n", l, f->name);
            hostile_write(off, f->size, hostile_value(r, cur));
            if (f->cls == C_LANE) S.tainted[l] = true;
            break;
        }
        case OP_HDR_WRITE: {
            const field *f = &hdr_fields[u8(r) % N_HDR_FIELDS];
            uint64_t cur = 0;
            memcpy(&cur, S.view + f->off, f->size);
            TRACE("  hostile: header.%s\n", f->name);
            hostile_write(f->off, f->size, hostile_value(r, cur));
            if (f->cls == C_RECV) S.recv_tainted = true;
            if (f->cls == C_GEOM) S.geom_dirty = true;
            break;
        }
        case OP_WORD_WRITE: {
            uint32_t l = a % S.lanes, k = u8(r) % S.capacity;
            uint64_t off = S.words_offset + l * S.word_stride + k * 8;
            hostile_write(off, 8, hostile_value(r, rd64(off)));
            S.tainted[l] = true;
            break;
        }
        case OP_REATTACH: op_reattach(a % (S.lanes + 1), a >= 8); break;
        case OP_CLAIM: op_claim(a % (S.lanes + 1)); break;
        case OP_STATS: op_stats(u8(r)); break;
        case OP_POOL_DESCRIBE: op_pool_describe(r); break;
        case OP_POOL_WRITE: {
            uint32_t i = a % POOL_SLOTS, w = u8(r) % 8;
            uint64_t off = 4096 + (uint64_t)i * 64 + w * 8, cur;
            memcpy(&cur, S.pool_view + off, 8);
            uint64_t v = hostile_value(r, cur);
            TRACE("  hostile: pool desc[%u] word %u = %llx\n", i, w, (unsigned long long)v);
            memcpy(S.pool_view + off, &v, 8);
            break;
        }
        case OP_POOL_FRAME: op_pool_frame(a % (POOL_SLOTS + 1)); break;
        case OP_DRAIN:
            for (uint32_t i = 0; i < S.lanes * S.capacity + 1; i++)
                if (op_receive_any() != CONVEYOR_OK) break;
            break;
        case OP_SPIN: {
            uint32_t k = a % (S.lanes + 1);
            conveyor_channel *ch = k < S.lanes ? S.send[k] : S.recv;
            check_status("set_spin", conveyor_channel_set_spin(ch, u8(r)), B(CONVEYOR_OK) | B(CONVEYOR_E_NULL_POINTER),
                         ch ? B(CONVEYOR_OK) : B(CONVEYOR_E_NULL_POINTER));
            break;
        }
        case OP_BURST:
            for (uint32_t i = 0; i <= S.capacity; i++) op_send(a % S.lanes);
            break;
        }
        check_shared();
    }
}

/* ---- setup and teardown ---------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    g_trace = getenv("FUZZ_TRACE") != NULL;
    return 0;
}

static void must(int s, const char *what) {
    if (s != CONVEYOR_OK) bug("%s returned %s", what, name(s));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    leak_baseline();
    reader rd = {data, size, 0};
    uint8_t cfg = u8(&rd);
    memset(&S, 0, sizeof S);
    S.mypid = (uint32_t)getpid();
    S.page = (uint64_t)sysconf(_SC_PAGESIZE);
    S.lanes = 1 + cfg % MAX_LANES;
    S.capacity = 1 + (cfg >> 2) % MAX_CAP;
    S.next_word = 0x5EED000000000000ull;
    g_op_index = 0;
    TRACE("channel: %u lanes of %u words\n", S.lanes, S.capacity);

    conveyor_channel_config config = {.lanes = S.lanes, .capacity = S.capacity, .spin = 0,
                                      .backing = CONVEYOR_RING_MEMFD};
    must(conveyor_channel_create(&config, &S.holder), "conveyor_channel_create");
    must(conveyor_channel_open(S.holder, CONVEYOR_CHANNEL_RECEIVER, 0, &S.recv), "open(receiver)");
    for (uint32_t l = 0; l < S.lanes; l++)
        must(conveyor_channel_open(S.holder, CONVEYOR_CHANNEL_SENDER, l, &S.send[l]), "open(sender)");
    int fd = conveyor_channel_fd(S.holder);
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
        bug("a MEMFD channel's fd is not sealed at its size (seals %#x)", seals);
    S.fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (S.fd < 0) abort();
    off_t end = lseek(S.fd, 0, SEEK_END);
    if (end <= 0) abort();
    S.total = (uint64_t)end;
    S.view = mmap(NULL, S.total, PROT_READ | PROT_WRITE, MAP_SHARED, S.fd, 0);
    if (S.view == MAP_FAILED) abort();
    memcpy(S.geometry, S.view, 128);
    cv_channel_header h;
    memcpy(&h, S.view, sizeof h);
    if (h.magic != CV_CHANNEL_MAGIC || h.layout_version != CV_CHANNEL_LAYOUT_VERSION ||
        h.lanes != S.lanes || h.capacity != S.capacity || h.total_bytes != S.total)
        bug("the created channel's header does not follow channel_layout.h");
    S.lanes_offset = h.lanes_offset;
    S.words_offset = h.words_offset;
    S.word_stride = h.word_stride;

    conveyor_pool_config pc = {.slot_count = POOL_SLOTS, .slot_bytes = POOL_BYTES,
                               .backing = CONVEYOR_RING_MEMFD};
    must(conveyor_pool_create(&pc, &S.pool), "conveyor_pool_create");
    S.pool_fd = fcntl(conveyor_pool_fd(S.pool), F_DUPFD_CLOEXEC, 0);
    if (S.pool_fd < 0) abort();
    S.pool_total = conveyor_pool_mapped_bytes(S.pool);
    S.pool_view = mmap(NULL, S.pool_total, PROT_READ | PROT_WRITE, MAP_SHARED, S.pool_fd, 0);
    if (S.pool_view == MAP_FAILED) abort();
    cv_pool_header ph;
    memcpy(&ph, S.pool_view, sizeof ph);
    S.pool_slots_offset = ph.slots_offset;
    S.pool_stride = ph.slot_stride;

    run_program(&rd);

    g_op_index = MAX_OPS;
    for (uint32_t l = 0; l < S.lanes; l++) conveyor_channel_destroy(S.send[l]);
    conveyor_channel_destroy(S.recv);
    conveyor_channel_destroy(S.holder);
    conveyor_pool_destroy(S.pool);
    munmap(S.view, S.total);
    munmap(S.pool_view, S.pool_total);
    close(S.fd);
    close(S.pool_fd);
    check_leaks("conveyor-channel", "the channel");
    check_leaks("conveyor-pool", "the pool");
    return 0;
}
