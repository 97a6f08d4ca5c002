/*
 * channel_processes.c — index channels across real processes, through conveyor.h only:
 * ends opened from an inherited ANONYMOUS holder, attached by MEMFD fd and by NAMED name in
 * forked children; a million words each way with an order check and checksums; peer death
 * both ways (a child that _exit()s or is SIGKILLed holding an end: the other end gets
 * PEER_DEAD after draining, within a generous bound, by receive, receive_any and send);
 * takeover (a new process takes a dead sender's lane or a dead receiver, directly or
 * through an inherited handle, and continues at the shared position: no word lost or
 * repeated that was not received). Every child is reaped; children die with the test.
 * Built and run by scripts/test-c, also under ASan+UBSan.
 */
#include "channel_check.h"

/* Sends words stream_word(0...count-1) and closes unless told not to; returns the
 * checksum (sum of the words), or UINT64_MAX on an error. */
static uint64_t send_stream(conveyor_channel *s, uint64_t count, bool close_at_end) {
    uint64_t sum = 0;
    for (uint64_t i = 0; i < count; i++) {
        if (conveyor_channel_send(s, stream_word(i), GUARD_NS) != CONVEYOR_OK) return UINT64_MAX;
        sum += stream_word(i);
    }
    if (close_at_end && conveyor_channel_close(s) != CONVEYOR_OK) return UINT64_MAX;
    return sum;
}

/* Receives lane `lane` until END_OF_STREAM, checking the order; returns the checksum, or
 * UINT64_MAX on disorder or another status. */
static uint64_t receive_stream(conveyor_channel *r, uint32_t lane, uint64_t *count) {
    uint64_t sum = 0, n = 0, word;
    int s;
    while ((s = conveyor_channel_receive(r, lane, GUARD_NS, &word)) == CONVEYOR_OK) {
        if (word != stream_word(n)) {
            fprintf(stderr, "word %llu: %#llx, expected %#llx\n", (unsigned long long)n,
                    (unsigned long long)word, (unsigned long long)stream_word(n));
            return UINT64_MAX;
        }
        sum += word;
        n++;
    }
    *count = n;
    if (s != CONVEYOR_E_END_OF_STREAM) fprintf(stderr, "stream ended with %s\n", conveyor_status_name(s));
    return s == CONVEYOR_E_END_OF_STREAM ? sum : UINT64_MAX;
}

/* ---- a million words each way ------------------------------------------------------ */

/* Parent -> child: the child attaches the receiver of a MEMFD channel by fd. Child ->
 * parent: the child opens the sender from the ANONYMOUS holder it inherited. */
static void test_million_words_each_way(void) {
    const uint64_t words = 1000000;
    for (int direction = 0; direction < 2; direction++) {
        conveyor_channel *holder = make_channel(1, 256, CONVEYOR_RING_DEFAULT_SPIN,
                                                direction == 0 ? CONVEYOR_RING_MEMFD : CONVEYOR_RING_ANONYMOUS);
        if (!holder) return;
        int fd = conveyor_channel_fd(holder);
        signal_pipe result;
        pipe_open(&result);
        double start = now_ms();
        pid_t child = fork_child();
        if (child == 0) {
            uint64_t sum, count = words;
            conveyor_channel *end = NULL;
            if (direction == 0) {
                if (conveyor_channel_attach_fd(fd, CONVEYOR_CHANNEL_RECEIVER, 0, &end) != CONVEYOR_OK) _exit(2);
                sum = receive_stream(end, 0, &count);
            } else {
                end = open_end(holder, CONVEYOR_CHANNEL_SENDER, 0);
                sum = send_stream(end, words, true);
            }
            uint64_t out[2] = {sum, count};
            if (!pipe_put(&result, out, sizeof out)) _exit(3);
            conveyor_channel_destroy(end);
            _exit(0);
        }
        uint64_t mine, count = words, theirs[2] = {0, 0};
        conveyor_channel *end;
        if (direction == 0) {
            end = open_end(holder, CONVEYOR_CHANNEL_SENDER, 0);
            mine = end ? send_stream(end, words, true) : UINT64_MAX;
        } else {
            end = open_end(holder, CONVEYOR_CHANNEL_RECEIVER, 0);
            mine = end ? receive_stream(end, 0, &count) : UINT64_MAX;
        }
        CHECK(pipe_get(&result, theirs, sizeof theirs));
        CHECK_CHILD_OK(child, direction == 0 ? "receive a million words" : "send a million words");
        CHECK(mine != UINT64_MAX && mine == theirs[0]);
        CHECK(count == words && theirs[1] == words);
        conveyor_channel_stats st;
        CHECK_STATUS(conveyor_channel_read_stats(holder, &st, sizeof st), CONVEYOR_OK);
        CHECK(st.words_sent == words && st.words_received == words);
        printf("  %s: %llu words across processes in %.0f ms, in order, checksums agree"
               " (%llu receiver sleeps, %llu sender sleeps)\n",
               direction == 0 ? "parent -> child (MEMFD attach)" : "child -> parent (ANONYMOUS fork)",
               (unsigned long long)words, now_ms() - start, (unsigned long long)st.receiver_waits,
               (unsigned long long)st.sender_waits);
        pipe_close(&result);
        conveyor_channel_destroy(end);
        conveyor_channel_destroy(holder);
    }
}

/* ---- NAMED across processes -------------------------------------------------------- */

static void test_named_across_processes(void) {
    char name[64];
    unique_name(name, sizeof name, "chan");
    conveyor_channel_config c = channel_config(3, 16, 64, CONVEYOR_RING_NAMED);
    c.name = name;
    conveyor_channel *holder = NULL;
    CHECK_STATUS(conveyor_channel_create(&c, &holder), CONVEYOR_OK);
    if (!holder) return;
    conveyor_channel *r = open_end(holder, CONVEYOR_CHANNEL_RECEIVER, 0);
    if (!r) return;
    pid_t children[2];
    for (uint32_t k = 0; k < 2; k++) {
        children[k] = fork_child();
        if (children[k] == 0) {  /* lanes 1 and 2, attached by name */
            conveyor_channel *s = NULL;
            if (conveyor_channel_attach_named(name, CONVEYOR_CHANNEL_SENDER, 1 + k, &s) != CONVEYOR_OK)
                _exit(2);
            for (uint64_t i = 0; i < 1000; i++)
                if (conveyor_channel_send(s, lane_word(1 + k, i), GUARD_NS) != CONVEYOR_OK) _exit(3);
            if (conveyor_channel_close(s) != CONVEYOR_OK) _exit(4);
            conveyor_channel_destroy(s);
            _exit(0);
        }
    }
    conveyor_channel *s0 = open_end(holder, CONVEYOR_CHANNEL_SENDER, 0);
    if (s0) CHECK_STATUS(conveyor_channel_close(s0), CONVEYOR_OK);
    uint64_t next[3] = {0, 0, 0}, word;
    uint32_t lane;
    int s, bad = 0;
    while ((s = conveyor_channel_receive_any(r, GUARD_NS, &lane, &word)) == CONVEYOR_OK) {
        uint32_t wl;
        uint64_t seq;
        if (lane > 2 || !lane_word_valid(word, &wl, &seq) || wl != lane || seq != next[lane]) bad++;
        else next[lane]++;
    }
    CHECK_STATUS(s, CONVEYOR_E_END_OF_STREAM);
    CHECK(bad == 0 && next[0] == 0 && next[1] == 1000 && next[2] == 1000);
    for (int k = 0; k < 2; k++) CHECK_CHILD_OK(children[k], "send on a NAMED channel attached by name");
    conveyor_channel_destroy(s0);
    conveyor_channel_destroy(r);
    conveyor_channel_destroy(holder);
    printf("  NAMED: two children attached lanes by name; 2000 words in order, then END_OF_STREAM\n");
}

/* ---- peer death -------------------------------------------------------------------- */

enum { BY_EXIT = 0, BY_SIGKILL = 1 };
static const char *death_names[] = {"_exit()", "SIGKILL"};

/* A child sends three words on lane 1 and dies without closing. The receiver drains them,
 * then gets PEER_DEAD naming lane 1 (receive or receive_any) within the bound; lane 0's
 * sender lives on and keeps its lane working (receive_any reports the dead lane once). Then a new process takes the dead lane over
 * and continues after the three words. */
static void test_sender_death(int how, int any) {
    conveyor_channel *holder = make_channel(2, 8, 0, CONVEYOR_RING_ANONYMOUS);
    if (!holder) return;
    conveyor_channel *r = open_end(holder, CONVEYOR_CHANNEL_RECEIVER, 0);
    conveyor_channel *s0 = open_end(holder, CONVEYOR_CHANNEL_SENDER, 0);
    if (!r || !s0) return;
    signal_pipe ready;
    pipe_open(&ready);
    pid_t child = fork_child();
    if (child == 0) {
        conveyor_channel *s = open_end(holder, CONVEYOR_CHANNEL_SENDER, 1);
        bool ok = true;
        for (uint64_t i = 0; i < 3; i++) ok = ok && conveyor_channel_send(s, lane_word(1, i), 0) == CONVEYOR_OK;
        pipe_say(&ready, ok);
        if (how == BY_EXIT) _exit(0);  /* no close, no destroy */
        pause();
        _exit(0);
    }
    CHECK(pipe_ready(&ready));
    conveyor_channel *busy = NULL;
    if (how == BY_SIGKILL)  /* alive: its lane cannot be taken */
        CHECK_STATUS(conveyor_channel_open(holder, CONVEYOR_CHANNEL_SENDER, 1, &busy), CONVEYOR_E_BUSY);
    double died = now_ms();
    if (how == BY_SIGKILL) kill(child, SIGKILL);
    uint64_t word = 0;
    uint32_t lane = 99;
    for (uint64_t i = 0; i < 3; i++) {  /* the words sent before the death still come */
        if (any) {
            CHECK_STATUS(conveyor_channel_receive_any(r, GUARD_NS, &lane, &word), CONVEYOR_OK);
            CHECK(lane == 1);
        } else {
            CHECK_STATUS(conveyor_channel_receive(r, 1, GUARD_NS, &word), CONVEYOR_OK);
        }
        CHECK(word == lane_word(1, i));
    }
    lane = 99;
    int s = any ? conveyor_channel_receive_any(r, GUARD_NS, &lane, &word)
                : conveyor_channel_receive(r, 1, GUARD_NS, &word);
    double detected = now_ms() - died;
    CHECK_STATUS(s, CONVEYOR_E_PEER_DEAD);
    if (any) CHECK(lane == 1);
    CHECK(detected < LATENCY_GUARD_MS);
    reap(child);
    /* The live lane is unaffected: its word comes first. Then receive_any reports the dead
     * lane once per owner word (RECEIVE-ANY ORDER AND ENDS): PEER_DEAD if only receive(1)
     * reported it so far, else a full timeout. */
    CHECK_STATUS(conveyor_channel_send(s0, lane_word(0, 0), 0), CONVEYOR_OK);
    CHECK_STATUS(conveyor_channel_receive_any(r, GUARD_NS, &lane, &word), CONVEYOR_OK);
    CHECK(lane == 0 && word == lane_word(0, 0));
    lane = 99;
    if (any) {
        CHECK_STATUS(conveyor_channel_receive_any(r, 50000000, &lane, &word), CONVEYOR_E_TIMEOUT);
        CHECK(lane == 99);
    } else {
        CHECK_STATUS(conveyor_channel_receive_any(r, GUARD_NS, &lane, &word), CONVEYOR_E_PEER_DEAD);
        CHECK(lane == 1);
    }

    /* Takeover by another process: it resumes at the shared head (word 3). */
    child = fork_child();
    if (child == 0) {
        conveyor_channel *s = open_end(holder, CONVEYOR_CHANNEL_SENDER, 1);
        for (uint64_t i = 3; i < 6; i++)
            if (conveyor_channel_send(s, lane_word(1, i), 0) != CONVEYOR_OK) _exit(2);
        _exit(conveyor_channel_close(s) == CONVEYOR_OK ? 0 : 3);
    }
    CHECK_CHILD_OK(child, "take over a dead sender's lane");
    for (uint64_t i = 3; i < 6; i++) {
        CHECK_STATUS(conveyor_channel_receive(r, 1, 0, &word), CONVEYOR_OK);
        CHECK(word == lane_word(1, i));
    }
    CHECK_STATUS(conveyor_channel_receive(r, 1, 0, &word), CONVEYOR_E_END_OF_STREAM);
    printf("  sender %s: 3 words drained, then PEER_DEAD by %s after %.1f ms; a new process took"
           " the lane over\n",
           death_names[how], any ? "receive_any" : "receive", detected);
    pipe_close(&ready);
    conveyor_channel_destroy(s0);
    conveyor_channel_destroy(r);
    conveyor_channel_destroy(holder);
}

/* A child takes the receiver, receives one word and dies. The sender fills the lane, then
 * gets PEER_DEAD within the bound instead of waiting for room forever. */
static void test_receiver_death(int how) {
    conveyor_channel *holder = make_channel(1, 4, 0, CONVEYOR_RING_ANONYMOUS);
    if (!holder) return;
    conveyor_channel *s = open_end(holder, CONVEYOR_CHANNEL_SENDER, 0);
    if (!s) return;
    CHECK_STATUS(conveyor_channel_send(s, lane_word(0, 0), 0), CONVEYOR_OK);
    signal_pipe ready;
    pipe_open(&ready);
    pid_t child = fork_child();
    if (child == 0) {
        conveyor_channel *r = open_end(holder, CONVEYOR_CHANNEL_RECEIVER, 0);
        uint64_t word = 0;
        bool ok = conveyor_channel_receive(r, 0, GUARD_NS, &word) == CONVEYOR_OK && word == lane_word(0, 0);
        pipe_say(&ready, ok);
        if (how == BY_EXIT) _exit(0);
        pause();
        _exit(0);
    }
    CHECK(pipe_ready(&ready));
    for (uint64_t i = 1; i <= 4; i++) CHECK_STATUS(conveyor_channel_send(s, lane_word(0, i), 0), CONVEYOR_OK);
    double died = now_ms();
    if (how == BY_SIGKILL) kill(child, SIGKILL);
    int status = conveyor_channel_send(s, lane_word(0, 5), GUARD_NS);
    double detected = now_ms() - died;
    CHECK_STATUS(status, CONVEYOR_E_PEER_DEAD);
    CHECK(detected < LATENCY_GUARD_MS);
    reap(child);
    printf("  receiver %s: the sender on its full lane got PEER_DEAD after %.1f ms\n",
           death_names[how], detected);
    pipe_close(&ready);
    conveyor_channel_destroy(s);
    conveyor_channel_destroy(holder);
}

/* ---- takeover ---------------------------------------------------------------------- */

/* A sender process dies with words unreceived on its lane; a new sender process takes
 * the lane while those words are still there. It must resume at the shared head: no word
 * overwritten, the lane full at exactly capacity, everything received once, in order. */
static void test_sender_takeover_keeps_unreceived_words(void) {
    conveyor_channel *holder = make_channel(1, 8, 0, CONVEYOR_RING_MEMFD);
    if (!holder) return;
    conveyor_channel *r = open_end(holder, CONVEYOR_CHANNEL_RECEIVER, 0);
    if (!r) return;
    int fd = conveyor_channel_fd(holder);
    signal_pipe ready;
    pipe_open(&ready);
    pid_t first = fork_child();
    if (first == 0) {
        conveyor_channel *s = NULL;
        if (conveyor_channel_attach_fd(fd, CONVEYOR_CHANNEL_SENDER, 0, &s) != CONVEYOR_OK) _exit(2);
        bool ok = true;
        for (uint64_t i = 0; i < 5; i++) ok = ok && conveyor_channel_send(s, lane_word(0, i), 0) == CONVEYOR_OK;
        pipe_say(&ready, ok);
        pause();
        _exit(0);
    }
    CHECK(pipe_ready(&ready));
    uint64_t word = 0;
    for (uint64_t i = 0; i < 2; i++) {
        CHECK_STATUS(conveyor_channel_receive(r, 0, 0, &word), CONVEYOR_OK);
        CHECK(word == lane_word(0, i));
    }
    conveyor_channel *busy = NULL;
    CHECK_STATUS(conveyor_channel_attach_fd(fd, CONVEYOR_CHANNEL_SENDER, 0, &busy), CONVEYOR_E_BUSY);
    kill_and_reap(first);
    pid_t second = fork_child();
    if (second == 0) {
        conveyor_channel *s = NULL;
        if (conveyor_channel_attach_fd(fd, CONVEYOR_CHANNEL_SENDER, 0, &s) != CONVEYOR_OK) _exit(2);
        for (uint64_t i = 5; i < 10; i++)  /* 3 unreceived + 5 = 8 = capacity */
            if (conveyor_channel_send(s, lane_word(0, i), 0) != CONVEYOR_OK) _exit(3);
        if (conveyor_channel_send(s, lane_word(0, 10), 0) != CONVEYOR_E_TIMEOUT) _exit(4);  /* full */
        if (conveyor_channel_close(s) != CONVEYOR_OK) _exit(5);
        conveyor_channel_destroy(s);
        _exit(0);
    }
    CHECK_CHILD_OK(second, "take over a dead sender's lane holding 3 unreceived words");
    for (uint64_t i = 2; i < 10; i++) {
        CHECK_STATUS(conveyor_channel_receive(r, 0, 0, &word), CONVEYOR_OK);
        CHECK(word == lane_word(0, i));
    }
    CHECK_STATUS(conveyor_channel_receive(r, 0, 0, &word), CONVEYOR_E_END_OF_STREAM);
    pipe_close(&ready);
    conveyor_channel_destroy(r);
    conveyor_channel_destroy(holder);
    printf("  sender takeover: the new sender kept 3 unreceived words, filled to capacity, words"
           " 2-9 arrived once each\n");
}

/* A receiver process dies after receiving three of six words; a new receiver process
 * takes over and receives exactly the other three and what follows. */
static void test_receiver_takeover_continues_at_the_tail(void) {
    conveyor_channel *holder = make_channel(2, 8, 0, CONVEYOR_RING_ANONYMOUS);
    if (!holder) return;
    conveyor_channel *s = open_end(holder, CONVEYOR_CHANNEL_SENDER, 1);
    conveyor_channel *s0 = open_end(holder, CONVEYOR_CHANNEL_SENDER, 0);
    if (!s || !s0) return;
    CHECK_STATUS(conveyor_channel_close(s0), CONVEYOR_OK);  /* lane 0 ends at once */
    for (uint64_t i = 0; i < 6; i++) CHECK_STATUS(conveyor_channel_send(s, lane_word(1, i), 0), CONVEYOR_OK);
    signal_pipe ready, seen;
    pipe_open(&ready);
    pipe_open(&seen);
    pid_t first = fork_child();
    if (first == 0) {
        conveyor_channel *r = open_end(holder, CONVEYOR_CHANNEL_RECEIVER, 0);
        bool ok = true;
        for (uint64_t i = 0; i < 3; i++) {
            uint64_t word = 0;
            uint32_t lane = 0;
            ok = ok && conveyor_channel_receive_any(r, 0, &lane, &word) == CONVEYOR_OK &&
                 lane == 1 && word == lane_word(1, i);
        }
        pipe_say(&ready, ok);
        pause();
        _exit(0);
    }
    CHECK(pipe_ready(&ready));
    conveyor_channel *busy = NULL;
    CHECK_STATUS(conveyor_channel_open(holder, CONVEYOR_CHANNEL_RECEIVER, 0, &busy), CONVEYOR_E_BUSY);
    kill_and_reap(first);
    CHECK_STATUS(conveyor_channel_send(s, lane_word(1, 6), 0), CONVEYOR_OK);
    CHECK_STATUS(conveyor_channel_send(s, lane_word(1, 7), 0), CONVEYOR_OK);
    CHECK_STATUS(conveyor_channel_close(s), CONVEYOR_OK);
    pid_t second = fork_child();
    if (second == 0) {
        conveyor_channel *r = open_end(holder, CONVEYOR_CHANNEL_RECEIVER, 0);
        uint64_t got[10], word;
        uint32_t lane, n = 0;
        int st;
        while (n < 10 && (st = conveyor_channel_receive_any(r, GUARD_NS, &lane, &word)) == CONVEYOR_OK)
            got[n++] = word;
        if (!pipe_put(&seen, &n, sizeof n) || !pipe_put(&seen, got, n * sizeof got[0])) _exit(2);
        _exit(st == CONVEYOR_E_END_OF_STREAM ? 0 : 3);
    }
    uint32_t n = 0;
    uint64_t got[10] = {0};
    CHECK(pipe_get(&seen, &n, sizeof n) && n <= 10 && pipe_get(&seen, got, n * sizeof got[0]));
    CHECK_CHILD_OK(second, "take over a dead receiver");
    CHECK(n == 5);
    for (uint32_t i = 0; i < n && i < 5; i++) CHECK(got[i] == lane_word(1, 3 + i));
    pipe_close(&ready);
    pipe_close(&seen);
    conveyor_channel_destroy(s);
    conveyor_channel_destroy(s0);
    conveyor_channel_destroy(holder);
    printf("  receiver takeover: the dead receiver's 3 words stay received; the new one got words"
           " 3-7 once each\n");
}

/* Takeover through inherited handles (the handle was opened in the parent and never used
 * there): a first child uses it and dies; a second child's copy must resume at the shared
 * position, not at the handle's stale one. For the receiver and for a sender. */
static void test_takeover_through_inherited_handles(void) {
    conveyor_channel *holder = make_channel(1, 8, 0, CONVEYOR_RING_ANONYMOUS);
    if (!holder) return;
    conveyor_channel *s = open_end(holder, CONVEYOR_CHANNEL_SENDER, 0);
    conveyor_channel *r = open_end(holder, CONVEYOR_CHANNEL_RECEIVER, 0);
    if (!s || !r) return;
    signal_pipe ready, seen;
    pipe_open(&ready);
    pipe_open(&seen);
    /* Sender: child A sends 0-2 through the inherited s and dies; child B's copy sends 3-5. */
    pid_t a = fork_child();
    if (a == 0) {
        bool ok = true;
        for (uint64_t i = 0; i < 3; i++) ok = ok && conveyor_channel_send(s, lane_word(0, i), 0) == CONVEYOR_OK;
        pipe_say(&ready, ok);
        pause();
        _exit(0);
    }
    CHECK(pipe_ready(&ready));
    kill_and_reap(a);
    pid_t b = fork_child();
    if (b == 0) {
        for (uint64_t i = 3; i < 6; i++)
            if (conveyor_channel_send(s, lane_word(0, i), 0) != CONVEYOR_OK) _exit(2);
        _exit(0);
    }
    CHECK_CHILD_OK(b, "send through an inherited sender after a dead child used it");
    /* Receiver: child C receives 0-2 through the inherited r and dies; child D's copy must
     * receive 3-5. */
    pid_t c = fork_child();
    if (c == 0) {
        bool ok = true;
        for (uint64_t i = 0; i < 3; i++) {
            uint64_t word = 0;
            ok = ok && conveyor_channel_receive(r, 0, 0, &word) == CONVEYOR_OK && word == lane_word(0, i);
        }
        pipe_say(&ready, ok);
        pause();
        _exit(0);
    }
    CHECK(pipe_ready(&ready));
    kill_and_reap(c);
    pid_t d = fork_child();
    if (d == 0) {
        uint64_t got[3] = {99, 99, 99};
        for (int i = 0; i < 3; i++)
            if (conveyor_channel_receive(r, 0, 0, &got[i]) != CONVEYOR_OK) break;
        uint64_t extra;
        int after = conveyor_channel_receive(r, 0, GUARD_NS, &extra);  /* B is gone: PEER_DEAD */
        if (!pipe_put(&seen, got, sizeof got) || !pipe_put(&seen, &after, sizeof after)) _exit(2);
        _exit(0);
    }
    uint64_t got[3] = {0};
    int after = -1;
    CHECK(pipe_get(&seen, got, sizeof got) && pipe_get(&seen, &after, sizeof after));
    CHECK_CHILD_OK(d, "receive through an inherited receiver after a dead child used it");
    CHECK(got[0] == lane_word(0, 3) && got[1] == lane_word(0, 4) && got[2] == lane_word(0, 5));
    /* B exited without closing: its lane is gone, and D has drained it. */
    CHECK_STATUS(after, CONVEYOR_E_PEER_DEAD);
    pipe_close(&ready);
    pipe_close(&seen);
    conveyor_channel_destroy(s);  /* inherited copies after fork: hand nothing back */
    conveyor_channel_destroy(r);
    conveyor_channel_destroy(holder);
    printf("  takeover through inherited handles: the second child's sender and receiver resumed"
           " at the shared position\n");
}

/* A parent that destroys its copies of handles its child uses must not free the child's
 * ends: the child's sender and receiver keep working, and no third handle can take them. */
static void test_parent_destroy_after_fork_frees_nothing(void) {
    conveyor_channel *holder = make_channel(1, 8, 0, CONVEYOR_RING_MEMFD);
    if (!holder) return;
    conveyor_channel *r = open_end(holder, CONVEYOR_CHANNEL_RECEIVER, 0);
    if (!r) return;
    int fd = conveyor_channel_fd(holder);
    signal_pipe ready, go;
    pipe_open(&ready);
    pipe_open(&go);
    pid_t child = fork_child();
    if (child == 0) {
        if (conveyor_channel_claim(r) != CONVEYOR_OK) _exit(2);
        pipe_say(&ready, true);
        char byte;
        if (!pipe_get(&go, &byte, 1)) _exit(3);
        uint64_t word = 0;
        if (conveyor_channel_receive(r, 0, GUARD_NS, &word) != CONVEYOR_OK || word != 77) _exit(4);
        _exit(0);
    }
    CHECK(pipe_ready(&ready));
    conveyor_channel_destroy(r);  /* the parent's copy, after the fork: the child keeps the end */
    conveyor_channel *thief = NULL;
    CHECK_STATUS(conveyor_channel_attach_fd(fd, CONVEYOR_CHANNEL_RECEIVER, 0, &thief), CONVEYOR_E_BUSY);
    conveyor_channel_destroy(thief);
    conveyor_channel *s = open_end(holder, CONVEYOR_CHANNEL_SENDER, 0);
    if (s) CHECK_STATUS(conveyor_channel_send(s, 77, 0), CONVEYOR_OK);
    pipe_say(&go, true);
    CHECK_CHILD_OK(child, "receive with a handle the parent destroyed its copy of");
    pipe_close(&ready);
    pipe_close(&go);
    conveyor_channel_destroy(s);
    conveyor_channel_destroy(holder);
    printf("  a parent's destroy of its copy after fork leaves the child's receiver claimed\n");
}

int main(void) {
    test_start("channel_processes", 180);
    static shm_snapshot shm_before;
    shm_snapshot_take(&shm_before);
    test_million_words_each_way();
    test_named_across_processes();
    for (int how = BY_EXIT; how <= BY_SIGKILL; how++) {
        test_sender_death(how, 0);
        test_sender_death(how, 1);
        test_receiver_death(how);
    }
    test_sender_takeover_keeps_unreceived_words();
    test_receiver_takeover_continues_at_the_tail();
    test_takeover_through_inherited_handles();
    test_parent_destroy_after_fork_frees_nothing();
    return finish_channel_test("channel_processes", &shm_before);
}
