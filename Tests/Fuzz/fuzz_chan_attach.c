/*
 * fuzz_chan_attach.c — libFuzzer target: conveyor_pool_attach_fd and
 * conveyor_channel_attach_fd on a memfd whose contents, size and seals the fuzzer chooses,
 * then a few polls (timeout 0: nothing can block) on whatever attached.
 *
 * Input: a mode byte, a lane byte, then the file image.
 *   mode bit 0     0 a pool (pool_layout.h), 1 a channel (channel_layout.h)
 *   mode bits 1-2  seals: 0 SHRINK|GROW|SEAL (as MEMFD pools and channels), 1 none,
 *                  2 SHRINK only, 3 SHRINK|GROW|WRITE|SEAL (a writable mapping is refused)
 *   mode bit 3     compact image: the first header bytes (128 for a pool, 384 for a
 *                  channel) are the header, the rest goes at offset 4096 (a pool's
 *                  descriptors, a channel's lane blocks), and the file is extended to the
 *                  header's total_bytes when that is at most 256 KiB. A magic of 0 is
 *                  replaced by the right one, a layout_version of 0 by the right one, and a
 *                  header_bytes of 0 asks for the offsets, stride and total to be derived
 *                  from (slot_count, slot_bytes) or (lanes, capacity), so short inputs reach
 *                  past the header checks; else the image is the file
 *   mode bit 4     one byte shorter than the compact image's total (TRUNCATED)
 *   mode bits 5-6  channel role: 0 RECEIVER, 1 SENDER of lane (lane byte % 66: past the
 *                  last lane too), 2 HOLDER, 3 an invalid role (0 or 4); lane byte bit 7
 *                  with RECEIVER or HOLDER: lane 1 (INVALID_ARGUMENT)
 *   mode bit 7     attach a second time with the same role (must be BUSY once claimed)
 * Each attach's status must be exactly the one conveyor.h, pool_layout.h and
 * channel_layout.h prescribe for that file (seals, magic, version, geometry, size, role and
 * lane, owner word, the counters the claimed end reloads), up to owner words whose
 * liveness this process cannot predict. A failed attach must leave the owner word as it
 * was. On success:
 *   pool     every slot address is the start of the right slot (markers written through our
 *            own mapping are read back through it, its last byte too); frame(i) returns
 *            the file's descriptor iff it is a valid frame by conveyor.h's rule, CORRUPT
 *            otherwise, INVALID_ARGUMENT past the last slot; describe + frame round-trips.
 *   channel  a takeover rings the peer's doorbells exactly (a sender: recv_doorbell + 1 iff
 *            recv_sleeping; a receiver: every lane's take_doorbell + 1 iff its
 *            send_sleeping); a sender sends until full (OK while there is room, then TIMEOUT
 *            or PEER_DEAD), closes, and gets CLOSED; a receiver drains with receive_any and
 *            receive(lane), each word the file's word at the lane's tail, lanes round-robin
 *            from lane 0, END_OF_STREAM exactly when every lane is closed and drained,
 *            PEER_DEAD only naming an open drained lane whose sender is gone.
 * Destroy must hand a claimed end back (CV_OWNER_LEFT). Any violation aborts; sanitizer
 * reports are failures too. FUZZ_TRACE=1 prints each call and status.
 * Built and run by scripts/fuzz.
 */
#include <conveyor.h>
#include "../../CKernels/src/channel_layout.h"
#include "../../CKernels/src/pool_layout.h"

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

#define FUZZ_TARGET "fuzz_chan_attach"
#include "fuzz_common.h"

#define COMPACT_LIMIT (256u * 1024u)

#define DOC_POOL_ATTACH (B(CONVEYOR_OK) | B(CONVEYOR_E_NOT_SEALED) | B(CONVEYOR_E_NOT_A_RING) | \
                         B(CONVEYOR_E_VERSION) | B(CONVEYOR_E_TRUNCATED) | B(CONVEYOR_E_CORRUPT) | \
                         B(CONVEYOR_E_INVALID_ARGUMENT) | B(CONVEYOR_E_SYSTEM) | \
                         B(CONVEYOR_E_NO_MEMORY) | B(CONVEYOR_E_NULL_POINTER))
#define DOC_CHAN_ATTACH (DOC_POOL_ATTACH | B(CONVEYOR_E_BUSY))
#define DOC_POOL_FRAME (B(CONVEYOR_OK) | B(CONVEYOR_E_INVALID_ARGUMENT) | B(CONVEYOR_E_CORRUPT) | \
                        B(CONVEYOR_E_NULL_POINTER))
#define DOC_POOL_DESCRIBE (B(CONVEYOR_OK) | B(CONVEYOR_E_INVALID_ARGUMENT) | \
                           B(CONVEYOR_E_TOO_LARGE) | B(CONVEYOR_E_NULL_POINTER))
#define DOC_SEND (B(CONVEYOR_OK) | B(CONVEYOR_E_TIMEOUT) | B(CONVEYOR_E_CLOSED) | \
                  B(CONVEYOR_E_PEER_DEAD) | B(CONVEYOR_E_CORRUPT) | B(CONVEYOR_E_WRONG_ROLE) | \
                  B(CONVEYOR_E_NULL_POINTER))
#define DOC_CHAN_CLOSE (B(CONVEYOR_OK) | B(CONVEYOR_E_WRONG_ROLE) | B(CONVEYOR_E_NULL_POINTER))
#define DOC_RECV (B(CONVEYOR_OK) | B(CONVEYOR_E_TIMEOUT) | B(CONVEYOR_E_END_OF_STREAM) | \
                  B(CONVEYOR_E_PEER_DEAD) | B(CONVEYOR_E_INVALID_ARGUMENT) | \
                  B(CONVEYOR_E_CORRUPT) | B(CONVEYOR_E_WRONG_ROLE) | B(CONVEYOR_E_NULL_POINTER))
#define DOC_RECV_ANY (DOC_RECV & ~B(CONVEYOR_E_INVALID_ARGUMENT))

static struct {
    int fd;
    uint64_t size, page;
    uint32_t mypid;
    /* channel geometry once validated */
    uint32_t lanes, capacity;
    uint64_t lanes_offset, words_offset, word_stride;
    /* pool geometry once validated */
    uint32_t count;
    uint64_t slot_bytes, stride, slots_offset;
} F;

static uint64_t rd(uint64_t off, unsigned width) {
    uint64_t v = 0;
    if (off + width <= F.size && pread(F.fd, &v, width, (off_t)off) != (ssize_t)width) abort();
    return v;
}
#define CH(field) rd(offsetof(cv_channel_header, field), sizeof(((cv_channel_header *)0)->field))
#define PH(field) rd(offsetof(cv_pool_header, field), sizeof(((cv_pool_header *)0)->field))
#define LANE_OFF(l, field) (F.lanes_offset + (uint64_t)(l) * CV_CHANNEL_LANE_BYTES + \
                            offsetof(cv_channel_lane, field))
#define LN(l, field) rd(LANE_OFF(l, field), sizeof(((cv_channel_lane *)0)->field))

/* ---- geometry as the layouts specify it ------------------------------------------ */

typedef struct { uint64_t lanes_offset, words_offset, word_stride, total; } chan_geometry;

static bool chan_geometry_of(uint64_t lanes, uint64_t capacity, chan_geometry *g) {
    if (lanes < 1 || lanes > CONVEYOR_CHANNEL_MAX_LANES || capacity < 1 ||
        capacity > CONVEYOR_CHANNEL_MAX_CAPACITY)
        return false;
    g->lanes_offset = 4096;
    g->words_offset = 4096 + lanes * CV_CHANNEL_LANE_BYTES;
    g->word_stride = round_up(capacity * 8, CV_CHANNEL_WORD_ALIGN);
    g->total = round_up(g->words_offset + lanes * g->word_stride, F.page);
    return true;
}

static bool pool_geometry_ok(uint32_t n, uint64_t bytes, geometry *g) {
    if (n < 1 || n > CONVEYOR_POOL_MAX_SLOTS || bytes < 1 || bytes > CONVEYOR_RING_MAX_SLOT_BYTES)
        return false;
    *g = geometry_of(n, bytes, F.page);
    return true;
}

/* ---- owners ---------------------------------------------------------------------- */

/* Whether an owner word is free for a new handle here: 1 yes, 0 no (BUSY), -1 either. */
static int word_free(uint64_t w) {
    if (w == CV_OWNER_NONE || w == CV_OWNER_LEFT) return 1;
    uint32_t pid = (uint32_t)(w >> 32);
    if (pid == 0 || pid == 1 || pid == F.mypid) return pid == F.mypid ? -1 : 0;
    if (pid >= PID_LIMIT && pid < 0x80000000u) return 1;
    return -1;
}

/* Whether the peer behind owner word w is gone as a receiver's/sender's peer check sees
 * it: 1 yes, 0 no, -1 cannot tell. NONE is waited for (not gone). */
static int word_gone(uint64_t w) {
    if (w == CV_OWNER_NONE) return 0;
    return owner_gone(w, F.mypid);
}

/* ---- the file -------------------------------------------------------------------- */

static int seal_bits(int mode) {
    switch (mode) {
    case 0: return F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
    case 1: return 0;
    case 2: return F_SEAL_SHRINK;
    default: return F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL;
    }
}

/* Writes the image into a new memfd and seals it; returns the seals it has. */
static int make_file(bool channel, bool compact, bool shorter, int seal_mode,
                     const uint8_t *img, size_t n) {
    F.fd = memfd_create("fuzz-chan-attach", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (F.fd < 0) abort();
    if (!compact) {
        if (n && pwrite(F.fd, img, n, 0) != (ssize_t)n) abort();
        F.size = n;
    } else {
        size_t hb = channel ? sizeof(cv_channel_header) : sizeof(cv_pool_header);
        uint8_t hdr[sizeof(cv_channel_header)];
        memset(hdr, 0, sizeof hdr);
        memcpy(hdr, img, n < hb ? n : hb);
        uint64_t total = 4096 + (n > hb ? n - hb : 0);
        if (channel) {
            cv_channel_header *h = (cv_channel_header *)hdr;
            if (h->magic == 0) h->magic = CV_CHANNEL_MAGIC;
            if (h->layout_version == 0) h->layout_version = CV_CHANNEL_LAYOUT_VERSION;
            chan_geometry g;
            if (h->header_bytes == 0) {
                h->header_bytes = 4096;
                h->lanes = h->lanes % 8 + 1;  /* derived: a small channel */
                h->capacity = h->capacity % 8 + 1;
                chan_geometry_of(h->lanes, h->capacity, &g);
                h->lanes_offset = g.lanes_offset;
                h->words_offset = g.words_offset;
                h->word_stride = g.word_stride;
                h->total_bytes = g.total;
            }
            if (h->total_bytes <= COMPACT_LIMIT && h->total_bytes > total) total = h->total_bytes;
        } else {
            cv_pool_header *h = (cv_pool_header *)hdr;
            if (h->magic == 0) h->magic = CV_POOL_MAGIC;
            if (h->layout_version == 0) h->layout_version = CV_POOL_LAYOUT_VERSION;
            if (h->header_bytes == 0) {
                h->header_bytes = 4096;
                h->slot_count = h->slot_count % 8 + 1;
                h->slot_bytes = h->slot_bytes % 5000 + 1;
                geometry g = geometry_of(h->slot_count, h->slot_bytes, F.page);
                h->slot_stride = g.stride;
                h->descriptors_offset = 4096;
                h->slots_offset = g.slots_offset;
                h->total_bytes = g.total;
            }
            if (h->total_bytes <= COMPACT_LIMIT && h->total_bytes > total) total = h->total_bytes;
        }
        if (shorter && total > 0) total--;
        if (ftruncate(F.fd, (off_t)total) != 0) abort();
        if (pwrite(F.fd, hdr, hb, 0) != (ssize_t)hb) abort();
        if (n > hb) {
            size_t rest = n - hb;
            if (4096 + rest > total) rest = total > 4096 ? total - 4096 : 0;
            if (rest && pwrite(F.fd, img + hb, rest, 4096) != (ssize_t)rest) abort();
        }
        F.size = total;
    }
    int want = seal_bits(seal_mode);
    if (want && fcntl(F.fd, F_ADD_SEALS, want) != 0) abort();
    return fcntl(F.fd, F_GET_SEALS);
}

/* What either attach gives up to (and excluding) the channel's role and claim checks;
 * 0 if the header passes. `channel` picks the layout. */
static status_set header_expect(bool channel, int seals, int seal_mode) {
    uint64_t magic = channel ? CV_CHANNEL_MAGIC : CV_POOL_MAGIC;
    if (F.size < 8 || rd(0, 8) != magic) return B(CONVEYOR_E_NOT_A_RING);
    if (F.size < 4096) return B(CONVEYOR_E_TRUNCATED);
    if ((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
        return B(CONVEYOR_E_NOT_SEALED);
    if (seal_mode == 3) return B(CONVEYOR_E_SYSTEM);  /* F_SEAL_WRITE: no shared RW mapping */
    if (channel) {
        if (CH(layout_version) != CV_CHANNEL_LAYOUT_VERSION) return B(CONVEYOR_E_VERSION);
        chan_geometry g;
        if (CH(header_bytes) != 4096 || CH(reserved) != 0 ||
            !chan_geometry_of(CH(lanes), CH(capacity), &g) || CH(lanes_offset) != g.lanes_offset ||
            CH(words_offset) != g.words_offset || CH(word_stride) != g.word_stride ||
            CH(total_bytes) != g.total)
            return B(CONVEYOR_E_CORRUPT);
        if (g.total > F.size) return B(CONVEYOR_E_TRUNCATED);
        F.lanes = (uint32_t)CH(lanes);
        F.capacity = (uint32_t)CH(capacity);
        F.lanes_offset = g.lanes_offset;
        F.words_offset = g.words_offset;
        F.word_stride = g.word_stride;
    } else {
        if (PH(layout_version) != CV_POOL_LAYOUT_VERSION) return B(CONVEYOR_E_VERSION);
        geometry g;
        if (PH(header_bytes) != 4096 || PH(reserved) != 0 ||
            !pool_geometry_ok((uint32_t)PH(slot_count), PH(slot_bytes), &g) ||
            PH(slot_stride) != g.stride || PH(descriptors_offset) != 4096 ||
            PH(slots_offset) != g.slots_offset || PH(total_bytes) != g.total)
            return B(CONVEYOR_E_CORRUPT);
        if (g.total > F.size) return B(CONVEYOR_E_TRUNCATED);
        F.count = (uint32_t)PH(slot_count);
        F.slot_bytes = PH(slot_bytes);
        F.stride = g.stride;
        F.slots_offset = g.slots_offset;
    }
    return 0;
}

/* ---- pool ------------------------------------------------------------------------ */

static void pool_checks(conveyor_pool *pool) {
    if (conveyor_pool_slot_count(pool) != F.count || conveyor_pool_slot_bytes(pool) != F.slot_bytes)
        bug("pool geometry accessors disagree with the file");
    uint8_t *view = mmap(NULL, F.size, PROT_READ | PROT_WRITE, MAP_SHARED, F.fd, 0);
    if (view == MAP_FAILED) abort();
    uint32_t n = F.count < 12 ? F.count : 12;
    for (uint32_t i = 0; i < n; i++) {
        volatile uint8_t *p = conveyor_pool_slot(pool, i);
        if (p == NULL) bug("pool_slot(%u) is NULL", i);
        if ((uintptr_t)p % F.page) bug("pool_slot(%u) is not page-aligned", i);
        uint64_t o0 = F.slots_offset + i * F.stride, o1 = o0 + F.slot_bytes - 1;
        view[o1] = (uint8_t)(0xA5 ^ i);
        view[o0] = (uint8_t)(0x5A ^ i);
        if (p[0] != (uint8_t)(0x5A ^ i) ||
            (F.slot_bytes > 1 && p[F.slot_bytes - 1] != (uint8_t)(0xA5 ^ i)))
            bug("pool_slot(%u) is not slot %u of the file", i, i);

        cv_slot_desc d;
        memcpy(&d, view + 4096 + (uint64_t)i * 64, sizeof d);
        conveyor_frame_info want = desc_info(&d), got;
        const void *data = NULL;
        bool valid = frame_valid(&want, F.slot_bytes);
        int s = conveyor_pool_frame(pool, i, &data, &got);
        check_status("pool_frame", s, DOC_POOL_FRAME, valid ? B(CONVEYOR_OK) : B(CONVEYOR_E_CORRUPT));
        if (s == CONVEYOR_OK) {
            if (data != (const void *)p) bug("pool_frame(%u) data %p, slot %p", i, data, (void *)p);
            if (got.dtype != want.dtype || got.rank != want.rank ||
                got.byte_length != want.byte_length || got.tag != want.tag)
                bug("pool_frame(%u) returned another descriptor than the file's", i);
        }
        conveyor_frame_info mine = {.dtype = CONVEYOR_DTYPE_BYTES, .rank = 1,
                                    .shape = {F.slot_bytes}, .byte_length = F.slot_bytes, .tag = i};
        check_status("pool_describe", conveyor_pool_describe(pool, i, &mine), DOC_POOL_DESCRIBE,
                     B(CONVEYOR_OK));
        check_status("pool_frame(after describe)", conveyor_pool_frame(pool, i, &data, &got),
                     DOC_POOL_FRAME, B(CONVEYOR_OK));
        if (got.tag != i || got.byte_length != F.slot_bytes) bug("describe did not round-trip");
    }
    const void *data;
    conveyor_frame_info info;
    check_status("pool_frame(past the end)", conveyor_pool_frame(pool, F.count, &data, &info),
                 DOC_POOL_FRAME, B(CONVEYOR_E_INVALID_ARGUMENT));
    if (conveyor_pool_slot(pool, F.count) != NULL) bug("pool_slot(count) is not NULL");
    munmap(view, F.size);
}

/* ---- channel --------------------------------------------------------------------- */

/* What a channel attach as (role, lane) gives once the header passed. */
static status_set claim_expect_chan(int role, uint32_t lane) {
    if (role == CONVEYOR_CHANNEL_SENDER ? lane >= F.lanes : lane != 0)
        return B(CONVEYOR_E_INVALID_ARGUMENT);
    if (role == CONVEYOR_CHANNEL_HOLDER) return B(CONVEYOR_OK);
    uint64_t owner = role == CONVEYOR_CHANNEL_SENDER ? LN(lane, send_owner) : CH(recv_owner);
    int fr = word_free(owner);
    bool bad = false;
    for (uint32_t l = 0; l < F.lanes; l++)
        if ((role == CONVEYOR_CHANNEL_RECEIVER || l == lane) &&
            LN(l, send_head) - LN(l, take_tail) > F.capacity)
            bad = true;
    status_set take = bad ? B(CONVEYOR_E_CORRUPT) : B(CONVEYOR_OK);
    return fr == 1 ? take : fr == 0 ? B(CONVEYOR_E_BUSY) : take | B(CONVEYOR_E_BUSY);
}

static uint64_t word_at(uint32_t l, uint64_t seq) {
    return rd(F.words_offset + l * F.word_stride + (seq % F.capacity) * 8, 8);
}

static void sender_checks(conveyor_channel *ch, uint32_t lane) {
    uint64_t head = LN(lane, send_head), tail = LN(lane, take_tail);
    bool closed = LN(lane, send_closed) != 0;
    int gone = word_gone(CH(recv_owner));
    for (uint32_t i = 0; i <= F.capacity && i < 70; i++) {
        bool room = head - tail < F.capacity;
        status_set model = closed ? B(CONVEYOR_E_CLOSED)
                           : room ? B(CONVEYOR_OK)
                                  : B(CONVEYOR_E_TIMEOUT) | (gone ? B(CONVEYOR_E_PEER_DEAD) : 0);
        int s = conveyor_channel_send(ch, 0xC0FFEE00u + i, 0);
        check_status("send", s, DOC_SEND, model);
        if (s != CONVEYOR_OK) break;
        head++;
        if (LN(lane, send_head) != head) bug("send_head %llu after a send, model %llu",
                                             (unsigned long long)LN(lane, send_head),
                                             (unsigned long long)head);
        if (word_at(lane, head - 1) != 0xC0FFEE00u + i) bug("the word sent is not in its place");
    }
    check_status("close", conveyor_channel_close(ch), DOC_CHAN_CLOSE, B(CONVEYOR_OK));
    if (LN(lane, send_closed) != 1) bug("send_closed is not 1 after close");
    check_status("send(closed)", conveyor_channel_send(ch, 1, 0), DOC_SEND, B(CONVEYOR_E_CLOSED));
    uint64_t w;
    check_status("receive(on a sender)", conveyor_channel_receive(ch, 0, 0, &w), DOC_RECV,
                 B(CONVEYOR_E_WRONG_ROLE));
}

static void receiver_checks(conveyor_channel *ch, uint8_t pick) {
    uint64_t tail[CONVEYOR_CHANNEL_MAX_LANES];
    bool done[CONVEYOR_CHANNEL_MAX_LANES];
    for (uint32_t l = 0; l < F.lanes; l++) tail[l] = LN(l, take_tail), done[l] = false;
    uint32_t next = 0;
    /* receive(lane) once on a lane picked by the input (maybe past the last) */
    uint32_t want = pick % (F.lanes + 1);
    uint64_t w = 0;
    int s = conveyor_channel_receive(ch, want, 0, &w);
    if (want >= F.lanes) {
        check_status("receive(bad lane)", s, DOC_RECV, B(CONVEYOR_E_INVALID_ARGUMENT));
    } else {
        uint64_t head = LN(want, send_head);
        bool closed = LN(want, send_closed) != 0;
        int gone = word_gone(LN(want, send_owner));
        status_set model = head != tail[want] ? B(CONVEYOR_OK)
                           : closed ? B(CONVEYOR_E_END_OF_STREAM)
                                    : B(CONVEYOR_E_TIMEOUT) | (gone ? B(CONVEYOR_E_PEER_DEAD) : 0);
        check_status("receive", s, DOC_RECV, model);
        if (s == CONVEYOR_OK) {
            if (w != word_at(want, tail[want])) bug("receive returned another word than the file's");
            tail[want]++;
            if (LN(want, take_tail) != tail[want]) bug("take_tail not advanced by receive");
        }
        if (s == CONVEYOR_E_END_OF_STREAM) done[want] = true;
    }
    /* receive_any until it stops giving words */
    for (uint32_t k = 0; k < F.lanes * F.capacity + 2 && k < 400; k++) {
        int ready = -1, ndone = 0;
        bool any_gone = false;
        for (uint32_t i = 0; i < F.lanes; i++) {
            uint32_t l = (next + i) % F.lanes;
            if (done[l]) { ndone++; continue; }
            uint64_t head = LN(l, send_head);
            if (head != tail[l]) { if (ready < 0) ready = (int)l; continue; }
            if (LN(l, send_closed)) { done[l] = true; ndone++; continue; }
            if (word_gone(LN(l, send_owner)) != 0) any_gone = true;
        }
        status_set model = ready >= 0 ? B(CONVEYOR_OK)
                           : ndone == (int)F.lanes ? B(CONVEYOR_E_END_OF_STREAM)
                                                   : B(CONVEYOR_E_TIMEOUT) |
                                                         (any_gone ? B(CONVEYOR_E_PEER_DEAD) : 0);
        uint32_t lane = UINT32_MAX;
        s = conveyor_channel_receive_any(ch, 0, &lane, &w);
        check_status("receive_any", s, DOC_RECV_ANY, model);
        if (s == CONVEYOR_OK) {
            if (lane != (uint32_t)ready) bug("receive_any served lane %u, round-robin says %d", lane, ready);
            if (w != word_at(lane, tail[lane])) bug("receive_any returned another word than the file's");
            tail[lane]++;
            next = lane + 1 < F.lanes ? lane + 1 : 0;
        } else if (s == CONVEYOR_E_PEER_DEAD) {
            if (lane >= F.lanes || done[lane] || LN(lane, send_head) != tail[lane] ||
                LN(lane, send_closed) || word_gone(LN(lane, send_owner)) == 0)
                bug("receive_any PEER_DEAD names lane %u, which is not an open drained lane "
                    "with a gone sender", lane);
            break;
        } else {
            break;
        }
    }
    check_status("send(on the receiver)", conveyor_channel_send(ch, 1, 0), DOC_SEND,
                 B(CONVEYOR_E_WRONG_ROLE));
}

/* ---- the target ------------------------------------------------------------------ */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    g_trace = getenv("FUZZ_TRACE") != NULL;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    leak_baseline();
    memset(&F, 0, sizeof F);
    F.page = (uint64_t)sysconf(_SC_PAGESIZE);
    F.mypid = (uint32_t)getpid();
    uint8_t mode = data[0], lane_byte = data[1];
    bool channel = mode & 1, compact = mode & 8, shorter = mode & 16, twice = mode & 128;
    int seal_mode = (mode >> 1) & 3;
    int seals = make_file(channel, compact, shorter, seal_mode, data + 2, size - 2);
    TRACE("%s file of %llu bytes, seals %#x\n", channel ? "channel" : "pool",
          (unsigned long long)F.size, seals);
    status_set head = header_expect(channel, seals, seal_mode);

    if (!channel) {
        conveyor_pool *pool = NULL;
        int s = conveyor_pool_attach_fd(F.fd, &pool);
        check_status("pool_attach_fd", s, DOC_POOL_ATTACH, head ? head : B(CONVEYOR_OK));
        if (s == CONVEYOR_OK) {
            pool_checks(pool);
            if (twice) {
                conveyor_pool *again = NULL;
                check_status("pool_attach_fd(again)", conveyor_pool_attach_fd(F.fd, &again),
                             DOC_POOL_ATTACH, B(CONVEYOR_OK));  /* pools own nothing */
                conveyor_pool_destroy(again);
            }
            conveyor_pool_destroy(pool);
        } else if (pool != NULL) {
            bug("a failed pool attach returned a handle");
        }
    } else {
        int rsel = (mode >> 5) & 3;
        int role = rsel == 0 ? CONVEYOR_CHANNEL_RECEIVER : rsel == 1 ? CONVEYOR_CHANNEL_SENDER
                   : rsel == 2 ? CONVEYOR_CHANNEL_HOLDER : (lane_byte & 1 ? 4 : 0);
        uint32_t lane = role == CONVEYOR_CHANNEL_SENDER ? lane_byte % 66u : (lane_byte >> 7);
        status_set model;
        if (role < 1 || role > 3) model = B(CONVEYOR_E_INVALID_ARGUMENT);
        else model = head ? head : claim_expect_chan(role, lane);
        bool claims = (model & B(CONVEYOR_OK)) && role != CONVEYOR_CHANNEL_HOLDER;
        uint64_t owner_off = role == CONVEYOR_CHANNEL_SENDER ? LANE_OFF(lane, send_owner)
                                                             : offsetof(cv_channel_header, recv_owner);
        uint64_t owner_before = claims || head == 0 ? rd(owner_off, 8) : 0;
        uint32_t bell_before = 0, bells_before[CONVEYOR_CHANNEL_MAX_LANES] = {0};
        if (claims) {
            bell_before = (uint32_t)CH(recv_doorbell);
            for (uint32_t l = 0; l < F.lanes; l++) bells_before[l] = (uint32_t)LN(l, take_doorbell);
        }
        conveyor_channel *ch = NULL;
        int s = conveyor_channel_attach_fd(F.fd, role, lane, &ch);
        check_status("channel_attach_fd", s, DOC_CHAN_ATTACH, model);
        if (s != CONVEYOR_OK) {
            if (ch != NULL) bug("a failed channel attach returned a handle");
            if (head == 0 && role >= 1 && role <= 3 && rd(owner_off, 8) != owner_before)
                bug("a failed attach (%s) changed the owner word", name(s));
        } else {
            if (conveyor_channel_role_of(ch) != role || conveyor_channel_lanes(ch) != F.lanes ||
                conveyor_channel_capacity(ch) != F.capacity ||
                (role == CONVEYOR_CHANNEL_SENDER && conveyor_channel_lane(ch) != lane))
                bug("channel accessors disagree with the attach");
            uint64_t me = rd(owner_off, 8);
            if (role != CONVEYOR_CHANNEL_HOLDER) {
                if ((uint32_t)(me >> 32) != F.mypid) bug("owner word %llx after a claim", (unsigned long long)me);
                /* the takeover rang the peer's doorbell(s) iff it slept */
                if (role == CONVEYOR_CHANNEL_SENDER) {
                    uint32_t want = bell_before + (CH(recv_sleeping) != 0);
                    if ((uint32_t)CH(recv_doorbell) != want)
                        bug("sender takeover: recv_doorbell %u, expected %u (rung iff recv_sleeping)",
                            (uint32_t)CH(recv_doorbell), want);
                } else {
                    for (uint32_t l = 0; l < F.lanes; l++) {
                        uint32_t want = bells_before[l] + (LN(l, send_sleeping) != 0);
                        if ((uint32_t)LN(l, take_doorbell) != want)
                            bug("receiver takeover: lane %u take_doorbell %u, expected %u", l,
                                (uint32_t)LN(l, take_doorbell), want);
                    }
                }
            }
            if (twice && role != CONVEYOR_CHANNEL_HOLDER) {
                conveyor_channel *again = NULL;
                check_status("channel_attach_fd(again)",
                             conveyor_channel_attach_fd(F.fd, role, lane, &again), DOC_CHAN_ATTACH,
                             B(CONVEYOR_E_BUSY));
                conveyor_channel_destroy(again);
            }
            if (role == CONVEYOR_CHANNEL_SENDER) sender_checks(ch, lane);
            else if (role == CONVEYOR_CHANNEL_RECEIVER) receiver_checks(ch, lane_byte);
            conveyor_channel_destroy(ch);
            if (role != CONVEYOR_CHANNEL_HOLDER && rd(owner_off, 8) != CV_OWNER_LEFT)
                bug("destroy did not hand the end back (owner %llx)", (unsigned long long)rd(owner_off, 8));
        }
    }
    close(F.fd);
    check_leaks("fuzz-chan-attach", "the file");
    return 0;
}
