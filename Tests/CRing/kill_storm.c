/*
 * kill_storm.c — hundreds of SIGKILLs on either side of a ring across processes, at chosen
 * moments, with a replacement taking the dead side over each time.
 *
 * Why: a ring's two sides live in different processes and either may be killed at any
 * instant. The survivor must learn it (CONVEYOR_E_PEER_DEAD) within ~10 ms instead of
 * hanging, and a new process must take the dead side over with no frame lost or repeated.
 * A few hand-placed kills (ring_faults.c) cannot show that for every moment of the
 * protocol; a seeded storm of them can, and it measures the detection latency as a
 * distribution rather than one sample.
 *
 * What: KILL_STORM_KILLS kills (default 720), spread evenly over three backings and over
 * eight moments:
 *   producer  mid-loan (loaned, half written, not committed: that frame is lost, fine),
 *             blocked in loan on a full ring, between calls, at a random moment
 *   consumer  mid-receive (holding a frame: its replacement must receive it again),
 *             blocked in receive on an empty ring, between calls, at a random moment
 * "Blocked" waits until /proc says the victim sleeps; "random" kills a side streaming
 * freely 0-6 ms after it started; the others kill at the event or up to 2 ms after it.
 * The survivor waits either in blocking calls or by polling (timeout 0), at random.
 * Backings:
 *   MEMFD      the parent creates the ring and destroys its handles (which hands both sides
 *              back); every child attaches the fd it inherited with conveyor_ring_attach_fd
 *   NAMED      "/conveyor-storm-<pid>": the first producer uses the creator's inherited
 *              handle, every other child conveyor_ring_attach_named
 *   ANONYMOUS  every child uses its inherited copy of the parent's handles, so each
 *              takeover goes through a handle whose local position is stale: it must
 *              reload it from the shared counters
 *
 * How: the parent only orchestrates and verifies. One producer child and one consumer child
 * run commands read from a pipe and report events on a shared pipe (fixed-size messages,
 * each one atomic write): every frame received, the moment reached, PEER_DEAD with its
 * CLOCK_MONOTONIC time. The parent kills on those events (never after a sleep meant to be
 * long enough), takes kill() -> the survivor's call returning PEER_DEAD as the detection
 * latency, reaps the victim and forks its replacement.
 *
 * Checks: every frame carries its sequence number (also as its tag) and a checksum of a
 * payload derived from it. The parent rebuilds the sequence of *released* frames from the
 * consumers' reports (a frame counts as released once its consumer reports the next one or
 * parks; for a consumer that died holding frame h, its replacement's first frame says: h
 * again, or h + 1) and requires 0, 1, 2, ... with no gap or repeat, every checksum right;
 * a consumer killed holding a frame has it received again by its replacement; a replacement
 * producer continues from the shared head. Detection: p95 <= 100 ms, and no single one over
 * 2 s (a hang guard), over all kills. A live side is BUSY to an attacher; after the stream
 * a late producer gets CLOSED and a late consumer END_OF_STREAM. At the end no entry has
 * appeared in /dev/shm (all names are counted, not only the ring's: an entry someone else
 * removed meanwhile is only reported), the parent has as many fds open as at the start,
 * and no child is left (every one reaped, no zombie). Every ring call has a finite
 * timeout, and alarm(120) (scaled up for more than the default kills) fails the run loudly
 * rather than hang it. A detection over 100 ms is printed with where its time went: the
 * victim's own exit (its pidfd) and the survivor's time runnable without a CPU (schedstat).
 *
 * KILL_STORM_SEED fixes the plan of kills (printed; timing still varies). Built and run by
 * scripts/test-c, plain and under ASan+UBSan.
 */
#include "check.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_KILLS 720        /* 2-core VM: ~7 s idle, ~11 s loaded, ~23 s loaded + ASan */
#define DEFAULT_SEED 0x6B696C6C73746F72ull   /* "killstor" in ASCII */
#define WATCHDOG_SECONDS 120                  /* for the default count; scaled for more kills */
#define CALL_TIMEOUT_NS 5000000000LL          /* every ring call: a bug fails, never hangs */
#define REPORT_TIMEOUT_MS 8000                /* the parent waiting for one report */
#define P95_LIMIT_MS 100.0
#define HANG_LIMIT_MS 2000.0
#define SHORT_PAUSE_US 2000                   /* kill at the event or up to this after it */
#define RANDOM_PAUSE_US 6000                  /* a free-running side is killed within this */
#define ASLEEP_TIMEOUT_MS 1000
#define POLL_REST_US 50                       /* a polling survivor's rest between polls */

enum { PRODUCER = CONVEYOR_RING_PRODUCER, CONSUMER = CONVEYOR_RING_CONSUMER };

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void pause_us(int64_t us) {
    if (us <= 0) return;
    struct timespec t = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &t, &t) == EINTR) {}
}

/* ---- seeded randomness (SplitMix64): the plan of kills, never the frames' content ---- */

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rng_state;
static uint64_t rng_next(void) { return mix64(rng_state += 0x9E3779B97F4A7C15ull); }
static uint64_t rng_below(uint64_t n) { return n == 0 ? 0 : rng_next() % n; }

/* ---- frames: [0, 8) sequence number, [8, 16) checksum of the rest, then a payload ----- */

#define FRAME_HEADER 16
#define MAX_SLOT_BYTES 4096

static uint64_t frame_length(uint64_t seq, uint64_t slot_bytes) {
    return FRAME_HEADER + mix64(seq ^ 0xF00Dull) % (slot_bytes - FRAME_HEADER + 1);
}

static void fill_payload(uint8_t *p, uint64_t seq, uint64_t n) {
    for (uint64_t i = 0; i < n; i += 8) {
        uint64_t word = mix64(seq * 0x100000001B3ull + i / 8);
        memcpy(p + i, &word, n - i < 8 ? n - i : 8);
    }
}

static uint64_t checksum(const uint8_t *p, uint64_t n) {
    uint64_t h = 0xCBF29CE484222325ull;  /* FNV-1a */
    for (uint64_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001B3ull;
    return h;
}

static void write_frame(void *slot, uint64_t seq, uint64_t length) {
    uint8_t *bytes = slot;
    fill_payload(bytes + FRAME_HEADER, seq, length - FRAME_HEADER);
    uint64_t sum = checksum(bytes + FRAME_HEADER, length - FRAME_HEADER);
    memcpy(bytes, &seq, 8);
    memcpy(bytes + 8, &sum, 8);
}

static uint64_t expected_checksum(uint64_t seq, uint64_t slot_bytes) {
    uint8_t payload[MAX_SLOT_BYTES];
    uint64_t n = frame_length(seq, slot_bytes) - FRAME_HEADER;
    fill_payload(payload, seq, n);
    return checksum(payload, n);
}

/* ---- messages: parent -> child commands, child -> parent reports -------------------- */

enum stop {        /* where a PRODUCE or CONSUME command ends */
    STOP_IDLE,     /* after a completed commit/release: report IDLE, wait for a command */
    STOP_MID_LOAN, /* loan, write half a frame, report PHASE, park */
    STOP_MID_RECEIVE, /* receive the frame `until`, report PHASE holding it, park */
    STOP_BLOCKED,  /* report PHASE, then call loan on a full / receive on an empty ring */
};

enum command_kind {
    CMD_PRODUCE,   /* producer: commit while next < until, then `stop` */
    CMD_CONSUME,   /* consumer: receive+release through until - 1 (or hold until), `stop` */
    CMD_FREE_RUN,  /* report STARTED, then stream until killed */
    CMD_SURVIVE,   /* stream until a call returns PEER_DEAD; report when */
    CMD_FINISH,    /* producer: commit while next < until and close; consumer: drain */
    CMD_EXIT,      /* destroy the handle, exit 0 */
};

typedef struct {
    int32_t kind, stop, poll, reserved;
    uint64_t until;
} command;

enum report_kind {
    MSG_READY,     /* attached (or claimed); seq: the next frame it will commit (producer) */
    MSG_STARTED,   /* a FREE_RUN began */
    MSG_RECEIVED,  /* a frame, as received (not yet released) */
    MSG_IDLE,      /* parked after a completed call; seq: next to commit / to receive */
    MSG_PHASE,     /* value: the stop reached; seq as for IDLE (MID_RECEIVE: the frame held) */
    MSG_DEAD_SEEN, /* a call returned PEER_DEAD at t_ns; seq as for IDLE */
    MSG_DONE,      /* FINISH completed; seq as for IDLE */
    MSG_LATE,      /* the late attacher: value is the status of loan/receive (role) */
    MSG_ERROR,     /* value: a status; seq: the line of kill_storm.c that got it */
};

typedef struct {
    int32_t kind, role, pid, value;
    uint64_t seq, tag, length, stored_sum, computed_sum;
    int64_t t_ns;
    char what[64];  /* MSG_ERROR: which call, doing what */
} report;

_Static_assert(sizeof(report) <= PIPE_BUF, "reports must be atomic pipe writes");

static const char *role_name(int role) { return role == PRODUCER ? "producer" : "consumer"; }

static const char *report_name(int kind) {
    static const char *names[] = {"READY", "STARTED", "RECEIVED", "IDLE", "PHASE",
                                  "DEAD_SEEN", "DONE", "LATE", "ERROR"};
    return kind >= 0 && kind <= MSG_ERROR ? names[kind] : "?";
}

static bool read_full(int fd, void *buffer, size_t n) {
    for (size_t done = 0; done < n;) {
        ssize_t got = read(fd, (char *)buffer + done, n - done);
        if (got > 0) done += (size_t)got;
        else if (got == 0 || errno != EINTR) return false;
    }
    return true;
}

static bool write_full(int fd, const void *buffer, size_t n) {
    for (size_t done = 0; done < n;) {
        ssize_t put = write(fd, (const char *)buffer + done, n - done);
        if (put > 0) done += (size_t)put;
        else if (put < 0 && errno != EINTR) return false;
    }
    return true;
}

/* ---- the session: one ring and the processes around it -------------------------------- */

enum combo {
    P_MID_LOAN, P_BLOCKED, P_BETWEEN, P_RANDOM,
    C_MID_RECEIVE, C_BLOCKED, C_BETWEEN, C_RANDOM,
    COMBOS
};

static const char *combo_names[COMBOS] = {
    "producer mid-loan", "producer blocked in loan (full)", "producer between calls",
    "producer at a random moment", "consumer mid-receive (holding)",
    "consumer blocked in receive (empty)", "consumer between calls",
    "consumer at a random moment",
};

#define BACKINGS 3
static const int backing_order[BACKINGS] = {CONVEYOR_RING_MEMFD, CONVEYOR_RING_NAMED,
                                            CONVEYOR_RING_ANONYMOUS};
static const char *backing_names[BACKINGS] = {"memfd", "named", "anonymous"};

typedef struct {
    pid_t pid;     /* 0: none */
    int cmd_fd;    /* the parent's write end of its command pipe */
} child;

typedef struct {
    int index;     /* in backing_order */
    int backing;
    conveyor_ring_config config;
    char name[64];
    pid_t parent;
    conveyor_ring *producer, *consumer; /* the parent's handles, where it keeps any */
    int ring_fd;                        /* MEMFD: the parent's fd, inherited by children */
    bool first_producer_inherits;       /* NAMED: the first producer takes the creator's */
    int report_rd, report_wr;
    child kids[3];                      /* by role */
    report stash[8];                    /* reports read before they were awaited */
    int stashed;

    /* the parent's account of the stream */
    uint64_t pnext;          /* the next frame the producer commits (exact between episodes) */
    uint64_t released_next;  /* frames 0 .. released_next - 1 were released, in order */
    bool held;               /* the live consumer holds held_seq (received, not released) */
    uint64_t held_seq;
    pid_t held_by;
    bool orphan;             /* a killed consumer held orphan_seq: released or not? */
    uint64_t orphan_seq;
    bool expect_first;       /* the next consumer's first frame must be expect_first_seq */
    uint64_t expect_first_seq;
    uint64_t received, redelivered;

    /* the current episode */
    int episode, combo, previous;  /* combo -1: setup or end of stream */
    bool poll;
    int64_t t_kill;
    int64_t survivor_wait_ns;  /* the survivor's run-queue time at the kill (schedstat) */
    bool broken;             /* a broken promise: the rest of this backing is skipped */
} session;

/* Results over the whole run. */
typedef struct {
    double ms;       /* kill() -> the survivor's call returned PEER_DEAD */
    double exit_ms;  /* kill() -> the victim was gone, as the parent saw it (-1: unknown) */
    double wait_ms;  /* of which the survivor was runnable, waiting for a CPU (-1: unknown) */
    int backing, combo;
    bool poll;
} sample;

static sample *samples;
static int sample_count;
static int kills[BACKINGS][COMBOS];
static int asleep_confirmed[BACKINGS][2], asleep_tried[BACKINGS][2];

/* For the watchdog: what to kill and unlink if the run hangs. */
static volatile pid_t live_pids[4];
static char named_path[96];

static void track_pid(pid_t pid, bool alive) {
    for (int i = 0; i < 4; i++) {
        if (alive && live_pids[i] == 0) { live_pids[i] = pid; return; }
        if (!alive && live_pids[i] == pid) { live_pids[i] = 0; return; }
    }
}

static void on_watchdog(int sig) {
    (void)sig;
    static const char msg[] = "kill_storm: WATCHDOG: the run outlasted its alarm (a call or a "
                              "wait hung); children killed, named ring unlinked: FAILED\n";
    if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {}
    for (int i = 0; i < 4; i++)
        if (live_pids[i] > 0) kill(live_pids[i], SIGKILL);
    if (named_path[0]) unlink(named_path);
    _exit(2);
}

/* A broken promise of the ring (or of this test's protocol): counted and printed with
 * where the storm was; the rest of this backing is skipped, since the parent's account of
 * the stream can no longer be trusted. */
static void fail(session *s, const char *format, ...) {
    va_list args;
    va_start(args, format);
    if (s->combo < 0)
        fprintf(stderr, "kill_storm: [%s, %s] ", backing_names[s->index],
                s->episode < 0 ? "end of the stream" : "setup");
    else
        fprintf(stderr, "kill_storm: [%s, kill %d: %s, %s survivor%s%s] ",
                backing_names[s->index], s->episode, combo_names[s->combo],
                s->poll ? "polling" : "blocking", s->previous >= 0 ? "; previous kill: " : "",
                s->previous >= 0 ? combo_names[s->previous] : "");
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    failures++;
    s->broken = true;
}

/* =========================================================================================
 * Children: one side of the ring each, driven by commands
 * ========================================================================================= */

typedef struct {
    conveyor_ring *ring;
    int role;
    int cmd_fd, report_fd;  /* commands in, reports out */
    uint64_t slot_bytes;
    uint64_t next;  /* producer: next frame to commit; consumer: next frame expected */
} side;

static void send_report(const side *me, int kind, int value, uint64_t seq, int64_t t_ns) {
    report m = {.kind = kind, .role = me->role, .pid = (int32_t)getpid(), .value = value,
                .seq = seq, .t_ns = t_ns};
    if (!write_full(me->report_fd, &m, sizeof m)) _exit(6);
}

static _Noreturn void park(void) {
    for (;;) pause();  /* until killed */
}

/* The ring call a child made last, for its error report. */
static const char *last_call = "";

/* A call returned what it must not: report it (with the line) and wait to be killed. */
#define CHILD_FAILED(me, doing, status) child_failed(me, doing, status, __LINE__)
static _Noreturn void child_failed(const side *me, const char *doing, int status, int line) {
    report m = {.kind = MSG_ERROR, .role = me->role, .pid = (int32_t)getpid(),
                .value = status, .seq = (uint64_t)line, .t_ns = now_ns()};
    snprintf(m.what, sizeof m.what, "%s, conveyor_ring_%s", doing, last_call);
    if (!write_full(me->report_fd, &m, sizeof m)) _exit(6);
    park();
}

/* Gets this child's handle on `role` the way its backing says (see the header comment). */
static int acquire_side(const session *s, int role, conveyor_ring **ring) {
    bool inherited = s->backing == CONVEYOR_RING_ANONYMOUS ||
                     (s->backing == CONVEYOR_RING_NAMED && role == PRODUCER &&
                      s->first_producer_inherits);
    if (inherited) {
        last_call = "claim (of the inherited handle)";
        *ring = role == PRODUCER ? s->producer : s->consumer;
        return conveyor_ring_claim(*ring);
    }
    if (s->backing == CONVEYOR_RING_MEMFD) {
        last_call = "attach_fd";
        return conveyor_ring_attach_fd(s->ring_fd, role, ring);
    }
    last_call = "attach_named";
    return conveyor_ring_attach_named(s->name, role, ring);
}

/* ---- producer ---- */

static int produce_one(side *me, int64_t timeout_ns) {
    void *slot;
    last_call = "loan";
    int status = conveyor_ring_loan(me->ring, timeout_ns, &slot, NULL);
    if (status != CONVEYOR_OK) return status;
    uint64_t length = frame_length(me->next, me->slot_bytes);
    write_frame(slot, me->next, length);
    conveyor_frame_info info = {.dtype = CONVEYOR_DTYPE_BYTES, .rank = 1, .shape = {length},
                                .byte_length = length, .tag = me->next};
    last_call = "commit";
    status = conveyor_ring_commit(me->ring, &info);
    if (status == CONVEYOR_OK) me->next++;
    return status;
}

static void produce_until(side *me, uint64_t until) {
    while (me->next < until) {
        int status = produce_one(me, CALL_TIMEOUT_NS);
        if (status != CONVEYOR_OK) CHILD_FAILED(me, "producing", status);
    }
}

static void producer_stop(side *me, int stop) {
    if (stop == STOP_IDLE) {
        send_report(me, MSG_IDLE, 0, me->next, 0);
    } else if (stop == STOP_MID_LOAN) {
        void *slot;
        uint64_t capacity;
        last_call = "loan";
        int status = conveyor_ring_loan(me->ring, CALL_TIMEOUT_NS, &slot, &capacity);
        if (status != CONVEYOR_OK) CHILD_FAILED(me, "loaning to be killed mid-loan", status);
        /* Half a frame that must never be seen: right sequence number, wrong checksum. */
        memset(slot, 0xA5, capacity / 2);
        memcpy(slot, &me->next, 8);
        send_report(me, MSG_PHASE, STOP_MID_LOAN, me->next, 0);
        park();
    } else {
        send_report(me, MSG_PHASE, STOP_BLOCKED, me->next, 0);
        void *slot;
        last_call = "loan";
        int status = conveyor_ring_loan(me->ring, CALL_TIMEOUT_NS, &slot, NULL);
        CHILD_FAILED(me, "returned on a full ring (to be killed blocked in it)", status);
    }
}

/* ---- consumer ---- */

/* Receives one frame and reports what it holds (checked by the parent). */
static int receive_frame(side *me, int64_t timeout_ns, uint64_t *seq) {
    const void *data;
    conveyor_frame_info info;
    last_call = "receive";
    int status = conveyor_ring_receive(me->ring, timeout_ns, &data, &info);
    if (status != CONVEYOR_OK) return status;
    report m = {.kind = MSG_RECEIVED, .role = me->role, .pid = (int32_t)getpid(),
                .tag = info.tag, .length = info.byte_length, .seq = UINT64_MAX};
    if (info.byte_length >= FRAME_HEADER) {
        const uint8_t *bytes = data;
        memcpy(&m.seq, bytes, 8);
        memcpy(&m.stored_sum, bytes + 8, 8);
        m.computed_sum = checksum(bytes + FRAME_HEADER, info.byte_length - FRAME_HEADER);
    }
    if (!write_full(me->report_fd, &m, sizeof m)) _exit(6);
    *seq = m.seq;
    me->next = m.seq + 1;
    return CONVEYOR_OK;
}

static int consume_one(side *me, int64_t timeout_ns) {
    uint64_t seq;
    int status = receive_frame(me, timeout_ns, &seq);
    if (status != CONVEYOR_OK) return status;
    last_call = "release";
    return conveyor_ring_release(me->ring);
}

static void consume_until(side *me, const command *c) {
    for (;;) {
        uint64_t seq;
        int status = receive_frame(me, CALL_TIMEOUT_NS, &seq);
        if (status != CONVEYOR_OK) CHILD_FAILED(me, "consuming", status);
        if (c->stop == STOP_MID_RECEIVE && seq >= c->until) {
            send_report(me, MSG_PHASE, STOP_MID_RECEIVE, seq, 0);
            park();
        }
        last_call = "release";
        if ((status = conveyor_ring_release(me->ring)) != CONVEYOR_OK)
            CHILD_FAILED(me, "consuming", status);
        if (c->stop != STOP_MID_RECEIVE && seq + 1 >= c->until) break;
    }
    if (c->stop == STOP_IDLE) {
        send_report(me, MSG_IDLE, 0, me->next, 0);
    } else {
        send_report(me, MSG_PHASE, STOP_BLOCKED, me->next, 0);
        uint64_t seq;
        int status = receive_frame(me, CALL_TIMEOUT_NS, &seq);
        CHILD_FAILED(me, "returned on an empty ring (to be killed blocked in it)", status);
    }
}

/* ---- both ---- */

/* Streams until a call returns PEER_DEAD, with blocking calls or polls (timeout 0), and
 * reports the moment it returned. A poller rests POLL_REST_US between polls, as an event
 * loop would: one that sched_yield()s instead pushes its own deadline back at every yield
 * under EEVDF (Linux >= 6.6) and, on a loaded machine, starves for seconds. */
static void survive(side *me, bool poll) {
    int64_t timeout = poll ? 0 : CALL_TIMEOUT_NS, progress = now_ns();
    for (;;) {
        int status = me->role == PRODUCER ? produce_one(me, timeout) : consume_one(me, timeout);
        int64_t t = now_ns();
        if (status == CONVEYOR_OK) {
            progress = t;
        } else if (status == CONVEYOR_E_PEER_DEAD) {
            send_report(me, MSG_DEAD_SEEN, 0, me->next, t);
            return;
        } else if (status == CONVEYOR_E_TIMEOUT && poll && t - progress < CALL_TIMEOUT_NS) {
            pause_us(POLL_REST_US);
        } else {
            CHILD_FAILED(me, poll ? "polling for PEER_DEAD" : "waiting for PEER_DEAD", status);
        }
    }
}

static void free_run(side *me) {
    send_report(me, MSG_STARTED, 0, me->next, 0);
    for (;;) {
        int status = me->role == PRODUCER ? produce_one(me, CALL_TIMEOUT_NS)
                                          : consume_one(me, CALL_TIMEOUT_NS);
        if (status != CONVEYOR_OK) CHILD_FAILED(me, "streaming until killed", status);
    }
}

static void finish_side(side *me, uint64_t until) {
    if (me->role == PRODUCER) {
        produce_until(me, until);
        last_call = "close";
        int status = conveyor_ring_close(me->ring);
        if (status != CONVEYOR_OK) CHILD_FAILED(me, "finishing", status);
    } else {
        int status;
        while ((status = consume_one(me, CALL_TIMEOUT_NS)) == CONVEYOR_OK) {}
        if (status != CONVEYOR_E_END_OF_STREAM)
            CHILD_FAILED(me, "draining to END_OF_STREAM", status);
    }
    send_report(me, MSG_DONE, 0, me->next, 0);
}

static _Noreturn void child_main(const session *s, int role, uint64_t start, int cmd_fd) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != s->parent) _exit(5);
    side me = {.role = role, .cmd_fd = cmd_fd, .report_fd = s->report_wr,
               .slot_bytes = s->config.slot_bytes, .next = start};
    int status = acquire_side(s, role, &me.ring);
    if (status != CONVEYOR_OK) CHILD_FAILED(&me, "taking its side", status);
    send_report(&me, MSG_READY, 0, me.next, 0);
    for (;;) {
        command c;
        if (!read_full(me.cmd_fd, &c, sizeof c)) _exit(4);
        switch (c.kind) {
        case CMD_PRODUCE: produce_until(&me, c.until); producer_stop(&me, c.stop); break;
        case CMD_CONSUME: consume_until(&me, &c); break;
        case CMD_FREE_RUN: free_run(&me); break;
        case CMD_SURVIVE: survive(&me, c.poll); break;
        case CMD_FINISH: finish_side(&me, c.until); break;
        default: conveyor_ring_destroy(me.ring); _exit(0);
        }
    }
}

/* The late attacher: once the stream is closed, a new producer must get CLOSED and a new
 * consumer END_OF_STREAM. */
static _Noreturn void late_child_main(const session *s) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    side me = {.report_fd = s->report_wr};
    for (int role = PRODUCER; role <= CONSUMER; role++) {
        me.role = role;
        conveyor_ring *ring = NULL;
        int status = acquire_side(s, role, &ring);
        if (status == CONVEYOR_OK) {
            void *slot;
            const void *data;
            conveyor_frame_info info;
            status = role == PRODUCER ? conveyor_ring_loan(ring, 0, &slot, NULL)
                                      : conveyor_ring_receive(ring, 0, &data, &info);
            conveyor_ring_destroy(ring);
        }
        send_report(&me, MSG_LATE, status, 0, 0);
    }
    _exit(0);
}

/* =========================================================================================
 * Parent: the account of the stream
 * ========================================================================================= */

static void confirm_release(session *s, uint64_t seq) {
    if (seq != s->released_next)
        fail(s, "frame %llu released when frame %llu was next in order",
             (unsigned long long)seq, (unsigned long long)s->released_next);
    else s->released_next++;
}

/* The live consumer's held frame is released once it reports the next one or parks. */
static void settle_held(session *s, pid_t by) {
    if (s->held && s->held_by == by) {
        s->held = false;
        confirm_release(s, s->held_seq);
    }
}

static void check_frame(session *s, const report *m) {
    uint64_t r = m->seq, bytes = s->config.slot_bytes;
    if (m->tag != r || m->length != frame_length(r, bytes) || m->stored_sum != m->computed_sum ||
        m->computed_sum != expected_checksum(r, bytes))
        fail(s, "frame %llu is damaged: tag %llu, %llu bytes (expected %llu), checksum stored "
             "%016llx, computed %016llx, expected %016llx", (unsigned long long)r,
             (unsigned long long)m->tag, (unsigned long long)m->length,
             (unsigned long long)frame_length(r, bytes), (unsigned long long)m->stored_sum,
             (unsigned long long)m->computed_sum, (unsigned long long)expected_checksum(r, bytes));
}

static void account_received(session *s, const report *m) {
    uint64_t r = m->seq;
    s->received++;
    if (s->held && s->held_by != m->pid)
        fail(s, "consumer %d received frame %llu while consumer %d still held %llu", m->pid,
             (unsigned long long)r, (int)s->held_by, (unsigned long long)s->held_seq);
    settle_held(s, m->pid);
    if (s->orphan) {  /* the first frame of a dead holder's replacement */
        s->orphan = false;
        if (r == s->orphan_seq) s->redelivered++;
        else if (r == s->orphan_seq + 1) confirm_release(s, s->orphan_seq);
        else fail(s, "a consumer died holding frame %llu; its replacement's first frame is "
                  "%llu (expected %llu again, or %llu)", (unsigned long long)s->orphan_seq,
                  (unsigned long long)r, (unsigned long long)s->orphan_seq,
                  (unsigned long long)s->orphan_seq + 1);
    }
    if (s->expect_first) {
        s->expect_first = false;
        if (r != s->expect_first_seq)
            fail(s, "the replacement consumer's first frame is %llu, expected %llu%s",
                 (unsigned long long)r, (unsigned long long)s->expect_first_seq,
                 s->combo == C_MID_RECEIVE ? " (the frame its dead predecessor held)" : "");
    }
    if (r != s->released_next)
        fail(s, "frame %llu received when frame %llu was next: %s", (unsigned long long)r,
             (unsigned long long)s->released_next,
             r > s->released_next ? "frames lost" : "a repeat");
    check_frame(s, m);
    s->held = true;
    s->held_seq = r;
    s->held_by = m->pid;
}

/* Applies one report to the account. */
static void account(session *s, const report *m) {
    if (m->kind == MSG_ERROR) {
        fail(s, "%s %d, %s (kill_storm.c:%llu) returned %s", role_name(m->role), m->pid,
             m->what, (unsigned long long)m->seq, conveyor_status_name(m->value));
        return;
    }
    if (m->kind == MSG_RECEIVED) {
        account_received(s, m);
        return;
    }
    bool parked = m->kind == MSG_IDLE || m->kind == MSG_DEAD_SEEN || m->kind == MSG_DONE ||
                  (m->kind == MSG_PHASE && m->value == STOP_BLOCKED);
    if (m->role == PRODUCER && m->kind != MSG_LATE && m->kind != MSG_STARTED) {
        s->pnext = m->seq;
    } else if (m->role == CONSUMER && parked) {
        settle_held(s, m->pid);
        if (m->seq == UINT64_MAX && s->orphan && m->kind != MSG_IDLE && m->kind != MSG_PHASE) {
            /* It drained the ring (PEER_DEAD or END_OF_STREAM) without receiving the frame its
             * dead predecessor held, which was committed: so that one had been released. */
            s->orphan = false;
            confirm_release(s, s->orphan_seq);
        }
        if (m->seq != UINT64_MAX && m->seq != s->released_next)  /* MAX: received nothing yet */
            fail(s, "consumer %d parked expecting frame %llu, but %llu were released", m->pid,
                     (unsigned long long)m->seq, (unsigned long long)s->released_next);
    } else if (m->role == CONSUMER && m->kind == MSG_PHASE) {
        if (!s->held || s->held_seq != m->seq)
            fail(s, "consumer %d says it holds frame %llu", m->pid, (unsigned long long)m->seq);
    }
}

/* Reads one report, waiting until `deadline_ns` at most. */
static bool read_report(session *s, report *m, int64_t deadline_ns) {
    for (;;) {
        int64_t left_ms = (deadline_ns - now_ns()) / 1000000;
        if (left_ms < 0) return false;
        struct pollfd p = {.fd = s->report_rd, .events = POLLIN};
        int ready = poll(&p, 1, (int)left_ms + 1);
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) return false;
        return read_full(s->report_rd, m, sizeof *m);
    }
}

/* ", which died of signal N" if the child is gone, without reaping it. */
static const char *child_fate(pid_t pid) {
    static char text[64];
    siginfo_t info = {0};
    text[0] = 0;
    if (pid > 0 && waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == pid)
        snprintf(text, sizeof text, ", which %s %d", info.si_code == CLD_EXITED
                 ? "exited with status" : "died of signal", info.si_status);
    return text;
}

static bool is_awaited(const session *s, const report *m, int role, int kind) {
    return m->role == role && m->kind == kind && (m->pid == s->kids[role].pid || kind == MSG_LATE);
}

/* Waits for report `kind` from the current `role` child, accounting for every report read
 * meanwhile (in pipe order, which is each child's order). Others are kept for later. */
static bool await_report(session *s, int role, int kind, report *out) {
    for (int i = 0; i < s->stashed; i++) {
        if (is_awaited(s, &s->stash[i], role, kind)) {
            *out = s->stash[i];
            s->stash[i] = s->stash[--s->stashed];
            return true;
        }
    }
    int64_t deadline = now_ns() + (int64_t)REPORT_TIMEOUT_MS * 1000000;
    while (!s->broken) {
        report m;
        if (!read_report(s, &m, deadline)) {
            fail(s, "no %s from the %s (pid %d) within %d ms%s", report_name(kind),
                 role_name(role), (int)s->kids[role].pid, REPORT_TIMEOUT_MS,
                 child_fate(s->kids[role].pid));
            break;
        }
        account(s, &m);
        if (m.kind == MSG_RECEIVED || m.kind == MSG_ERROR) continue;
        if (is_awaited(s, &m, role, kind)) {
            *out = m;
            return !s->broken;
        }
        if (s->stashed == (int)(sizeof s->stash / sizeof s->stash[0])) {
            fail(s, "unexpected %s from the %s", report_name(m.kind), role_name(m.role));
            break;
        }
        s->stash[s->stashed++] = m;
    }
    return false;
}

/* =========================================================================================
 * Parent: processes
 * ========================================================================================= */

static bool order(session *s, int role, int kind, int stop, uint64_t until) {
    command c = {.kind = kind, .stop = stop, .poll = s->poll, .until = until};
    if (!write_full(s->kids[role].cmd_fd, &c, sizeof c)) {
        fail(s, "cannot command the %s: %s", role_name(role), strerror(errno));
        return false;
    }
    return true;
}

/* Forks the child for `role`, which starts committing at `start` (producer), and waits
 * until it holds its side. */
static bool spawn(session *s, int role, uint64_t start) {
    int cmd[2];
    if (pipe(cmd) != 0) {
        fail(s, "pipe: %s", strerror(errno));
        return false;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(cmd[1]);
        child_main(s, role, start, cmd[0]);
    }
    close(cmd[0]);
    if (pid < 0) {
        close(cmd[1]);
        fail(s, "fork: %s", strerror(errno));
        return false;
    }
    s->kids[role] = (child){.pid = pid, .cmd_fd = cmd[1]};
    track_pid(pid, true);
    if (role == PRODUCER) s->first_producer_inherits = false;
    report m;
    return await_report(s, role, MSG_READY, &m);
}

/* Reaps the child of `role`, which must have died of SIGKILL (`killed`) or exited 0. */
static void reap(session *s, int role, bool killed) {
    child *c = &s->kids[role];
    if (c->pid <= 0) return;
    int status = 0;
    while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR) {}
    bool ok = killed ? WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL
                     : WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok && !s->broken)
        fail(s, "the %s (pid %d) ended with status 0x%x, expected %s", role_name(role),
             (int)c->pid, status, killed ? "SIGKILL" : "exit 0");
    track_pid(c->pid, false);
    close(c->cmd_fd);
    *c = (child){0};
}

/* After a failure: kills and reaps whatever is left. */
static void stop_children(session *s) {
    for (int role = PRODUCER; role <= CONSUMER; role++) {
        if (s->kids[role].pid > 0) {
            kill(s->kids[role].pid, SIGKILL);
            reap(s, role, true);
        }
    }
}

/* The state letter of /proc/<pid>/stat ('S': asleep in the kernel), or 0. */
static char process_state(pid_t pid) {
    char path[64], text[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0) return 0;
    text[n] = 0;
    const char *end = strrchr(text, ')');  /* the command name may hold anything */
    return end != NULL && end[1] == ' ' ? end[2] : 0;
}

/* Waits (bounded) for the blocked victim to be asleep in its futex wait: the event that
 * makes the kill a kill "while blocked". Counted, not required (a preempted spin is 'R'). */
static void await_asleep(session *s, int role) {
    int64_t deadline = now_ns() + (int64_t)ASLEEP_TIMEOUT_MS * 1000000;
    asleep_tried[s->index][role - 1]++;
    while (now_ns() < deadline) {
        if (process_state(s->kids[role].pid) == 'S') {
            asleep_confirmed[s->index][role - 1]++;
            return;
        }
        pause_us(20);
    }
}

/* A live side must be refused to another attacher. */
static void probe_busy(session *s, int role) {
    if (s->backing == CONVEYOR_RING_ANONYMOUS) return;  /* no second way in */
    conveyor_ring *intruder = NULL;
    int status = s->backing == CONVEYOR_RING_MEMFD
                     ? conveyor_ring_attach_fd(s->ring_fd, role, &intruder)
                     : conveyor_ring_attach_named(s->name, role, &intruder);
    if (status != CONVEYOR_E_BUSY)
        fail(s, "attaching the live %s's side returned %s, expected CONVEYOR_E_BUSY",
             role_name(role), conveyor_status_name(status));
    if (status == CONVEYOR_OK) conveyor_ring_destroy(intruder);
}

/* Nanoseconds `pid` has spent runnable but waiting for a CPU (/proc/<pid>/schedstat), or -1. */
static int64_t run_queue_ns(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
    FILE *f = fopen(path, "r");
    long long run = 0, wait = -1;
    if (f != NULL) {
        if (fscanf(f, "%lld %lld", &run, &wait) != 2) wait = -1;
        fclose(f);
    }
    return wait;
}

/* Kills `role` now or after a pause of up to `max_pause_us` (random moments: always). */
static void kill_side(session *s, int role, int64_t max_pause_us, bool always_pause) {
    probe_busy(s, role);
    if (always_pause || rng_below(2)) pause_us((int64_t)rng_below((uint64_t)max_pause_us + 1));
    s->survivor_wait_ns = run_queue_ns(s->kids[role == PRODUCER ? CONSUMER : PRODUCER].pid);
    s->t_kill = now_ns();
    kill(s->kids[role].pid, SIGKILL);
    kills[s->index][s->combo]++;
}

/* How long after kill() the victim was gone (its pidfd readable, once it has exited): the
 * share of a detection that no ring can shorten, since the dying process must be scheduled
 * to exit. An upper bound: the parent too must be scheduled to see it. */
static double victim_exit_ms(const session *s, pid_t victim) {
    int fd = (int)syscall(SYS_pidfd_open, victim, 0);
    if (fd < 0) return -1;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int ready = poll(&p, 1, (int)HANG_LIMIT_MS);
    int64_t now = now_ns();
    close(fd);
    return ready == 1 ? (double)(now - s->t_kill) / 1e6 : -1;
}

/* Waits for the survivor's PEER_DEAD and records how long after kill() its call returned. */
static bool survivor_detects(session *s, int survivor, report *m) {
    double exit_ms = victim_exit_ms(s, s->kids[survivor == PRODUCER ? CONSUMER : PRODUCER].pid);
    if (!await_report(s, survivor, MSG_DEAD_SEEN, m)) return false;
    double ms = (double)(m->t_ns - s->t_kill) / 1e6;
    int64_t wait_now = run_queue_ns(s->kids[survivor].pid);
    double wait_ms = wait_now >= 0 && s->survivor_wait_ns >= 0
                         ? (double)(wait_now - s->survivor_wait_ns) / 1e6 : -1;
    samples[sample_count++] = (sample){.ms = ms, .exit_ms = exit_ms, .wait_ms = wait_ms,
                                       .backing = s->index, .combo = s->combo, .poll = s->poll};
    if (ms > P95_LIMIT_MS)  /* allowed now and then: say where the time went */
        printf("  slow: [%s, kill %d: %s, %s survivor] PEER_DEAD %.1f ms after kill(); the "
               "victim was gone after %.1f ms; the survivor waited %.1f ms for a CPU\n",
               backing_names[s->index], s->episode, combo_names[s->combo],
               s->poll ? "polling" : "blocking", ms, exit_ms, wait_ms);
    if (ms < 0) {
        fail(s, "the %s's call returned PEER_DEAD %.3f ms before the kill: a live peer was "
             "taken for dead", role_name(survivor), -ms);
        return false;
    }
    if (ms > HANG_LIMIT_MS) {
        fprintf(stderr, "kill_storm: [%s, kill %d, %s] PEER_DEAD came %.1f ms after the kill "
                "(hang guard: %.0f ms)\n", backing_names[s->index], s->episode,
                combo_names[s->combo], ms, HANG_LIMIT_MS);
        failures++;
    }
    return true;
}

/* The producer died: its survivor received every frame it committed, so the shared head is
 * released_next, where the replacement continues. */
static bool replace_producer(session *s) {
    reap(s, PRODUCER, true);
    s->pnext = s->released_next;
    return spawn(s, PRODUCER, s->pnext);
}

/* The consumer died holding nothing (`held_nothing`: it was parked after a release or
 * blocked in receive) or at an unknown point: its replacement's first frame tells. */
static bool replace_consumer(session *s, bool held_nothing) {
    reap(s, CONSUMER, true);
    if (s->held) {
        s->held = false;
        s->orphan = true;
        s->orphan_seq = s->held_seq;
        if (s->combo == C_MID_RECEIVE) {
            s->expect_first = true;   /* received, not released: must come again */
            s->expect_first_seq = s->held_seq;
        }
    }
    if (held_nothing) {
        if (s->orphan) fail(s, "the consumer was parked but still held frame %llu",
                            (unsigned long long)s->orphan_seq);
        s->expect_first = true;
        s->expect_first_seq = s->released_next;
    }
    return spawn(s, CONSUMER, UINT64_MAX);
}

/* The first frame the consumer may receive next, at the latest. */
static uint64_t consumer_next_max(const session *s) {
    return s->orphan ? s->orphan_seq + 1 : s->released_next;
}

/* =========================================================================================
 * Parent: the eight kinds of kill
 * ========================================================================================= */

static uint64_t slots(const session *s) { return s->config.slot_count; }

static void expect_seq(session *s, const char *what, uint64_t got, uint64_t want) {
    if (got != want)
        fail(s, "%s: %llu, expected %llu", what, (unsigned long long)got, (unsigned long long)want);
}

/* Producer killed between loan and commit; the consumer drains, then sees it dead. */
static bool producer_mid_loan(session *s) {
    uint64_t until = s->pnext + rng_below(2 * slots(s) + 1);
    report m;
    if (!order(s, CONSUMER, CMD_SURVIVE, 0, 0) ||
        !order(s, PRODUCER, CMD_PRODUCE, STOP_MID_LOAN, until) ||
        !await_report(s, PRODUCER, MSG_PHASE, &m))
        return false;
    kill_side(s, PRODUCER, SHORT_PAUSE_US, false);
    if (!survivor_detects(s, CONSUMER, &m)) return false;
    expect_seq(s, "frames released when the producer died mid-loan", s->released_next, until);
    return replace_producer(s);
}

/* Producer killed asleep in loan on a full ring (the consumer parked meanwhile). */
static bool producer_blocked(session *s) {
    uint64_t stall = consumer_next_max(s) + 1 + rng_below(slots(s) + 1);
    uint64_t full = stall + slots(s);  /* frames stall .. full - 1 fill the ring */
    report m;
    if (!order(s, CONSUMER, CMD_CONSUME, STOP_IDLE, stall) ||
        !order(s, PRODUCER, CMD_PRODUCE, STOP_BLOCKED, full) ||
        !await_report(s, CONSUMER, MSG_IDLE, &m) || !await_report(s, PRODUCER, MSG_PHASE, &m))
        return false;
    await_asleep(s, PRODUCER);
    kill_side(s, PRODUCER, SHORT_PAUSE_US, false);
    if (!order(s, CONSUMER, CMD_SURVIVE, 0, 0) || !survivor_detects(s, CONSUMER, &m)) return false;
    expect_seq(s, "frames released when the blocked producer died", s->released_next, full);
    return replace_producer(s);
}

/* Producer killed parked after a commit. */
static bool producer_between(session *s) {
    uint64_t until = s->pnext + rng_below(2 * slots(s) + 1);
    report m;
    if (!order(s, CONSUMER, CMD_SURVIVE, 0, 0) ||
        !order(s, PRODUCER, CMD_PRODUCE, STOP_IDLE, until) ||
        !await_report(s, PRODUCER, MSG_IDLE, &m))
        return false;
    kill_side(s, PRODUCER, SHORT_PAUSE_US, false);
    if (!survivor_detects(s, CONSUMER, &m)) return false;
    expect_seq(s, "frames released when the idle producer died", s->released_next, until);
    return replace_producer(s);
}

/* Producer killed anywhere while streaming. */
static bool producer_random(session *s) {
    uint64_t before = s->pnext;
    report m;
    if (!order(s, CONSUMER, CMD_SURVIVE, 0, 0) || !order(s, PRODUCER, CMD_FREE_RUN, 0, 0) ||
        !await_report(s, PRODUCER, MSG_STARTED, &m))
        return false;
    kill_side(s, PRODUCER, RANDOM_PAUSE_US, true);
    if (!survivor_detects(s, CONSUMER, &m)) return false;
    if (s->released_next < before)
        fail(s, "the consumer saw PEER_DEAD after %llu frames, but %llu had been committed "
             "before the producer was started", (unsigned long long)s->released_next,
             (unsigned long long)before);
    return replace_producer(s);
}

/* The producer survives a consumer's death: it fills the ring and then sees it dead. It
 * cannot have committed more than a ring beyond the dead consumer's tail: released_next, or
 * one more if a frame's release is in doubt (the victim held a frame it may have released
 * unreported, or died before its first report, leaving the previous victim's in doubt). */
static bool producer_detects(session *s) {
    report m;
    if (!survivor_detects(s, PRODUCER, &m)) return false;
    bool in_doubt = (s->held && s->combo != C_MID_RECEIVE) || s->orphan;
    uint64_t tail = s->released_next + in_doubt;
    if (m.seq > tail + slots(s))
        fail(s, "the producer committed up to %llu with the consumer dead at %llu (%llu slots)",
             (unsigned long long)m.seq, (unsigned long long)tail, (unsigned long long)slots(s));
    return true;
}

/* Consumer killed holding a received frame: its replacement must receive it again. */
static bool consumer_mid_receive(session *s) {
    uint64_t hold = consumer_next_max(s) + rng_below(2 * slots(s) + 1);
    report m;
    if (!order(s, PRODUCER, CMD_SURVIVE, 0, 0) ||
        !order(s, CONSUMER, CMD_CONSUME, STOP_MID_RECEIVE, hold) ||
        !await_report(s, CONSUMER, MSG_PHASE, &m))
        return false;
    expect_seq(s, "frame held by the consumer", m.seq, hold);
    kill_side(s, CONSUMER, SHORT_PAUSE_US, false);
    return producer_detects(s) && replace_consumer(s, false);
}

/* Consumer killed asleep in receive on an empty ring (the producer parked meanwhile). */
static bool consumer_blocked(session *s) {
    uint64_t floor = consumer_next_max(s) + 1;
    uint64_t until = (s->pnext > floor ? s->pnext : floor) + rng_below(slots(s) + 1);
    report m;
    if (!order(s, PRODUCER, CMD_PRODUCE, STOP_IDLE, until) ||
        !order(s, CONSUMER, CMD_CONSUME, STOP_BLOCKED, until) ||
        !await_report(s, PRODUCER, MSG_IDLE, &m) || !await_report(s, CONSUMER, MSG_PHASE, &m))
        return false;
    await_asleep(s, CONSUMER);
    kill_side(s, CONSUMER, SHORT_PAUSE_US, false);
    return order(s, PRODUCER, CMD_SURVIVE, 0, 0) && producer_detects(s) &&
           replace_consumer(s, true);
}

/* Consumer killed parked after a release. */
static bool consumer_between(session *s) {
    uint64_t until = consumer_next_max(s) + 1 + rng_below(2 * slots(s));
    report m;
    if (!order(s, PRODUCER, CMD_SURVIVE, 0, 0) ||
        !order(s, CONSUMER, CMD_CONSUME, STOP_IDLE, until) ||
        !await_report(s, CONSUMER, MSG_IDLE, &m))
        return false;
    kill_side(s, CONSUMER, SHORT_PAUSE_US, false);
    return producer_detects(s) && replace_consumer(s, true);
}

/* Consumer killed anywhere while streaming. */
static bool consumer_random(session *s) {
    report m;
    if (!order(s, PRODUCER, CMD_SURVIVE, 0, 0) || !order(s, CONSUMER, CMD_FREE_RUN, 0, 0) ||
        !await_report(s, CONSUMER, MSG_STARTED, &m))
        return false;
    kill_side(s, CONSUMER, RANDOM_PAUSE_US, true);
    return producer_detects(s) && replace_consumer(s, false);
}

static bool (*const episodes[COMBOS])(session *) = {
    producer_mid_loan, producer_blocked, producer_between, producer_random,
    consumer_mid_receive, consumer_blocked, consumer_between, consumer_random,
};

/* =========================================================================================
 * Parent: one backing from creation to cleanup
 * ========================================================================================= */

static bool open_ring(session *s) {
    conveyor_ring **p = &s->producer, **q = &s->consumer;
    if (s->backing == CONVEYOR_RING_NAMED) {
        snprintf(s->name, sizeof s->name, "/conveyor-storm-%d", (int)getpid());
        snprintf(named_path, sizeof named_path, "/dev/shm%s", s->name);
        s->config.name = s->name;
    }
    int status = conveyor_ring_create(&s->config, p, q);
    if (status != CONVEYOR_OK) {
        fail(s, "conveyor_ring_create returned %s", conveyor_status_name(status));
        return false;
    }
    if (s->backing == CONVEYOR_RING_MEMFD) {
        /* Children attach the fd; the parent's handles give their sides back. */
        s->ring_fd = fcntl(conveyor_ring_fd(*p), F_DUPFD_CLOEXEC, 0);
        conveyor_ring_destroy(*p);
        conveyor_ring_destroy(*q);
        *p = *q = NULL;
    } else if (s->backing == CONVEYOR_RING_NAMED) {
        /* The creator's handle keeps the name; the consumer side is given back. */
        conveyor_ring_destroy(*q);
        *q = NULL;
        s->first_producer_inherits = true;
    }
    int report_pipe[2];
    if (pipe(report_pipe) != 0) {
        fail(s, "pipe: %s", strerror(errno));
        return false;
    }
    s->report_rd = report_pipe[0];
    s->report_wr = report_pipe[1];
    fcntl(s->report_wr, F_SETPIPE_SZ, 1 << 20);  /* fewer stalls of a chatty consumer */
    return true;
}

static void close_ring(session *s) {
    conveyor_ring_destroy(s->producer);
    conveyor_ring_destroy(s->consumer);
    if (s->ring_fd >= 0) close(s->ring_fd);
    if (s->report_rd >= 0) close(s->report_rd);
    if (s->report_wr >= 0) close(s->report_wr);
    if (s->backing == CONVEYOR_RING_NAMED) {
        conveyor_ring *gone = NULL;
        errno = 0;
        CHECK_STATUS(conveyor_ring_attach_named(s->name, CONSUMER, &gone), CONVEYOR_E_SYSTEM);
        CHECK(errno == ENOENT);
        conveyor_ring_destroy(gone);
        if (unlink(named_path) == 0)
            fail(s, "%s was left behind after the creator destroyed its handle", named_path);
        named_path[0] = 0;
    }
}

/* The producer commits a last batch and closes; the consumer drains to END_OF_STREAM; then
 * a late attacher must find the ring closed. */
static void finish_stream(session *s) {
    s->combo = -1;
    s->episode = -1;
    uint64_t total = s->pnext + rng_below(3 * slots(s) + 1);
    report m;
    if (!order(s, PRODUCER, CMD_FINISH, 0, total) || !order(s, CONSUMER, CMD_FINISH, 0, 0) ||
        !await_report(s, PRODUCER, MSG_DONE, &m) || !await_report(s, CONSUMER, MSG_DONE, &m))
        return;
    expect_seq(s, "frames released in order by the end of the stream", s->released_next, total);
    if (!order(s, PRODUCER, CMD_EXIT, 0, 0) || !order(s, CONSUMER, CMD_EXIT, 0, 0)) return;
    reap(s, PRODUCER, false);
    reap(s, CONSUMER, false);

    pid_t pid = fork();
    if (pid == 0) late_child_main(s);
    if (pid < 0) {
        fail(s, "fork: %s", strerror(errno));
        return;
    }
    track_pid(pid, true);
    report late[2];
    bool got = await_report(s, PRODUCER, MSG_LATE, &late[0]) &&
               await_report(s, CONSUMER, MSG_LATE, &late[1]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    track_pid(pid, false);
    if (!got) return;
    if (late[0].value != CONVEYOR_E_CLOSED || late[1].value != CONVEYOR_E_END_OF_STREAM)
        fail(s, "a late producer's loan returned %s (expected CLOSED), a late consumer's "
             "receive %s (expected END_OF_STREAM)", conveyor_status_name(late[0].value),
             conveyor_status_name(late[1].value));
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void shuffle(int *order_of, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below((uint64_t)i + 1), t = order_of[i];
        order_of[i] = order_of[j];
        order_of[j] = t;
    }
}

static void run_backing(int index, int kill_count, uint64_t seed) {
    static const conveyor_ring_config shapes[BACKINGS] = {
        {.slot_count = 4, .slot_bytes = 512, .spin = 128},   /* memfd */
        {.slot_count = 1, .slot_bytes = 4096, .spin = 128},  /* named: a single slot */
        {.slot_count = 6, .slot_bytes = 200, .spin = 128},   /* anonymous */
    };
    session s = {.index = index, .backing = backing_order[index], .config = shapes[index],
                 .parent = getpid(), .ring_fd = -1, .report_rd = -1, .report_wr = -1,
                 .combo = -1, .previous = -1};
    s.config.backing = s.backing;
    rng_state = seed ^ (uint64_t)(index + 1) * 0xD1B54A32D192ED03ull;
    int64_t started = now_ns();
    int plan[COMBOS];
    for (int i = 0; i < COMBOS; i++) plan[i] = i;

    if (open_ring(&s) && spawn(&s, PRODUCER, 0) && spawn(&s, CONSUMER, UINT64_MAX)) {
        for (int i = 0; i < kill_count && !s.broken; i++) {
            if (i % COMBOS == 0) shuffle(plan, COMBOS);  /* every kind once per round */
            s.episode = i;
            s.previous = s.combo;
            s.combo = plan[i % COMBOS];
            s.poll = rng_below(2);
            if (episodes[s.combo](&s) && s.stashed != 0)
                fail(&s, "%d unexpected report(s), the first %s from the %s", s.stashed,
                     report_name(s.stash[0].kind), role_name(s.stash[0].role));
        }
        s.poll = false;
        if (!s.broken) finish_stream(&s);
    }
    stop_children(&s);
    close_ring(&s);
    int done = 0;
    for (int c = 0; c < COMBOS; c++) done += kills[index][c];
    printf("  %-9s %3d kills, %u slot(s) x %4llu B: %7llu frames released in order (%llu "
           "receptions checked), %llu received again after their consumer died, %.1f s%s\n",
           backing_names[index], done, s.config.slot_count,
           (unsigned long long)s.config.slot_bytes, (unsigned long long)s.released_next,
           (unsigned long long)s.received, (unsigned long long)s.redelivered,
           (double)(now_ns() - started) / 1e9,
           s.broken ? "  [BROKEN: rest skipped]" : "");
}

/* =========================================================================================
 * Report and leak checks
 * ========================================================================================= */

static int count_fds(void) {
    DIR *dir = opendir("/proc/self/fd");
    if (dir == NULL) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(dir)) != NULL;)
        if (e->d_name[0] != '.') n++;
    closedir(dir);
    return n;  /* includes the directory's own fd, at start and end alike */
}

static int compare_ms(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted values. */
static double percentile(const double *sorted, int n, double p) {
    int rank = (int)(p * n + 0.999999);
    return sorted[rank < 1 ? 0 : rank > n ? n - 1 : rank - 1];
}

static double detection(const sample *x) { return x->ms; }
static double victim_exit(const sample *x) { return x->exit_ms; }
static double survivor_wait(const sample *x) { return x->wait_ms; }

/* p50/p95/max of value(x) over the samples x that keep(x, arg) selects. */
static void print_distribution(const char *label, bool (*keep)(const sample *, int), int arg,
                               double (*value)(const sample *), bool assert_limits) {
    double *ms = malloc(sizeof *ms * (size_t)(sample_count + 1));
    int n = 0;
    for (int i = 0; i < sample_count; i++)
        if (keep(&samples[i], arg)) ms[n++] = value(&samples[i]);
    if (n > 0) {
        qsort(ms, (size_t)n, sizeof *ms, compare_ms);
        double p50 = percentile(ms, n, 0.50), p95 = percentile(ms, n, 0.95), max = ms[n - 1];
        printf("  %-22s %4d kills: p50 %6.2f ms, p95 %6.2f ms, max %7.2f ms\n", label, n, p50,
               p95, max);
        if (assert_limits && p95 > P95_LIMIT_MS) {
            fprintf(stderr, "kill_storm: p95 detection latency %.2f ms exceeds %.0f ms\n", p95,
                    P95_LIMIT_MS);
            failures++;
        }
    }
    free(ms);
}

static bool keep_all(const sample *x, int arg) { (void)x; (void)arg; return true; }
static bool keep_exit(const sample *x, int arg) { (void)arg; return x->exit_ms >= 0; }
static bool keep_wait(const sample *x, int arg) { (void)arg; return x->wait_ms >= 0; }
static bool keep_poll(const sample *x, int arg) { return x->poll == (arg != 0); }
static bool keep_backing(const sample *x, int arg) { return x->backing == arg; }
static bool keep_combo(const sample *x, int arg) { return x->combo == arg; }

static void print_results(void) {
    printf("kills per moment and backing:\n  %-38s", "");
    for (int b = 0; b < BACKINGS; b++) printf("%10s", backing_names[b]);
    printf("\n");
    for (int c = 0; c < COMBOS; c++) {
        printf("  %-38s", combo_names[c]);
        for (int b = 0; b < BACKINGS; b++) printf("%10d", kills[b][c]);
        printf("\n");
    }
    printf("  blocked victims seen asleep in the kernel before the kill:");
    for (int b = 0; b < BACKINGS; b++)
        printf(" %s %d/%d + %d/%d", backing_names[b], asleep_confirmed[b][0], asleep_tried[b][0],
               asleep_confirmed[b][1], asleep_tried[b][1]);
    printf(" (producer + consumer)\n");

    printf("detection latency, kill() -> the survivor's call returning PEER_DEAD:\n");
    print_distribution("all", keep_all, 0, detection, true);
    print_distribution("blocking survivor", keep_poll, 0, detection, false);
    print_distribution("polling survivor", keep_poll, 1, detection, false);
    for (int b = 0; b < BACKINGS; b++)
        print_distribution(backing_names[b], keep_backing, b, detection, false);
    for (int c = 0; c < COMBOS; c++)
        print_distribution(combo_names[c], keep_combo, c, detection, false);
    static const double edges[] = {1, 2, 5, 10, 20, 50, 100, 1000};
    int buckets[9] = {0};
    for (int i = 0; i < sample_count; i++) {
        int k = 0;
        while (k < 8 && samples[i].ms >= edges[k]) k++;
        buckets[k]++;
    }
    printf("  histogram: <1 ms %d | <2 %d | <5 %d | <10 %d | <20 %d | <50 %d | <100 %d | <1000 %d"
           " | >=1000 %d\n", buckets[0], buckets[1], buckets[2], buckets[3], buckets[4],
           buckets[5], buckets[6], buckets[7], buckets[8]);
    printf("where the time goes (not the ring's doing): the victim's exit, kill() -> its pidfd "
           "readable as the parent saw it, and the survivor's time runnable without a CPU:\n");
    print_distribution("victim gone", keep_exit, 0, victim_exit, false);
    print_distribution("survivor's CPU wait", keep_wait, 0, survivor_wait, false);
}

static uint64_t env_number(const char *name, uint64_t fallback) {
    const char *text = getenv(name);
    if (text == NULL || *text == 0) return fallback;
    char *end;
    uint64_t value = strtoull(text, &end, 0);
    return *end == 0 ? value : fallback;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);  /* in order with stderr in a CI log */
    signal(SIGPIPE, SIG_IGN);
    uint64_t seed = env_number("KILL_STORM_SEED", DEFAULT_SEED);
    int total = (int)env_number("KILL_STORM_KILLS", DEFAULT_KILLS);
    if (total < BACKINGS) total = BACKINGS;
    signal(SIGALRM, on_watchdog);
    alarm(total <= DEFAULT_KILLS ? WATCHDOG_SECONDS
                                 : (unsigned)((uint64_t)WATCHDOG_SECONDS * total / DEFAULT_KILLS));
    samples = calloc((size_t)total, sizeof *samples);
    static shm_snapshot shm_before;
    shm_snapshot_take(&shm_before);
    int fds_before = count_fds();
    int64_t started = now_ns();
    printf("kill_storm: %d kills, seed 0x%016llx (KILL_STORM_SEED, KILL_STORM_KILLS)\n", total,
           (unsigned long long)seed);

    for (int b = 0; b < BACKINGS; b++)
        run_backing(b, total / BACKINGS + (b < total % BACKINGS), seed);
    print_results();

    int fds_after = count_fds();
    int shm_added = shm_entries_added_since(&shm_before);  /* every name, whoever made it */
    failures += shm_added;
    if (fds_after != fds_before) {
        fprintf(stderr, "kill_storm: %d fds open at the start, %d at the end\n", fds_before,
                fds_after);
        failures++;
    }
    errno = 0;
    CHECK(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD);  /* no child, no zombie */
    printf("  leaks: %d new /dev/shm entries, fds %d -> %d, children left: none; %.1f s\n",
           shm_added, fds_before, fds_after,
           (double)(now_ns() - started) / 1e9);
    free(samples);
    return finish("kill_storm");
}
