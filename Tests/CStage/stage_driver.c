/*
 * stage_driver.c — conveyor.h section 10 from the PIPELINE's side, with conveyor.h and
 * POSIX only: it makes the MEMFD pools and one-lane channels a pipeline would, starts the
 * stage program given as argv[1] (Tests/StagePrograms/kernel_stage.c) with posix_spawn,
 * the CONVEYOR_STAGE line and the fds dup2'd to 3...7, and plays the protocol: input slots
 * filled and described, two words per item on `jobs`, the output word back on `done`,
 * checked bit for bit against the same kernel run here; `jobs` closed at the end, exit 0.
 *
 * Then every way a stage can stop early, each asserting the exit status (or signal) and the
 * report line: a failing callback, a crash, an exit(0) in the middle, a hang (the driver's
 * own deadline, then SIGKILL), contracts refused (type, shape) and malformed (bad token,
 * another protocol version, no contract at all, a wrong parent), a descriptor the pipeline
 * should never write, in-place and source stages, and the parent-death rule: the stage's
 * parent is SIGKILLed while the stage waits, and the stage must die with it.
 *
 * No wait here relies on a sleep being long enough: the driver waits for events (a word
 * on `done`, EOF on the report pipe, a child's exit) in 10 ms receive slices, checking
 * between slices whether the program is still alive, under generous deadlines.
 * Built and run by scripts/test-c, also under ASan+UBSan.
 */
#include "../CChannel/channel_check.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>

extern char **environ;

#define ITEMS 12u
#define SLOTS 4u      /* slots per pool: also the items in flight */
#define ROWS 50u
#define COLS 40u
#define SLICE_NS 10000000LL       /* one receive slice on `done`: 10 ms */
#define ITEM_DEADLINE_MS 10000.0  /* a live stage serves an item well within this */
#define HANG_DEADLINE_MS 2000.0   /* the --hang-at test's own deadline */
#define EXIT_DEADLINE_MS 20000.0  /* a stage that was told to stop has exited by then */
#define FD_BASE 3                 /* in_pool=3 out_pool=4 jobs=5 done=6 report=7 */
#define HIGH_FDS 20               /* sources are moved above this before the dup2s */

static const char *stage_program = NULL;

/* Every program started, to tell at the end that none left anything in /dev/shm. */
static pid_t spawned[64];
static int spawned_count = 0;

/* libomp registers each process that initializes it as /dev/shm/__KMP_REGISTERED_LIB_<pid>_
 * <uid> and removes the file when the process exits normally; a stage killed by a signal
 * (crashed, hung, its parent gone) leaves it behind, so whoever reaps the stage removes it,
 * as a pipeline must. Called while the dead stage is still a zombie, so its pid cannot have
 * been reused yet. */
static void remove_registration(pid_t pid) {
    char prefix[64];
    int length = snprintf(prefix, sizeof prefix, "__KMP_REGISTERED_LIB_%d_", (int)pid);
    DIR *dir = opendir("/dev/shm");
    if (dir == NULL) return;
    for (struct dirent *e; (e = readdir(dir)) != NULL;) {
        if (strncmp(e->d_name, prefix, (size_t)length) != 0) continue;
        char path[512];
        snprintf(path, sizeof path, "/dev/shm/%s", e->d_name);
        unlink(path);
    }
    closedir(dir);
}

/* Waits for `pid` to die, removes its registration while it is a zombie, then reaps it:
 * returns reap()'s code. */
static int reap_cleaned(pid_t pid) {
    siginfo_t info;
    while (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT) != 0 && errno == EINTR) {}
    remove_registration(pid);
    return reap(pid);
}

/* Entries of /dev/shm that name a program this test started (its libomp registration). */
static int shm_left_by_stages(void) {
    int left = 0;
    for (int i = 0; i < spawned_count; i++) {
        char prefix[64];
        int length = snprintf(prefix, sizeof prefix, "__KMP_REGISTERED_LIB_%d_", (int)spawned[i]);
        DIR *dir = opendir("/dev/shm");
        if (dir == NULL) return 0;
        for (struct dirent *e; (e = readdir(dir)) != NULL;)
            if (strncmp(e->d_name, prefix, (size_t)length) == 0) {
                fprintf(stderr, "left in /dev/shm by stage %d: %s\n", (int)spawned[i], e->d_name);
                left++;
            }
        closedir(dir);
    }
    return left;
}

/* What the kernel_stage program computes, redone here to check its output bit for bit. */
typedef struct kernel {
    const char *op;   /* "square", "mul", "add", "copy" */
    double a;
} kernel;

typedef struct harness {
    uint32_t dtype;          /* CONVEYOR_DTYPE_F64 or _F32 */
    bool source, in_place;
    uint64_t n, bytes;       /* elements and bytes of one item */
    conveyor_pool *in_pool, *out_pool;  /* in_pool NULL for a source; out_pool NULL in place */
    conveyor_channel *jobs_holder, *done_holder, *jobs, *done;
    int report[2];           /* read end kept; the write end is the program's */
    pid_t pid;
    bool reaped;
    int code;                /* exit code or 128 + signal once reaped */
    char report_text[1024];
    size_t report_length;
} harness;

static size_t elem_size(uint32_t dtype) { return dtype == CONVEYOR_DTYPE_F64 ? 8 : 4; }

static void harness_open(harness *h, uint32_t dtype, bool source, bool in_place) {
    *h = (harness){.dtype = dtype, .source = source, .in_place = in_place, .pid = -1,
                   .report = {-1, -1}, .code = -1};
    h->n = (uint64_t)ROWS * COLS;
    h->bytes = h->n * elem_size(dtype);
    conveyor_pool_config pc = pool_config(SLOTS, h->bytes, CONVEYOR_RING_MEMFD);
    if (!source) CHECK_STATUS(conveyor_pool_create(&pc, &h->in_pool), CONVEYOR_OK);
    if (!in_place) CHECK_STATUS(conveyor_pool_create(&pc, &h->out_pool), CONVEYOR_OK);
    h->jobs_holder = make_channel(1, 2 * SLOTS, 256, CONVEYOR_RING_MEMFD);
    h->done_holder = make_channel(1, 2 * SLOTS, 256, CONVEYOR_RING_MEMFD);
    if (h->jobs_holder) h->jobs = open_end(h->jobs_holder, CONVEYOR_CHANNEL_SENDER, 0);
    if (h->done_holder) h->done = open_end(h->done_holder, CONVEYOR_CHANNEL_RECEIVER, 0);
    CHECK(pipe2(h->report, O_CLOEXEC) == 0);
}

static void harness_close(harness *h) {
    conveyor_channel_destroy(h->jobs);
    conveyor_channel_destroy(h->done);
    conveyor_channel_destroy(h->jobs_holder);
    conveyor_channel_destroy(h->done_holder);
    conveyor_pool_destroy(h->in_pool);
    conveyor_pool_destroy(h->out_pool);
    if (h->report[0] >= 0) close(h->report[0]);
    if (h->report[1] >= 0) close(h->report[1]);
}

/* The pool the outputs land in: in place, the input pool. */
static conveyor_pool *output_pool(const harness *h) { return h->in_place ? h->in_pool : h->out_pool; }

static const char *dtype_text(uint32_t dtype) { return dtype == CONVEYOR_DTYPE_F64 ? "f64" : "f32"; }

/* The right CONVEYOR_STAGE line for `h`, naming `parent`. */
static void contract_line(const harness *h, pid_t parent, const char *name, char *out, size_t size) {
    const char *t = dtype_text(h->dtype);
    char in[64], in_pool[32] = "";
    if (h->source) snprintf(in, sizeof in, "none");
    else {
        snprintf(in, sizeof in, "%s:%ux%u", t, ROWS, COLS);
        snprintf(in_pool, sizeof in_pool, " in_pool=%d", FD_BASE);
    }
    char out_pool[16];
    if (h->in_place) snprintf(out_pool, sizeof out_pool, "in");
    else snprintf(out_pool, sizeof out_pool, "%d", FD_BASE + 1);
    snprintf(out, size, "conveyor-stage/1 in=%s out=%s:%ux%u%s out_pool=%s jobs=%d done=%d "
             "report=%d parent=%d replica=0 name=%s", in, t, ROWS, COLS, in_pool, out_pool,
             FD_BASE + 2, FD_BASE + 3, FD_BASE + 4, (int)parent, name);
}

/* Starts the program with `args` (NULL-terminated, after the program's path), `line` as
 * CONVEYOR_STAGE (NULL: the variable unset) and the harness's fds at 3...7. The sources
 * are first moved above HIGH_FDS (F_DUPFD_CLOEXEC), so no dup2 target can be a source
 * still to be duplicated. `quiet` sends the program's stderr to /dev/null. Closes the
 * report pipe's write end here: the program holds the only one left. */
static pid_t spawn_stage(harness *h, const char *line, const char *const *args, bool quiet) {
    int sources[5] = {
        h->in_pool ? conveyor_pool_fd(h->in_pool) : -1,
        h->out_pool ? conveyor_pool_fd(h->out_pool) : -1,
        conveyor_channel_fd(h->jobs_holder), conveyor_channel_fd(h->done_holder), h->report[1],
    };
    int high[5];
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    for (int i = 0; i < 5; i++) {
        high[i] = sources[i] < 0 ? -1 : fcntl(sources[i], F_DUPFD_CLOEXEC, HIGH_FDS);
        if (sources[i] >= 0) CHECK(high[i] > HIGH_FDS - 1);
        if (high[i] >= 0) posix_spawn_file_actions_adddup2(&actions, high[i], FD_BASE + i);
    }
    if (quiet) posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);

    /* The environment as it is (sanitizer options included), CONVEYOR_STAGE replaced. */
    size_t count = 0;
    while (environ[count]) count++;
    char **envp = calloc(count + 2, sizeof *envp);
    char *variable = NULL;
    size_t used = 0;
    for (size_t i = 0; i < count; i++)
        if (strncmp(environ[i], CONVEYOR_STAGE_ENV "=", strlen(CONVEYOR_STAGE_ENV) + 1) != 0)
            envp[used++] = environ[i];
    if (line != NULL) {
        size_t length = strlen(CONVEYOR_STAGE_ENV) + 1 + strlen(line) + 1;
        variable = malloc(length);
        snprintf(variable, length, "%s=%s", CONVEYOR_STAGE_ENV, line);
        envp[used++] = variable;
    }
    const char *argv[16] = {stage_program};
    for (int i = 0; args[i] != NULL && i < 14; i++) argv[i + 1] = args[i];

    fflush(NULL);
    pid_t pid = -1;
    int error = posix_spawn(&pid, stage_program, &actions, NULL, (char *const *)argv, envp);
    if (error != 0) {
        fprintf(stderr, "posix_spawn %s: %s\n", stage_program, strerror(error));
        failures++;
        pid = -1;
    } else if (spawned_count < (int)(sizeof spawned / sizeof spawned[0])) {
        spawned[spawned_count++] = pid;
    }
    posix_spawn_file_actions_destroy(&actions);
    for (int i = 0; i < 5; i++)
        if (high[i] >= 0) close(high[i]);
    close(h->report[1]);
    h->report[1] = -1;
    free(variable);
    free(envp);
    return pid;
}

static pid_t start(harness *h, const char *const *args) {
    char line[512];
    contract_line(h, getpid(), "k", line, sizeof line);
    return h->pid = spawn_stage(h, line, args, false);
}

/* Whether the program has ended (never blocks, never reaps: finish_stage does, after
 * removing what it left). A pid that is not our child (the parent-death test's stage
 * before its parent dies) reads as still running. */
static bool stage_ended(harness *h) {
    if (h->reaped) return true;
    siginfo_t info = {0};
    return waitid(P_PID, (id_t)h->pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
           info.si_pid == h->pid;
}

/* Waits for the next word on `done` in 10 ms slices, checking between slices whether the
 * program is still alive. CONVEYOR_OK with *word; CONVEYOR_E_PEER_DEAD once the program is
 * gone (and every word it sent taken); CONVEYOR_E_TIMEOUT at the deadline; another status
 * from the channel as it is. */
static int wait_done(harness *h, double deadline_ms, uint64_t *word) {
    for (;;) {
        int s = conveyor_channel_receive(h->done, 0, SLICE_NS, word);
        if (s != CONVEYOR_E_TIMEOUT) return s;
        if (stage_ended(h)) {
            s = conveyor_channel_receive(h->done, 0, 0, word);  /* what it sent before */
            return s == CONVEYOR_OK ? s : CONVEYOR_E_PEER_DEAD;
        }
        if (now_ms() > deadline_ms) return CONVEYOR_E_TIMEOUT;
    }
}

static uint64_t job_word(uint64_t item, uint32_t slot) { return item << 24 | slot; }

/* Input i: uniform stream (7, i), scaled to [-2, 2) so that squares and sums move bits. */
static void make_input(const harness *h, uint64_t item, void *out) {
    if (h->dtype == CONVEYOR_DTYPE_F64) {
        conveyor_f64_fill_uniform(out, h->n, 7, item, 0);
        conveyor_f64_affine(out, out, 4.0, -2.0, h->n);
    } else {
        conveyor_f32_fill_uniform(out, h->n, 7, item, 0);
        conveyor_f32_affine(out, out, 4.0f, -2.0f, h->n);
    }
}

/* What the program must produce for `item`, computed here with the same kernels. */
static void expected_output(const harness *h, const kernel *k, uint64_t item, void *out) {
    bool f64 = h->dtype == CONVEYOR_DTYPE_F64;
    if (h->source) {
        if (f64) conveyor_f64_fill_uniform(out, h->n, 0, item, 0);
        else conveyor_f32_fill_uniform(out, h->n, 0, item, 0);
    } else {
        make_input(h, item, out);
    }
    int s;
    if (strcmp(k->op, "square") == 0) s = f64 ? conveyor_f64_square(out, out, h->n) : conveyor_f32_square(out, out, h->n);
    else if (strcmp(k->op, "mul") == 0) s = f64 ? conveyor_f64_mul_scalar(out, out, k->a, h->n) : conveyor_f32_mul_scalar(out, out, (float)k->a, h->n);
    else if (strcmp(k->op, "add") == 0) s = f64 ? conveyor_f64_add_scalar(out, out, k->a, h->n) : conveyor_f32_add_scalar(out, out, (float)k->a, h->n);
    else s = CONVEYOR_OK;  /* copy */
    CHECK_STATUS(s, CONVEYOR_OK);
}

static conveyor_frame_info item_frame(const harness *h, uint64_t item) {
    conveyor_frame_info f = {.dtype = h->dtype, .rank = 2, .shape = {ROWS, COLS},
                             .byte_length = h->bytes, .tag = item};
    return f;
}

/* Puts item `item` in its input slot and sends its two words. `bad_tag`: describe the
 * input with another item's tag (a descriptor the pipeline should never write). */
static int send_item(harness *h, uint64_t item, bool bad_tag) {
    uint32_t slot = (uint32_t)(item % SLOTS);
    uint64_t in_word = job_word(item, h->source ? CONVEYOR_STAGE_NO_SLOT : slot);
    uint64_t out_word = h->in_place ? in_word : job_word(item, slot);
    if (!h->source) {
        make_input(h, item, conveyor_pool_slot(h->in_pool, slot));
        conveyor_frame_info f = item_frame(h, bad_tag ? item + 5 : item);
        CHECK_STATUS(conveyor_pool_describe(h->in_pool, slot, &f), CONVEYOR_OK);
    }
    int s = conveyor_channel_send(h->jobs, in_word, GUARD_NS);
    if (s == CONVEYOR_OK) s = conveyor_channel_send(h->jobs, out_word, GUARD_NS);
    return s;
}

/* Checks item `item`'s output, bit for bit, in the slot `word` names. */
static void check_output(const harness *h, const kernel *k, uint64_t item, uint64_t word) {
    uint32_t slot = (uint32_t)(item % SLOTS);
    uint64_t expect_word = job_word(item, slot);  /* in place too: the input word */
    CHECK(word == expect_word);
    const void *data = NULL;
    conveyor_frame_info info;
    CHECK_STATUS(conveyor_pool_frame(output_pool(h), slot, &data, &info), CONVEYOR_OK);
    conveyor_frame_info want = item_frame(h, item);
    CHECK(info.dtype == want.dtype && info.rank == 2 && info.shape[0] == ROWS &&
          info.shape[1] == COLS && info.byte_length == want.byte_length && info.tag == item);
    void *expected = malloc(h->bytes);
    expected_output(h, k, item, expected);
    if (data == NULL || memcmp(data, expected, h->bytes) != 0) {
        fprintf(stderr, "item %llu: the output differs from the kernel's\n", (unsigned long long)item);
        failures++;
    }
    free(expected);
}

/* Runs items 0...count-1 with up to SLOTS in flight; returns the first status that is not
 * CONVEYOR_OK (the stage stopped early, or hung past `item_deadline_ms`) and the number of
 * items completed. `bad_tag_at`: the item whose input is misdescribed (or UINT64_MAX). */
static int run_items(harness *h, const kernel *k, uint64_t count, double item_deadline_ms,
                     uint64_t bad_tag_at, uint64_t *completed) {
    uint64_t sent = 0;
    *completed = 0;
    while (*completed < count) {
        while (sent < count && sent - *completed < SLOTS) {
            int s = send_item(h, sent, sent == bad_tag_at);
            if (s != CONVEYOR_OK) return s;
            sent++;
        }
        uint64_t word;
        int s = wait_done(h, now_ms() + item_deadline_ms, &word);
        if (s != CONVEYOR_OK) return s;
        check_output(h, k, *completed, word);
        (*completed)++;
    }
    return CONVEYOR_OK;
}

/* Reads the report pipe until EOF (the program has exited: nothing else holds the write
 * end) or the deadline, then reaps the program; SIGKILLs it first at the deadline (a
 * failure). Returns its exit code, or 128 + signal. */
static int finish_stage(harness *h, double deadline_ms) {
    for (;;) {
        double left = deadline_ms - now_ms();
        struct pollfd p = {.fd = h->report[0], .events = POLLIN};
        int ready = left > 0 ? poll(&p, 1, (int)left + 1) : 0;
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) {
            fprintf(stderr, "stage %d did not exit before its deadline\n", (int)h->pid);
            failures++;
            kill(h->pid, SIGKILL);
            break;
        }
        char *at = h->report_text + h->report_length;
        size_t room = sizeof h->report_text - 1 - h->report_length;
        ssize_t n = read(h->report[0], room ? at : (char[64]){0}, room ? room : 64);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;  /* EOF */
        if (room) h->report_length += (size_t)n;
    }
    h->report_text[h->report_length] = '\0';
    if (!h->reaped) {
        h->code = reap_cleaned(h->pid);
        h->reaped = true;
    }
    return h->code;
}

static bool report_has(const harness *h, const char *text) {
    if (strstr(h->report_text, text) != NULL) return true;
    fprintf(stderr, "report '%s' lacks '%s'\n", h->report_text, text);
    return false;
}

/* ---- the stage serves a whole stream -------------------------------------------------- */

static void serve_stream(const char *what, uint32_t dtype, bool source, bool in_place,
                         const kernel *k, const char *const *args) {
    harness h;
    harness_open(&h, dtype, source, in_place);
    start(&h, args);
    uint64_t completed = 0;
    CHECK_STATUS(run_items(&h, k, ITEMS, ITEM_DEADLINE_MS, UINT64_MAX, &completed), CONVEYOR_OK);
    CHECK(completed == ITEMS);
    CHECK_STATUS(conveyor_channel_close(h.jobs), CONVEYOR_OK);
    uint64_t word;
    CHECK_STATUS(wait_done(&h, now_ms() + ITEM_DEADLINE_MS, &word), CONVEYOR_E_END_OF_STREAM);
    CHECK(finish_stage(&h, now_ms() + EXIT_DEADLINE_MS) == 0);
    CHECK(h.report_length == 0);
    printf("  %s: %u items checked bit for bit, exit 0\n", what, ITEMS);
    harness_close(&h);
}

static void test_streams(void) {
    const kernel square = {"square", 0}, mul3 = {"mul", 3.0}, add = {"add", 1.5}, copy = {"copy", 0};
    serve_stream("f64 square", CONVEYOR_DTYPE_F64, false, false, &square, (const char *[]){"square", NULL});
    serve_stream("f32 add 1.5", CONVEYOR_DTYPE_F32, false, false, &add, (const char *[]){"add", "1.5", NULL});
    serve_stream("f64 mul 3, in place", CONVEYOR_DTYPE_F64, false, true, &mul3,
                 (const char *[]){"mul", "3", NULL});
    serve_stream("f64 copy, in place", CONVEYOR_DTYPE_F64, false, true, &copy, (const char *[]){"copy", NULL});
    serve_stream("f64 source (in=none), square", CONVEYOR_DTYPE_F64, true, false, &square,
                 (const char *[]){"square", NULL});
    serve_stream("f32 source (in=none), copy", CONVEYOR_DTYPE_F32, true, false, &copy,
                 (const char *[]){"copy", NULL});
}

/* ---- a stage that stops early ----------------------------------------------------------- */

/* Runs a stream against a program told to stop; returns the items completed, with the
 * harness's code and report filled. */
static uint64_t run_until_stop(harness *h, const char *const *args, double item_deadline_ms,
                               uint64_t bad_tag_at, int *run_status) {
    static const kernel square = {"square", 0};
    start(h, args);
    uint64_t completed = 0;
    *run_status = run_items(h, &square, ITEMS, item_deadline_ms, bad_tag_at, &completed);
    return completed;
}

static void test_fail_at(void) {
    harness h;
    harness_open(&h, CONVEYOR_DTYPE_F64, false, false);
    int s;
    uint64_t done = run_until_stop(&h, (const char *[]){"square", "--fail-at", "3", NULL},
                                   ITEM_DEADLINE_MS, UINT64_MAX, &s);
    CHECK_STATUS(s, CONVEYOR_E_PEER_DEAD);
    CHECK(done == 3);
    CHECK(finish_stage(&h, now_ms() + EXIT_DEADLINE_MS) == 1);
    CHECK(report_has(&h, "stage 'k' item 3: asked to fail at item 3\n"));
    printf("  --fail-at 3: %llu items done, exit 1, report: %s", (unsigned long long)done, h.report_text);
    harness_close(&h);
}

static void test_crash_at(void) {
    harness h;
    harness_open(&h, CONVEYOR_DTYPE_F64, false, false);
    int s;
    uint64_t done = run_until_stop(&h, (const char *[]){"square", "--crash-at", "2", NULL},
                                   ITEM_DEADLINE_MS, UINT64_MAX, &s);
    CHECK_STATUS(s, CONVEYOR_E_PEER_DEAD);
    CHECK(done == 2);
    CHECK(finish_stage(&h, now_ms() + EXIT_DEADLINE_MS) == 128 + SIGSEGV);
    CHECK(h.report_length == 0);
    printf("  --crash-at 2: %llu items done, killed by SIGSEGV, no report\n", (unsigned long long)done);
    harness_close(&h);
}

/* exit(0) before item 2's done: a clean exit status is still a failure while items are
 * owed, and the driver notices it between receive slices. */
static void test_exit_at(void) {
    harness h;
    harness_open(&h, CONVEYOR_DTYPE_F64, false, false);
    int s;
    uint64_t done = run_until_stop(&h, (const char *[]){"square", "--exit-at", "2", NULL},
                                   ITEM_DEADLINE_MS, UINT64_MAX, &s);
    CHECK_STATUS(s, CONVEYOR_E_PEER_DEAD);
    CHECK(done == 2);
    CHECK(finish_stage(&h, now_ms() + EXIT_DEADLINE_MS) == 0);
    CHECK(h.report_length == 0);
    printf("  --exit-at 2: exited 0 before done of item %llu: detected\n", (unsigned long long)done);
    harness_close(&h);
}

static void test_hang_at(void) {
    harness h;
    harness_open(&h, CONVEYOR_DTYPE_F64, false, false);
    int s;
    double start_ms = now_ms();
    uint64_t done = run_until_stop(&h, (const char *[]){"square", "--hang-at", "1", NULL},
                                   HANG_DEADLINE_MS, UINT64_MAX, &s);
    CHECK_STATUS(s, CONVEYOR_E_TIMEOUT);
    CHECK(done == 1);
    CHECK(!stage_ended(&h));
    CHECK(kill(h.pid, SIGKILL) == 0);
    CHECK(finish_stage(&h, now_ms() + EXIT_DEADLINE_MS) == 128 + SIGKILL);
    CHECK(kill(h.pid, 0) == -1 && errno == ESRCH);  /* reaped: gone for good */
    printf("  --hang-at 1: deadline after %.0f ms, SIGKILLed and reaped\n", now_ms() - start_ms);
    harness_close(&h);
}

/* A program that refuses the contract exits 2 before it touches anything. */
static void expect_refusal(const char *what, const char *const *args, int code,
                           const char *const *needles) {
    harness h;
    harness_open(&h, CONVEYOR_DTYPE_F64, false, false);
    int s;
    uint64_t done = run_until_stop(&h, args, ITEM_DEADLINE_MS, UINT64_MAX, &s);
    CHECK_STATUS(s, CONVEYOR_E_PEER_DEAD);
    CHECK(done == 0);
    CHECK(finish_stage(&h, now_ms() + EXIT_DEADLINE_MS) == code);
    for (int i = 0; needles[i]; i++) CHECK(report_has(&h, needles[i]));
    printf("  %s: exit %d, report: %s", what, h.code, h.report_text);
    harness_close(&h);
}

static void test_refusals(void) {
    expect_refusal("--expect f32 against f64", (const char *[]){"square", "--expect", "f32", NULL}, 2,
                   (const char *[]){"stage 'k' refuses its input: the pipeline declares f64 50x40, "
                                    "the program accepts f32 (any shape)", NULL});
    expect_refusal("--expect-shape 10x10 against 50x40",
                   (const char *[]){"square", "--expect-shape", "10x10", NULL}, 2,
                   (const char *[]){"refuses its input", "f64 50x40", "any type 10x10", NULL});
}

/* A descriptor the pipeline should never write: the stage stops with status 1. */
static void test_bad_descriptor(void) {
    harness h;
    harness_open(&h, CONVEYOR_DTYPE_F64, false, false);
    int s;
    uint64_t done = run_until_stop(&h, (const char *[]){"square", NULL}, ITEM_DEADLINE_MS, 2, &s);
    CHECK_STATUS(s, CONVEYOR_E_PEER_DEAD);
    CHECK(done == 2);
    CHECK(finish_stage(&h, now_ms() + EXIT_DEADLINE_MS) == 1);
    CHECK(report_has(&h, "stage 'k' item 2: input slot 2 holds f64 50x40 (16000 bytes) tagged 7"));
    printf("  misdescribed input: exit 1, report: %s", h.report_text);
    harness_close(&h);
}

/* A contract line that is wrong on the pipeline's side: the program exits without
 * serving. `line` NULL leaves CONVEYOR_STAGE unset. */
static void expect_bad_line(const char *what, const char *line, int code, const char *needle) {
    harness h;
    harness_open(&h, CONVEYOR_DTYPE_F64, false, false);
    h.pid = spawn_stage(&h, line, (const char *[]){"square", NULL}, line == NULL);
    CHECK(finish_stage(&h, now_ms() + EXIT_DEADLINE_MS) == code);
    if (needle) CHECK(report_has(&h, needle));
    else CHECK(h.report_length == 0);
    printf("  %s: exit %d%s%s", what, h.code, needle ? ", report: " : "\n", needle ? h.report_text : "");
    harness_close(&h);
}

static void test_bad_lines(void) {
    char good[512], line[640];
    pid_t me = getpid();
    harness probe = {.dtype = CONVEYOR_DTYPE_F64};
    contract_line(&probe, me, "k", good, sizeof good);
    const char *tail = strstr(good, " out=");  /* everything after in=... */

    snprintf(line, sizeof line, "conveyor-stage/1 in=f64:50x0%s", tail);
    expect_bad_line("extent 0", line, 2, "token 'in=f64:50x0'");
    snprintf(line, sizeof line, "conveyor-stage/1 in=f16:50x40%s", tail);
    expect_bad_line("dtype f16", line, 2, "token 'in=f16:50x40'");
    snprintf(line, sizeof line, "conveyor-stage/1 in=f64:1x2x3x4x5%s", tail);
    expect_bad_line("rank 5", line, 2, "token 'in=f64:1x2x3x4x5'");
    snprintf(line, sizeof line, "conveyor-stage/1 in=f64:18446744073709551615x2%s", tail);
    expect_bad_line("extent overflow", line, 2, "larger than any slot");
    snprintf(line, sizeof line, "conveyor-stage/1 colour=red in=f64:50x40%s", tail);
    expect_bad_line("unknown key", line, 2, "token 'colour=red': unknown key");
    snprintf(line, sizeof line, "conveyor-stage/1 in=f64:50x40 jobs=-5%s", tail);
    expect_bad_line("negative fd", line, 2, "token 'jobs=-5'");
    snprintf(line, sizeof line, "conveyor-stage/2 in=f64:50x40%s", tail);
    expect_bad_line("protocol 2", line, 2, "protocol 'conveyor-stage/2'");
    snprintf(line, sizeof line, "conveyor-stage/1 in=f64:50x40 jobs=5%s", tail);
    expect_bad_line("key given twice", line, 2, "token 'jobs=5': key given twice");
    snprintf(line, sizeof line, "conveyor-stage/1 in=none%s", tail);
    expect_bad_line("in=none with an in_pool", line, 2, "in=none (a source) takes no in_pool");
    snprintf(line, sizeof line, "conveyor-stage/1\tin=f64:50x40%s", tail);
    expect_bad_line("a tab", line, 2, "control character 0x09 at offset 16");
    snprintf(line, sizeof line, "conveyor-stage/1 in=f64:50x40 out=f64:40x50 in_pool=3 out_pool=in "
             "jobs=5 done=6 report=7 parent=%d replica=0 name=k", (int)me);
    expect_bad_line("in place, out shape differs", line, 2, "needs the out type and shape equal");
    snprintf(line, sizeof line, "%.*s name=", (int)(strstr(good, " name=") - good), good);
    expect_bad_line("empty name", line, 2, "token 'name=': the name is empty");
    char without_name[640];
    snprintf(without_name, sizeof without_name, "%s", good);
    *strstr(without_name, " name=") = '\0';
    expect_bad_line("no name", without_name, 2, "no 'name=' token");
    expect_bad_line("CONVEYOR_STAGE unset", NULL, 2, NULL);

    /* A parent that is not the program's: it must not serve a pipeline it cannot die with. */
    harness wrong = {.dtype = CONVEYOR_DTYPE_F64};
    contract_line(&wrong, 1, "k", line, sizeof line);
    expect_bad_line("parent=1", line, 1, "the pipeline's process 1 is not its parent");
}

/* ---- the parent-death rule -------------------------------------------------------------- */

/* A middle process starts the stage (parent=its pid) and is SIGKILLed while the stage waits
 * for a job; the driver keeps `jobs` open, so only the death signal can end the stage. The
 * driver is a child subreaper meanwhile: the orphaned stage becomes its child, and its
 * death (SIGKILL) is an event the driver waits for, after EOF on the report pipe. */
static void test_parent_death(void) {
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1UL, 0UL, 0UL, 0UL) == 0);
    harness h;
    harness_open(&h, CONVEYOR_DTYPE_F64, false, false);
    signal_pipe pid_pipe;
    pipe_open(&pid_pipe);
    pid_t middle = fork_child();
    if (middle == 0) {
        char line[512];
        contract_line(&h, getpid(), "k", line, sizeof line);
        pid_t stage = spawn_stage(&h, line, (const char *[]){"square", NULL}, false);
        if (!pipe_put(&pid_pipe, &stage, sizeof stage)) _exit(3);
        for (;;) pause();
    }
    close(h.report[1]);
    h.report[1] = -1;
    pid_t stage = -1;
    CHECK(pipe_get(&pid_pipe, &stage, sizeof stage) && stage > 0);
    h.pid = stage;
    spawned[spawned_count++] = stage;  /* spawned in the middle process: recorded here */
    spawned[spawned_count++] = middle;
    /* One item served: the stage is past its prctl and waiting for the next job. */
    static const kernel square = {"square", 0};
    CHECK_STATUS(send_item(&h, 0, false), CONVEYOR_OK);
    uint64_t word;
    CHECK_STATUS(wait_done(&h, now_ms() + ITEM_DEADLINE_MS, &word), CONVEYOR_OK);
    check_output(&h, &square, 0, word);

    CHECK(kill(middle, SIGKILL) == 0);
    /* The middle is a fork of this process, whose libomp registered it too. */
    CHECK(reap_cleaned(middle) == 128 + SIGKILL);
    int code = finish_stage(&h, now_ms() + EXIT_DEADLINE_MS);  /* EOF, then waitpid */
    CHECK(code == 128 + SIGKILL);
    CHECK(h.report_length == 0);
    printf("  parent SIGKILLed: the stage died of signal %d\n", code - 128);
    pipe_close(&pid_pipe);
    harness_close(&h);
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 0UL, 0UL, 0UL, 0UL) == 0);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: stage_driver PATH-TO-kernel_stage\n");
        return 2;
    }
    stage_program = argv[1];
    test_start("stage_driver", 300);
    shm_snapshot before;
    shm_snapshot_take(&before);
    test_streams();
    test_fail_at();
    test_crash_at();
    test_exit_at();
    test_hang_at();
    test_refusals();
    test_bad_descriptor();
    test_bad_lines();
    test_parent_death();
    failures += shm_left_by_stages();
    return finish_channel_test("stage_driver", &before);
}
