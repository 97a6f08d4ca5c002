/*
 * make_corpus.c — writes the seed corpus of the fuzz targets into DIR/fuzz_attach/,
 * DIR/fuzz_peer/, DIR/fuzz_chan_attach/ and DIR/fuzz_chan_peer/.
 *
 *   fuzz_attach: a mode byte (see fuzz_attach.c) and a compact ring image made by a real
 *     ring: the header page of a fresh 4 x 64-byte MEMFD ring (its first
 *     sizeof(cv_ring_header) bytes: the rest of the page is zero), then the descriptor
 *     table when frames were committed. Owner words are cleared (the generating process
 *     is gone by the time the fuzzer runs). Variants: sealed and not, frames, closed,
 *     another layout version, impossible geometry and counters, a truncated file, a live
 *     and a departed owner, owner words the next handles will have (prod_reserved asks
 *     fuzz_attach for them), sleeping peers (every takeover, commit, close and release
 *     rings), a prod_closed that is not 0 or 1, a corrupt descriptor, empty frames with
 *     huge extents, a read-only fd, a raw header page.
 *   fuzz_peer: programs in fuzz_peer.c's encoding: a loan/commit/receive/release cycle,
 *     a full ring, pushes, and hostile writes (head, descriptor, owners, geometry, a whole
 *     other consistent geometry), a consumer reattached while it holds a frame, owner
 *     words the next handle will have, empty frames with huge extents, rewritten in-flight
 *     descriptors, a hostile prod_closed, sleeping flags with takeovers and doorbells that
 *     wrap, calls in the wrong role or with NULL.
 *
 *   fuzz_chan_attach: a mode and a lane byte (see fuzz_chan_attach.c), then a compact image
 *     made by a real pool (4 x 64 bytes, described slots) or channel (2 lanes of 4 words,
 *     words sent, a lane closed): header, then what follows offset 4096. Owner words are
 *     cleared. Variants: each role, a sender past the last lane, a second attach, sleeping
 *     peers (the takeover rings them), a head past the tail, another version, unsealed, a
 *     write seal, truncated, derived geometry, a corrupt pool descriptor.
 *   fuzz_chan_peer: programs in fuzz_chan_peer.c's encoding: sends filling lanes,
 *     receive_any round-robin, receive(lane), closes and ends of stream, reattaching ends,
 *     hostile heads, tails, owners, words and geometry, stats, pool descriptors.
 *
 * scripts/fuzz builds this and adds its output to each run's scratch corpus, so the seeds
 * always match the current layout version. The committed corpus (Tests/Fuzz/corpus) is
 * this program's output; regenerate it after a layout change with
 *     scripts/fuzz 0 && .build-fuzz/make_corpus Tests/Fuzz/corpus
 * The op and field numbers below must match fuzz_peer.c (its enum and tables).
 */
#include <conveyor.h>
#include "../../CKernels/src/channel_layout.h"
#include "../../CKernels/src/pool_layout.h"
#include "../../CKernels/src/ring_layout.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *g_dir;

static void emit(const char *target, const char *name, const void *bytes, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s", g_dir, target, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(bytes, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void must(int status, const char *what) {
    if (status != CONVEYOR_OK) {
        fprintf(stderr, "make_corpus: %s: %s\n", what, conveyor_status_name(status));
        exit(1);
    }
}

/* ---- fuzz_attach ------------------------------------------------------------------ */

enum { SEALED = 1, UNSEALED = 0, READ_ONLY_FD = 7, COMPACT = 8, SHORT = 16, TWICE = 128 };
#define SIDES(x) ((x) << 5) /* 0 P then C, 1 P, 2 C, 3 C then P */

typedef struct {
    cv_ring_header hdr;
    cv_slot_desc desc[4];
} image;

/* A real ring's header and descriptors after `frames` commits (and a close). */
static image ring_image(int frames, int closed) {
    conveyor_ring_config c = {.slot_count = 4, .slot_bytes = 64, .spin = 0,
                              .backing = CONVEYOR_RING_MEMFD};
    conveyor_ring *p;
    must(conveyor_ring_create(&c, &p, NULL), "create");
    for (int i = 0; i < frames; i++) {
        void *slot;
        must(conveyor_ring_loan(p, 0, &slot, NULL), "loan");
        memset(slot, 0x40 + i, 64);
        conveyor_frame_info info = {.dtype = i % 2 ? CONVEYOR_DTYPE_F32 : CONVEYOR_DTYPE_F64,
                                    .rank = 2, .shape = {2, i % 2 ? 4 : 2},
                                    .byte_length = 32, .tag = 100 + i};
        must(conveyor_ring_commit(p, &info), "commit");
    }
    if (closed) must(conveyor_ring_close(p), "close");
    image im;
    int fd = conveyor_ring_fd(p);
    if (pread(fd, &im.hdr, sizeof im.hdr, 0) != (ssize_t)sizeof im.hdr ||
        pread(fd, im.desc, sizeof im.desc, CV_RING_HEADER_BYTES) != (ssize_t)sizeof im.desc) {
        perror("pread");
        exit(1);
    }
    conveyor_ring_destroy(p);
    atomic_store(&im.hdr.prod_owner, CV_OWNER_NONE);
    atomic_store(&im.hdr.cons_owner, CV_OWNER_NONE);
    return im;
}

static void attach_seed(const char *name, uint8_t mode, const image *im, int with_desc) {
    uint8_t buf[1 + sizeof(image)];
    buf[0] = mode;
    memcpy(buf + 1, im, sizeof *im);
    emit("fuzz_attach", name, buf, 1 + sizeof im->hdr + (with_desc ? sizeof im->desc : 0));
}

static void attach_corpus(void) {
    image empty = ring_image(0, 0), frames = ring_image(2, 0), closed = ring_image(3, 1);
    attach_seed("valid-empty", SEALED | COMPACT, &empty, 0);
    attach_seed("valid-frames", SEALED | COMPACT | SIDES(3), &frames, 1);
    attach_seed("closed-twice", SEALED | COMPACT | TWICE, &closed, 1);
    attach_seed("unsealed", UNSEALED | COMPACT, &empty, 0);
    attach_seed("read-only-fd", READ_ONLY_FD | COMPACT | SIDES(2), &frames, 1);
    attach_seed("truncated", SEALED | COMPACT | SHORT, &empty, 0);

    image im = empty;
    im.hdr.layout_version++;
    attach_seed("other-version", SEALED | COMPACT, &im, 0);
    im = empty;
    im.hdr.slot_count = 1000;
    attach_seed("bad-geometry", SEALED | COMPACT, &im, 0);
    im = frames;
    atomic_store(&im.hdr.prod_head, 7);  /* 7 - 0 > 4 slots */
    attach_seed("head-past-tail", SEALED | COMPACT | SIDES(1), &im, 1);
    im = frames;
    atomic_store(&im.hdr.prod_owner, (uint64_t)1 << 32 | 1);  /* init: alive */
    atomic_store(&im.hdr.cons_owner, CV_OWNER_LEFT);
    attach_seed("live-and-left-owners", SEALED | COMPACT, &im, 1);
    im = frames;
    im.desc[1].rank = 9;
    attach_seed("corrupt-descriptor", SEALED | COMPACT | SIDES(2), &im, 1);

    im = frames;  /* prod_reserved bit 0: prod_owner becomes the next handle's own word */
    im.hdr.prod_reserved = 1;
    attach_seed("own-word-producer", SEALED | COMPACT | SIDES(1), &im, 1);
    im = frames;  /* bit 1, low bits 2: cons_owner becomes the word of the third handle
                   * (producer, producer again, consumer); a second consumer is BUSY */
    im.hdr.prod_reserved = 2;
    atomic_store(&im.hdr.cons_owner, 2);
    attach_seed("own-word-consumer", SEALED | COMPACT | SIDES(0) | TWICE, &im, 1);
    im = frames;  /* both peers may be asleep: every takeover, commit, close, release rings */
    atomic_store(&im.hdr.prod_sleeping, 1);
    atomic_store(&im.hdr.cons_sleeping, 7);
    atomic_store(&im.hdr.prod_doorbell, UINT32_MAX);
    atomic_store(&im.hdr.cons_wakes, 41);
    attach_seed("sleeping-peers", SEALED | COMPACT | SIDES(3), &im, 1);
    im = closed;  /* stats.closed must still be 1 */
    atomic_store(&im.hdr.prod_closed, 0xFFFFFF00u);
    attach_seed("closed-not-boolean", SEALED | COMPACT, &im, 1);
    im = frames;  /* a zero extent makes an empty frame however large the others */
    im.desc[0] = (cv_slot_desc){.dtype = CONVEYOR_DTYPE_F32, .rank = 4,
                                .shape = {(uint64_t)1 << 61, 14, 31, 0}, .byte_length = 0};
    im.desc[1] = im.desc[0];
    im.desc[1].byte_length = 4;  /* not 0: CORRUPT */
    attach_seed("empty-huge-extents", SEALED | COMPACT | SIDES(2), &im, 1);

    im = empty;  /* header_bytes 0: fuzz_attach derives a consistent geometry */
    im.hdr.header_bytes = 0;
    im.hdr.slot_count = 1;
    im.hdr.slot_bytes = 5000;
    attach_seed("derived-geometry", SEALED | COMPACT, &im, 0);

    /* The raw first page (4096 bytes: not a compact image), so the file is too short. */
    uint8_t raw[1 + CV_RING_HEADER_BYTES] = {SEALED};
    memcpy(raw + 1, &empty.hdr, sizeof empty.hdr);
    emit("fuzz_attach", "raw-header-page", raw, sizeof raw);
}

/* ---- fuzz_peer --------------------------------------------------------------------- */

/* fuzz_peer.c's op numbers; an op byte is op | alt << 4 | v << 5. */
enum { LOAN, COMMIT, ABANDON, CLOSE, PUSH, RECEIVE, RELEASE, STATS, HDR_WRITE, DESC_WRITE,
       RAW_WRITE, ATTACH, CLAIM, SPIN, CYCLE, DRAIN };
#define ALT 16
#define V(x) ((x) << 5)
/* fuzz_peer.c's hdr_fields and desc_fields indices used here */
enum { H_SLOT_COUNT = 3, H_PROD_HEAD = 10, H_PROD_CLOSED = 11, H_PROD_OWNER = 13, H_CONS_TAIL = 17,
       H_CONS_OWNER = 18, H_PROD_SLEEPING = 20, H_PROD_DOORBELL = 21, H_CONS_SLEEPING = 24 };
enum { D_RANK = 1, D_BYTE_LENGTH = 6 };
/* hostile_value modes */
enum { VAL_BYTE = 0, VAL_PLUS = 2, VAL_MINUS = 3, VAL_OWNER = 5, VAL_TOP = 7 };
enum { OWNER_LEFT = 1, OWNER_DEAD = 4, OWNER_NEXT = 6 };
/* dim() escapes */
enum { DIM_TOP = 0xF2, DIM_ZERO = 0xF3 };

typedef struct { uint8_t b[512]; size_t n; } prog;

static void put(prog *p, int count, ...) {
    va_list ap;
    va_start(ap, count);
    for (int i = 0; i < count; i++) p->b[p->n++] = (uint8_t)va_arg(ap, int);
    va_end(ap);
}
/* A frame: dtype, rank, extents (< 32 each), byte_length exact, tag. */
static void frame(prog *p, int dtype, int rank, int d0, int d1, int tag) {
    put(p, 2, dtype, rank);
    if (rank > 0) put(p, 1, d0);
    if (rank > 1) put(p, 1, d1);
    put(p, 3, 0, 0, tag);
}

/* A loan, then a commit of that frame. */
static void loan_commit(prog *p, int dtype, int rank, int d0, int d1, int tag) {
    put(p, 2, LOAN, COMMIT);
    frame(p, dtype, rank, d0, d1, tag);
}

static void peer_corpus(void) {
    prog p = {.n = 0};
    /* 4 slots of 64 bytes: six full cycles (the slots wrap), stats, close, end of stream */
    put(&p, 1, 3);
    for (int i = 0; i < 6; i++) {
        loan_commit(&p, CONVEYOR_DTYPE_F32, 2, 2, 4, i);
        put(&p, 2, RECEIVE, RELEASE);
    }
    put(&p, 4, STATS, CLOSE, RECEIVE, STATS | ALT);
    emit("fuzz_peer", "cycle", p.b, p.n);

    p.n = 0; /* 2 slots of 8 bytes: fill, backpressure, drain, close */
    put(&p, 1, 1 | 3 << 3);
    for (int i = 0; i < 3; i++) loan_commit(&p, CONVEYOR_DTYPE_F64, 0, 0, 0, i);
    put(&p, 5, ABANDON, DRAIN, CLOSE, LOAN, RECEIVE);
    emit("fuzz_peer", "fill-and-drain", p.b, p.n);

    p.n = 0; /* pushes of each dtype into 100-byte slots */
    put(&p, 1, 2 | 5 << 3);
    put(&p, 1, PUSH);
    frame(&p, CONVEYOR_DTYPE_BYTES, 1, 31, 0, 1);
    put(&p, 1, PUSH);
    frame(&p, CONVEYOR_DTYPE_F32, 2, 5, 5, 2);
    put(&p, 1, PUSH);
    frame(&p, CONVEYOR_DTYPE_F64, 1, 12, 0, 3);
    put(&p, 2, DRAIN, STATS);
    emit("fuzz_peer", "push", p.b, p.n);

    p.n = 0; /* a head far past the tail, then back */
    put(&p, 1, 3);
    put(&p, 2, CYCLE, 5);
    loan_commit(&p, CONVEYOR_DTYPE_BYTES, 1, 8, 0, 9);
    put(&p, 4, HDR_WRITE, H_PROD_HEAD, VAL_PLUS, 100);
    put(&p, 1, RECEIVE);
    put(&p, 4, HDR_WRITE, H_PROD_HEAD, VAL_MINUS, 100);
    put(&p, 2, RECEIVE, RELEASE);
    put(&p, 4, HDR_WRITE, H_CONS_TAIL, VAL_PLUS, 40);
    put(&p, 3, LOAN, LOAN, STATS);
    emit("fuzz_peer", "hostile-head-tail", p.b, p.n);

    p.n = 0; /* a descriptor with rank 9, then a byte_length larger than the slot */
    put(&p, 1, 3);
    loan_commit(&p, CONVEYOR_DTYPE_F32, 1, 4, 0, 7);
    put(&p, 5, DESC_WRITE, 0, D_RANK, VAL_BYTE, 9);
    put(&p, 1, RECEIVE);
    put(&p, 5, DESC_WRITE, 0, D_RANK, VAL_BYTE, 1);
    put(&p, 5, DESC_WRITE, 0, D_BYTE_LENGTH, VAL_BYTE, 200);
    put(&p, 1, RECEIVE);
    put(&p, 4, HDR_WRITE, H_CONS_SLEEPING, VAL_BYTE, 1);
    put(&p, 1, CYCLE);
    put(&p, 1, 3);
    emit("fuzz_peer", "hostile-descriptor", p.b, p.n);

    p.n = 0; /* the consumer is destroyed while holding a frame, reattached, gets it again */
    put(&p, 1, 3);
    put(&p, 2, CYCLE, 1);
    loan_commit(&p, CONVEYOR_DTYPE_BYTES, 1, 20, 0, 4);
    put(&p, 1, RECEIVE);
    put(&p, 1, ATTACH | ALT);
    put(&p, 3, RECEIVE, RELEASE, ATTACH);
    put(&p, 2, CYCLE, 2);
    put(&p, 1, STATS);
    emit("fuzz_peer", "reattach-consumer", p.b, p.n);

    p.n = 0; /* owners: a departed consumer word, a probe takes the side, claims */
    put(&p, 1, 3);
    put(&p, 2, CYCLE, 1);
    put(&p, 4, HDR_WRITE, H_CONS_OWNER, VAL_OWNER, OWNER_LEFT);
    put(&p, 2, ATTACH | ALT | V(1), LOAN);
    put(&p, 2, CLAIM | ALT, RECEIVE);
    put(&p, 4, HDR_WRITE, H_PROD_OWNER, VAL_OWNER, OWNER_DEAD);
    put(&p, 4, RECEIVE | ALT, ATTACH | V(1), CLAIM, CYCLE);
    put(&p, 1, 0);
    emit("fuzz_peer", "owners", p.b, p.n);

    p.n = 0; /* geometry rewritten: live handles keep theirs, a new attach is refused */
    put(&p, 1, 3);
    put(&p, 4, HDR_WRITE, H_SLOT_COUNT, VAL_BYTE, 200);
    put(&p, 1, ATTACH | V(1));
    put(&p, 4, CYCLE, 3, CYCLE, 4);
    put(&p, 6, RAW_WRITE, 8, 0, VAL_BYTE, 7, STATS);
    emit("fuzz_peer", "hostile-geometry", p.b, p.n);

    p.n = 0; /* another consistent geometry (2 slots of 4096): a reattached consumer uses it */
    put(&p, 1, 3);
    put(&p, 2, CYCLE, 1);
    put(&p, 3, HDR_WRITE | V(7), 1, 6);
    put(&p, 1, ATTACH | ALT);
    put(&p, 4, CYCLE, 2, DRAIN, STATS | ALT);
    emit("fuzz_peer", "hostile-reformat", p.b, p.n);

    p.n = 0; /* owner words the next handle will have: takeovers that resume at the tail */
    put(&p, 1, 3);
    put(&p, 2, CYCLE, 1);
    loan_commit(&p, CONVEYOR_DTYPE_BYTES, 1, 5, 0, 5);
    put(&p, 4, HDR_WRITE, H_CONS_OWNER, VAL_OWNER, OWNER_NEXT);
    put(&p, 3, ATTACH | ALT, RECEIVE, RELEASE);
    put(&p, 4, HDR_WRITE, H_PROD_OWNER, VAL_OWNER, OWNER_NEXT);
    put(&p, 2, ATTACH | V(1), CLAIM);
    put(&p, 2, CYCLE, 2);
    put(&p, 4, HDR_WRITE, H_CONS_OWNER, VAL_OWNER, OWNER_NEXT);
    put(&p, 2, CLAIM | ALT, STATS);
    emit("fuzz_peer", "own-word", p.b, p.n);

    p.n = 0; /* empty frames with huge extents; rewritten in-flight descriptors; closed */
    put(&p, 1, 3);
    put(&p, 1, LOAN);
    put(&p, 11, COMMIT, CONVEYOR_DTYPE_F32, 4, DIM_TOP, 22, 14, 31, DIM_ZERO, 1, 1, 7);
    put(&p, 11, COMMIT, CONVEYOR_DTYPE_F32, 4, DIM_TOP, 22, 14, 31, DIM_ZERO, 0, 0, 8);
    put(&p, 10, PUSH, CONVEYOR_DTYPE_F64, 3, DIM_ZERO, DIM_TOP, 0, 9, 0, 0, 9);
    put(&p, 2, RECEIVE, RELEASE);
    put(&p, 5, DESC_WRITE, 1, D_RANK, VAL_BYTE, 0);       /* rank 0, byte_length 0: CORRUPT */
    put(&p, 1, RECEIVE);
    put(&p, 5, DESC_WRITE, 1, D_BYTE_LENGTH, VAL_BYTE, 8); /* one f64: valid again */
    put(&p, 2, RECEIVE, RELEASE);
    put(&p, 4, HDR_WRITE, H_PROD_CLOSED, VAL_MINUS, 0xFF);
    put(&p, 3, STATS, STATS | ALT, RECEIVE);
    emit("fuzz_peer", "empty-frames", p.b, p.n);

    p.n = 0; /* sleeping flags set: commits, releases, close and takeovers ring; wrap */
    put(&p, 1, 1);
    put(&p, 4, HDR_WRITE, H_PROD_SLEEPING, VAL_BYTE, 1);
    put(&p, 4, HDR_WRITE, H_CONS_SLEEPING, VAL_BYTE, 3);
    put(&p, 4, HDR_WRITE, H_PROD_DOORBELL, VAL_TOP, 0);
    put(&p, 2, CYCLE, 1);
    put(&p, 4, HDR_WRITE, H_CONS_OWNER, VAL_OWNER, OWNER_LEFT);
    put(&p, 1, ATTACH | ALT);
    put(&p, 4, HDR_WRITE, H_PROD_OWNER, VAL_OWNER, OWNER_DEAD);
    put(&p, 3, CLAIM, STATS, CLOSE);
    put(&p, 3, DRAIN, STATS | ALT, ATTACH | V(1));
    emit("fuzz_peer", "sleeping-takeovers", p.b, p.n);

    p.n = 0; /* calls in the wrong role, with NULL arguments, on a NULL handle */
    put(&p, 1, 3);
    put(&p, 6, LOAN | ALT, RECEIVE | ALT, LOAN | V(6), RECEIVE | V(7), RECEIVE | V(6), COMMIT | V(7));
    frame(&p, 0, 1, 1, 0, 0);  /* the frame COMMIT | V(7) reads (then passes NULL) */
    put(&p, 2, STATS | V(7), LOAN | V(7));
    put(&p, 5, CLOSE | ALT, RELEASE | ALT, ABANDON | ALT, SPIN, 255);
    put(&p, 1, PUSH | V(7));
    frame(&p, CONVEYOR_DTYPE_BYTES, 1, 0, 0, 0);  /* zero bytes from a NULL pointer */
    emit("fuzz_peer", "roles-and-nulls", p.b, p.n);
}

/* ---- fuzz_chan_attach --------------------------------------------------------------- */

enum { CA_CHANNEL = 1, CA_UNSEALED = 2, CA_WRITE_SEAL = 6, CA_COMPACT = 8, CA_SHORT = 16,
       CA_SENDER = 32, CA_HOLDER = 64, CA_BAD_ROLE = 96, CA_TWICE = 128 };

/* A compact image of the file behind fd: its first `header` bytes, then [4096, end). */
static size_t compact_image(int fd, size_t header, uint8_t *out, size_t cap) {
    off_t end = lseek(fd, 0, SEEK_END);
    size_t rest = end > 4096 ? (size_t)end - 4096 : 0;
    if (header + rest > cap) rest = cap - header;
    if (pread(fd, out, header, 0) != (ssize_t)header ||
        (rest && pread(fd, out + header, rest, 4096) != (ssize_t)rest)) {
        perror("pread");
        exit(1);
    }
    return header + rest;
}

static void chan_attach_seed(const char *name, uint8_t mode, uint8_t lane, const uint8_t *img,
                             size_t n) {
    uint8_t buf[2 + 8192];
    buf[0] = mode;
    buf[1] = lane;
    memcpy(buf + 2, img, n);
    emit("fuzz_chan_attach", name, buf, 2 + n);
}

static void chan_attach_corpus(void) {
    static uint8_t img[8192];
    /* a pool of 4 x 64 bytes with described slots */
    conveyor_pool_config pc = {.slot_count = 4, .slot_bytes = 64, .backing = CONVEYOR_RING_MEMFD};
    conveyor_pool *pool;
    must(conveyor_pool_create(&pc, &pool), "pool_create");
    for (uint32_t i = 0; i < 3; i++) {
        conveyor_frame_info info = {.dtype = CONVEYOR_DTYPE_F32, .rank = 2, .shape = {2, 4 + 4 * (i % 2)},
                                    .byte_length = 32 + 32 * (i % 2), .tag = 7 + i};
        must(conveyor_pool_describe(pool, i, &info), "describe");
    }
    size_t n = compact_image(conveyor_pool_fd(pool), sizeof(cv_pool_header), img, 4096);
    size_t pool_n = sizeof(cv_pool_header) + 4 * 64;  /* header and descriptors */
    if (n < pool_n) pool_n = n;
    conveyor_pool_destroy(pool);
    chan_attach_seed("pool-valid", CA_COMPACT, 0, img, pool_n);
    chan_attach_seed("pool-twice", CA_COMPACT | CA_TWICE, 0, img, pool_n);
    chan_attach_seed("pool-unsealed", CA_COMPACT | CA_UNSEALED, 0, img, pool_n);
    chan_attach_seed("pool-write-seal", CA_COMPACT | CA_WRITE_SEAL, 0, img, pool_n);
    chan_attach_seed("pool-short", CA_COMPACT | CA_SHORT, 0, img, pool_n);
    chan_attach_seed("pool-derived", CA_COMPACT, 0, (const uint8_t[16]){0}, 16);
    {
        uint8_t bad[sizeof(cv_pool_header) + 4 * 64];
        memcpy(bad, img, sizeof bad);
        cv_slot_desc d;
        memcpy(&d, bad + sizeof(cv_pool_header) + 64, sizeof d);
        d.byte_length = 1u << 20;  /* longer than the slot: CORRUPT */
        memcpy(bad + sizeof(cv_pool_header) + 64, &d, sizeof d);
        chan_attach_seed("pool-corrupt-descriptor", CA_COMPACT, 0, bad, sizeof bad);
        cv_pool_header h;
        memcpy(&h, img, sizeof h);
        h.layout_version = 99;
        memcpy(bad, &h, sizeof h);
        chan_attach_seed("pool-other-version", CA_COMPACT, 0, bad, sizeof(cv_pool_header));
    }

    /* a channel of 2 lanes of 4 words: lane 0 has 3 words, lane 1 one word and is closed */
    conveyor_channel_config cc = {.lanes = 2, .capacity = 4, .backing = CONVEYOR_RING_MEMFD};
    conveyor_channel *holder, *s0, *s1;
    must(conveyor_channel_create(&cc, &holder), "channel_create");
    must(conveyor_channel_open(holder, CONVEYOR_CHANNEL_SENDER, 0, &s0), "open");
    must(conveyor_channel_open(holder, CONVEYOR_CHANNEL_SENDER, 1, &s1), "open");
    for (uint64_t w = 0; w < 3; w++) must(conveyor_channel_send(s0, 0xA000 + w, 0), "send");
    must(conveyor_channel_send(s1, 0xB000, 0), "send");
    must(conveyor_channel_close(s1), "close");
    n = compact_image(conveyor_channel_fd(holder), sizeof(cv_channel_header), img, sizeof img);
    conveyor_channel_destroy(s0);
    conveyor_channel_destroy(s1);
    conveyor_channel_destroy(holder);
    cv_channel_header h;
    memcpy(&h, img, sizeof h);
    h.recv_owner = CV_OWNER_NONE;
    memcpy(img, &h, sizeof h);
    size_t hb = sizeof(cv_channel_header);
    for (uint32_t l = 0; l < 2; l++) {  /* lane blocks follow the header in the image */
        cv_channel_lane lane;
        memcpy(&lane, img + hb + l * sizeof lane, sizeof lane);
        lane.send_owner = CV_OWNER_NONE;
        memcpy(img + hb + l * sizeof lane, &lane, sizeof lane);
    }
    chan_attach_seed("chan-receiver", CA_CHANNEL | CA_COMPACT, 0, img, n);
    chan_attach_seed("chan-receiver-twice", CA_CHANNEL | CA_COMPACT | CA_TWICE, 1, img, n);
    chan_attach_seed("chan-sender-0", CA_CHANNEL | CA_COMPACT | CA_SENDER, 0, img, n);
    chan_attach_seed("chan-sender-1-closed", CA_CHANNEL | CA_COMPACT | CA_SENDER, 1, img, n);
    chan_attach_seed("chan-sender-past-last", CA_CHANNEL | CA_COMPACT | CA_SENDER, 2, img, n);
    chan_attach_seed("chan-holder", CA_CHANNEL | CA_COMPACT | CA_HOLDER, 0, img, n);
    chan_attach_seed("chan-bad-role", CA_CHANNEL | CA_COMPACT | CA_BAD_ROLE, 1, img, n);
    chan_attach_seed("chan-receiver-lane-1", CA_CHANNEL | CA_COMPACT, 0x80, img, n);
    chan_attach_seed("chan-unsealed", CA_CHANNEL | CA_COMPACT | CA_UNSEALED, 0, img, n);
    chan_attach_seed("chan-write-seal", CA_CHANNEL | CA_COMPACT | CA_WRITE_SEAL, 0, img, n);
    chan_attach_seed("chan-short", CA_CHANNEL | CA_COMPACT | CA_SHORT, 0, img, n);
    chan_attach_seed("chan-derived", CA_CHANNEL | CA_COMPACT, 0, (const uint8_t[24]){0}, 24);
    {
        static uint8_t v[8192];
        memcpy(v, img, n);
        cv_channel_header hh;
        memcpy(&hh, v, sizeof hh);
        hh.recv_sleeping = 1;  /* a sender takeover rings recv_doorbell */
        memcpy(v, &hh, sizeof hh);
        cv_channel_lane lane;
        memcpy(&lane, v + hb, sizeof lane);
        lane.send_sleeping = 1;  /* a receiver takeover rings take_doorbell */
        memcpy(v + hb, &lane, sizeof lane);
        chan_attach_seed("chan-sleepers-sender", CA_CHANNEL | CA_COMPACT | CA_SENDER, 0, v, n);
        chan_attach_seed("chan-sleepers-receiver", CA_CHANNEL | CA_COMPACT, 0, v, n);
        lane.send_head = lane.take_tail + 5;  /* past the capacity: CORRUPT */
        memcpy(v + hb, &lane, sizeof lane);
        chan_attach_seed("chan-head-past-tail", CA_CHANNEL | CA_COMPACT, 0, v, n);
        lane.send_head = lane.take_tail + 1;
        lane.send_owner = CV_OWNER_LEFT;  /* gone: PEER_DEAD once drained */
        memcpy(v + hb, &lane, sizeof lane);
        memcpy(&lane, v + hb + sizeof lane, sizeof lane);
        lane.send_closed = 0;
        memcpy(v + hb + sizeof lane, &lane, sizeof lane);
        chan_attach_seed("chan-left-sender", CA_CHANNEL | CA_COMPACT, 0, v, n);
        hh.layout_version = 9;
        memcpy(v, &hh, sizeof hh);
        chan_attach_seed("chan-other-version", CA_CHANNEL | CA_COMPACT, 0, v, n);
    }
}

/* ---- fuzz_chan_peer ---------------------------------------------------------------- */

/* fuzz_chan_peer.c's op numbers; an op byte is op | a << 4. */
enum { CP_SEND, CP_CLOSE, CP_RECV, CP_RECV_ANY, CP_LANE_WRITE, CP_HDR_WRITE, CP_WORD_WRITE,
       CP_REATTACH, CP_CLAIM, CP_STATS, CP_POOL_DESCRIBE, CP_POOL_WRITE, CP_POOL_FRAME,
       CP_DRAIN, CP_SPIN, CP_BURST };
#define A(x) ((x) << 4)
/* lane_fields / hdr_fields indices */
enum { CL_HEAD = 0, CL_CLOSED = 1, CL_OWNER = 2, CL_TAIL = 5, CL_SLEEPING = 9 };
enum { CH_VERSION = 1, CH_LANES = 3, CH_RECV_OWNER = 11, CH_RECV_SLEEPING = 12 };

static void chan_peer_corpus(void) {
    prog p = {.n = 0};
    /* 4 lanes of 4 words: fill, round-robin drain, close all, end of stream */
    put(&p, 1, 3 | 3 << 2);
    for (int l = 0; l < 4; l++) put(&p, 1, CP_BURST | A(l));
    put(&p, 2, CP_DRAIN, CP_DRAIN);
    for (int l = 0; l < 4; l++) put(&p, 2, CP_SEND | A(l), CP_CLOSE | A(l));
    put(&p, 4, CP_RECV_ANY, CP_DRAIN, CP_RECV_ANY, CP_STATS);
    put(&p, 1, 1);
    emit("fuzz_chan_peer", "fill-drain-close", p.b, p.n);

    p.n = 0;  /* 2 lanes of 2: receive(lane), a bad lane, reattach each end mid-stream */
    put(&p, 1, 1 | 1 << 2);
    put(&p, 6, CP_SEND, CP_SEND | A(1), CP_SEND, CP_RECV | A(1), CP_RECV | A(2), CP_RECV);
    put(&p, 6, CP_REATTACH | A(0), CP_SEND, CP_REATTACH | A(2), CP_RECV_ANY, CP_RECV_ANY, CP_RECV_ANY);
    put(&p, 3, CP_REATTACH | A(8), CP_REATTACH | A(10), CP_CLAIM | A(2));
    put(&p, 4, CP_CLOSE, CP_CLOSE | A(1), CP_DRAIN, CP_RECV);
    emit("fuzz_chan_peer", "lanes-and-reattach", p.b, p.n);

    p.n = 0;  /* hostile: head past capacity, tail back, a word, a left owner, geometry */
    put(&p, 1, 2 | 1 << 2);
    put(&p, 3, CP_SEND, CP_SEND | A(1), CP_SEND | A(2));
    put(&p, 4, CP_LANE_WRITE | A(1), CL_HEAD, 6, 0);
    put(&p, 2, CP_RECV | A(1), CP_RECV_ANY);
    put(&p, 4, CP_LANE_WRITE | A(2), CL_TAIL, 3, 2);
    put(&p, 2, CP_SEND | A(2), CP_DRAIN);
    put(&p, 4, CP_WORD_WRITE, 0, 0, 0x55);
    put(&p, 4, CP_LANE_WRITE, CL_OWNER, 5, 1);
    put(&p, 2, CP_DRAIN, CP_RECV);
    put(&p, 4, CP_HDR_WRITE, CH_RECV_OWNER, 5, 1);
    put(&p, 2, CP_BURST | A(2), CP_CLAIM | A(3));
    put(&p, 4, CP_HDR_WRITE, CH_LANES, 0, 9);
    put(&p, 3, CP_REATTACH | A(3), CP_REATTACH | A(1), CP_DRAIN);
    put(&p, 4, CP_LANE_WRITE, CL_SLEEPING, 0, 1);
    put(&p, 4, CP_HDR_WRITE, CH_RECV_SLEEPING, 0, 1);
    put(&p, 3, CP_SEND, CP_RECV_ANY, CP_STATS);
    put(&p, 1, 0);
    emit("fuzz_chan_peer", "hostile-lanes", p.b, p.n);

    p.n = 0;  /* pool: describe, frame, hostile descriptor words, past the last slot */
    put(&p, 1, 0);
    put(&p, 6, CP_POOL_DESCRIBE, 1, CONVEYOR_DTYPE_F32 | 2 << 2, 5, 2, 4);
    put(&p, 1, CP_POOL_FRAME | A(1));
    put(&p, 4, CP_POOL_WRITE | A(1), 5, 1, 0);
    put(&p, 1, CP_POOL_FRAME | A(1));
    put(&p, 4, CP_POOL_WRITE | A(1), 1, 7, 1);
    put(&p, 2, CP_POOL_FRAME | A(1), CP_POOL_FRAME | A(4));
    put(&p, 5, CP_POOL_DESCRIBE, 4, CONVEYOR_DTYPE_BYTES | 1 << 2, 3, 8);
    put(&p, 3, CP_POOL_DESCRIBE, 0, 3);
    put(&p, 2, CP_POOL_FRAME, CP_STATS);
    put(&p, 1, 9);
    emit("fuzz_chan_peer", "pool-descriptors", p.b, p.n);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    g_dir = argv[1];
    char path[4096];
    const char *subs[] = {"", "/fuzz_attach", "/fuzz_peer", "/fuzz_chan_attach", "/fuzz_chan_peer"};
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s%s", g_dir, subs[i]);
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            perror(path);
            return 1;
        }
    }
    attach_corpus();
    peer_corpus();
    chan_attach_corpus();
    chan_peer_corpus();
    return 0;
}
