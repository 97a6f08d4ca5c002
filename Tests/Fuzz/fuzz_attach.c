/*
 * fuzz_attach.c — libFuzzer target: conveyor_ring_attach_fd on a memfd whose contents,
 * size and seals the fuzzer chooses, then a few operations on whatever attached.
 *
 * Input: one mode byte, then the file image.
 *   mode bits 0-2  seals:  0 none (sealing allowed)      1 SHRINK|GROW|SEAL (as MEMFD rings)
 *                          2 SHRINK only                  3 GROW only
 *                          4 memfd without MFD_ALLOW_SEALING (only F_SEAL_SEAL)
 *                          5 SHRINK|GROW|WRITE|SEAL (a writable mapping is refused)
 *                          6 SHRINK|GROW (more seals may still be added)
 *                          7 SHRINK|GROW|SEAL, passed as a read-only fd (/proc/self/fd)
 *   mode bit 3     compact image: the first sizeof(cv_ring_header) bytes are the header,
 *                  the rest goes at offset 4096 (descriptors, then slots), and the file is
 *                  extended to the header's total_bytes when that is at most 256 KiB, so
 *                  short inputs reach past the header checks (a header_bytes of 0 asks
 *                  for stride, offsets and total_bytes to be derived from slot_count and
 *                  slot_bytes, and bits 0 and 1 of prod_reserved, which the ring ignores,
 *                  make prod_owner and cons_owner this process's word with the nonce of
 *                  the next handle plus their low 2 bits: a dead predecessor's word that
 *                  the next handles reuse); else the image is the file
 *   mode bit 4     compact image: one byte shorter than that (TRUNCATED)
 *   mode bits 5-6  sides: 0 producer then consumer, 1 producer, 2 consumer, 3 consumer then
 *                  producer
 *   mode bit 7     also attach each side a second time (must be BUSY)
 * The file is written and sized first, then sealed. Each attach's status must be the one
 * the header and ring_layout.h prescribe for that file (seals, magic, version, geometry,
 * size, owner, counters); a failed attach must leave the owner word as it was. An owner
 * word that is exactly the new handle's (this process's pid and the nonce it gets: the
 * model follows ring.c's sequence of nonces, one per handle that passes header
 * validation, and reports a wrong prediction) is a takeover like a dead owner's, which
 * resumes at the shared position. On success the target polls (timeout 0 everywhere, so
 * nothing can block): the consumer drains what the image holds (a descriptor is received
 * iff it is a valid frame by conveyor.h's rule, a zero extent making the product 0 however
 * large the others are; CORRUPT otherwise), the producer loans (writing the slot's first
 * and last byte), commits, loans and abandons, closes, loans again (CLOSED), the consumer
 * drains to END_OF_STREAM, and get_stats is checked (stats.closed is 0 or 1, whatever
 * prod_closed holds); every returned pointer must be the start of the right slot in the
 * file (checked by writing markers through a second mapping). Doorbells, sleeping flags
 * and wake and wait counters are followed exactly: no call here sleeps, so the flags and
 * waits keep the image's values, and every successful attach (a takeover), commit, close
 * and release rings the peer's doorbell, adding 1 to it and to the ringer's wake counter,
 * iff the peer's sleeping flag is non-zero. Destroy must hand the side back
 * (CV_OWNER_LEFT). Any violation aborts; sanitizer reports are failures too.
 * FUZZ_TRACE=1 prints each call and status.
 *
 * Black-box through conveyor.h (but for the nonce sequence); ring_layout.h only to lay
 * out and read the image. Built and run by scripts/fuzz.
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
#include <sys/stat.h>
#include <unistd.h>

#define FUZZ_TARGET "fuzz_attach"
#include "fuzz_common.h"

#define COMPACT_LIMIT (256u * 1024u) /* largest file a compact image is extended to */

/* ---- the file --------------------------------------------------------------------- */

static struct {
    int fd;            /* read-write fd of the memfd */
    uint8_t *view;     /* our own mapping of the whole file (NULL if it cannot be mapped) */
    uint64_t size;     /* file size */
    uint64_t page;
    uint32_t mypid;
    /* geometry, once the header passed validation */
    uint32_t count;
    uint64_t slot_bytes, stride, slots_offset;
} F;

static uint64_t rd(uint64_t off, unsigned width) {
    uint64_t v = 0;
    if (off + width <= F.size && pread(F.fd, &v, width, (off_t)off) != (ssize_t)width) abort();
    return v;
}
#define HDR(field) rd(offsetof(cv_ring_header, field), sizeof(((cv_ring_header *)0)->field))

/* The documented frame rule for the descriptor of slot `slot` in the file. */
static bool desc_valid(uint32_t slot) {
    uint64_t off = CV_RING_HEADER_BYTES + (uint64_t)slot * CV_RING_DESC_BYTES;
    cv_slot_desc d;
    memset(&d, 0, sizeof d);
    for (unsigned i = 0; i < sizeof d; i += 8) {
        uint64_t v = rd(off + i, 8);
        memcpy((char *)&d + i, &v, 8);
    }
    conveyor_frame_info info = desc_info(&d);
    return frame_valid(&info, F.slot_bytes);
}

static uint64_t owner_off(int role) {
    return role == CONVEYOR_RING_PRODUCER ? offsetof(cv_ring_header, prod_owner)
                                          : offsetof(cv_ring_header, cons_owner);
}

/* The nonce the next handle of this process will get: ring.c hands nonces out in
 * sequence (skipping 0), one to every handle that passes header validation, whether its
 * claim succeeds or not. Learnt in LLVMFuzzerInitialize, then followed. */
static uint32_t g_next_nonce;

static uint32_t nonce_plus(uint32_t n, uint32_t k) {
    while (k--) n = nonce_after(n);
    return n;
}

static uint64_t next_handle_word(uint32_t ahead) {
    return (uint64_t)F.mypid << 32 | nonce_plus(g_next_nonce, ahead);
}

/* Whether a new handle may take a side whose owner word is `w`: as owner_free, and its
 * own word (a dead predecessor's with the same pid and nonce) is free too: a takeover. */
static int owner_free_for_new_handle(uint64_t w) {
    if (w == next_handle_word(0)) return 1;
    return owner_free(w, F.mypid);
}

/* What attach_fd must return for this file, seals and fd; *validated tells whether the
 * header passes, so that a handle is made (and takes a nonce) and tries to claim. */
static status_set attach_expect(int role, int seal_mode, int seals, bool *validated) {
    status_set fails = 0;
    *validated = false;
    if (F.size < 8 || HDR(magic) != CV_RING_MAGIC) return B(CONVEYOR_E_NOT_A_RING);
    if (F.size < CV_RING_HEADER_BYTES) return B(CONVEYOR_E_TRUNCATED);
    if ((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
        return B(CONVEYOR_E_NOT_SEALED);
    if (seal_mode == 5 || seal_mode == 7) fails |= B(CONVEYOR_E_SYSTEM); /* no RW mapping */
    if (HDR(layout_version) != CV_RING_LAYOUT_VERSION) fails |= B(CONVEYOR_E_VERSION);
    cv_ring_header line;
    if (pread(F.fd, &line, 64, 0) != 64) abort();
    geometry g;
    fails |= geometry_expect(&line, F.page, F.size, &g);
    if (fails) return fails;
    F.count = g.count;
    F.slot_bytes = g.slot_bytes;
    F.stride = g.stride;
    F.slots_offset = g.slots_offset;
    *validated = true;
    return claim_expect(owner_free_for_new_handle(rd(owner_off(role), 8)), HDR(prod_head),
                        HDR(cons_tail), g.count);
}

/* `p` must be the start of slot `want` (or of any slot if want is UINT32_MAX): markers
 * are written through our mapping at the slot's first and last byte and read via p. */
static void check_slot_pointer(const volatile uint8_t *p, uint32_t want, const char *what) {
    if ((uintptr_t)p % F.page != 0) bug("%s returned %p, not page-aligned", what, (void *)p);
    if (F.view == NULL) return;
    uint32_t lo = want == UINT32_MAX ? 0 : want, hi = want == UINT32_MAX ? F.count : want + 1;
    if (hi - lo > 64) hi = lo + 64;
    static uint8_t round;
    for (uint32_t s = lo; s < hi; s++) {
        uint64_t o0 = F.slots_offset + s * F.stride, o1 = o0 + F.slot_bytes - 1;
        uint8_t a = F.view[o0], b = F.view[o1];
        uint8_t m0 = (uint8_t)(++round | 1), m1 = (uint8_t)(m0 + 0x80);
        F.view[o1] = m1;
        F.view[o0] = m0;
        bool hit = p[0] == m0 && (F.slot_bytes == 1 || p[F.slot_bytes - 1] == m1);
        F.view[o0] = a;
        F.view[o1] = b;
        if (hit) return;
    }
    if (want == UINT32_MAX) bug("%s returned %p, not the start of any slot", what, (void *)p);
    bug("%s returned %p, not the start of slot %u", what, (void *)p, want);
}

/* ---- operations on an attached pair ------------------------------------------------ */

typedef struct {
    conveyor_ring *r;
    int role;
    uint64_t me;
    bool busy;
} handle;

static struct {
    handle prod, cons;
    /* what the ring holds, as the file said and the operations changed it */
    uint64_t head, tail;
    bool closed;
    bool stuck;        /* the consumer met a corrupt descriptor */
    /* the wake model: the image's values, plus what the calls rang */
    wake_model wake;
    uint64_t prod_waits, cons_waits;
} M;

static wake_model file_wake(void) {
    return (wake_model){.prod_sleeping = (uint32_t)HDR(prod_sleeping),
                        .cons_sleeping = (uint32_t)HDR(cons_sleeping),
                        .prod_doorbell = (uint32_t)HDR(prod_doorbell),
                        .cons_doorbell = (uint32_t)HDR(cons_doorbell),
                        .prod_wakes = HDR(prod_wakes),
                        .cons_wakes = HDR(cons_wakes)};
}

static void load_wake_model(void) {
    M.wake = file_wake();
    M.prod_waits = HDR(prod_waits);
    M.cons_waits = HDR(cons_waits);
}

/* A handle of `role` committed, closed, released or took its side over. */
static void rang(int role) { wake_rang(&M.wake, role == CONVEYOR_RING_PRODUCER); }
/* A handle of `role` took its side over. */
static void took_over(int role) { wake_took_over(&M.wake, role == CONVEYOR_RING_PRODUCER); }

static void check_wake_model(const char *after) {
    if (F.size < CV_RING_HEADER_BYTES) return;
    if (HDR(prod_waits) != M.prod_waits || HDR(cons_waits) != M.cons_waits)
        bug("after %s: waits %llu/%llu; the image had %llu/%llu (no call here sleeps)", after,
            (unsigned long long)HDR(prod_waits), (unsigned long long)HDR(cons_waits),
            (unsigned long long)M.prod_waits, (unsigned long long)M.cons_waits);
    wake_model now = file_wake();
    wake_check(&now, &M.wake, after);
}

static status_set receive_expect(void) {
    if (M.cons.busy) return B(CONVEYOR_E_BAD_STATE);
    if (M.tail != M.head)
        return desc_valid((uint32_t)(M.tail % F.count)) ? B(CONVEYOR_OK) : B(CONVEYOR_E_CORRUPT);
    if (M.closed) return B(CONVEYOR_E_END_OF_STREAM);
    status_set e = B(CONVEYOR_E_TIMEOUT);
    if (owner_gone(HDR(prod_owner), F.mypid) != 0) e |= B(CONVEYOR_E_PEER_DEAD);
    return e;
}

static void drain(const char *phase) {
    if (M.cons.r == NULL) return;
    for (uint32_t i = 0; i <= (F.count < 16 ? F.count : 16); i++) {
        const void *data = NULL;
        conveyor_frame_info info;
        status_set model = receive_expect();
        int s = conveyor_ring_receive(M.cons.r, 0, &data, &info);
        char call[64];
        snprintf(call, sizeof call, "receive (%s)", phase);
        check_status(call, s, DOC_RECEIVE, model);
        if (s != CONVEYOR_OK) {
            if (s == CONVEYOR_E_CORRUPT) M.stuck = true;
            return;
        }
        if (!frame_valid(&info, F.slot_bytes))
            bug("receive delivered an invalid frame (dtype %u rank %u byte_length %llu)",
                info.dtype, info.rank, (unsigned long long)info.byte_length);
        check_slot_pointer(data, (uint32_t)(M.tail % F.count), "receive");
        if (info.byte_length > 0) {
            volatile const uint8_t *d = data;
            (void)d[0];
            (void)d[info.byte_length - 1];
        }
        M.cons.busy = true;
        s = conveyor_ring_release(M.cons.r);
        check_status("release", s, DOC_RELEASE, B(CONVEYOR_OK));
        M.cons.busy = false;
        M.tail++;
        if (HDR(cons_tail) != M.tail) bug("cons_tail did not advance");
        rang(CONVEYOR_RING_CONSUMER);
        check_wake_model("release");
    }
}

static status_set loan_expect(void) {
    if (M.prod.busy) return B(CONVEYOR_E_BAD_STATE);
    if (M.closed) return B(CONVEYOR_E_CLOSED);
    status_set e = M.head - M.tail >= F.count ? B(CONVEYOR_E_TIMEOUT) : B(CONVEYOR_OK);
    if (owner_gone(HDR(cons_owner), F.mypid) != 0) e |= B(CONVEYOR_E_PEER_DEAD);
    return e;
}

static void produce(uint8_t tag) {
    if (M.prod.r == NULL) return;
    void *data = NULL;
    uint64_t cap = 0;
    int s = conveyor_ring_loan(M.prod.r, 0, &data, &cap);
    check_status("loan", s, DOC_LOAN, loan_expect());
    if (s == CONVEYOR_OK) {
        if (cap != F.slot_bytes) bug("loan capacity %llu, slot_bytes %llu", (unsigned long long)cap,
                                     (unsigned long long)F.slot_bytes);
        check_slot_pointer(data, (uint32_t)(M.head % F.count), "loan");
        volatile uint8_t *d = data;
        d[0] = tag;
        d[cap - 1] = tag;
        M.prod.busy = true;
        uint64_t n = cap < 16 ? cap : 16;
        conveyor_frame_info info = {.dtype = CONVEYOR_DTYPE_BYTES, .rank = 1, .shape = {n},
                                    .byte_length = n, .tag = tag};
        s = conveyor_ring_commit(M.prod.r, &info);
        check_status("commit", s, DOC_COMMIT, B(CONVEYOR_OK));
        M.prod.busy = false;
        M.head++;
        if (HDR(prod_head) != M.head) bug("prod_head did not advance");
        rang(CONVEYOR_RING_PRODUCER);
        check_wake_model("commit");
    }
    s = conveyor_ring_loan(M.prod.r, 0, &data, &cap);
    check_status("loan (2)", s, DOC_LOAN, loan_expect());
    if (s == CONVEYOR_OK) {
        check_slot_pointer(data, (uint32_t)(M.head % F.count), "loan (2)");
        M.prod.busy = true;
        check_status("abandon", conveyor_ring_abandon(M.prod.r), DOC_ABANDON, B(CONVEYOR_OK));
        M.prod.busy = false;
    }
    check_status("abandon (none)", conveyor_ring_abandon(M.prod.r), DOC_ABANDON, B(CONVEYOR_E_BAD_STATE));
}

static void check_stats(conveyor_ring *r, const char *who) {
    conveyor_ring_stats st;
    int s = conveyor_ring_get_stats(r, &st);
    check_status("get_stats", s, DOC_STATS, B(CONVEYOR_OK));
    if (st.slot_count != F.count || st.slot_bytes != F.slot_bytes || st.mapped_bytes != F.size)
        bug("%s stats: %u x %llu in %llu mapped; the file says %u x %llu in %llu", who,
            st.slot_count, (unsigned long long)st.slot_bytes, (unsigned long long)st.mapped_bytes,
            F.count, (unsigned long long)F.slot_bytes, (unsigned long long)F.size);
    if (st.closed != (HDR(prod_closed) != 0))
        bug("stats.closed %u, the file says %u (stats.closed is 0 or 1)", st.closed,
            (unsigned)HDR(prod_closed));
    if (st.producer_wakes != M.wake.prod_wakes || st.consumer_wakes != M.wake.cons_wakes ||
        st.producer_waits != M.prod_waits || st.consumer_waits != M.cons_waits)
        bug("%s stats: wakes %llu/%llu, waits %llu/%llu; model %llu/%llu, %llu/%llu", who,
            (unsigned long long)st.producer_wakes, (unsigned long long)st.consumer_wakes,
            (unsigned long long)st.producer_waits, (unsigned long long)st.consumer_waits,
            (unsigned long long)M.wake.prod_wakes, (unsigned long long)M.wake.cons_wakes,
            (unsigned long long)M.prod_waits, (unsigned long long)M.cons_waits);
}

static void destroy(handle *h) {
    if (h->r == NULL) return;
    uint64_t before = rd(owner_off(h->role), 8);
    conveyor_ring_destroy(h->r);
    check_wake_model("destroy");
    uint64_t after = rd(owner_off(h->role), 8);
    uint64_t want = before == h->me ? CV_OWNER_LEFT : before;
    if (after != want) bug("destroy: owner word %llx -> %llx, expected %llx",
                           (unsigned long long)before, (unsigned long long)after,
                           (unsigned long long)want);
    h->r = NULL;
}

/* ---- the input --------------------------------------------------------------------- */

/* A compact header whose header_bytes is 0 asks for the rest of its geometry to be derived
 * from slot_count and slot_bytes as ring_layout.h specifies, so that mutations reach
 * other consistent geometries (1 slot, 65536 slots, huge slots) in one step. */
static void derive_geometry(uint8_t *hdr, size_t h) {
    if (h < offsetof(cv_ring_header, total_bytes) + 8) return;
    uint32_t header_bytes, n;
    uint64_t bytes;
    memcpy(&header_bytes, hdr + offsetof(cv_ring_header, header_bytes), 4);
    memcpy(&n, hdr + offsetof(cv_ring_header, slot_count), 4);
    memcpy(&bytes, hdr + offsetof(cv_ring_header, slot_bytes), 8);
    if (header_bytes != 0) return;
    header_bytes = CV_RING_HEADER_BYTES;
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), desc = CV_RING_HEADER_BYTES;
    geometry g = geometry_of(n, bytes, page);  /* may wrap for absurd values: then CORRUPT */
    memcpy(hdr + offsetof(cv_ring_header, header_bytes), &header_bytes, 4);
    memcpy(hdr + offsetof(cv_ring_header, slot_stride), &g.stride, 8);
    memcpy(hdr + offsetof(cv_ring_header, descriptors_offset), &desc, 8);
    memcpy(hdr + offsetof(cv_ring_header, slots_offset), &g.slots_offset, 8);
    memcpy(hdr + offsetof(cv_ring_header, total_bytes), &g.total, 8);
}

/* A compact header whose prod_reserved (ignored by the ring) has bit 0 (1) set gets, as
 * prod_owner (cons_owner), this process's word with the nonce of the next handle plus the
 * word's low 2 bits: a dead predecessor's word that one of the next handles will reuse,
 * which the fuzzer could not write itself (it does not know the pid). */
static void own_words(uint8_t *hdr, size_t h) {
    if (h < offsetof(cv_ring_header, prod_reserved) + 4) return;
    uint32_t control;
    memcpy(&control, hdr + offsetof(cv_ring_header, prod_reserved), 4);
    static const size_t offs[2] = {offsetof(cv_ring_header, prod_owner),
                                   offsetof(cv_ring_header, cons_owner)};
    for (int k = 0; k < 2; k++) {
        if (!(control & (1u << k)) || h < offs[k] + 8) continue;
        uint64_t w;
        memcpy(&w, hdr + offs[k], 8);
        w = next_handle_word((uint32_t)w & 3);
        memcpy(hdr + offs[k], &w, 8);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    g_trace = getenv("FUZZ_TRACE") != NULL;
    /* Learn where this process's nonces are: a ring's producer takes the next one. */
    conveyor_ring_config c = {.slot_count = 1, .slot_bytes = 1, .backing = CONVEYOR_RING_MEMFD};
    conveyor_ring *p = NULL;
    uint64_t word = 0;
    if (conveyor_ring_create(&c, &p, NULL) != CONVEYOR_OK ||
        pread(conveyor_ring_fd(p), &word, 8, offsetof(cv_ring_header, prod_owner)) != 8 ||
        (uint32_t)(word >> 32) != (uint32_t)getpid() || (uint32_t)word == 0) {
        fprintf(stderr, "fuzz_attach: cannot learn this process's handle nonces\n");
        abort();
    }
    conveyor_ring_destroy(p);
    g_next_nonce = nonce_plus((uint32_t)word, 1);
    return 0;
}

static int attach(int fd, int role, int seal_mode, int seals, handle *out, const char *what) {
    bool validated;
    status_set model = attach_expect(role, seal_mode, seals, &validated);
    uint64_t before = F.size >= CV_RING_HEADER_BYTES ? rd(owner_off(role), 8) : 0;
    uint64_t word = next_handle_word(0);
    TRACE("  owner word %llx, the new handle's %llx\n", (unsigned long long)before,
          (unsigned long long)word);
    conveyor_ring *r = NULL;
    int s = conveyor_ring_attach_fd(fd, role, &r);
    check_status(what, s, DOC_ATTACH, model);
    if (validated) g_next_nonce = nonce_plus(g_next_nonce, 1);  /* taken, claimed or not */
    uint64_t after = F.size >= CV_RING_HEADER_BYTES ? rd(owner_off(role), 8) : 0;
    if (s != CONVEYOR_OK) {
        if (after != before) bug("a failed attach (%s) changed the owner word %llx -> %llx",
                                 name(s), (unsigned long long)before, (unsigned long long)after);
        check_wake_model("a failed attach");
        return s;
    }
    if (r == NULL) bug("attach returned OK and a NULL handle");
    if (after != word)
        bug("attach OK but the owner word is %llx; the model predicted %llx (pid %u, the next "
            "nonce: nonces are handed out in sequence, see the header)",
            (unsigned long long)after, (unsigned long long)word, F.mypid);
    if (conveyor_ring_role_of(r) != role) bug("attached handle has role %d", conveyor_ring_role_of(r));
    took_over(role);  /* a new handle's claim is always a takeover */
    check_wake_model(what);
    *out = (handle){.r = r, .role = role, .me = after};
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    leak_baseline();
    if (size < 1) return 0;
    uint8_t mode = data[0];
    const uint8_t *img = data + 1;
    size_t n = size - 1;
    int seal_mode = mode & 7;
    bool compact = mode & 8, short_by_one = mode & 16, twice = mode & 128;
    int sides = (mode >> 5) & 3;

    memset(&F, 0, sizeof F);
    memset(&M, 0, sizeof M);
    F.page = (uint64_t)sysconf(_SC_PAGESIZE);
    F.mypid = (uint32_t)getpid();
    F.fd = memfd_create("fuzz", MFD_CLOEXEC | (seal_mode == 4 ? 0 : MFD_ALLOW_SEALING));
    if (F.fd < 0) abort();

    /* Write and size the file, then seal it. */
    if (compact) {
        size_t h = n < sizeof(cv_ring_header) ? n : sizeof(cv_ring_header);
        uint8_t hdr[sizeof(cv_ring_header)] = {0};
        memcpy(hdr, img, h);
        derive_geometry(hdr, h);
        own_words(hdr, h);
        uint64_t len = CV_RING_HEADER_BYTES + (n - h);
        uint64_t total = 0;
        if (h >= offsetof(cv_ring_header, total_bytes) + 8)
            memcpy(&total, hdr + offsetof(cv_ring_header, total_bytes), 8);
        if (total >= len && total <= COMPACT_LIMIT) len = total;
        if (short_by_one) len--;
        if (ftruncate(F.fd, (off_t)len) != 0) abort();
        if (pwrite(F.fd, hdr, h, 0) != (ssize_t)h) abort();
        size_t rest = n - h;
        if (rest > len - CV_RING_HEADER_BYTES) rest = len - CV_RING_HEADER_BYTES;
        if (rest && pwrite(F.fd, img + h, rest, CV_RING_HEADER_BYTES) != (ssize_t)rest) abort();
    } else if (n > 0 && pwrite(F.fd, img, n, 0) != (ssize_t)n) {
        abort();
    }
    struct stat st;
    if (fstat(F.fd, &st) != 0) abort();
    F.size = (uint64_t)st.st_size;
    static const int seal_sets[8] = {
        0, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, 0,
        F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL, F_SEAL_SHRINK | F_SEAL_GROW,
        F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL};
    if (seal_sets[seal_mode] && fcntl(F.fd, F_ADD_SEALS, seal_sets[seal_mode]) != 0) abort();
    int seals = fcntl(F.fd, F_GET_SEALS);
    if (seals < 0) abort();
    load_wake_model();
    if (F.size > 0 && seal_mode != 5) {
        void *v = mmap(NULL, F.size, PROT_READ | PROT_WRITE, MAP_SHARED, F.fd, 0);
        if (v != MAP_FAILED) F.view = v;
    }
    int fd = F.fd;
    if (seal_mode == 7) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", F.fd);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) abort();
    }
    TRACE("file: %llu bytes, seals %#x, mode %#x\n", (unsigned long long)F.size, seals, mode);

    /* Arguments outside the contract. */
    conveyor_ring *none = NULL;
    check_status("attach(NULL out)", conveyor_ring_attach_fd(fd, CONVEYOR_RING_PRODUCER, NULL),
                 DOC_ATTACH, B(CONVEYOR_E_NULL_POINTER));
    check_status("attach(role 0)", conveyor_ring_attach_fd(fd, 0, &none), DOC_ATTACH,
                 B(CONVEYOR_E_INVALID_ARGUMENT));
    check_status("attach(fd -1)", conveyor_ring_attach_fd(-1, CONVEYOR_RING_CONSUMER, &none),
                 DOC_ATTACH, B(CONVEYOR_E_INVALID_ARGUMENT));

    static const int order[4][2] = {{CONVEYOR_RING_PRODUCER, CONVEYOR_RING_CONSUMER},
                                    {CONVEYOR_RING_PRODUCER, 0},
                                    {CONVEYOR_RING_CONSUMER, 0},
                                    {CONVEYOR_RING_CONSUMER, CONVEYOR_RING_PRODUCER}};
    for (int i = 0; i < 2 && order[sides][i]; i++) {
        int role = order[sides][i];
        handle *h = role == CONVEYOR_RING_PRODUCER ? &M.prod : &M.cons;
        if (attach(fd, role, seal_mode, seals, h,
                   role == CONVEYOR_RING_PRODUCER ? "attach producer" : "attach consumer") != CONVEYOR_OK)
            continue;
        if ((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
            bug("attach_fd accepted a memfd that is not sealed against resizing (seals %#x)", seals);
        if (twice) {
            handle second = {0};
            attach(fd, role, seal_mode, seals, &second, "attach again (same side)");
            if (second.r != NULL) bug("a second handle attached to a live side");
        }
    }

    if (M.prod.r != NULL || M.cons.r != NULL) {
        M.head = HDR(prod_head);
        M.tail = HDR(cons_tail);
        M.closed = HDR(prod_closed) != 0;
        if (M.prod.r) check_stats(M.prod.r, "producer");
        if (M.cons.r) check_stats(M.cons.r, "consumer");
        drain("what the file holds");
        if (!M.stuck) produce(mode);
        if (M.prod.r != NULL) {
            check_status("close", conveyor_ring_close(M.prod.r), DOC_CLOSE, B(CONVEYOR_OK));
            M.closed = true;
            M.prod.busy = false;
            if (HDR(prod_closed) != 1) bug("close did not set prod_closed to 1");
            rang(CONVEYOR_RING_PRODUCER);
            check_wake_model("close");
            void *slot;
            check_status("loan after close", conveyor_ring_loan(M.prod.r, 0, &slot, NULL), DOC_LOAN,
                         B(CONVEYOR_E_CLOSED));
        }
        if (!M.stuck) drain("after close");
        if (M.prod.r) check_stats(M.prod.r, "producer");
        if (M.cons.r) check_stats(M.cons.r, "consumer");
    }
    destroy(&M.prod);
    destroy(&M.cons);

    if (F.view) munmap(F.view, F.size);
    if (fd != F.fd) close(fd);
    close(F.fd);
    check_leaks("memfd:fuzz", "the file");
    return 0;
}
