/*
 * channel_basics.c — index channels in one process, through conveyor.h only: handles and
 * their accessors for each backing, order on a lane, end of stream, backpressure (a full
 * lane times out, a blocked sender resumes when the receiver takes a word, a blocked
 * receiver when a word comes), lanes never claimed are waited for, ends destroyed without
 * closing are PEER_DEAD and their lane or receiver can be opened again, every bad argument
 * has its documented status, sized stats, NAMED names, and a stream across threads.
 * Tests that need the other end asleep wait for the event (its wait counter), never for a
 * sleep to be long enough. Built and run by scripts/test-c, also under ASan+UBSan.
 */
#include "channel_check.h"

#include <fcntl.h>
#include <pthread.h>

/* ---- handles --------------------------------------------------------------------- */

static void test_handles(int backing) {
    static const char *names[] = {"ANONYMOUS", "MEMFD", "NAMED"};
    char name[64];
    unique_name(name, sizeof name, "chan");
    conveyor_channel_config c = channel_config(3, 4, 16, backing);
    if (backing == CONVEYOR_RING_NAMED) c.name = name;
    conveyor_channel *holder = NULL;
    CHECK_STATUS(conveyor_channel_create(&c, &holder), CONVEYOR_OK);
    if (holder == NULL) return;
    CHECK(conveyor_channel_role_of(holder) == CONVEYOR_CHANNEL_HOLDER);
    CHECK(conveyor_channel_lanes(holder) == 3 && conveyor_channel_capacity(holder) == 4);
    CHECK(conveyor_channel_lane(holder) == 0);
    if (backing == CONVEYOR_RING_ANONYMOUS) {
        CHECK(conveyor_channel_fd(holder) == -1);
    } else {
        CHECK(conveyor_channel_fd(holder) >= 0);
    }
    if (backing == CONVEYOR_RING_NAMED) {
        CHECK(conveyor_channel_name(holder) && strcmp(conveyor_channel_name(holder), name) == 0);
    } else {
        CHECK(conveyor_channel_name(holder) == NULL);
    }
    if (backing == CONVEYOR_RING_MEMFD) {
        int seals = fcntl(conveyor_channel_fd(holder), F_GET_SEALS);
        CHECK(seals >= 0 && (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) == (F_SEAL_SHRINK | F_SEAL_GROW));
    }
    conveyor_channel *senders[3], *receiver, *again = NULL, *holder2;
    for (uint32_t lane = 0; lane < 3; lane++) {
        senders[lane] = open_end(holder, CONVEYOR_CHANNEL_SENDER, lane);
        if (!senders[lane]) return;
        CHECK(conveyor_channel_role_of(senders[lane]) == CONVEYOR_CHANNEL_SENDER);
        CHECK(conveyor_channel_lane(senders[lane]) == lane);
        CHECK(conveyor_channel_lanes(senders[lane]) == 3);
        CHECK(conveyor_channel_capacity(senders[lane]) == 4);
    }
    receiver = open_end(senders[1], CONVEYOR_CHANNEL_RECEIVER, 0);  /* from any handle */
    if (!receiver) return;
    CHECK(conveyor_channel_role_of(receiver) == CONVEYOR_CHANNEL_RECEIVER);
    CHECK(conveyor_channel_lane(receiver) == 0);
    CHECK_STATUS(conveyor_channel_open(holder, CONVEYOR_CHANNEL_SENDER, 1, &again), CONVEYOR_E_BUSY);
    CHECK_STATUS(conveyor_channel_open(holder, CONVEYOR_CHANNEL_RECEIVER, 0, &again), CONVEYOR_E_BUSY);
    /* A second mapping sees the claims too. */
    if (backing == CONVEYOR_RING_MEMFD)
        CHECK_STATUS(conveyor_channel_attach_fd(conveyor_channel_fd(holder), CONVEYOR_CHANNEL_SENDER,
                                                2, &again), CONVEYOR_E_BUSY);
    if (backing == CONVEYOR_RING_NAMED)
        CHECK_STATUS(conveyor_channel_attach_named(name, CONVEYOR_CHANNEL_RECEIVER, 0, &again),
                     CONVEYOR_E_BUSY);
    holder2 = open_end(receiver, CONVEYOR_CHANNEL_HOLDER, 0);
    CHECK(holder2 && conveyor_channel_role_of(holder2) == CONVEYOR_CHANNEL_HOLDER);
    /* One word per lane, then the receiver's own handle is the only one left. */
    for (uint32_t lane = 0; lane < 3; lane++)
        CHECK_STATUS(conveyor_channel_send(senders[lane], lane_word(lane, 0), 0), CONVEYOR_OK);
    conveyor_channel_destroy(holder);  /* the mapping outlives the holder */
    conveyor_channel_destroy(holder2);
    for (uint32_t lane = 0; lane < 3; lane++) {
        uint64_t word = 0;
        CHECK_STATUS(conveyor_channel_receive(receiver, lane, 0, &word), CONVEYOR_OK);
        CHECK(word == lane_word(lane, 0));
        CHECK_STATUS(conveyor_channel_close(senders[lane]), CONVEYOR_OK);
        conveyor_channel_destroy(senders[lane]);
    }
    uint32_t lane;
    uint64_t word;
    CHECK_STATUS(conveyor_channel_receive_any(receiver, 0, &lane, &word), CONVEYOR_E_END_OF_STREAM);
    conveyor_channel_destroy(receiver);
    printf("  %s channel: holder, senders, receiver, accessors, BUSY for a second handle\n",
           names[backing]);
}

/* ---- order on a lane ------------------------------------------------------------- */

static void test_order_on_a_lane(void) {
    conveyor_channel_config c = channel_config(2, 8, 0, CONVEYOR_RING_ANONYMOUS);
    conveyor_channel *holder = NULL;
    CHECK_STATUS(conveyor_channel_create(&c, &holder), CONVEYOR_OK);
    if (!holder) return;
    conveyor_channel *s0 = open_end(holder, CONVEYOR_CHANNEL_SENDER, 0);
    conveyor_channel *s1 = open_end(holder, CONVEYOR_CHANNEL_SENDER, 1);
    conveyor_channel *r = open_end(holder, CONVEYOR_CHANNEL_RECEIVER, 0);
    if (!s0 || !s1 || !r) return;
    uint64_t sent[2] = {0, 0}, got[2] = {0, 0};
    int disorder = 0;
    /* Bursts of 1...8 words on both lanes, drained lane by lane, wrapping the lanes many
     * times; lane 1 gets one word fewer per burst so the two lanes' positions differ. */
    for (int burst = 0; burst < 2000; burst++) {
        uint32_t k = 1 + (uint32_t)burst % 8;
        for (uint32_t i = 0; i < k; i++)
            CHECK_STATUS(conveyor_channel_send(s0, lane_word(0, sent[0]++), 0), CONVEYOR_OK);
        for (uint32_t i = 0; i + 1 < k; i++)
            CHECK_STATUS(conveyor_channel_send(s1, lane_word(1, sent[1]++), 0), CONVEYOR_OK);
        for (uint32_t lane = 0; lane < 2; lane++) {
            while (got[lane] < sent[lane]) {
                uint64_t word = 0;
                int s = conveyor_channel_receive(r, lane, 0, &word);
                if (s != CONVEYOR_OK || word != lane_word(lane, got[lane])) {
                    if (disorder++ < 5)
                        fprintf(stderr, "lane %u word %llu: %s, word %#llx\n", lane,
                                (unsigned long long)got[lane], conveyor_status_name(s),
                                (unsigned long long)word);
                    if (s != CONVEYOR_OK) break;
                }
                got[lane]++;
            }
            uint64_t word;
            CHECK_STATUS(conveyor_channel_receive(r, lane, 0, &word), CONVEYOR_E_TIMEOUT);
        }
    }
    CHECK(disorder == 0);
    CHECK(STAT(r, words_sent) == sent[0] + sent[1] && STAT(r, words_received) == got[0] + got[1]);
    printf("  order: %llu words on two lanes in bursts of 1-8 through 8-word lanes, in order\n",
           (unsigned long long)(sent[0] + sent[1]));
    conveyor_channel_destroy(s0);
    conveyor_channel_destroy(s1);
    conveyor_channel_destroy(r);
    conveyor_channel_destroy(holder);
}

/* ---- end of stream ---------------------------------------------------------------- */

typedef struct {
    conveyor_channel *receiver;
    int64_t timeout_ns;
    int any;        /* receive_any instead of receive(lane) */
    uint32_t lane;  /* in: the lane for receive; out: receive_any's lane */
    uint64_t word;
    int status;
} receive_call;

static void *receive_on_thread(void *arg) {
    receive_call *call = arg;
    call->status = call->any ? conveyor_channel_receive_any(call->receiver, call->timeout_ns,
                                                            &call->lane, &call->word)
                             : conveyor_channel_receive(call->receiver, call->lane,
                                                        call->timeout_ns, &call->word);
    return NULL;
}

typedef struct {
    conveyor_channel *sender;
    int64_t timeout_ns;
    uint64_t word;
    int status;
} send_call;

static void *send_on_thread(void *arg) {
    send_call *call = arg;
    call->status = conveyor_channel_send(call->sender, call->word, call->timeout_ns);
    return NULL;
}

static void test_end_of_stream(void) {
    conveyor_channel_config c = channel_config(2, 4, 0, CONVEYOR_RING_ANONYMOUS);
    conveyor_channel *holder = NULL;
    CHECK_STATUS(conveyor_channel_create(&c, &holder), CONVEYOR_OK);
    if (!holder) return;
    conveyor_channel *s0 = open_end(holder, CONVEYOR_CHANNEL_SENDER, 0);
    conveyor_channel *s1 = open_end(holder, CONVEYOR_CHANNEL_SENDER, 1);
    conveyor_channel *r = open_end(holder, CONVEYOR_CHANNEL_RECEIVER, 0);
    if (!s0 || !s1 || !r) return;
    for (uint64_t i = 0; i < 3; i++) CHECK_STATUS(conveyor_channel_send(s0, lane_word(0, i), 0), CONVEYOR_OK);
    CHECK_STATUS(conveyor_channel_close(s0), CONVEYOR_OK);
    CHECK_STATUS(conveyor_channel_close(s0), CONVEYOR_OK);  /* twice is fine */
    CHECK_STATUS(conveyor_channel_send(s0, lane_word(0, 3), 0), CONVEYOR_E_CLOSED);
    CHECK_STATUS(conveyor_channel_send(s0, lane_word(0, 3), GUARD_NS), CONVEYOR_E_CLOSED);
    uint64_t word = 0;
    uint32_t lane = 99;
    for (uint64_t i = 0; i < 3; i++) {  /* closing drains: words sent before still come */
        CHECK_STATUS(conveyor_channel_receive(r, 0, 0, &word), CONVEYOR_OK);
        CHECK(word == lane_word(0, i));
    }
    CHECK_STATUS(conveyor_channel_receive(r, 0, 0, &word), CONVEYOR_E_END_OF_STREAM);
    double start = now_ms();
    CHECK_STATUS(conveyor_channel_receive(r, 0, GUARD_NS, &word), CONVEYOR_E_END_OF_STREAM);
    CHECK(now_ms() - start < LATENCY_GUARD_MS);  /* at once, not after the timeout */

    /* receive_any skips the closed, drained lane and waits on the open one. */
    CHECK_STATUS(conveyor_channel_send(s1, lane_word(1, 0), 0), CONVEYOR_OK);
    CHECK_STATUS(conveyor_channel_receive_any(r, 0, &lane, &word), CONVEYOR_OK);
    CHECK(lane == 1 && word == lane_word(1, 0));
    CHECK_STATUS(conveyor_channel_receive_any(r, 0, &lane, &word), CONVEYOR_E_TIMEOUT);
    start = now_ms();
    CHECK_STATUS(conveyor_channel_receive_any(r, 2000000, &lane, &word), CONVEYOR_E_TIMEOUT);
    CHECK(now_ms() - start >= 1.9);

    /* A close while the receiver sleeps in receive_any wakes it with END_OF_STREAM. */
    uint64_t waits = STAT(r, receiver_waits), wakes = STAT(r, sender_wakes);
    receive_call call = {.receiver = r, .timeout_ns = GUARD_NS, .any = 1};
    pthread_t thread;
    pthread_create(&thread, NULL, receive_on_thread, &call);
    CHECK(WAIT_FOR_STAT(r, receiver_waits, waits + 1));
    CHECK_STATUS(conveyor_channel_close(s1), CONVEYOR_OK);
    pthread_join(thread, NULL);
    CHECK_STATUS(call.status, CONVEYOR_E_END_OF_STREAM);
    CHECK(STAT(r, sender_wakes) >= wakes + 1);  /* the close rang the sleeper's doorbell */
    CHECK_STATUS(conveyor_channel_receive(r, 1, 0, &word), CONVEYOR_E_END_OF_STREAM);
    CHECK_STATUS(conveyor_channel_receive_any(r, 0, &lane, &word), CONVEYOR_E_END_OF_STREAM);
    conveyor_channel_destroy(s0);
    conveyor_channel_destroy(s1);
    /* Closed lanes stay closed for a sender that opens them again. */
    conveyor_channel *s0b = open_end(holder, CONVEYOR_CHANNEL_SENDER, 0);
    if (s0b) {
        CHECK_STATUS(conveyor_channel_send(s0b, 1, 0), CONVEYOR_E_CLOSED);
        conveyor_channel_destroy(s0b);
    }
    CHECK_STATUS(conveyor_channel_receive_any(r, 0, &lane, &word), CONVEYOR_E_END_OF_STREAM);
    conveyor_channel_destroy(r);
    conveyor_channel_destroy(holder);
    printf("  end of stream: close twice, send after close CLOSED, drain then END_OF_STREAM,"
           " a close wakes receive_any\n");
}

/* ---- backpressure ----------------------------------------------------------------- */

static void test_backpressure(void) {
    conveyor_channel_config c = channel_config(1, 4, 0, CONVEYOR_RING_ANONYMOUS);
    conveyor_channel *holder = NULL;
    CHECK_STATUS(conveyor_channel_create(&c, &holder), CONVEYOR_OK);
    if (!holder) return;
    conveyor_channel *s = open_end(holder, CONVEYOR_CHANNEL_SENDER, 0);
    conveyor_channel *r = open_end(holder, CONVEYOR_CHANNEL_RECEIVER, 0);
    if (!s || !r) return;
    for (uint64_t i = 0; i < 4; i++) CHECK_STATUS(conveyor_channel_send(s, lane_word(0, i), 0), CONVEYOR_OK);
    CHECK_STATUS(conveyor_channel_send(s, lane_word(0, 4), 0), CONVEYOR_E_TIMEOUT);
    double start = now_ms();
    CHECK_STATUS(conveyor_channel_send(s, lane_word(0, 4), 2000000), CONVEYOR_E_TIMEOUT);
    double waited = now_ms() - start;
    CHECK(waited >= 1.9 && waited < LATENCY_GUARD_MS);

    /* A sender asleep on the full lane resumes when the receiver takes one word. */
    send_call call = {.sender = s, .timeout_ns = GUARD_NS, .word = lane_word(0, 4)};
    uint64_t waits = STAT(s, sender_waits), wakes = STAT(r, receiver_wakes);
    pthread_t thread;
    pthread_create(&thread, NULL, send_on_thread, &call);
    CHECK(WAIT_FOR_STAT(s, sender_waits, waits + 1));
    uint64_t word = 0;
    CHECK_STATUS(conveyor_channel_receive(r, 0, 0, &word), CONVEYOR_OK);
    CHECK(word == lane_word(0, 0));
    pthread_join(thread, NULL);
    CHECK_STATUS(call.status, CONVEYOR_OK);
    CHECK(STAT(r, receiver_wakes) >= wakes + 1);  /* woken by the doorbell, not a slice */
    CHECK_STATUS(conveyor_channel_send(s, lane_word(0, 5), 0), CONVEYOR_E_TIMEOUT);  /* full again */
    for (uint64_t i = 1; i <= 4; i++) {
        CHECK_STATUS(conveyor_channel_receive(r, 0, 0, &word), CONVEYOR_OK);
        CHECK(word == lane_word(0, i));
    }
    CHECK_STATUS(conveyor_channel_receive(r, 0, 0, &word), CONVEYOR_E_TIMEOUT);

    /* A receiver asleep on the empty lane resumes when a word comes: receive, then any. */
    for (int any = 0; any < 2; any++) {
        waits = STAT(r, receiver_waits);
        wakes = STAT(s, sender_wakes);
        receive_call rc = {.receiver = r, .timeout_ns = GUARD_NS, .any = any, .lane = 0};
        pthread_create(&thread, NULL, receive_on_thread, &rc);
        CHECK(WAIT_FOR_STAT(r, receiver_waits, waits + 1));
        CHECK_STATUS(conveyor_channel_send(s, lane_word(0, 5 + (uint64_t)any), 0), CONVEYOR_OK);
        pthread_join(thread, NULL);
        CHECK_STATUS(rc.status, CONVEYOR_OK);
        CHECK(rc.word == lane_word(0, 5 + (uint64_t)any) && rc.lane == 0);
        CHECK(STAT(s, sender_wakes) >= wakes + 1);
    }
    conveyor_channel_stats st;
    CHECK_STATUS(conveyor_channel_read_stats(r, &st, sizeof st), CONVEYOR_OK);
    CHECK(st.words_sent == 7 && st.words_received == 7);
    conveyor_channel_destroy(s);
    conveyor_channel_destroy(r);
    conveyor_channel_destroy(holder);
    printf("  backpressure: a full lane times out (0 and 2 ms); a sleeping sender and a sleeping"
           " receiver are woken by their doorbells\n");
}

/* ---- lanes never claimed ---------------------------------------------------------- */

/* A lane nobody has opened yet is waited for: neither END_OF_STREAM nor PEER_DEAD. */
static void test_unclaimed_lanes_are_waited_for(void) {
    conveyor_channel_config c = channel_config(4, 4, 0, CONVEYOR_RING_ANONYMOUS);
    conveyor_channel *holder = NULL;
    CHECK_STATUS(conveyor_channel_create(&c, &holder), CONVEYOR_OK);
    if (!holder) return;
    conveyor_channel *r = open_end(holder, CONVEYOR_CHANNEL_RECEIVER, 0);
    conveyor_channel *s2 = open_end(holder, CONVEYOR_CHANNEL_SENDER, 2);
    if (!r || !s2) return;
    uint32_t lane = 99;
    uint64_t word;
    CHECK_STATUS(conveyor_channel_receive(r, 0, 0, &word), CONVEYOR_E_TIMEOUT);
    CHECK_STATUS(conveyor_channel_receive(r, 0, 20000000, &word), CONVEYOR_E_TIMEOUT);  /* > a slice */
    CHECK_STATUS(conveyor_channel_send(s2, 42, 0), CONVEYOR_OK);
    CHECK_STATUS(conveyor_channel_close(s2), CONVEYOR_OK);
    CHECK_STATUS(conveyor_channel_receive_any(r, 0, &lane, &word), CONVEYOR_OK);
    CHECK(lane == 2 && word == 42);
    CHECK_STATUS(conveyor_channel_receive_any(r, 0, &lane, &word), CONVEYOR_E_TIMEOUT);
    CHECK_STATUS(conveyor_channel_receive_any(r, 25000000, &lane, &word), CONVEYOR_E_TIMEOUT);
    for (uint32_t l = 0; l < 4; l++) {
        if (l == 2) continue;
        conveyor_channel *s = open_end(holder, CONVEYOR_CHANNEL_SENDER, l);
        if (!s) continue;
        CHECK_STATUS(conveyor_channel_close(s), CONVEYOR_OK);
        conveyor_channel_destroy(s);
        if (l < 3) CHECK_STATUS(conveyor_channel_receive_any(r, 0, &lane, &word), CONVEYOR_E_TIMEOUT);
    }
    CHECK_STATUS(conveyor_channel_receive_any(r, 0, &lane, &word), CONVEYOR_E_END_OF_STREAM);
    conveyor_channel_destroy(s2);
    conveyor_channel_destroy(r);
    conveyor_channel_destroy(holder);
    printf("  lanes never opened are waited for (TIMEOUT past a peer-check slice), then END_OF_STREAM\n");
}

/* ---- ends destroyed without closing ----------------------------------------------- */

/* A sender destroyed without closing: the receiver drains it, then PEER_DEAD (on that
 * lane, by receive and by receive_any); a new sender of the lane continues after the
 * last word sent. A receiver destroyed: a sender on a full lane gets PEER_DEAD; a new
 * receiver continues at the first word not received. */
static void test_destroyed_ends_are_peer_dead_and_replaceable(void) {
    conveyor_channel_config c = channel_config(2, 4, 0, CONVEYOR_RING_ANONYMOUS);
    conveyor_channel *holder = NULL;
    CHECK_STATUS(conveyor_channel_create(&c, &holder), CONVEYOR_OK);
    if (!holder) return;
    conveyor_channel *s0 = open_end(holder, CONVEYOR_CHANNEL_SENDER, 0);
    conveyor_channel *s1 = open_end(holder, CONVEYOR_CHANNEL_SENDER, 1);
    conveyor_channel *r = open_end(holder, CONVEYOR_CHANNEL_RECEIVER, 0);
    if (!s0 || !s1 || !r) return;
    CHECK_STATUS(conveyor_channel_send(s0, lane_word(0, 0), 0), CONVEYOR_OK);
    CHECK_STATUS(conveyor_channel_send(s0, lane_word(0, 1), 0), CONVEYOR_OK);
    conveyor_channel_destroy(s0);  /* left without closing */
    uint64_t word = 0;
    uint32_t lane = 99;
    CHECK_STATUS(conveyor_channel_receive_any(r, 0, &lane, &word), CONVEYOR_OK);
    CHECK(lane == 0 && word == lane_word(0, 0));
    CHECK_STATUS(conveyor_channel_receive(r, 0, 0, &word), CONVEYOR_OK);
    CHECK(word == lane_word(0, 1));
    double start = now_ms();
    CHECK_STATUS(conveyor_channel_receive(r, 0, GUARD_NS, &word), CONVEYOR_E_PEER_DEAD);
    lane = 99;
    CHECK_STATUS(conveyor_channel_receive_any(r, GUARD_NS, &lane, &word), CONVEYOR_E_PEER_DEAD);
    CHECK(lane == 0);
    CHECK(now_ms() - start < LATENCY_GUARD_MS);
    CHECK_STATUS(conveyor_channel_receive(r, 1, 0, &word), CONVEYOR_E_TIMEOUT);  /* lane 1 alive */
    s0 = open_end(holder, CONVEYOR_CHANNEL_SENDER, 0);  /* takes the lane that was left */
    if (s0) {
        CHECK_STATUS(conveyor_channel_send(s0, lane_word(0, 2), 0), CONVEYOR_OK);
        CHECK_STATUS(conveyor_channel_receive_any(r, 0, &lane, &word), CONVEYOR_OK);
        CHECK(lane == 0 && word == lane_word(0, 2));
    }

    /* The receiver leaves with two words unreceived on lane 1. */
    for (uint64_t i = 0; i < 4; i++) CHECK_STATUS(conveyor_channel_send(s1, lane_word(1, i), 0), CONVEYOR_OK);
    CHECK_STATUS(conveyor_channel_receive(r, 1, 0, &word), CONVEYOR_OK);
    CHECK_STATUS(conveyor_channel_receive(r, 1, 0, &word), CONVEYOR_OK);
    CHECK_STATUS(conveyor_channel_send(s1, lane_word(1, 4), 0), CONVEYOR_OK);
    CHECK_STATUS(conveyor_channel_send(s1, lane_word(1, 5), 0), CONVEYOR_OK);  /* full */
    conveyor_channel_destroy(r);
    start = now_ms();
    CHECK_STATUS(conveyor_channel_send(s1, lane_word(1, 6), GUARD_NS), CONVEYOR_E_PEER_DEAD);
    CHECK(now_ms() - start < LATENCY_GUARD_MS);
    r = open_end(holder, CONVEYOR_CHANNEL_RECEIVER, 0);
    if (r) {
        for (uint64_t i = 2; i < 6; i++) {
            CHECK_STATUS(conveyor_channel_receive(r, 1, 0, &word), CONVEYOR_OK);
            CHECK(word == lane_word(1, i));
        }
        CHECK_STATUS(conveyor_channel_send(s1, lane_word(1, 6), GUARD_NS), CONVEYOR_OK);  /* alive again */
        CHECK_STATUS(conveyor_channel_receive(r, 1, 0, &word), CONVEYOR_OK);
        CHECK(word == lane_word(1, 6));
    }
    conveyor_channel_destroy(s0);
    conveyor_channel_destroy(s1);
    conveyor_channel_destroy(r);
    conveyor_channel_destroy(holder);
    printf("  destroyed without close: PEER_DEAD after the drain, both ways; a new end resumes"
           " at the shared position\n");
}

/* ---- bad arguments ---------------------------------------------------------------- */

static void test_bad_arguments(void) {
    conveyor_channel *ch = NULL;
    conveyor_channel_config c = channel_config(3, 4, 0, CONVEYOR_RING_ANONYMOUS);
    CHECK_STATUS(conveyor_channel_create(NULL, &ch), CONVEYOR_E_NULL_POINTER);
    CHECK_STATUS(conveyor_channel_create(&c, NULL), CONVEYOR_E_NULL_POINTER);
    conveyor_channel_config bad = c;
    bad.lanes = 0;
    CHECK_STATUS(conveyor_channel_create(&bad, &ch), CONVEYOR_E_INVALID_ARGUMENT);
    bad.lanes = CONVEYOR_CHANNEL_MAX_LANES + 1;
    CHECK_STATUS(conveyor_channel_create(&bad, &ch), CONVEYOR_E_INVALID_ARGUMENT);
    bad = c;
    bad.capacity = 0;
    CHECK_STATUS(conveyor_channel_create(&bad, &ch), CONVEYOR_E_INVALID_ARGUMENT);
    bad.capacity = CONVEYOR_CHANNEL_MAX_CAPACITY + 1;
    CHECK_STATUS(conveyor_channel_create(&bad, &ch), CONVEYOR_E_INVALID_ARGUMENT);
    bad = c;
    bad.backing = 3;
    CHECK_STATUS(conveyor_channel_create(&bad, &ch), CONVEYOR_E_INVALID_ARGUMENT);
    bad.backing = CONVEYOR_RING_NAMED;
    bad.name = "no-slash";
    CHECK_STATUS(conveyor_channel_create(&bad, &ch), CONVEYOR_E_INVALID_ARGUMENT);
    bad.name = "/two/slashes";
    CHECK_STATUS(conveyor_channel_create(&bad, &ch), CONVEYOR_E_INVALID_ARGUMENT);

    /* The largest channel is valid: 64 lanes of 65536 words. */
    conveyor_channel_config biggest = channel_config(CONVEYOR_CHANNEL_MAX_LANES,
                                                     CONVEYOR_CHANNEL_MAX_CAPACITY, 0,
                                                     CONVEYOR_RING_ANONYMOUS);
    conveyor_channel *big = NULL;
    CHECK_STATUS(conveyor_channel_create(&biggest, &big), CONVEYOR_OK);
    if (big) {
        conveyor_channel *last = open_end(big, CONVEYOR_CHANNEL_SENDER, CONVEYOR_CHANNEL_MAX_LANES - 1);
        conveyor_channel *rb = open_end(big, CONVEYOR_CHANNEL_RECEIVER, 0);
        if (last && rb) {
            for (uint64_t i = 0; i < CONVEYOR_CHANNEL_MAX_CAPACITY; i++)
                if (conveyor_channel_send(last, i, 0) != CONVEYOR_OK) {
                    CHECK(!"64 lanes x 65536 words: the last lane holds 65536 words");
                    break;
                }
            uint64_t w;
            CHECK_STATUS(conveyor_channel_send(last, 0, 0), CONVEYOR_E_TIMEOUT);
            uint32_t l;
            CHECK_STATUS(conveyor_channel_receive_any(rb, 0, &l, &w), CONVEYOR_OK);
            CHECK(l == CONVEYOR_CHANNEL_MAX_LANES - 1 && w == 0);
        }
        conveyor_channel_destroy(last);
        conveyor_channel_destroy(rb);
        conveyor_channel_destroy(big);
    }

    conveyor_channel *holder = NULL;
    CHECK_STATUS(conveyor_channel_create(&c, &holder), CONVEYOR_OK);
    if (!holder) return;
    conveyor_channel *end = NULL;
    CHECK_STATUS(conveyor_channel_open(NULL, CONVEYOR_CHANNEL_SENDER, 0, &end), CONVEYOR_E_NULL_POINTER);
    CHECK_STATUS(conveyor_channel_open(holder, CONVEYOR_CHANNEL_SENDER, 0, NULL), CONVEYOR_E_NULL_POINTER);
    CHECK_STATUS(conveyor_channel_open(holder, 0, 0, &end), CONVEYOR_E_INVALID_ARGUMENT);
    CHECK_STATUS(conveyor_channel_open(holder, 7, 0, &end), CONVEYOR_E_INVALID_ARGUMENT);
    CHECK_STATUS(conveyor_channel_open(holder, CONVEYOR_CHANNEL_SENDER, 3, &end), CONVEYOR_E_INVALID_ARGUMENT);
    CHECK_STATUS(conveyor_channel_open(holder, CONVEYOR_CHANNEL_SENDER, UINT32_MAX, &end),
                 CONVEYOR_E_INVALID_ARGUMENT);
    CHECK_STATUS(conveyor_channel_open(holder, CONVEYOR_CHANNEL_RECEIVER, 1, &end),
                 CONVEYOR_E_INVALID_ARGUMENT);
    conveyor_channel *s = open_end(holder, CONVEYOR_CHANNEL_SENDER, 1);  /* nothing was claimed */
    conveyor_channel *r = open_end(holder, CONVEYOR_CHANNEL_RECEIVER, 0);
    if (!s || !r) return;
    uint64_t word;
    uint32_t lane;
    CHECK_STATUS(conveyor_channel_send(r, 1, 0), CONVEYOR_E_WRONG_ROLE);
    CHECK_STATUS(conveyor_channel_send(holder, 1, 0), CONVEYOR_E_WRONG_ROLE);
    CHECK_STATUS(conveyor_channel_close(r), CONVEYOR_E_WRONG_ROLE);
    CHECK_STATUS(conveyor_channel_close(holder), CONVEYOR_E_WRONG_ROLE);
    CHECK_STATUS(conveyor_channel_receive(s, 1, 0, &word), CONVEYOR_E_WRONG_ROLE);
    CHECK_STATUS(conveyor_channel_receive(holder, 0, 0, &word), CONVEYOR_E_WRONG_ROLE);
    CHECK_STATUS(conveyor_channel_receive_any(s, 0, &lane, &word), CONVEYOR_E_WRONG_ROLE);
    CHECK_STATUS(conveyor_channel_receive_any(holder, 0, &lane, &word), CONVEYOR_E_WRONG_ROLE);
    CHECK_STATUS(conveyor_channel_claim(holder), CONVEYOR_E_WRONG_ROLE);
    CHECK_STATUS(conveyor_channel_claim(s), CONVEYOR_OK);  /* already ours: fine */
    CHECK_STATUS(conveyor_channel_claim(r), CONVEYOR_OK);
    CHECK_STATUS(conveyor_channel_receive(r, 3, 0, &word), CONVEYOR_E_INVALID_ARGUMENT);
    CHECK_STATUS(conveyor_channel_receive(r, UINT32_MAX, 0, &word), CONVEYOR_E_INVALID_ARGUMENT);
    CHECK_STATUS(conveyor_channel_receive(r, 0, 0, NULL), CONVEYOR_E_NULL_POINTER);
    CHECK_STATUS(conveyor_channel_receive_any(r, 0, NULL, &word), CONVEYOR_E_NULL_POINTER);
    CHECK_STATUS(conveyor_channel_receive_any(r, 0, &lane, NULL), CONVEYOR_E_NULL_POINTER);
    CHECK_STATUS(conveyor_channel_receive(NULL, 0, 0, &word), CONVEYOR_E_NULL_POINTER);
    CHECK_STATUS(conveyor_channel_receive_any(NULL, 0, &lane, &word), CONVEYOR_E_NULL_POINTER);
    CHECK_STATUS(conveyor_channel_send(NULL, 1, 0), CONVEYOR_E_NULL_POINTER);
    CHECK_STATUS(conveyor_channel_close(NULL), CONVEYOR_E_NULL_POINTER);
    CHECK_STATUS(conveyor_channel_claim(NULL), CONVEYOR_E_NULL_POINTER);
    CHECK_STATUS(conveyor_channel_set_spin(NULL, 5), CONVEYOR_E_NULL_POINTER);
    CHECK_STATUS(conveyor_channel_set_spin(s, 0), CONVEYOR_OK);
    CHECK_STATUS(conveyor_channel_set_spin(r, 1u << 20), CONVEYOR_OK);
    CHECK_STATUS(conveyor_channel_remove_name(NULL), CONVEYOR_E_NULL_POINTER);
    CHECK_STATUS(conveyor_channel_remove_name(holder), CONVEYOR_OK);  /* not NAMED: no-op */
    CHECK(conveyor_channel_role_of(NULL) == 0 && conveyor_channel_lane(NULL) == 0);
    CHECK(conveyor_channel_lanes(NULL) == 0 && conveyor_channel_capacity(NULL) == 0);
    CHECK(conveyor_channel_fd(NULL) == -1 && conveyor_channel_name(NULL) == NULL);
    conveyor_channel_destroy(NULL);
    /* None of the refused calls moved a word: the lane still works in order. */
    CHECK_STATUS(conveyor_channel_send(s, 7, 0), CONVEYOR_OK);
    CHECK_STATUS(conveyor_channel_receive(r, 1, 0, &word), CONVEYOR_OK);
    CHECK(word == 7);
    CHECK(STAT(r, words_sent) == 1 && STAT(r, words_received) == 1);

    /* attach: bad fd, role, lane; NULLs; a name that does not exist. */
    CHECK_STATUS(conveyor_channel_attach_fd(-1, CONVEYOR_CHANNEL_RECEIVER, 0, &end), CONVEYOR_E_INVALID_ARGUMENT);
    conveyor_channel_config mc = channel_config(2, 4, 0, CONVEYOR_RING_MEMFD);
    conveyor_channel *memfd = NULL;
    CHECK_STATUS(conveyor_channel_create(&mc, &memfd), CONVEYOR_OK);
    if (memfd) {
        int fd = conveyor_channel_fd(memfd);
        CHECK_STATUS(conveyor_channel_attach_fd(fd, 7, 0, &end), CONVEYOR_E_INVALID_ARGUMENT);
        CHECK_STATUS(conveyor_channel_attach_fd(fd, CONVEYOR_CHANNEL_SENDER, 2, &end),
                     CONVEYOR_E_INVALID_ARGUMENT);
        CHECK_STATUS(conveyor_channel_attach_fd(fd, CONVEYOR_CHANNEL_RECEIVER, 1, &end),
                     CONVEYOR_E_INVALID_ARGUMENT);
        CHECK_STATUS(conveyor_channel_attach_fd(fd, CONVEYOR_CHANNEL_SENDER, 0, NULL),
                     CONVEYOR_E_NULL_POINTER);
        end = NULL;
        CHECK_STATUS(conveyor_channel_attach_fd(fd, CONVEYOR_CHANNEL_SENDER, 1, &end), CONVEYOR_OK);
        CHECK(end && conveyor_channel_lane(end) == 1 && conveyor_channel_fd(end) != fd);
        conveyor_channel_destroy(end);
        conveyor_channel_destroy(memfd);
    }
    char name[64];
    unique_name(name, sizeof name, "absent");
    CHECK_STATUS(conveyor_channel_attach_named(name, CONVEYOR_CHANNEL_RECEIVER, 0, &end), CONVEYOR_E_SYSTEM);
    CHECK(errno == ENOENT);
    CHECK_STATUS(conveyor_channel_attach_named("no-slash", CONVEYOR_CHANNEL_RECEIVER, 0, &end),
                 CONVEYOR_E_INVALID_ARGUMENT);
    CHECK_STATUS(conveyor_channel_attach_named(NULL, CONVEYOR_CHANNEL_RECEIVER, 0, &end),
                 CONVEYOR_E_NULL_POINTER);

    /* read_stats: sizes and NULLs. */
    conveyor_channel_stats st;
    CHECK_STATUS(conveyor_channel_read_stats(NULL, &st, sizeof st), CONVEYOR_E_NULL_POINTER);
    CHECK_STATUS(conveyor_channel_read_stats(r, NULL, sizeof st), CONVEYOR_E_NULL_POINTER);
    CHECK_STATUS(conveyor_channel_read_stats(r, &st, 0), CONVEYOR_E_INVALID_ARGUMENT);
    CHECK_STATUS(conveyor_channel_read_stats(r, &st, 4), CONVEYOR_E_INVALID_ARGUMENT);
    CHECK_STATUS(conveyor_channel_read_stats(r, &st, 12), CONVEYOR_E_INVALID_ARGUMENT);
    conveyor_channel_destroy(s);
    conveyor_channel_destroy(r);
    conveyor_channel_destroy(holder);
    printf("  bad arguments: create, open, attach, wrong roles, lanes out of range, NULLs:"
           " documented statuses, nothing moved\n");
}

/* ---- stats ------------------------------------------------------------------------ */

static void test_sized_stats(void) {
    conveyor_channel_config c = channel_config(2, 16, 0, CONVEYOR_RING_ANONYMOUS);
    conveyor_channel *holder = NULL;
    CHECK_STATUS(conveyor_channel_create(&c, &holder), CONVEYOR_OK);
    if (!holder) return;
    conveyor_channel *s0 = open_end(holder, CONVEYOR_CHANNEL_SENDER, 0);
    conveyor_channel *s1 = open_end(holder, CONVEYOR_CHANNEL_SENDER, 1);
    conveyor_channel *r = open_end(holder, CONVEYOR_CHANNEL_RECEIVER, 0);
    if (!s0 || !s1 || !r) return;
    for (int i = 0; i < 3; i++) CHECK_STATUS(conveyor_channel_send(s0, 1, 0), CONVEYOR_OK);
    for (int i = 0; i < 2; i++) CHECK_STATUS(conveyor_channel_send(s1, 2, 0), CONVEYOR_OK);
    uint64_t word;
    uint32_t lane;
    for (int i = 0; i < 3; i++) CHECK_STATUS(conveyor_channel_receive_any(r, 0, &lane, &word), CONVEYOR_OK);
    CHECK(sizeof(conveyor_channel_stats) == CONVEYOR_CHANNEL_STATS_SIZE_0_5);
    conveyor_channel *views[] = {holder, s0, s1, r};
    for (int v = 0; v < 4; v++) {
        conveyor_channel_stats st;
        memset(&st, 0xAB, sizeof st);
        CHECK_STATUS(conveyor_channel_read_stats(views[v], &st, sizeof st), CONVEYOR_OK);
        CHECK(st.words_sent == 5 && st.words_received == 3);
        CHECK(st.lanes == 2 && st.capacity == 16);
        CHECK(st.mapped_bytes >= 4096 + 2 * 384 + 2 * 16 * 8);
        CHECK(st.sender_waits == 0 && st.receiver_waits == 0);  /* nobody had to sleep */
    }
    unsigned char buffer[sizeof(conveyor_channel_stats) + 16];
    memset(buffer, 0xAB, sizeof buffer);
    conveyor_channel_stats *st = (conveyor_channel_stats *)buffer;
    CHECK_STATUS(conveyor_channel_read_stats(r, st, 8), CONVEYOR_OK);
    CHECK(st->words_sent == 5 && buffer[8] == 0xAB);  /* only what the caller knows */
    CHECK_STATUS(conveyor_channel_read_stats(r, st, sizeof buffer), CONVEYOR_OK);
    CHECK(st->words_received == 3 && st->mapped_bytes > 0);
    CHECK(buffer[sizeof buffer - 1] == 0 && buffer[sizeof(conveyor_channel_stats)] == 0);
    conveyor_channel_destroy(s0);
    conveyor_channel_destroy(s1);
    conveyor_channel_destroy(r);
    conveyor_channel_destroy(holder);
    printf("  stats: the same sums from every handle; sized reads fill what the caller knows\n");
}

/* ---- NAMED ------------------------------------------------------------------------ */

static void test_named_channel(void) {
    char name[64];
    unique_name(name, sizeof name, "chan");
    conveyor_channel_config c = channel_config(2, 4, 0, CONVEYOR_RING_NAMED);
    c.name = name;
    conveyor_channel *holder = NULL, *dup = NULL, *probe = NULL;
    CHECK_STATUS(conveyor_channel_create(&c, &holder), CONVEYOR_OK);
    if (!holder) return;
    CHECK_STATUS(conveyor_channel_create(&c, &dup), CONVEYOR_E_EXISTS);
    conveyor_channel *r = NULL, *s = NULL;
    CHECK_STATUS(conveyor_channel_attach_named(name, CONVEYOR_CHANNEL_RECEIVER, 0, &r), CONVEYOR_OK);
    CHECK_STATUS(conveyor_channel_attach_named(name, CONVEYOR_CHANNEL_SENDER, 1, &s), CONVEYOR_OK);
    if (r && s) {
        CHECK(strcmp(conveyor_channel_name(r), name) == 0);
        CHECK_STATUS(conveyor_channel_send(s, 31, 0), CONVEYOR_OK);
        uint64_t word;
        uint32_t lane;
        CHECK_STATUS(conveyor_channel_receive_any(r, 0, &lane, &word), CONVEYOR_OK);
        CHECK(lane == 1 && word == 31);
        CHECK_STATUS(conveyor_channel_remove_name(r), CONVEYOR_OK);  /* not the creator: no-op */
        CHECK_STATUS(conveyor_channel_create(&c, &probe), CONVEYOR_E_EXISTS);
    }
    /* The creator's last handle on its mapping removes the name: not the holder while a
     * sender opened from it lives. */
    conveyor_channel *s0 = open_end(holder, CONVEYOR_CHANNEL_SENDER, 0);
    conveyor_channel_destroy(holder);
    probe = NULL;
    CHECK_STATUS(conveyor_channel_attach_named(name, CONVEYOR_CHANNEL_HOLDER, 0, &probe), CONVEYOR_OK);
    conveyor_channel_destroy(probe);
    conveyor_channel_destroy(s0);
    probe = NULL;
    CHECK_STATUS(conveyor_channel_attach_named(name, CONVEYOR_CHANNEL_HOLDER, 0, &probe), CONVEYOR_E_SYSTEM);
    CHECK(errno == ENOENT);
    conveyor_channel_destroy(r);
    conveyor_channel_destroy(s);

    /* remove_name: once, by the creator, and never a newer channel's name. */
    conveyor_channel *first = NULL, *second = NULL;
    CHECK_STATUS(conveyor_channel_create(&c, &first), CONVEYOR_OK);
    CHECK_STATUS(conveyor_channel_remove_name(first), CONVEYOR_OK);
    CHECK_STATUS(conveyor_channel_remove_name(first), CONVEYOR_OK);
    CHECK_STATUS(conveyor_channel_create(&c, &second), CONVEYOR_OK);
    CHECK_STATUS(conveyor_channel_remove_name(first), CONVEYOR_OK);
    conveyor_channel_destroy(first);
    probe = NULL;
    CHECK_STATUS(conveyor_channel_attach_named(name, CONVEYOR_CHANNEL_HOLDER, 0, &probe), CONVEYOR_OK);
    conveyor_channel_destroy(probe);
    conveyor_channel_destroy(second);
    CHECK_STATUS(conveyor_channel_attach_named(name, CONVEYOR_CHANNEL_HOLDER, 0, &probe), CONVEYOR_E_SYSTEM);
    printf("  NAMED channel: EXISTS twice, attach by name, the creator's last handle removes the"
           " name, remove_name once\n");
}

/* ---- across threads --------------------------------------------------------------- */

typedef struct {
    conveyor_channel *sender;
    uint64_t words;
    int status;
} stream_call;

static void *stream_on_thread(void *arg) {
    stream_call *call = arg;
    call->status = CONVEYOR_OK;
    for (uint64_t i = 0; i < call->words && call->status == CONVEYOR_OK; i++)
        call->status = conveyor_channel_send(call->sender, stream_word(i), GUARD_NS);
    if (call->status == CONVEYOR_OK) call->status = conveyor_channel_close(call->sender);
    return NULL;
}

static void test_across_threads(void) {
    const uint64_t words = 200000;
    for (int spin = 0; spin < 2; spin++) {
        conveyor_channel_config c = channel_config(1, 64, spin ? 2048 : 0, CONVEYOR_RING_ANONYMOUS);
        conveyor_channel *holder = NULL;
        CHECK_STATUS(conveyor_channel_create(&c, &holder), CONVEYOR_OK);
        if (!holder) return;
        conveyor_channel *s = open_end(holder, CONVEYOR_CHANNEL_SENDER, 0);
        conveyor_channel *r = open_end(holder, CONVEYOR_CHANNEL_RECEIVER, 0);
        if (!s || !r) return;
        stream_call call = {.sender = s, .words = words};
        pthread_t thread;
        double start = now_ms();
        pthread_create(&thread, NULL, stream_on_thread, &call);
        uint64_t n = 0, word, bad = 0;
        int status;
        while ((status = conveyor_channel_receive(r, 0, GUARD_NS, &word)) == CONVEYOR_OK) {
            bad += word != stream_word(n);
            n++;
        }
        pthread_join(thread, NULL);
        CHECK_STATUS(status, CONVEYOR_E_END_OF_STREAM);
        CHECK_STATUS(call.status, CONVEYOR_OK);
        CHECK(n == words && bad == 0);
        printf("  threads, spin %s: %llu words in order in %.0f ms (%llu receiver sleeps)\n",
               spin ? "2048" : "0", (unsigned long long)n, now_ms() - start,
               (unsigned long long)STAT(r, receiver_waits));
        conveyor_channel_destroy(s);
        conveyor_channel_destroy(r);
        conveyor_channel_destroy(holder);
    }
}

int main(void) {
    test_start("channel_basics", 120);
    static shm_snapshot shm_before;
    shm_snapshot_take(&shm_before);
    test_handles(CONVEYOR_RING_ANONYMOUS);
    test_handles(CONVEYOR_RING_MEMFD);
    test_handles(CONVEYOR_RING_NAMED);
    test_order_on_a_lane();
    test_end_of_stream();
    test_backpressure();
    test_unclaimed_lanes_are_waited_for();
    test_destroyed_ends_are_peer_dead_and_replaceable();
    test_bad_arguments();
    test_sized_stats();
    test_named_channel();
    test_across_threads();
    return finish_channel_test("channel_basics", &shm_before);
}
