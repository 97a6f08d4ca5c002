/*
 * channel_kill_storm.c — hundreds of SIGKILLs on the ends of an index channel across
 * processes (and on processes holding a slot pool), each victim replaced by a new process
 * that takes its end over, while every other end keeps streaming.
 *
 * Why: a channel's receiver and each lane's sender live in different processes, and any of
 * them may be killed at any instant. Survivors must learn it (CONVEYOR_E_PEER_DEAD: a
 * sender blocked on a full lane when the receiver died; the receiver, naming the lane,
 * when no lane has a word and a sender died) instead of hanging, and a replacement must
 * take the end over with no word duplicated and none lost beyond the documented "a dead
 * receiver loses the words it had received" (here at most one per receiver death: the
 * receiver reports each word before it takes the next).
 *
 * What: CHANNEL_STORM_KILLS kills (default 360), spread over three backings (MEMFD: every
 * child attaches the fd it inherited; NAMED: every child attaches by name; ANONYMOUS:
 * every child opens its end from its inherited copy of the parent's holder handle). Each
 * backing runs one channel of LANES lanes of CAPACITY words and one pool with a slot per
 * sender process. The parent forks one receiver (receive_any) and one sender per lane; they
 * stream freely. At random moments (0-4 ms apart) the parent kills the receiver or a
 * sender, reaps it and forks its replacement at once, except for every other receiver
 * kill, where it first waits for a sender to report PEER_DEAD (the detection latency).
 *
 * Words: each sender process gets a generation number g (unique in the run) and sends
 * g << 32 | lane << 24 | seq for seq = 0, 1, 2...; after each send it records the word in
 * its pool slot's descriptor (tag = the word) and reports it sent. The receiver checks the
 * lane receive_any names against the word, and reports every word it takes, before taking
 * the next. At the end the parent stops the senders (each closes its lane), the receiver
 * drains to END_OF_STREAM.
 *
 * Checks (parent): per generation the words received are in send order with no repeat
 * (a replacement sender resumes at the shared head: nothing it sends overwrites a word in
 * flight; a replacement receiver resumes at the shared tails: nothing is received twice);
 * per lane generations arrive in order; every word reported sent was received, except at
 * most one per receiver death, and at most one word per sender death was received without
 * being reported sent; END_OF_STREAM comes once every lane is closed and drained; every
 * PEER_DEAD names a lane (receiver) whose sender, or a receiver (sender), was killed before
 * it; the receiver-death detection p95 <= 100 ms and none over 2 s; each pool descriptor
 * holds a word its sender reported sent (or the one after). At the end nothing of the run
 * is left in /dev/shm (its two names are checked; other new entries, e.g. of a test
 * running meanwhile, are only reported), the parent has as many fds as at the start, and no child is left
 * (every one reaped; waitpid says there are none). Every call has a finite timeout and
 * alarm(120) fails the run loudly rather than hang it.
 *
 * CHANNEL_STORM_SEED fixes the plan of kills (timing still varies). Built and run by
 * scripts/test-c, plain and under ASan+UBSan.
 */
#include "../CRing/check.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_KILLS 360
#define DEFAULT_SEED 0x63686b696c6c7321ull  /* "chkills!" */
#define LANES 3
#define CAPACITY 4
#define MAX_GEN 4096                 /* sender generations in one run (asserted) */
#define CALL_TIMEOUT_NS 200000000LL  /* each blocking call: re-checks the stop flag */
#define P95_LIMIT_MS 100.0
#define HANG_LIMIT_MS 2000.0
#define WATCHDOG_SECONDS 120

enum { R_SENT, R_RECEIVED, R_PEER_DEAD, R_EOS, R_READY, R_ERROR };

typedef struct {
    int32_t kind, role, lane, pid;
    uint64_t word;
    int64_t t_ns;
} report;

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void pause_us(int64_t us) {
    struct timespec t = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &t, &t) == EINTR) {}
}

static uint64_t rng_state;
static uint64_t rng_next(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static uint64_t rng_below(uint64_t n) { return rng_next() % n; }

/* ---- one backing's session --------------------------------------------------------- */

typedef struct {
    int backing;
    const char *backing_name;
    char chan_name[64], pool_name[64];
    conveyor_channel *holder;
    conveyor_pool *pool;
    int chan_fd, pool_fd;          /* MEMFD: the fds every child attaches */
    int rep[2];                    /* children -> parent reports */
    volatile int *stop;            /* shared: senders close and exit once set */
    pid_t recv_pid, send_pid[LANES];
    int send_gen[LANES];
} session;

static volatile pid_t g_live[LANES + 1];

static void on_watchdog(int sig) {
    (void)sig;
    static const char msg[] = "channel_kill_storm: WATCHDOG: the run hung; killing children\n";
    if (write(2, msg, sizeof msg - 1) < 0) {}
    for (int i = 0; i <= LANES; i++)
        if (g_live[i] > 0) kill(g_live[i], SIGKILL);
    _exit(1);
}

static void send_report(const session *s, int kind, int role, int lane, uint64_t word) {
    report m = {.kind = kind, .role = role, .lane = lane, .pid = getpid(), .word = word,
                .t_ns = now_ns()};
    if (write(s->rep[1], &m, sizeof m) != (ssize_t)sizeof m) _exit(3);
}

static _Noreturn void child_error(const session *s, int role, const char *what, int status) {
    fprintf(stderr, "channel_kill_storm[%d]: %s: %s\n", getpid(), what, conveyor_status_name(status));
    send_report(s, R_ERROR, role, status, 0);
    _exit(2);
}

/* The end `role` of lane `lane` for a new child: open from the inherited holder
 * (ANONYMOUS), attach by fd (MEMFD) or by name (NAMED). A takeover of a reaped owner's
 * end must succeed at once; BUSY is retried briefly only as a guard. */
static int acquire_end(const session *s, int role, uint32_t lane, conveyor_channel **end) {
    int status = CONVEYOR_E_BUSY;
    for (int tries = 0; tries < 200 && status == CONVEYOR_E_BUSY; tries++) {
        if (tries) pause_us(1000);
        if (s->backing == CONVEYOR_RING_ANONYMOUS) status = conveyor_channel_open(s->holder, role, lane, end);
        else if (s->backing == CONVEYOR_RING_MEMFD) status = conveyor_channel_attach_fd(s->chan_fd, role, lane, end);
        else status = conveyor_channel_attach_named(s->chan_name, role, lane, end);
    }
    return status;
}

static int acquire_pool(const session *s, conveyor_pool **pool) {
    if (s->backing == CONVEYOR_RING_ANONYMOUS) { *pool = NULL; return CONVEYOR_OK; }  /* inherited */
    if (s->backing == CONVEYOR_RING_MEMFD) return conveyor_pool_attach_fd(s->pool_fd, pool);
    return conveyor_pool_attach_named(s->pool_name, pool);
}

static _Noreturn void sender_main(const session *s, uint32_t lane, int gen) {
    conveyor_channel *ch;
    int st = acquire_end(s, CONVEYOR_CHANNEL_SENDER, lane, &ch);
    if (st != CONVEYOR_OK) child_error(s, CONVEYOR_CHANNEL_SENDER, "sender: acquire", st);
    conveyor_pool *mine = NULL;
    if ((st = acquire_pool(s, &mine)) != CONVEYOR_OK) child_error(s, 1, "sender: pool", st);
    conveyor_pool *pool = mine ? mine : s->pool;
    conveyor_channel_set_spin(ch, rng_below(2) ? 0 : 256);
    send_report(s, R_READY, CONVEYOR_CHANNEL_SENDER, (int)lane, 0);
    int64_t last_dead = 0;  /* PEER_DEAD reports: at most one per 5 ms */
    for (uint64_t seq = 0; !*s->stop;) {
        uint64_t word = (uint64_t)gen << 32 | (uint64_t)lane << 24 | seq;
        st = conveyor_channel_send(ch, word, CALL_TIMEOUT_NS);
        if (st == CONVEYOR_OK) {
            /* the pool slot of this generation records the last word sent, then the report */
            conveyor_frame_info info = {.dtype = CONVEYOR_DTYPE_BYTES, .rank = 1, .shape = {8},
                                        .byte_length = 8, .tag = word};
            memcpy(conveyor_pool_slot(pool, (uint32_t)gen), &word, 8);
            int d = conveyor_pool_describe(pool, (uint32_t)gen, &info);
            if (d != CONVEYOR_OK) child_error(s, 1, "sender: pool_describe", d);
            send_report(s, R_SENT, CONVEYOR_CHANNEL_SENDER, (int)lane, word);
            seq++;
        } else if (st == CONVEYOR_E_PEER_DEAD) {
            int64_t t = now_ns();
            if (t - last_dead > 5000000) {
                send_report(s, R_PEER_DEAD, CONVEYOR_CHANNEL_SENDER, (int)lane, 0);
                last_dead = t;
            }
            pause_us(200);  /* the receiver is being replaced: try again */
        } else if (st != CONVEYOR_E_TIMEOUT) {
            child_error(s, CONVEYOR_CHANNEL_SENDER, "sender: send", st);
        }
    }
    st = conveyor_channel_close(ch);
    if (st != CONVEYOR_OK) child_error(s, 1, "sender: close", st);
    conveyor_channel_destroy(ch);
    conveyor_pool_destroy(mine);
    _exit(0);
}

static _Noreturn void receiver_main(const session *s) {
    conveyor_channel *ch;
    int st = acquire_end(s, CONVEYOR_CHANNEL_RECEIVER, 0, &ch);
    if (st != CONVEYOR_OK) child_error(s, CONVEYOR_CHANNEL_RECEIVER, "receiver: acquire", st);
    conveyor_channel_set_spin(ch, rng_below(2) ? 0 : 256);
    send_report(s, R_READY, CONVEYOR_CHANNEL_RECEIVER, 0, 0);
    int64_t last_dead = 0;
    for (;;) {
        uint32_t lane = UINT32_MAX;
        uint64_t word = 0;
        st = conveyor_channel_receive_any(ch, CALL_TIMEOUT_NS, &lane, &word);
        if (st == CONVEYOR_OK) {
            if (lane >= LANES || (word >> 24 & 0xFF) != lane) {
                fprintf(stderr, "channel_kill_storm: word %llx on lane %u\n", (unsigned long long)word, lane);
                child_error(s, 2, "receiver: lane and word disagree", CONVEYOR_E_CORRUPT);
            }
            send_report(s, R_RECEIVED, CONVEYOR_CHANNEL_RECEIVER, (int)lane, word);
        } else if (st == CONVEYOR_E_PEER_DEAD) {
            int64_t t = now_ns();
            if (t - last_dead > 5000000) {
                send_report(s, R_PEER_DEAD, CONVEYOR_CHANNEL_RECEIVER, (int)lane, 0);
                last_dead = t;
            }
            pause_us(200);  /* the sender is being replaced */
        } else if (st == CONVEYOR_E_END_OF_STREAM) {
            send_report(s, R_EOS, CONVEYOR_CHANNEL_RECEIVER, 0, 0);
            conveyor_channel_destroy(ch);
            _exit(0);
        } else if (st != CONVEYOR_E_TIMEOUT) {
            child_error(s, CONVEYOR_CHANNEL_RECEIVER, "receiver: receive_any", st);
        }
    }
}

/* ---- the parent's books ------------------------------------------------------------ */

typedef struct {
    int lane;
    int64_t max_sent;       /* highest seq reported sent, -1 none */
    int64_t last_received;  /* highest seq received, -1 none */
    int64_t received;       /* words received */
    bool used;
} gen_book;

static gen_book books[MAX_GEN];
static int next_gen = 1;
static int last_gen_received[LANES];   /* per lane: the generation of the last word received */
static int64_t receiver_kills, sender_kills, eos_seen;
static int64_t first_recv_kill_ns = INT64_MAX, first_send_kill_ns[LANES];
static int64_t pending_recv_kill_ns;   /* a receiver kill not yet seen by a sender, or 0 */
static double *latencies;
static int n_latencies;

static void account(session *s, const report *m) {
    (void)s;
    int gen = (int)(m->word >> 32), lane = (int)(m->word >> 24 & 0xFF);
    int64_t seq = (int64_t)(m->word & 0xFFFFFF);
    switch (m->kind) {
    case R_SENT:
        if (gen <= 0 || gen >= next_gen || books[gen].lane != lane) {
            fprintf(stderr, "SENT word %llx of an unknown generation\n", (unsigned long long)m->word);
            failures++;
            return;
        }
        if (seq > books[gen].max_sent) books[gen].max_sent = seq;
        break;
    case R_RECEIVED:
        if (gen <= 0 || gen >= next_gen || books[gen].lane != lane) {
            fprintf(stderr, "RECEIVED word %llx: no sender of that generation on lane %d\n",
                    (unsigned long long)m->word, lane);
            failures++;
            return;
        }
        if (seq <= books[gen].last_received) {
            fprintf(stderr, "lane %d generation %d: word %lld received after %lld (repeat or reorder)\n",
                    lane, gen, (long long)seq, (long long)books[gen].last_received);
            failures++;
        }
        if (gen < last_gen_received[lane]) {
            fprintf(stderr, "lane %d: a word of generation %d after one of generation %d\n", lane,
                    gen, last_gen_received[lane]);
            failures++;
        }
        last_gen_received[lane] = gen;
        books[gen].last_received = seq;
        books[gen].received++;
        break;
    case R_PEER_DEAD:
        if (m->role == CONVEYOR_CHANNEL_SENDER) {
            if (m->t_ns < first_recv_kill_ns) {
                fprintf(stderr, "a sender reported PEER_DEAD before any receiver was killed\n");
                failures++;
            }
            if (pending_recv_kill_ns && m->t_ns >= pending_recv_kill_ns) {
                latencies[n_latencies++] = (double)(m->t_ns - pending_recv_kill_ns) / 1e6;
                pending_recv_kill_ns = 0;
            }
        } else if (m->lane < 0 || m->lane >= LANES || m->t_ns < first_send_kill_ns[m->lane]) {
            fprintf(stderr, "the receiver reported PEER_DEAD on lane %d, whose sender was not killed before\n",
                    m->lane);
            failures++;
        }
        break;
    case R_EOS: eos_seen++; break;
    case R_READY: break;
    default:
        fprintf(stderr, "a child reported an error (pid %d, status %s)\n", m->pid,
                conveyor_status_name(m->lane));
        failures++;
    }
}

/* Reads every report available within `ms` (0: only what is there now). */
static void drain_reports(session *s, int ms) {
    report buf[256];
    struct pollfd p = {.fd = s->rep[0], .events = POLLIN};
    while (poll(&p, 1, ms) > 0) {
        ssize_t n = read(s->rep[0], buf, sizeof buf);
        if (n <= 0) break;
        if (n % (ssize_t)sizeof(report)) {  /* writes of one report are atomic: never */
            fprintf(stderr, "torn report read (%zd bytes)\n", n);
            failures++;
            break;
        }
        for (ssize_t i = 0; i < n / (ssize_t)sizeof(report); i++) account(s, &buf[i]);
        ms = 0;
    }
}

static pid_t spawn_sender(session *s, uint32_t lane) {
    if (next_gen >= MAX_GEN) {
        fprintf(stderr, "channel_kill_storm: more than %d sender generations\n", MAX_GEN);
        exit(1);
    }
    int gen = next_gen++;
    books[gen] = (gen_book){.lane = (int)lane, .max_sent = -1, .last_received = -1, .used = true};
    rng_next();
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); exit(1); }
    if (pid == 0) sender_main(s, lane, gen);
    s->send_pid[lane] = pid;
    s->send_gen[lane] = gen;
    g_live[lane] = pid;
    return pid;
}

static pid_t spawn_receiver(session *s) {
    rng_next();
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); exit(1); }
    if (pid == 0) receiver_main(s);
    s->recv_pid = pid;
    g_live[LANES] = pid;
    return pid;
}

/* Waits for child `pid` to end (reading reports meanwhile, so that it never blocks on a
 * full pipe): killed by SIGKILL, or exited 0. */
static void reap(session *s, pid_t pid, bool killed) {
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, killed ? 0 : WNOHANG);
        if (r == pid) break;
        if (r < 0 && errno != EINTR) {
            perror("waitpid");
            failures++;
            return;
        }
        drain_reports(s, 1);
    }
    if (killed ? !(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
               : !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        fprintf(stderr, "child %d ended with status %#x\n", pid, status);
        failures++;
    }
}

static void run_session(int backing, const char *backing_name, int kills) {
    session s = {.backing = backing, .backing_name = backing_name, .chan_fd = -1, .pool_fd = -1};
    snprintf(s.chan_name, sizeof s.chan_name, "/conveyor-chstorm-%d", getpid());
    snprintf(s.pool_name, sizeof s.pool_name, "/conveyor-chstorm-pool-%d", getpid());
    conveyor_channel_config cc = {.lanes = LANES, .capacity = CAPACITY, .spin = 128,
                                  .backing = backing,
                                  .name = backing == CONVEYOR_RING_NAMED ? s.chan_name : NULL};
    CHECK_STATUS(conveyor_channel_create(&cc, &s.holder), CONVEYOR_OK);
    conveyor_pool_config pc = {.slot_count = MAX_GEN, .slot_bytes = 64, .backing = backing,
                               .name = backing == CONVEYOR_RING_NAMED ? s.pool_name : NULL};
    CHECK_STATUS(conveyor_pool_create(&pc, &s.pool), CONVEYOR_OK);
    if (s.holder == NULL || s.pool == NULL) return;
    s.chan_fd = conveyor_channel_fd(s.holder);
    s.pool_fd = conveyor_pool_fd(s.pool);
    if (pipe2(s.rep, O_CLOEXEC) != 0) { perror("pipe2"); exit(1); }
    s.stop = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (s.stop == MAP_FAILED) { perror("mmap"); exit(1); }

    memset(books, 0, sizeof books);
    memset(last_gen_received, 0, sizeof last_gen_received);
    next_gen = 1;
    receiver_kills = sender_kills = eos_seen = 0;
    first_recv_kill_ns = INT64_MAX;
    for (int l = 0; l < LANES; l++) first_send_kill_ns[l] = INT64_MAX;
    pending_recv_kill_ns = 0;
    int lat_start = n_latencies;

    spawn_receiver(&s);
    for (uint32_t l = 0; l < LANES; l++) spawn_sender(&s, l);
    drain_reports(&s, 20);

    for (int k = 0; k < kills; k++) {
        int64_t wait_until = now_ns() + (int64_t)rng_below(4000) * 1000;
        while (now_ns() < wait_until) drain_reports(&s, 1);
        uint32_t victim = (uint32_t)rng_below(LANES + 1);
        if (victim == LANES) {
            pid_t pid = s.recv_pid;
            int64_t t = now_ns();
            kill(pid, SIGKILL);
            reap(&s, pid, true);
            g_live[LANES] = 0;
            receiver_kills++;
            if (t < first_recv_kill_ns) first_recv_kill_ns = t;
            if (k % 2 == 0) {
                /* wait for a sender to notice: the lanes fill within microseconds */
                pending_recv_kill_ns = t;
                int64_t give_up = t + (int64_t)(HANG_LIMIT_MS * 1e6);
                while (pending_recv_kill_ns && now_ns() < give_up) drain_reports(&s, 5);
                if (pending_recv_kill_ns) {
                    fprintf(stderr, "%s: no sender reported PEER_DEAD within %.0f ms of the receiver's death\n",
                            backing_name, HANG_LIMIT_MS);
                    failures++;
                    pending_recv_kill_ns = 0;
                }
            }
            spawn_receiver(&s);
        } else {
            pid_t pid = s.send_pid[victim];
            int64_t t = now_ns();
            kill(pid, SIGKILL);
            reap(&s, pid, true);
            g_live[victim] = 0;
            sender_kills++;
            if (t < first_send_kill_ns[victim]) first_send_kill_ns[victim] = t;
            if (rng_below(4) == 0) {
                int64_t until = now_ns() + 15000000;  /* sometimes let the receiver notice */
                while (now_ns() < until) drain_reports(&s, 2);
            }
            spawn_sender(&s, victim);
        }
    }

    /* the end: senders close, the receiver drains to END_OF_STREAM */
    drain_reports(&s, 20);
    *s.stop = 1;
    for (uint32_t l = 0; l < LANES; l++) {
        drain_reports(&s, 0);
        reap(&s, s.send_pid[l], false);
        g_live[l] = 0;
    }
    int64_t give_up = now_ns() + 10000000000LL;
    while (eos_seen == 0 && now_ns() < give_up) drain_reports(&s, 10);
    reap(&s, s.recv_pid, false);
    g_live[LANES] = 0;
    drain_reports(&s, 0);
    if (eos_seen != 1) {
        fprintf(stderr, "%s: END_OF_STREAM seen %lld times, expected once\n", backing_name,
                (long long)eos_seen);
        failures++;
    }

    /* the books: nothing lost beyond one word per receiver death */
    int64_t lost = 0, unreported = 0, words = 0;
    for (int g = 1; g < next_gen; g++) {
        gen_book *b = &books[g];
        words += b->received;
        if (b->last_received > b->max_sent + 1) {
            fprintf(stderr, "generation %d: word %lld received, only %lld reported sent\n", g,
                    (long long)b->last_received, (long long)b->max_sent);
            failures++;
        }
        if (b->last_received == b->max_sent + 1) unreported++;
        int64_t got_upto_max = b->received - (b->last_received == b->max_sent + 1 ? 1 : 0);
        lost += (b->max_sent + 1) - got_upto_max;
        /* the pool descriptor of generation g holds its last word (or none) */
        const void *data;
        conveyor_frame_info info;
        int st = conveyor_pool_frame(s.pool, (uint32_t)g, &data, &info);
        if (st == CONVEYOR_OK) {
            int64_t tag_seq = (int64_t)(info.tag & 0xFFFFFF);
            if ((int)(info.tag >> 32) != g || tag_seq < b->max_sent || tag_seq > b->max_sent + 1) {  /* described before reported */
                fprintf(stderr, "generation %d: pool descriptor tag %llx, last reported sent %lld\n",
                        g, (unsigned long long)info.tag, (long long)b->max_sent);
                failures++;
            }
        } else if (b->max_sent >= 0) {
            fprintf(stderr, "generation %d sent words but its pool descriptor reads %s\n", g,
                    conveyor_status_name(st));
            failures++;
        }
    }
    if (lost > receiver_kills || lost < 0) {
        fprintf(stderr, "%s: %lld words reported sent were never received (receiver deaths: %lld)\n",
                backing_name, (long long)lost, (long long)receiver_kills);
        failures++;
    }
    if (unreported > sender_kills) {
        fprintf(stderr, "%s: %lld words received without being reported sent (sender deaths: %lld)\n",
                backing_name, (long long)unreported, (long long)sender_kills);
        failures++;
    }
    printf("%s: %d kills (%lld receivers, %lld senders, %d generations), %lld words received, "
           "%lld lost to receiver deaths, %d detections\n", backing_name, kills,
           (long long)receiver_kills, (long long)sender_kills, next_gen - 1, (long long)words,
           (long long)lost, n_latencies - lat_start);

    munmap((void *)s.stop, 4096);
    close(s.rep[0]);
    close(s.rep[1]);
    conveyor_channel_destroy(s.holder);
    conveyor_pool_destroy(s.pool);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int count_fds(void) {
    int n = 0;
    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) >= 0) n++;
    return n;
}

int main(void) {
    const char *k = getenv("CHANNEL_STORM_KILLS"), *seed = getenv("CHANNEL_STORM_SEED");
    int kills = k ? atoi(k) : DEFAULT_KILLS;
    if (kills < 3) kills = 3;
    rng_state = seed ? strtoull(seed, NULL, 0) : DEFAULT_SEED;
    printf("channel_kill_storm: %d kills, seed %#llx\n", kills, (unsigned long long)rng_state);
    signal(SIGALRM, on_watchdog);
    alarm(WATCHDOG_SECONDS * (kills > DEFAULT_KILLS ? (unsigned)(kills / DEFAULT_KILLS + 1) : 1u));
    latencies = calloc((size_t)kills, sizeof *latencies);
    static shm_snapshot before;
    shm_snapshot_take(&before);
    int fds = count_fds();

    int per = kills / 3;
    run_session(CONVEYOR_RING_MEMFD, "memfd", per);
    run_session(CONVEYOR_RING_NAMED, "named", per);
    run_session(CONVEYOR_RING_ANONYMOUS, "anonymous", kills - 2 * per);

    if (n_latencies > 0) {
        qsort(latencies, (size_t)n_latencies, sizeof *latencies, cmp_double);
        double p50 = latencies[n_latencies / 2], p95 = latencies[(n_latencies * 95) / 100],
               max = latencies[n_latencies - 1];
        printf("receiver death -> a sender's PEER_DEAD: %d samples, p50 %.1f ms, p95 %.1f ms, max %.1f ms\n",
               n_latencies, p50, p95, max);
        CHECK(p95 <= P95_LIMIT_MS);
        CHECK(max <= HANG_LIMIT_MS);
    } else {
        fprintf(stderr, "no detection measured\n");
        failures++;
    }
    /* Names of this run must be gone; other new entries (another test running meanwhile)
     * are only reported. */
    int added = shm_entries_added_since(&before);
    char mine[64];
    snprintf(mine, sizeof mine, "conveyor-chstorm-%d", getpid());
    char mine_pool[64];
    snprintf(mine_pool, sizeof mine_pool, "conveyor-chstorm-pool-%d", getpid());
    static shm_snapshot after;
    shm_snapshot_take(&after);
    for (int i = 0; i < after.count; i++)
        if (strcmp(after.names[i], mine) == 0 || strcmp(after.names[i], mine_pool) == 0) {
            fprintf(stderr, "this run left /dev/shm/%s\n", after.names[i]);
            failures++;
        }
    if (added) printf("(%d other new /dev/shm entries, not this run's)\n", added);
    CHECK(count_fds() == fds);
    errno = 0;
    CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);  /* no child left */
    free(latencies);
    alarm(0);
    return finish("channel_kill_storm");
}
