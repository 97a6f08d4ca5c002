/*
 * channel_wait_any.c — conveyor_channel_receive_any, through conveyor.h only:
 *   - strict round-robin over ready lanes (every lane full: each window of N receives
 *     serves each lane once; only some lanes ready: they alternate);
 *   - a receiver asleep in receive_any is woken by a send on any one of 16 lanes, by the
 *     doorbell (the sender counts a futex wake), not by its sleep slice;
 *   - N = 1, 4, 16 lanes with one sender thread or process per lane: every word received
 *     exactly once, per-lane order kept, no lane starved while the others are busy (a
 *     bound that round-robin guarantees whatever the scheduler does: see run_wait_any);
 *   - a no-lost-wake-up stress: round after round the receiver sleeps (spin 0) in
 *     receive_any while one random lane's sender sends exactly one word after a random
 *     short delay. Handshakes are semaphores, so the test waits for events, never for a
 *     delay to be long enough. A lost wake-up shows as a round that does not complete
 *     (5 s deadline), or as a round in which the receiver slept, the sender rang no
 *     doorbell and the word waited for a sleep slice to end (the 10 ms peer-check slice
 *     would otherwise hide a lost wake-up as mere latency).
 * Built and run by scripts/test-c, also under ASan+UBSan.
 */
#include "channel_check.h"

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <sys/mman.h>

static int64_t mono_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* ---- round-robin ------------------------------------------------------------------- */

static void test_round_robin(uint32_t lanes) {
    const uint32_t capacity = 8;
    conveyor_channel *holder = make_channel(lanes, capacity, 0, CONVEYOR_RING_ANONYMOUS);
    if (!holder) return;
    conveyor_channel *r = open_end(holder, CONVEYOR_CHANNEL_RECEIVER, 0);
    conveyor_channel *s[16];
    for (uint32_t l = 0; l < lanes; l++) {
        s[l] = open_end(holder, CONVEYOR_CHANNEL_SENDER, l);
        if (!s[l]) return;
        for (uint64_t i = 0; i < capacity; i++)
            CHECK_STATUS(conveyor_channel_send(s[l], lane_word(l, i), 0), CONVEYOR_OK);
    }
    if (!r) return;
    /* Every lane stays ready until its last word: lane k of the stream is first + k. */
    uint32_t first = 0, lane = 0;
    uint64_t next[16] = {0}, word;
    int out_of_turn = 0, disorder = 0;
    for (uint32_t k = 0; k < lanes * capacity; k++) {
        CHECK_STATUS(conveyor_channel_receive_any(r, 0, &lane, &word), CONVEYOR_OK);
        if (k == 0) first = lane;
        if (lane != (first + k) % lanes && out_of_turn++ < 3)
            fprintf(stderr, "receive %u came from lane %u, expected %u\n", k, lane, (first + k) % lanes);
        if (lane < lanes && word != lane_word(lane, next[lane]++)) disorder++;
    }
    CHECK(out_of_turn == 0 && disorder == 0);
    /* Only two lanes ready (1 and the last): they alternate, never one twice in a row. */
    uint32_t a = 1 % lanes, b = lanes - 1;
    for (uint64_t i = 0; i < 4; i++) {
        CHECK_STATUS(conveyor_channel_send(s[a], lane_word(a, capacity + i), 0), CONVEYOR_OK);
        if (b != a) CHECK_STATUS(conveyor_channel_send(s[b], lane_word(b, capacity + i), 0), CONVEYOR_OK);
    }
    uint32_t previous = UINT32_MAX;
    int repeats = 0;
    for (int k = 0; k < (b != a ? 8 : 4); k++) {
        CHECK_STATUS(conveyor_channel_receive_any(r, 0, &lane, &word), CONVEYOR_OK);
        CHECK(lane == a || lane == b);
        if (b != a && lane == previous) repeats++;
        previous = lane;
    }
    CHECK(repeats == 0);
    CHECK_STATUS(conveyor_channel_receive_any(r, 0, &lane, &word), CONVEYOR_E_TIMEOUT);
    for (uint32_t l = 0; l < lanes; l++) conveyor_channel_destroy(s[l]);
    conveyor_channel_destroy(r);
    conveyor_channel_destroy(holder);
    printf("  round-robin over %u lanes: every window of %u receives served each lane once;"
           " two ready lanes alternate\n", lanes, lanes);
}

/* ---- woken by the first of N ------------------------------------------------------- */

typedef struct {
    conveyor_channel *receiver;
    uint32_t lane;
    uint64_t word;
    int status;
} any_call;

static void *receive_any_on_thread(void *arg) {
    any_call *call = arg;
    call->status = conveyor_channel_receive_any(call->receiver, GUARD_NS, &call->lane, &call->word);
    return NULL;
}

static void test_woken_by_any_of_sixteen(void) {
    const uint32_t lanes = 16;
    conveyor_channel *holder = make_channel(lanes, 4, 0, CONVEYOR_RING_ANONYMOUS);
    if (!holder) return;
    conveyor_channel *r = open_end(holder, CONVEYOR_CHANNEL_RECEIVER, 0);
    conveyor_channel *s[16];
    for (uint32_t l = 0; l < lanes; l++)
        if (!(s[l] = open_end(holder, CONVEYOR_CHANNEL_SENDER, l))) return;
    if (!r) return;
    int unwoken = 0;
    for (uint32_t i = 0; i < lanes; i++) {
        uint32_t l = (i * 7 + 3) % lanes;  /* every lane once, in a scrambled order */
        uint64_t waits = STAT(r, receiver_waits), wakes = STAT(r, sender_wakes);
        any_call call = {.receiver = r};
        pthread_t thread;
        pthread_create(&thread, NULL, receive_any_on_thread, &call);
        CHECK(WAIT_FOR_STAT(r, receiver_waits, waits + 1));  /* asleep for certain */
        CHECK_STATUS(conveyor_channel_send(s[l], lane_word(l, 0), 0), CONVEYOR_OK);
        pthread_join(thread, NULL);
        CHECK_STATUS(call.status, CONVEYOR_OK);
        CHECK(call.lane == l && call.word == lane_word(l, 0));
        if (STAT(r, sender_wakes) < wakes + 1) unwoken++;
    }
    if (unwoken) fprintf(stderr, "%d of 16 sends did not ring the sleeping receiver\n", unwoken);
    CHECK(unwoken == 0);
    for (uint32_t l = 0; l < lanes; l++) conveyor_channel_destroy(s[l]);
    conveyor_channel_destroy(r);
    conveyor_channel_destroy(holder);
    printf("  a receiver asleep in receive_any is rung awake by a send on each of 16 lanes\n");
}

/* ---- N senders, one receiver ------------------------------------------------------- */

typedef struct {
    conveyor_channel *sender;
    uint32_t lane;
    uint64_t words;
    int status;
} lane_sender;

static int send_lane(conveyor_channel *s, uint32_t lane, uint64_t words) {
    for (uint64_t i = 0; i < words; i++) {
        int st = conveyor_channel_send(s, lane_word(lane, i), GUARD_NS);
        if (st != CONVEYOR_OK) return st;
    }
    return conveyor_channel_close(s);
}

static void *send_lane_on_thread(void *arg) {
    lane_sender *ls = arg;
    ls->status = send_lane(ls->sender, ls->lane, ls->words);
    return NULL;
}

/* One sender per lane (threads, or processes that open their lane from the inherited
 * holder or attach it by fd), `words` each; the receiver takes everything with
 * receive_any until END_OF_STREAM and checks exactly-once and per-lane order.
 * Fairness, provably and whatever the scheduler does: the receiver starts only once every
 * lane is full (the event: words_sent reaches lanes * capacity). From then on a lane holds
 * a word until it has been served `capacity` times (its sender only adds), and round-robin
 * serves every non-empty lane between two services of any other. So the first
 * lanes * capacity receives are strictly round-robin, and when the first lane has delivered
 * all its words, every lane has delivered at least min(capacity, words - 1): no lane is
 * starved while the others are busy, even if its sender is descheduled. */
static void run_wait_any(uint32_t lanes, uint64_t words, bool processes) {
    const uint32_t capacity = 32;
    conveyor_channel_config c = channel_config(lanes, capacity, 64, processes ? CONVEYOR_RING_MEMFD
                                                                              : CONVEYOR_RING_ANONYMOUS);
    conveyor_channel *holder = NULL;
    CHECK_STATUS(conveyor_channel_create(&c, &holder), CONVEYOR_OK);
    if (!holder) return;
    conveyor_channel *r = open_end(holder, CONVEYOR_CHANNEL_RECEIVER, 0);
    if (!r) return;
    CHECK_STATUS(conveyor_channel_set_spin(r, CONVEYOR_RING_DEFAULT_SPIN), CONVEYOR_OK);
    lane_sender senders[16];
    pthread_t threads[16];
    pid_t children[16];
    int fd = conveyor_channel_fd(holder);
    double start = now_ms();
    for (uint32_t l = 0; l < lanes; l++) {
        senders[l] = (lane_sender){.lane = l, .words = words};
        if (processes) {
            children[l] = fork_child();
            if (children[l] == 0) {
                conveyor_channel *s = NULL;
                if (l % 2 == 0) s = open_end(holder, CONVEYOR_CHANNEL_SENDER, l);
                else if (conveyor_channel_attach_fd(fd, CONVEYOR_CHANNEL_SENDER, l, &s) != CONVEYOR_OK) _exit(2);
                int st = send_lane(s, l, words);
                conveyor_channel_destroy(s);
                _exit(st == CONVEYOR_OK ? 0 : 10 + st);
            }
        } else {
            senders[l].sender = open_end(holder, CONVEYOR_CHANNEL_SENDER, l);
            if (!senders[l].sender) return;
            pthread_create(&threads[l], NULL, send_lane_on_thread, &senders[l]);
        }
    }
    CHECK(WAIT_FOR_STAT(r, words_sent, (uint64_t)lanes * capacity));  /* every lane full */
    uint64_t next[16] = {0}, at_first_done[16] = {0}, total = 0, word;
    bool someone_done = false;
    int bad = 0, out_of_turn = 0, status;
    uint32_t lane, first = 0;
    while ((status = conveyor_channel_receive_any(r, GUARD_NS, &lane, &word)) == CONVEYOR_OK) {
        uint32_t wl;
        uint64_t seq;
        if (lane >= lanes || !lane_word_valid(word, &wl, &seq) || wl != lane || seq != next[lane]) {
            if (bad++ < 5)
                fprintf(stderr, "lane %u: word %#llx, expected sequence %llu\n", lane,
                        (unsigned long long)word, lane < lanes ? (unsigned long long)next[lane] : 0ull);
            continue;
        }
        if (total == 0) first = lane;
        if (total < (uint64_t)lanes * capacity && lane != (first + total) % lanes && out_of_turn++ < 3)
            fprintf(stderr, "receive %llu came from lane %u, expected %llu (all lanes held words)\n",
                    (unsigned long long)total, lane, (unsigned long long)((first + total) % lanes));
        next[lane]++;
        total++;
        if (!someone_done && next[lane] == words) {
            someone_done = true;
            memcpy(at_first_done, next, sizeof next);
        }
    }
    CHECK_STATUS(status, CONVEYOR_E_END_OF_STREAM);
    double elapsed = now_ms() - start;
    for (uint32_t l = 0; l < lanes; l++) {
        if (processes) {
            CHECK_CHILD_OK(children[l], "send one lane of a wait-any channel");
        } else {
            pthread_join(threads[l], NULL);
            CHECK_STATUS(senders[l].status, CONVEYOR_OK);
            conveyor_channel_destroy(senders[l].sender);
        }
    }
    CHECK(bad == 0 && out_of_turn == 0);
    CHECK(total == lanes * words);
    for (uint32_t l = 0; l < lanes; l++) CHECK(next[l] == words);
    uint64_t least = UINT64_MAX, promised = words - 1 < capacity ? words - 1 : capacity;
    for (uint32_t l = 0; l < lanes; l++) least = at_first_done[l] < least ? at_first_done[l] : least;
    if (least < promised) {
        fprintf(stderr, "starved: when the first lane was done, the lanes had delivered");
        for (uint32_t l = 0; l < lanes; l++) fprintf(stderr, " %llu", (unsigned long long)at_first_done[l]);
        fprintf(stderr, " of %llu words (at least %llu each promised)\n", (unsigned long long)words,
                (unsigned long long)promised);
        CHECK(!"no lane starved while the others were busy");
    }
    conveyor_channel_stats st;
    CHECK_STATUS(conveyor_channel_read_stats(r, &st, sizeof st), CONVEYOR_OK);
    CHECK(st.words_sent == lanes * words && st.words_received == lanes * words);
    printf("  receive_any, %2u sender %s: %llu words once each, in lane order, strict round-robin"
           " while all lanes held words, in %.0f ms; when the first lane finished the slowest had"
           " %llu of %llu\n",
           lanes, processes ? "processes" : "threads  ", (unsigned long long)total, elapsed,
           (unsigned long long)least, (unsigned long long)words);
    conveyor_channel_destroy(r);
    conveyor_channel_destroy(holder);
}

/* ---- the no-lost-wake-up stress ----------------------------------------------------- */

/* Shared with sender threads or processes (a MAP_SHARED page, process-shared semaphores). */
typedef struct {
    sem_t go[16];         /* posted by the receiver: "lane l, send this round's word" */
    sem_t sent;           /* posted by a sender after its send returned */
    _Atomic uint64_t round;
    _Atomic int64_t delay_ns;
    _Atomic int64_t send_at_ns;   /* when the sender called send */
    _Atomic int64_t sent_at_ns;   /* when its send returned */
    _Atomic int send_status;
    _Atomic int stop;
} stress_control;

static void spin_for(int64_t ns) {
    int64_t until = mono_ns() + ns;
    while (mono_ns() < until) {}
}

/* The loop of lane `lane`'s sender: wait for its turn, wait the round's delay, send one. */
static void stress_sender(stress_control *ctl, conveyor_channel *s, uint32_t lane) {
    for (;;) {
        while (sem_wait(&ctl->go[lane]) != 0 && errno == EINTR) {}
        if (atomic_load(&ctl->stop)) return;
        uint64_t round = atomic_load(&ctl->round);
        int64_t delay = atomic_load(&ctl->delay_ns);
        if (delay > 0) spin_for(delay);
        atomic_store(&ctl->send_at_ns, mono_ns());
        int st = conveyor_channel_send(s, lane_word(lane, round), GUARD_NS);
        atomic_store(&ctl->sent_at_ns, mono_ns());
        atomic_store(&ctl->send_status, st);
        sem_post(&ctl->sent);
    }
}

typedef struct {
    stress_control *ctl;
    conveyor_channel *sender;
    uint32_t lane;
} stress_thread;

static void *stress_sender_thread(void *arg) {
    stress_thread *t = arg;
    stress_sender(t->ctl, t->sender, t->lane);
    return NULL;
}

static bool sem_wait_for(sem_t *sem, int64_t timeout_ns) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    int64_t ns = deadline.tv_nsec + timeout_ns % 1000000000;
    deadline.tv_sec += timeout_ns / 1000000000 + ns / 1000000000;
    deadline.tv_nsec = ns % 1000000000;
    int s;
    while ((s = sem_timedwait(sem, &deadline)) != 0 && errno == EINTR) {}
    return s == 0;
}

static int compare_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

#define ROUND_DEADLINE_NS 5000000000LL
#define SLICE_RESCUE_NS 3000000  /* a word that waited this long after its send returned */

static void stress_no_lost_wake_up(uint32_t lanes, uint32_t rounds, bool processes, uint64_t seed) {
    conveyor_channel *holder = make_channel(lanes, 4, 0, CONVEYOR_RING_ANONYMOUS);
    if (!holder) return;
    conveyor_channel *r = open_end(holder, CONVEYOR_CHANNEL_RECEIVER, 0);
    if (!r) return;
    CHECK_STATUS(conveyor_channel_set_spin(r, 0), CONVEYOR_OK);  /* sleep at once */
    stress_control *ctl = mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(ctl != MAP_FAILED);
    if (ctl == MAP_FAILED) return;
    memset(ctl, 0, sizeof *ctl);
    for (uint32_t l = 0; l < lanes; l++) sem_init(&ctl->go[l], 1, 0);
    sem_init(&ctl->sent, 1, 0);
    pthread_t threads[16];
    stress_thread args[16];
    pid_t children[16];
    for (uint32_t l = 0; l < lanes; l++) {
        if (processes) {
            children[l] = fork_child();
            if (children[l] == 0) {
                conveyor_channel *s = open_end(holder, CONVEYOR_CHANNEL_SENDER, l);
                stress_sender(ctl, s, l);
                conveyor_channel_close(s);
                conveyor_channel_destroy(s);
                _exit(0);
            }
        } else {
            args[l] = (stress_thread){.ctl = ctl, .lane = l,
                                      .sender = open_end(holder, CONVEYOR_CHANNEL_SENDER, l)};
            pthread_create(&threads[l], NULL, stress_sender_thread, &args[l]);
        }
    }
    int64_t *latency = calloc(rounds, sizeof *latency);
    uint64_t slept_rounds = 0, slept_and_slow = 0, rescued_by_slice = 0, state = seed;
    uint32_t completed = 0;
    double start = now_ms();
    for (uint32_t round = 0; round < rounds; round++) {
        uint32_t lane = (uint32_t)(next_random(&state) % lanes);
        uint64_t kind = next_random(&state) % 10;
        int64_t delay = kind < 3 ? 0 : kind < 7 ? (int64_t)(next_random(&state) % 50000)
                                                : 50000 + (int64_t)(next_random(&state) % 450000);
        uint64_t waits = STAT(r, receiver_waits), wakes = STAT(r, sender_wakes);
        atomic_store(&ctl->round, round);
        atomic_store(&ctl->delay_ns, delay);
        sem_post(&ctl->go[lane]);
        uint32_t got_lane = 99;
        uint64_t word = 0;
        int status = conveyor_channel_receive_any(r, ROUND_DEADLINE_NS, &got_lane, &word);
        int64_t received_at = mono_ns();
        bool sent = sem_wait_for(&ctl->sent, ROUND_DEADLINE_NS);
        if (status != CONVEYOR_OK || !sent) {
            fprintf(stderr, "round %u (lane %u, delay %lld ns): receive_any %s, sender %s — %s\n",
                    round, lane, (long long)delay, conveyor_status_name(status),
                    sent ? conveyor_status_name(atomic_load(&ctl->send_status)) : "never returned",
                    status == CONVEYOR_E_TIMEOUT ? "a LOST WAKE-UP (5 s deadline)" : "failed");
            CHECK(!"every round completes");
            break;
        }
        CHECK_STATUS(atomic_load(&ctl->send_status), CONVEYOR_OK);
        if (got_lane != lane || word != lane_word(lane, round)) {
            fprintf(stderr, "round %u: lane %u word %#llx, expected lane %u word %#llx\n", round,
                    got_lane, (unsigned long long)word, lane,
                    (unsigned long long)lane_word(lane, round));
            CHECK(!"the round's word, on the round's lane");
            break;
        }
        latency[completed++] = received_at - atomic_load(&ctl->send_at_ns);
        bool slept = STAT(r, receiver_waits) > waits;
        bool rang = STAT(r, sender_wakes) > wakes;
        bool slow = received_at - atomic_load(&ctl->sent_at_ns) > SLICE_RESCUE_NS;
        slept_rounds += slept;
        slept_and_slow += slept && slow;
        /* The receiver slept, the sender saw no sleeper and rang nothing, and the word lay
         * there until a slice ended: the wake-up was lost, the slice hid it. (A sender
         * preempted between its head store and its check for so long that the receiver
         * woke from a slice meanwhile would return late too, so it is not slow here.) */
        if (slept && !rang && slow) {
            if (rescued_by_slice++ < 5)
                fprintf(stderr, "round %u (lane %u, delay %lld ns): receiver slept, no doorbell rung,"
                        " word waited %.2f ms: a lost wake-up rescued by the sleep slice\n",
                        round, lane, (long long)delay,
                        (double)(received_at - atomic_load(&ctl->sent_at_ns)) / 1e6);
        }
    }
    double elapsed = now_ms() - start;
    atomic_store(&ctl->stop, 1);
    for (uint32_t l = 0; l < lanes; l++) sem_post(&ctl->go[l]);
    for (uint32_t l = 0; l < lanes; l++) {
        if (processes) {
            CHECK_CHILD_OK(children[l], "a stress sender");
        } else {
            pthread_join(threads[l], NULL);
            conveyor_channel_destroy(args[l].sender);
        }
    }
    CHECK(completed == rounds);
    CHECK(rescued_by_slice == 0);
    /* Woken by doorbells, not slices: a receiver on the wrong futex word would show as
     * most sleeping rounds taking a slice. A loaded machine delays a few. */
    if (slept_rounds >= 20 && slept_and_slow * 5 > slept_rounds) {
        fprintf(stderr, "%llu of %llu rounds in which the receiver slept took over %.0f ms\n",
                (unsigned long long)slept_and_slow, (unsigned long long)slept_rounds,
                SLICE_RESCUE_NS / 1e6);
        CHECK(!"sleeping receivers are woken by the doorbell, not the slice");
    }
    if (completed > 0) {
        qsort(latency, completed, sizeof *latency, compare_i64);
        printf("  no lost wake-up, %2u %s: %u rounds in %.0f ms, receiver slept in %llu;"
               " wake latency median %.0f us, p99 %.0f us, max %.2f ms\n",
               lanes, processes ? "sender processes" : "sender threads  ", completed, elapsed,
               (unsigned long long)slept_rounds, (double)latency[completed / 2] / 1e3,
               (double)latency[(uint64_t)completed * 99 / 100] / 1e3,
               (double)latency[completed - 1] / 1e6);
    }
    free(latency);
    for (uint32_t l = 0; l < lanes; l++) sem_destroy(&ctl->go[l]);
    sem_destroy(&ctl->sent);
    munmap(ctl, sizeof *ctl);
    conveyor_channel_destroy(r);
    conveyor_channel_destroy(holder);
}

int main(void) {
    test_start("channel_wait_any", 240);
    static shm_snapshot shm_before;
    shm_snapshot_take(&shm_before);
    test_round_robin(1);
    test_round_robin(4);
    test_round_robin(16);
    test_woken_by_any_of_sixteen();
    /* Processes first: forking a process with threads is best avoided. */
    run_wait_any(1, 100000, true);
    run_wait_any(4, 25000, true);
    run_wait_any(16, 8000, true);
    stress_no_lost_wake_up(4, 1000, true, 0x5EED0001);
    run_wait_any(1, 100000, false);
    run_wait_any(4, 25000, false);
    run_wait_any(16, 8000, false);
    stress_no_lost_wake_up(16, 3000, false, 0x5EED0002);
    return finish_channel_test("channel_wait_any", &shm_before);
}
