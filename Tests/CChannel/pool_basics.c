/*
 * pool_basics.c — slot pools through conveyor.h only: each backing creates a pool whose
 * slots are page-aligned, distinct and writable; descriptors round-trip through
 * describe/frame; every bad argument gets its documented status; a MEMFD pool attached
 * by fd in a forked child, a NAMED one by name, and an ANONYMOUS one inherited over fork
 * all share the parent's bytes; a NAMED pool is exclusive and its name removed once; a
 * ring, pool or channel fd attached as another kind is NOT_A_RING.
 * Built and run by scripts/test-c, also under ASan+UBSan.
 */
#include "channel_check.h"

#include <fcntl.h>
#include <sys/mman.h>

static long page_size(void) { return sysconf(_SC_PAGESIZE); }

/* A distinct byte pattern for slot `index`. */
static unsigned char pattern(uint32_t index, uint64_t at) {
    return (unsigned char)(index * 131u + at * 7u + 1u);
}

static bool same_info(const conveyor_frame_info *a, const conveyor_frame_info *b) {
    if (a->dtype != b->dtype || a->rank != b->rank || a->byte_length != b->byte_length ||
        a->tag != b->tag)
        return false;
    for (uint32_t d = 0; d < a->rank && d < CONVEYOR_FRAME_MAX_RANK; d++)
        if (a->shape[d] != b->shape[d]) return false;
    return true;
}

/* Geometry, accessors and slots of a fresh pool of each backing. */
static void test_create_each_backing(int backing) {
    static const char *names[] = {"ANONYMOUS", "MEMFD", "NAMED"};
    char name[64];
    unique_name(name, sizeof name, "pool");
    const uint32_t slots = 5;
    const uint64_t bytes = 1000;
    conveyor_pool_config c = pool_config(slots, bytes, backing);
    if (backing == CONVEYOR_RING_NAMED) c.name = name;
    conveyor_pool *pool = NULL;
    CHECK_STATUS(conveyor_pool_create(&c, &pool), CONVEYOR_OK);
    if (pool == NULL) return;
    CHECK(conveyor_pool_slot_count(pool) == slots);
    CHECK(conveyor_pool_slot_bytes(pool) == bytes);
    long page = page_size();
    /* header page + 64-byte descriptors + page-rounded slots */
    uint64_t least = (uint64_t)page + slots * 64u + slots * (uint64_t)page;
    CHECK(conveyor_pool_mapped_bytes(pool) >= least);
    if (backing == CONVEYOR_RING_ANONYMOUS) {
        CHECK(conveyor_pool_fd(pool) == -1);
    } else {
        CHECK(conveyor_pool_fd(pool) >= 0);
    }
    if (backing == CONVEYOR_RING_NAMED) {
        CHECK(conveyor_pool_name(pool) != NULL && strcmp(conveyor_pool_name(pool), name) == 0);
    } else {
        CHECK(conveyor_pool_name(pool) == NULL);
    }
    if (backing == CONVEYOR_RING_MEMFD) {
        int seals = fcntl(conveyor_pool_fd(pool), F_GET_SEALS);
        CHECK(seals >= 0 && (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) == (F_SEAL_SHRINK | F_SEAL_GROW));
    }

    /* Page-aligned, non-overlapping, writable: fill each slot fully, then read all back. */
    unsigned char *addr[5];
    for (uint32_t i = 0; i < slots; i++) {
        addr[i] = conveyor_pool_slot(pool, i);
        CHECK(addr[i] != NULL);
        if (addr[i] == NULL) goto out;
        CHECK((uintptr_t)addr[i] % (uintptr_t)page == 0);
        for (uint32_t j = 0; j < i; j++) {
            uintptr_t a = (uintptr_t)addr[i], b = (uintptr_t)addr[j];
            CHECK(a >= b + bytes || b >= a + bytes);
        }
        for (uint64_t at = 0; at < bytes; at++) addr[i][at] = pattern(i, at);
    }
    int damaged = 0;
    for (uint32_t i = 0; i < slots; i++)
        for (uint64_t at = 0; at < bytes; at++) damaged += addr[i][at] != pattern(i, at);
    CHECK(damaged == 0);
    CHECK(conveyor_pool_slot(pool, slots) == NULL);
    CHECK(conveyor_pool_slot(pool, UINT32_MAX) == NULL);
    CHECK(conveyor_pool_slot(pool, 0) == conveyor_pool_slot(pool, 0));  /* stable */
    printf("  %s pool: %u page-aligned distinct writable slots, %llu bytes mapped\n",
           names[backing], slots, (unsigned long long)conveyor_pool_mapped_bytes(pool));
out:
    conveyor_pool_destroy(pool);
    if (backing == CONVEYOR_RING_NAMED) {
        conveyor_pool *gone = NULL;
        CHECK_STATUS(conveyor_pool_attach_named(name, &gone), CONVEYOR_E_SYSTEM);
        CHECK(errno == ENOENT);  /* the creator's destroy removed the name */
    }
}

/* Whatever describe stores, frame returns, with the slot's address. */
static void test_describe_frame_round_trip(void) {
    conveyor_pool_config c = pool_config(6, 1000, CONVEYOR_RING_ANONYMOUS);
    conveyor_pool *pool = NULL;
    CHECK_STATUS(conveyor_pool_create(&c, &pool), CONVEYOR_OK);
    if (pool == NULL) return;
    conveyor_frame_info infos[6] = {
        {.dtype = CONVEYOR_DTYPE_F64, .rank = 2, .shape = {5, 25}, .byte_length = 1000, .tag = 1},
        {.dtype = CONVEYOR_DTYPE_F32, .rank = 1, .shape = {250}, .byte_length = 1000, .tag = 2},
        {.dtype = CONVEYOR_DTYPE_BYTES, .rank = 0, .byte_length = 1, .tag = 3},
        {.dtype = CONVEYOR_DTYPE_BYTES, .rank = 4, .shape = {2, 5, 10, 10}, .byte_length = 1000,
         .tag = 4},
        {.dtype = CONVEYOR_DTYPE_F64, .rank = 1, .shape = {0}, .byte_length = 0,
         .tag = UINT64_MAX},
        {.dtype = CONVEYOR_DTYPE_F32, .rank = 3, .shape = {1, 1, 1}, .byte_length = 4,
         .tag = 1ull << 40},
    };
    for (uint32_t i = 0; i < 6; i++) CHECK_STATUS(conveyor_pool_describe(pool, i, &infos[i]), CONVEYOR_OK);
    for (uint32_t i = 0; i < 6; i++) {
        const void *data = NULL;
        conveyor_frame_info got;
        memset(&got, 0xEE, sizeof got);
        CHECK_STATUS(conveyor_pool_frame(pool, i, &data, &got), CONVEYOR_OK);
        CHECK(data == conveyor_pool_slot(pool, i));
        if (!same_info(&got, &infos[i])) {
            fprintf(stderr, "slot %u: frame returned dtype %u rank %u length %llu tag %llu\n", i,
                    got.dtype, got.rank, (unsigned long long)got.byte_length,
                    (unsigned long long)got.tag);
            CHECK(!"describe/frame round trip");
        }
    }
    /* Describing again replaces the descriptor. */
    conveyor_frame_info again = u64_frame(77);
    CHECK_STATUS(conveyor_pool_describe(pool, 0, &again), CONVEYOR_OK);
    const void *data;
    conveyor_frame_info got;
    CHECK_STATUS(conveyor_pool_frame(pool, 0, &data, &got), CONVEYOR_OK);
    CHECK(same_info(&got, &again));
    conveyor_pool_destroy(pool);
    printf("  describe/frame: six kinds of frames round-trip, the slot's address with them\n");
}

/* Every bad argument of describe and frame has its documented status. */
static void test_describe_and_frame_errors(void) {
    conveyor_pool_config c = pool_config(2, 64, CONVEYOR_RING_ANONYMOUS);
    conveyor_pool *pool = NULL;
    CHECK_STATUS(conveyor_pool_create(&c, &pool), CONVEYOR_OK);
    if (pool == NULL) return;
    conveyor_frame_info ok = u64_frame(5);
    CHECK_STATUS(conveyor_pool_describe(pool, 0, &ok), CONVEYOR_OK);

    CHECK_STATUS(conveyor_pool_describe(pool, 2, &ok), CONVEYOR_E_INVALID_ARGUMENT);
    CHECK_STATUS(conveyor_pool_describe(pool, UINT32_MAX, &ok), CONVEYOR_E_INVALID_ARGUMENT);
    conveyor_frame_info bad = ok;
    bad.dtype = 77;
    CHECK_STATUS(conveyor_pool_describe(pool, 1, &bad), CONVEYOR_E_INVALID_ARGUMENT);
    bad = ok;
    bad.rank = 5;  /* unit extents: only the rank bound refuses it */
    for (int d = 0; d < 4; d++) bad.shape[d] = 1;
    bad.byte_length = 1;
    CHECK_STATUS(conveyor_pool_describe(pool, 1, &bad), CONVEYOR_E_INVALID_ARGUMENT);
    bad = ok;
    bad.shape[0] = 65;
    bad.byte_length = 65;  /* consistent, one byte more than the slot */
    CHECK_STATUS(conveyor_pool_describe(pool, 1, &bad), CONVEYOR_E_TOO_LARGE);
    bad = ok;
    bad.byte_length = 9;  /* shape says 8 */
    CHECK_STATUS(conveyor_pool_describe(pool, 1, &bad), CONVEYOR_E_INVALID_ARGUMENT);
    bad = (conveyor_frame_info){.dtype = CONVEYOR_DTYPE_F64, .rank = 1, .shape = {3}, .byte_length = 8};
    CHECK_STATUS(conveyor_pool_describe(pool, 1, &bad), CONVEYOR_E_INVALID_ARGUMENT);
    bad = (conveyor_frame_info){.dtype = CONVEYOR_DTYPE_F32, .rank = 2,
                                .shape = {1ull << 62, 1ull << 62}, .byte_length = 0};
    /* A shape whose product overflows is a frame too large for any slot, as in a ring. */
    CHECK_STATUS(conveyor_pool_describe(pool, 1, &bad), CONVEYOR_E_TOO_LARGE);
    CHECK_STATUS(conveyor_pool_describe(pool, 1, NULL), CONVEYOR_E_NULL_POINTER);
    CHECK_STATUS(conveyor_pool_describe(NULL, 0, &ok), CONVEYOR_E_NULL_POINTER);

    /* The failed describes left slot 0's descriptor as it was. */
    const void *data;
    conveyor_frame_info got;
    CHECK_STATUS(conveyor_pool_frame(pool, 0, &data, &got), CONVEYOR_OK);
    CHECK(same_info(&got, &ok));
    CHECK_STATUS(conveyor_pool_frame(pool, 2, &data, &got), CONVEYOR_E_INVALID_ARGUMENT);
    CHECK_STATUS(conveyor_pool_frame(pool, UINT32_MAX, &data, &got), CONVEYOR_E_INVALID_ARGUMENT);
    CHECK_STATUS(conveyor_pool_frame(pool, 0, NULL, &got), CONVEYOR_E_NULL_POINTER);
    CHECK_STATUS(conveyor_pool_frame(pool, 0, &data, NULL), CONVEYOR_E_NULL_POINTER);
    CHECK_STATUS(conveyor_pool_frame(NULL, 0, &data, &got), CONVEYOR_E_NULL_POINTER);

    /* Accessors on NULL. */
    CHECK(conveyor_pool_slot(NULL, 0) == NULL);
    CHECK(conveyor_pool_slot_count(NULL) == 0);
    CHECK(conveyor_pool_slot_bytes(NULL) == 0);
    CHECK(conveyor_pool_mapped_bytes(NULL) == 0);
    CHECK(conveyor_pool_fd(NULL) == -1);
    CHECK(conveyor_pool_name(NULL) == NULL);
    CHECK_STATUS(conveyor_pool_remove_name(NULL), CONVEYOR_E_NULL_POINTER);
    conveyor_pool_destroy(NULL);
    conveyor_pool_destroy(pool);
    printf("  describe/frame: bad index, dtype, rank, length, overflow, NULL: documented statuses\n");
}

/* Every bad configuration has its documented status, and a refused create leaves nothing. */
static void test_create_errors(void) {
    conveyor_pool *pool = NULL;
    conveyor_pool_config c = pool_config(2, 64, CONVEYOR_RING_ANONYMOUS);
    CHECK_STATUS(conveyor_pool_create(NULL, &pool), CONVEYOR_E_NULL_POINTER);
    CHECK_STATUS(conveyor_pool_create(&c, NULL), CONVEYOR_E_NULL_POINTER);
    c.slot_count = 0;
    CHECK_STATUS(conveyor_pool_create(&c, &pool), CONVEYOR_E_INVALID_ARGUMENT);
    c.slot_count = CONVEYOR_POOL_MAX_SLOTS + 1;
    CHECK_STATUS(conveyor_pool_create(&c, &pool), CONVEYOR_E_INVALID_ARGUMENT);
    c = pool_config(2, 0, CONVEYOR_RING_ANONYMOUS);
    CHECK_STATUS(conveyor_pool_create(&c, &pool), CONVEYOR_E_INVALID_ARGUMENT);
    c.slot_bytes = CONVEYOR_RING_MAX_SLOT_BYTES + 1;
    CHECK_STATUS(conveyor_pool_create(&c, &pool), CONVEYOR_E_INVALID_ARGUMENT);
    c = pool_config(2, 64, CONVEYOR_RING_ANONYMOUS);
    c.reserved = 1;
    CHECK_STATUS(conveyor_pool_create(&c, &pool), CONVEYOR_E_INVALID_ARGUMENT);
    c = pool_config(2, 64, CONVEYOR_RING_ANONYMOUS);
    c.reserved2 = 1;
    CHECK_STATUS(conveyor_pool_create(&c, &pool), CONVEYOR_E_INVALID_ARGUMENT);
    c = pool_config(2, 64, 3);
    CHECK_STATUS(conveyor_pool_create(&c, &pool), CONVEYOR_E_INVALID_ARGUMENT);
    c = pool_config(2, 64, -1);
    CHECK_STATUS(conveyor_pool_create(&c, &pool), CONVEYOR_E_INVALID_ARGUMENT);
    c = pool_config(2, 64, CONVEYOR_RING_NAMED);
    const char *bad_names[] = {"no-slash", "/two/slashes", "/", ""};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        c.name = bad_names[i];
        CHECK_STATUS(conveyor_pool_create(&c, &pool), CONVEYOR_E_INVALID_ARGUMENT);
    }
    char long_name[260];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[0] = '/';
    long_name[sizeof long_name - 1] = 0;
    c.name = long_name;
    CHECK_STATUS(conveyor_pool_create(&c, &pool), CONVEYOR_E_INVALID_ARGUMENT);
    c.name = NULL;
    int s = conveyor_pool_create(&c, &pool);
    if (s != CONVEYOR_E_INVALID_ARGUMENT && s != CONVEYOR_E_NULL_POINTER) {
        fprintf(stderr, "NAMED pool without a name: %s\n", conveyor_status_name(s));
        CHECK(!"NAMED pool without a name is refused");
        if (s == CONVEYOR_OK) conveyor_pool_destroy(pool);
    }
    /* The largest fields are each in range, but together (2^56 bytes) more than any
     * address space maps: OVERFLOW where the size does not fit, else the mmap's ENOMEM. */
    c = pool_config(CONVEYOR_POOL_MAX_SLOTS, CONVEYOR_RING_MAX_SLOT_BYTES, CONVEYOR_RING_ANONYMOUS);
    pool = NULL;
    errno = 0;
    s = conveyor_pool_create(&c, &pool);
    if (s != CONVEYOR_E_OVERFLOW && s != CONVEYOR_E_NO_MEMORY && !(s == CONVEYOR_E_SYSTEM && errno == ENOMEM)) {
        fprintf(stderr, "a 2^56-byte pool: %s (errno %d)\n", conveyor_status_name(s), errno);
        CHECK(!"an unmappable pool is OVERFLOW, NO_MEMORY or SYSTEM with ENOMEM");
        if (s == CONVEYOR_OK) conveyor_pool_destroy(pool);
    }
    /* The most slots, one byte each: the last slot exists and round-trips. */
    c = pool_config(CONVEYOR_POOL_MAX_SLOTS, 1, CONVEYOR_RING_ANONYMOUS);
    pool = NULL;
    CHECK_STATUS(conveyor_pool_create(&c, &pool), CONVEYOR_OK);
    if (pool != NULL) {
        uint32_t last = CONVEYOR_POOL_MAX_SLOTS - 1;
        unsigned char *slot = conveyor_pool_slot(pool, last);
        CHECK(slot != NULL);
        if (slot) *slot = 0x5A;
        CHECK(conveyor_pool_slot(pool, last + 1) == NULL);
        conveyor_frame_info one = {.dtype = CONVEYOR_DTYPE_BYTES, .rank = 1, .shape = {1},
                                   .byte_length = 1, .tag = last};
        CHECK_STATUS(conveyor_pool_describe(pool, last, &one), CONVEYOR_OK);
        const void *data;
        conveyor_frame_info got;
        CHECK_STATUS(conveyor_pool_frame(pool, last, &data, &got), CONVEYOR_OK);
        CHECK(data == slot && got.tag == last && *(const unsigned char *)data == 0x5A);
        conveyor_pool_destroy(pool);
    }
    printf("  create: NULLs, counts, sizes, reserved fields, backings, names, 2^56 bytes refused;"
           " 65536 slots work\n");
}

/* A MEMFD pool attached by fd in a forked child: the child sees the parent's bytes and
 * descriptor, and the parent sees what the child writes. A second handle in this process
 * maps the same memory at another address. */
static void test_memfd_attach_in_child(void) {
    conveyor_pool_config c = pool_config(3, 5000, CONVEYOR_RING_MEMFD);
    conveyor_pool *pool = NULL;
    CHECK_STATUS(conveyor_pool_create(&c, &pool), CONVEYOR_OK);
    if (pool == NULL) return;
    unsigned char *slot1 = conveyor_pool_slot(pool, 1);
    for (uint64_t at = 0; at < 5000; at++) slot1[at] = pattern(1, at);
    conveyor_frame_info info = {.dtype = CONVEYOR_DTYPE_BYTES, .rank = 2, .shape = {50, 100},
                                .byte_length = 5000, .tag = 4242};
    CHECK_STATUS(conveyor_pool_describe(pool, 1, &info), CONVEYOR_OK);
    int fd = conveyor_pool_fd(pool);
    uint64_t mapped = conveyor_pool_mapped_bytes(pool);
    pid_t child = fork_child();
    if (child == 0) {
        conveyor_pool *mine = NULL;
        if (conveyor_pool_attach_fd(fd, &mine) != CONVEYOR_OK) _exit(2);
        if (conveyor_pool_slot_count(mine) != 3 || conveyor_pool_slot_bytes(mine) != 5000 ||
            conveyor_pool_mapped_bytes(mine) != mapped)
            _exit(3);
        const void *data;
        conveyor_frame_info got;
        if (conveyor_pool_frame(mine, 1, &data, &got) != CONVEYOR_OK) _exit(4);
        if (got.tag != 4242 || got.byte_length != 5000 || got.rank != 2 || got.shape[1] != 100)
            _exit(5);
        for (uint64_t at = 0; at < 5000; at++)
            if (((const unsigned char *)data)[at] != pattern(1, at)) _exit(6);
        unsigned char *reply = conveyor_pool_slot(mine, 2);
        for (uint64_t at = 0; at < 5000; at++) reply[at] = pattern(2, at);
        conveyor_frame_info back = u64_frame(99);
        if (conveyor_pool_describe(mine, 2, &back) != CONVEYOR_OK) _exit(7);
        conveyor_pool_destroy(mine);
        _exit(0);
    }
    CHECK_CHILD_OK(child, "attach a MEMFD pool by fd and read the parent's slot");
    const unsigned char *reply = conveyor_pool_slot(pool, 2);
    int damaged = 0;
    for (uint64_t at = 0; at < 5000; at++) damaged += reply[at] != pattern(2, at);
    CHECK(damaged == 0);
    const void *data;
    conveyor_frame_info got;
    CHECK_STATUS(conveyor_pool_frame(pool, 2, &data, &got), CONVEYOR_OK);
    CHECK(got.tag == 99 && data == reply);

    conveyor_pool *second = NULL;
    CHECK_STATUS(conveyor_pool_attach_fd(fd, &second), CONVEYOR_OK);
    if (second != NULL) {
        unsigned char *other = conveyor_pool_slot(second, 0);
        CHECK(other != NULL && other != conveyor_pool_slot(pool, 0));
        if (other) other[17] = 0xC3;
        CHECK(((unsigned char *)conveyor_pool_slot(pool, 0))[17] == 0xC3);
        CHECK(conveyor_pool_fd(second) >= 0 && conveyor_pool_fd(second) != fd);  /* dup'd */
        conveyor_pool_destroy(second);
    }
    conveyor_pool_destroy(pool);
    printf("  MEMFD pool: a forked child attached by fd reads the parent's slot and descriptor;"
           " the parent reads its reply\n");
}

/* An ANONYMOUS pool crosses fork: parent and child share the slots. */
static void test_anonymous_pool_crosses_fork(void) {
    conveyor_pool_config c = pool_config(2, 64, CONVEYOR_RING_ANONYMOUS);
    conveyor_pool *pool = NULL;
    CHECK_STATUS(conveyor_pool_create(&c, &pool), CONVEYOR_OK);
    if (pool == NULL) return;
    pid_t child = fork_child();
    if (child == 0) {
        uint64_t value = 0xFEEDFACECAFEBEEFull;
        memcpy(conveyor_pool_slot(pool, 1), &value, 8);
        conveyor_frame_info info = u64_frame(11);
        _exit(conveyor_pool_describe(pool, 1, &info) == CONVEYOR_OK ? 0 : 2);
    }
    CHECK_CHILD_OK(child, "write a slot of an inherited ANONYMOUS pool");
    const void *data;
    conveyor_frame_info got;
    CHECK_STATUS(conveyor_pool_frame(pool, 1, &data, &got), CONVEYOR_OK);
    uint64_t value = 0;
    memcpy(&value, data, 8);
    CHECK(got.tag == 11 && value == 0xFEEDFACECAFEBEEFull);
    conveyor_pool_destroy(pool);
    printf("  ANONYMOUS pool: a forked child's writes are the parent's\n");
}

/* NAMED: an unrelated attach by name sees the bytes; a second create of the name is
 * EXISTS; only the creator's handle removes the name, once, and a forked child's destroy
 * of the inherited creator handle removes nothing. */
static void test_named_pool(void) {
    char name[64];
    unique_name(name, sizeof name, "pool");
    conveyor_pool_config c = pool_config(2, 64, CONVEYOR_RING_NAMED);
    c.name = name;
    conveyor_pool *first = NULL, *dup = NULL, *attached = NULL, *second = NULL, *probe = NULL;
    CHECK_STATUS(conveyor_pool_create(&c, &first), CONVEYOR_OK);
    if (first == NULL) return;
    CHECK_STATUS(conveyor_pool_create(&c, &dup), CONVEYOR_E_EXISTS);
    memcpy(conveyor_pool_slot(first, 0), "named pool bytes", 17);

    pid_t child = fork_child();
    if (child == 0) {
        conveyor_pool_destroy(first);  /* an inherited creator handle: must not unlink */
        conveyor_pool *mine = NULL;
        if (conveyor_pool_attach_named(name, &mine) != CONVEYOR_OK) _exit(2);
        if (memcmp(conveyor_pool_slot(mine, 0), "named pool bytes", 17) != 0) _exit(3);
        if (strcmp(conveyor_pool_name(mine), name) != 0) _exit(4);
        conveyor_pool_destroy(mine);  /* an attacher: must not unlink either */
        _exit(0);
    }
    CHECK_CHILD_OK(child, "attach a NAMED pool by name");
    CHECK_STATUS(conveyor_pool_attach_named(name, &attached), CONVEYOR_OK);  /* name still there */
    if (attached != NULL) {
        CHECK(strcmp(conveyor_pool_name(attached), name) == 0);
        CHECK_STATUS(conveyor_pool_remove_name(attached), CONVEYOR_OK);  /* not the creator: no-op */
    }
    CHECK_STATUS(conveyor_pool_create(&c, &probe), CONVEYOR_E_EXISTS);
    CHECK_STATUS(conveyor_pool_remove_name(first), CONVEYOR_OK);
    CHECK_STATUS(conveyor_pool_remove_name(first), CONVEYOR_OK);  /* the second time: no-op */
    CHECK_STATUS(conveyor_pool_create(&c, &second), CONVEYOR_OK);   /* the name is free */
    conveyor_pool_destroy(first);  /* must not remove the second pool's name */
    conveyor_pool_destroy(attached);
    probe = NULL;
    CHECK_STATUS(conveyor_pool_attach_named(name, &probe), CONVEYOR_OK);
    conveyor_pool_destroy(probe);
    conveyor_pool_destroy(second);  /* the second creator's last handle removes it */
    probe = NULL;
    CHECK_STATUS(conveyor_pool_attach_named(name, &probe), CONVEYOR_E_SYSTEM);
    CHECK(errno == ENOENT);
    CHECK_STATUS(conveyor_pool_attach_named("no-slash", &probe), CONVEYOR_E_INVALID_ARGUMENT);
    CHECK_STATUS(conveyor_pool_attach_named(NULL, &probe), CONVEYOR_E_NULL_POINTER);
    CHECK_STATUS(conveyor_pool_attach_named(name, NULL), CONVEYOR_E_NULL_POINTER);
    printf("  NAMED pool: attach by name, EXISTS twice, name removed once and only by its creator\n");
}

/* A sealed memfd of `size` bytes starting with `bytes`. */
static int sealed_memfd(const void *bytes, size_t length, off_t size, bool seal) {
    int fd = memfd_create("pool-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    CHECK(fd >= 0);
    CHECK(ftruncate(fd, size) == 0);
    if (length) CHECK(pwrite(fd, bytes, length, 0) == (ssize_t)length);
    if (seal) CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0);
    return fd;
}

/* A ring, a pool and a channel, each attached as each of the other two kinds: NOT_A_RING
 * (the status names every kind of header since 0.5). Garbage, empty and unsealed fds too. */
static void test_attach_of_the_wrong_kind(void) {
    conveyor_ring_config rc = config(2, 64, CONVEYOR_RING_MEMFD);
    conveyor_ring *ring = NULL;
    CHECK_STATUS(conveyor_ring_create_holder(&rc, &ring), CONVEYOR_OK);
    conveyor_pool_config pc = pool_config(2, 64, CONVEYOR_RING_MEMFD);
    conveyor_pool *pool = NULL;
    CHECK_STATUS(conveyor_pool_create(&pc, &pool), CONVEYOR_OK);
    conveyor_channel_config cc = channel_config(2, 8, 0, CONVEYOR_RING_MEMFD);
    conveyor_channel *channel = NULL;
    CHECK_STATUS(conveyor_channel_create(&cc, &channel), CONVEYOR_OK);
    if (!ring || !pool || !channel) goto out;
    int ring_fd = conveyor_ring_fd(ring), pool_fd = conveyor_pool_fd(pool),
        channel_fd = conveyor_channel_fd(channel);
    conveyor_pool *p = NULL;
    conveyor_channel *ch = NULL;
    conveyor_ring *r = NULL;
    CHECK_STATUS(conveyor_pool_attach_fd(ring_fd, &p), CONVEYOR_E_NOT_A_RING);
    CHECK_STATUS(conveyor_pool_attach_fd(channel_fd, &p), CONVEYOR_E_NOT_A_RING);
    CHECK_STATUS(conveyor_channel_attach_fd(ring_fd, CONVEYOR_CHANNEL_RECEIVER, 0, &ch),
                 CONVEYOR_E_NOT_A_RING);
    CHECK_STATUS(conveyor_channel_attach_fd(pool_fd, CONVEYOR_CHANNEL_RECEIVER, 0, &ch),
                 CONVEYOR_E_NOT_A_RING);
    CHECK_STATUS(conveyor_channel_attach_fd(pool_fd, CONVEYOR_CHANNEL_HOLDER, 0, &ch),
                 CONVEYOR_E_NOT_A_RING);
    CHECK_STATUS(conveyor_ring_attach_fd(pool_fd, CONVEYOR_RING_CONSUMER, &r), CONVEYOR_E_NOT_A_RING);
    CHECK_STATUS(conveyor_ring_attach_fd(channel_fd, CONVEYOR_RING_CONSUMER, &r),
                 CONVEYOR_E_NOT_A_RING);
    /* Each refused attach claimed nothing: the right kind still attaches. */
    CHECK_STATUS(conveyor_channel_attach_fd(channel_fd, CONVEYOR_CHANNEL_RECEIVER, 0, &ch), CONVEYOR_OK);
    conveyor_channel_destroy(ch);
    CHECK_STATUS(conveyor_pool_attach_fd(pool_fd, &p), CONVEYOR_OK);
    conveyor_pool_destroy(p);

    /* Garbage, an empty file, an unsealed copy of a real pool, bad fds and NULL. */
    int fd = sealed_memfd("not a pool at all", 17, 8192, true);
    CHECK_STATUS(conveyor_pool_attach_fd(fd, &p), CONVEYOR_E_NOT_A_RING);
    close(fd);
    fd = sealed_memfd(NULL, 0, 0, true);
    CHECK_STATUS(conveyor_pool_attach_fd(fd, &p), CONVEYOR_E_NOT_A_RING);
    close(fd);
    char header[4096];
    CHECK(pread(pool_fd, header, sizeof header, 0) == (ssize_t)sizeof header);
    fd = sealed_memfd(header, sizeof header, (off_t)conveyor_pool_mapped_bytes(pool), false);
    CHECK_STATUS(conveyor_pool_attach_fd(fd, &p), CONVEYOR_E_NOT_SEALED);
    close(fd);
    CHECK_STATUS(conveyor_pool_attach_fd(-1, &p), CONVEYOR_E_INVALID_ARGUMENT);
    CHECK_STATUS(conveyor_pool_attach_fd(pool_fd, NULL), CONVEYOR_E_NULL_POINTER);

    /* By name: a NAMED ring attached as a pool. */
    char name[64];
    unique_name(name, sizeof name, "ring");
    conveyor_ring_config named = config(2, 64, CONVEYOR_RING_NAMED);
    named.name = name;
    conveyor_ring *named_ring = NULL;
    CHECK_STATUS(conveyor_ring_create_holder(&named, &named_ring), CONVEYOR_OK);
    CHECK_STATUS(conveyor_pool_attach_named(name, &p), CONVEYOR_E_NOT_A_RING);
    CHECK_STATUS(conveyor_channel_attach_named(name, CONVEYOR_CHANNEL_HOLDER, 0, &ch),
                 CONVEYOR_E_NOT_A_RING);
    conveyor_ring_destroy(named_ring);
    printf("  a ring, pool or channel attached as another kind: NOT_A_RING; garbage,"
           " empty, unsealed, bad fd refused\n");
out:
    conveyor_ring_destroy(ring);
    conveyor_pool_destroy(pool);
    conveyor_channel_destroy(channel);
}

int main(void) {
    test_start("pool_basics", 120);
    static shm_snapshot shm_before;
    shm_snapshot_take(&shm_before);
    test_create_each_backing(CONVEYOR_RING_ANONYMOUS);
    test_create_each_backing(CONVEYOR_RING_MEMFD);
    test_create_each_backing(CONVEYOR_RING_NAMED);
    test_describe_frame_round_trip();
    test_describe_and_frame_errors();
    test_create_errors();
    test_memfd_attach_in_child();
    test_anonymous_pool_crosses_fork();
    test_named_pool();
    test_attach_of_the_wrong_kind();
    return finish_channel_test("pool_basics", &shm_before);
}
