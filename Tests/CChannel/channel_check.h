/*
 * channel_check.h — what the pool and channel tests share beyond Tests/CRing/check.h
 * (CHECK, CHECK_STATUS, now_ms, the /dev/shm snapshot, finish): children that die with
 * the test and are all reaped, a watchdog that turns a hang into a failure, waits for
 * events (a counter of the channel's stats) instead of sleeps, and the word encodings.
 * Each test program is one translation unit: `failures` and the helpers are its own.
 */
#ifndef CONVEYOR_TEST_CHANNEL_CHECK_H
#define CONVEYOR_TEST_CHANNEL_CHECK_H

#include "../CRing/check.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* One detection time is one sample of a scheduler on a shared machine: here it only has
 * to be far from a hang (the promise is ~10 ms; the kill storm holds it statistically). */
#define LATENCY_GUARD_MS 1000
/* Every call that waits in these tests is given this bound, so a bug is a failed check
 * with its line, not a hung CI job. */
#define GUARD_NS 10000000000LL

/* The process that runs main(): children compare against it to know they are children. */
static pid_t test_main_pid = 0;

static void watchdog_fired(int sig) {
    (void)sig;
    static const char message[] = "watchdog: the test hung; killing it and its children\n";
    if (write(2, message, sizeof message - 1) < 0) _exit(98);
    _exit(99);
}

/* Starts a test program: a whole-program watchdog (children die with it, see fork_child),
 * unbuffered progress lines so a fork never duplicates them. */
static inline void test_start(const char *program, unsigned watchdog_seconds) {
    test_main_pid = getpid();
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGALRM, watchdog_fired);
    alarm(watchdog_seconds);
    printf("%s:\n", program);
}

/* fork() whose child is killed when the test process dies (a hung or crashed test leaves
 * no orphan behind) and has no watchdog of its own. Returns as fork does. */
static inline pid_t fork_child(void) {
    fflush(NULL);
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) {
        alarm(0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(97);  /* the parent died before the prctl */
    }
    return child;
}

/* Waits for `child` and returns its exit code, or 128 + signal if a signal ended it,
 * or -1 if waitpid failed. */
static inline int reap(pid_t child) {
    int status = 0;
    pid_t got;
    while ((got = waitpid(child, &status, 0)) < 0 && errno == EINTR) {}
    if (got != child) return -1;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

/* Reaps `child` and checks it exited with 0, naming what it was doing if not. */
#define CHECK_CHILD_OK(child, what)                                                     \
    do {                                                                                \
        int code_ = reap(child);                                                        \
        if (code_ != 0) {                                                               \
            fprintf(stderr, "%s:%d: child (%s) ended with %s %d\n", __FILE__, __LINE__,   \
                    what, code_ >= 128 ? "signal" : "exit code",                        \
                    code_ >= 128 ? code_ - 128 : code_);                                \
            failures++;                                                                 \
        }                                                                               \
    } while (0)

/* Kills and reaps a child that is expected to be alive (pause()ing or waiting). */
static inline void kill_and_reap(pid_t child) {
    kill(child, SIGKILL);
    reap(child);
}

/* True when this process has no child left, dead or alive: every test reaped its own. */
static inline bool no_children_left(void) {
    return waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD;
}

/* A pipe a child uses to say "I got this far" (one byte, 1 = fine) or to send a value. */
typedef struct {
    int fds[2];
} signal_pipe;

static inline void pipe_open(signal_pipe *p) {
    if (pipe(p->fds) != 0) {
        perror("pipe");
        exit(2);
    }
}

static inline void pipe_close(signal_pipe *p) {
    close(p->fds[0]);
    close(p->fds[1]);
}

static inline bool pipe_put(signal_pipe *p, const void *value, size_t size) {
    return write(p->fds[1], value, size) == (ssize_t)size;
}

static inline bool pipe_get(signal_pipe *p, void *value, size_t size) {
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(p->fds[0], (char *)value + got, size - got);
        if (n <= 0) return false;
        got += (size_t)n;
    }
    return true;
}

/* The parent side of "tell me you are ready": one byte 1 from the child. */
static inline bool pipe_ready(signal_pipe *p) {
    char ok = 0;
    return pipe_get(p, &ok, 1) && ok == 1;
}

static inline void pipe_say(signal_pipe *p, bool ok) {
    char byte = ok ? 1 : 0;
    if (!pipe_put(p, &byte, 1)) _exit(90);
}

static inline conveyor_channel_config channel_config(uint32_t lanes, uint32_t capacity,
                                                     uint32_t spin, int backing) {
    conveyor_channel_config c = {.lanes = lanes, .capacity = capacity, .spin = spin,
                                 .backing = backing};
    return c;
}

/* A channel of `lanes` x `capacity` words: its holder (fails the test if it cannot). */
static inline conveyor_channel *make_channel(uint32_t lanes, uint32_t capacity, uint32_t spin,
                                             int backing) {
    conveyor_channel_config c = channel_config(lanes, capacity, spin, backing);
    conveyor_channel *holder = NULL;
    CHECK_STATUS(conveyor_channel_create(&c, &holder), CONVEYOR_OK);
    return holder;
}

/* Opens an end of `holder`; NULL (and a failure counted) if it cannot. In a forked child
 * the failure is its exit status, 80 + the status, which the parent's CHECK_CHILD_OK shows. */
static inline conveyor_channel *open_end(const conveyor_channel *holder, int role, uint32_t lane) {
    conveyor_channel *end = NULL;
    int s = conveyor_channel_open(holder, role, lane, &end);
    if (s != CONVEYOR_OK) {
        if (getpid() != test_main_pid) _exit(80 + s);
        fprintf(stderr, "open(role %d, lane %u): %s\n", role, lane, conveyor_status_name(s));
        failures++;
        return NULL;
    }
    return end;
}

static inline conveyor_pool_config pool_config(uint32_t slots, uint64_t bytes, int backing) {
    conveyor_pool_config c = {.slot_count = slots, .slot_bytes = bytes, .backing = backing};
    return c;
}

/* A channel statistic by offset, e.g. offsetof(conveyor_channel_stats, receiver_waits);
 * UINT64_MAX if the stats cannot be read. */
static inline uint64_t channel_stat(const conveyor_channel *ch, size_t offset) {
    conveyor_channel_stats st;
    if (conveyor_channel_read_stats(ch, &st, sizeof st) != CONVEYOR_OK) return UINT64_MAX;
    return *(const uint64_t *)((const char *)&st + offset);
}

#define STAT(ch, field) channel_stat((ch), offsetof(conveyor_channel_stats, field))

/* Waits until a counter reaches `at_least`: the event that the other end went to sleep.
 * A 10 s guard turns a bug into a failed check, not a hang. */
static inline bool wait_for_stat(const conveyor_channel *ch, size_t offset, uint64_t at_least) {
    double give_up = now_ms() + 10000;
    uint64_t value;
    while ((value = channel_stat(ch, offset)) < at_least || value == UINT64_MAX) {
        if (now_ms() > give_up) return false;
        usleep(100);
    }
    return true;
}

#define WAIT_FOR_STAT(ch, field, at_least) \
    wait_for_stat((ch), offsetof(conveyor_channel_stats, field), (at_least))

/* The word a sender puts at position i of lane `lane`: lane in the high 16 bits, the
 * sequence number in the low 40, a check pattern between, so a misplaced, torn or
 * invented word is told from a real one. */
static inline uint64_t lane_word(uint32_t lane, uint64_t seq) {
    return (uint64_t)lane << 48 | ((seq * 0x2545u) & 0xFF) << 40 | (seq & 0xFFFFFFFFFFull);
}

static inline bool lane_word_valid(uint64_t word, uint32_t *lane, uint64_t *seq) {
    *lane = (uint32_t)(word >> 48);
    *seq = word & 0xFFFFFFFFFFull;
    return lane_word(*lane, *seq) == word;
}

/* A full-width word for position i of a stream (checksummed streams). */
static inline uint64_t stream_word(uint64_t i) { return (i + 1) * 0x9E3779B97F4A7C15ull; }

/* A name unique to this test process and call site, e.g. "/conveyor-cchan-1234-pool-0". */
static inline void unique_name(char *out, size_t size, const char *what) {
    static int counter = 0;
    snprintf(out, size, "/conveyor-cchan-%d-%s-%d", (int)getpid(), what, counter++);
}

/* A deterministic generator for the stress rounds (splitmix64). */
static inline uint64_t next_random(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Counts (and names on stderr) the entries of /dev/shm that `before` did not have and that
 * these tests made: every name they create starts "conveyor-cchan-" (unique_name). Other
 * programs running at the same time (other test suites on a shared machine) may add their
 * own entries; those are not ours to judge. */
static inline int shm_own_entries_added_since(const shm_snapshot *before) {
    static shm_snapshot now;
    shm_snapshot_take(&now);
    int added = 0;
    for (int i = 0; i < now.count; i++) {
        if (strncmp(now.names[i], "conveyor-cchan-", 15) != 0) continue;
        int known = 0;
        for (int j = 0; j < before->count && !known; j++)
            known = strcmp(now.names[i], before->names[j]) == 0;
        if (!known) {
            fprintf(stderr, "left in /dev/shm: %s\n", now.names[i]);
            added++;
        }
    }
    return added;
}

/* Ends a test program: /dev/shm as it was, every child reaped, then the verdict. */
static inline int finish_channel_test(const char *program, const shm_snapshot *shm_before) {
    failures += shm_own_entries_added_since(shm_before);
    if (!no_children_left()) {
        fprintf(stderr, "%s: a child process was left unreaped\n", program);
        failures++;
        while (waitpid(-1, NULL, WNOHANG) > 0) {}
    }
    return finish(program);
}

#endif /* CONVEYOR_TEST_CHANNEL_CHECK_H */
