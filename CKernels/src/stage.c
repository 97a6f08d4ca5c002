/*
 * stage.c — the program side of a pipeline stage (conveyor.h section 10): read and check
 * the CONVEYOR_STAGE contract (stage_contract.c), die with the parent, attach the pools and
 * channels it names, then serve items until the pipeline closes `jobs`. Every way out but
 * end of stream writes one line to the report fd (process.c writes it) and returns a
 * status; the loop itself only moves words and checks them.
 */
#include "internal.h"
#include "process.h"
#include "stage_contract.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A job word: item << 24 | slot (conveyor.h section 10, and the pipelines' SlotWord). */
#define CV_SLOT_BITS 24
#define CV_SLOT_MASK ((UINT64_C(1) << CV_SLOT_BITS) - 1)

typedef struct cv_stage {
    cv_stage_env env;
    char *line;               /* our copy of CONVEYOR_STAGE: env.name points into it */
    conveyor_pool *in_pool;   /* NULL for a source */
    conveyor_pool *out_pool;  /* in place: the same handle as in_pool */
    conveyor_channel *jobs;   /* receiver, lane 0 */
    conveyor_channel *done;   /* sender, lane 0 */
} cv_stage;

/* Writes one line (control characters made spaces, at most CONVEYOR_STAGE_MESSAGE_MAX
 * bytes with its newline) to the report fd, or to stderr when there is none or the write
 * fails, and returns `status`: every failure of the serve loop goes through here once. */
__attribute__((format(printf, 3, 4)))
static int cv_stage_fail(const cv_stage *st, int status, const char *format, ...) {
    char line[CONVEYOR_STAGE_MESSAGE_MAX];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(line, sizeof line - 1, format, args);  /* room left for the '\n' */
    va_end(args);
    size_t length = n < 0 ? 0 : strlen(line);
    for (size_t i = 0; i < length; i++)
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7F) line[i] = ' ';
    line[length++] = '\n';
    int saved = errno;  /* the caller's errno stays what the failed call left */
    if (st->env.report < 0 || cv_write_all(st->env.report, line, length) != 0)
        (void)cv_write_all(2, line, length);
    errno = saved;
    return status;
}

/* How a call that failed with `status` is named in a line: its status name, and for
 * CONVEYOR_E_SYSTEM the errno the call left (captured by the caller, passed in). */
static const char *cv_why(int status, int saved_errno, char *buffer, size_t size) {
    if (status != CONVEYOR_E_SYSTEM) return conveyor_status_name(status);
    snprintf(buffer, size, "%s (%s)", conveyor_status_name(status), strerror(saved_errno));
    return buffer;
}

static int cv_stage_attach_pool(cv_stage *st, const char *key, int fd, const cv_stage_decl *decl,
                                conveyor_pool **pool) {
    int status = conveyor_pool_attach_fd(fd, pool);
    int saved = errno;
    char why[128], declared[96];
    if (status != CONVEYOR_OK)
        return cv_stage_fail(st, status, "stage '%s': cannot attach %s (fd %d): %s", st->env.name,
                             key, fd, cv_why(status, saved, why, sizeof why));
    uint64_t slot_bytes = conveyor_pool_slot_bytes(*pool);
    if (decl->frame.byte_length > slot_bytes) {
        cv_stage_decl_text(decl, declared, sizeof declared);
        return cv_stage_fail(st, CONVEYOR_E_INVALID_ARGUMENT,
                             "stage '%s': the pipeline declares %s (%llu bytes), larger than "
                             "the slots of %s (%llu bytes)", st->env.name, declared,
                             (unsigned long long)decl->frame.byte_length, key,
                             (unsigned long long)slot_bytes);
    }
    return CONVEYOR_OK;
}

static int cv_stage_attach_channel(cv_stage *st, const char *key, int fd, int role,
                                   conveyor_channel **end) {
    int status = conveyor_channel_attach_fd(fd, role, 0, end);
    int saved = errno;
    char why[128];
    if (status == CONVEYOR_OK) return CONVEYOR_OK;
    return cv_stage_fail(st, status, "stage '%s': cannot attach %s (fd %d) as its %s: %s",
                         st->env.name, key, fd,
                         role == CONVEYOR_CHANNEL_RECEIVER ? "receiver" : "sender",
                         cv_why(status, saved, why, sizeof why));
}

/* Everything before the first item: the contract, the parent, the attachments. */
static int cv_stage_start(cv_stage *st, const conveyor_stage_contract *contract,
                          conveyor_stage_fn fn) {
    char message[CONVEYOR_STAGE_MESSAGE_MAX], why[128];
    const char *value = cv_environment(CONVEYOR_STAGE_ENV);
    if (value == NULL)
        return cv_stage_fail(st, CONVEYOR_E_INVALID_ARGUMENT,
                             "stage program: " CONVEYOR_STAGE_ENV " is not set: this program "
                             "serves a stage of a Conveyor pipeline, which starts it");
    if ((st->line = strdup(value)) == NULL)
        return cv_stage_fail(st, CONVEYOR_E_NO_MEMORY, "stage program: out of memory");
    int status = cv_stage_parse(st->line, &st->env, message, sizeof message);
    if (status != CONVEYOR_OK) return cv_stage_fail(st, status, "%s", message);
    if (fn == NULL)
        return cv_stage_fail(st, CONVEYOR_E_NULL_POINTER,
                             "stage '%s': conveyor_stage_serve was given no function", st->env.name);

    /* The death signal first, then the check: a parent that died before the prctl is
     * caught by the check, one that dies after it kills us. */
    if (cv_die_with_parent(SIGKILL) != 0) {
        int saved = errno;
        return cv_stage_fail(st, CONVEYOR_E_SYSTEM, "stage '%s': prctl(PR_SET_PDEATHSIG): %s",
                             st->env.name, cv_why(CONVEYOR_E_SYSTEM, saved, why, sizeof why));
    }
    int64_t parent = cv_parent_pid();
    if (parent != st->env.parent)
        return cv_stage_fail(st, CONVEYOR_E_PEER_DEAD,
                             "stage '%s': the pipeline's process %lld is not its parent (the "
                             "parent is %lld): it died, or did not start this program",
                             st->env.name, (long long)st->env.parent, (long long)parent);

    status = cv_stage_check(&st->env, contract, message, sizeof message);
    if (status != CONVEYOR_OK) return cv_stage_fail(st, status, "%s", message);

    if (st->env.in.present &&
        (status = cv_stage_attach_pool(st, "in_pool", st->env.in_pool, &st->env.in,
                                       &st->in_pool)) != CONVEYOR_OK)
        return status;
    if (st->env.in_place) st->out_pool = st->in_pool;
    else if ((status = cv_stage_attach_pool(st, "out_pool", st->env.out_pool, &st->env.out,
                                            &st->out_pool)) != CONVEYOR_OK)
        return status;
    if ((status = cv_stage_attach_channel(st, "jobs", st->env.jobs, CONVEYOR_CHANNEL_RECEIVER,
                                          &st->jobs)) != CONVEYOR_OK)
        return status;
    return cv_stage_attach_channel(st, "done", st->env.done, CONVEYOR_CHANNEL_SENDER, &st->done);
}

static bool cv_same_frame(const conveyor_frame_info *a, const conveyor_frame_info *b) {
    if (a->dtype != b->dtype || a->rank != b->rank || a->byte_length != b->byte_length)
        return false;
    for (uint32_t i = 0; i < a->rank; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

/* Checks the two words of one job and the input's descriptor; CONVEYOR_E_CORRUPT (with
 * its line written) for anything the pipeline should never send. */
static int cv_stage_check_job(const cv_stage *st, uint64_t in_word, uint64_t out_word,
                              const void **input, conveyor_frame_info *input_info) {
    const char *name = st->env.name;
    unsigned long long item = in_word >> CV_SLOT_BITS;
    uint32_t in_slot = (uint32_t)(in_word & CV_SLOT_MASK);
    uint32_t out_slot = (uint32_t)(out_word & CV_SLOT_MASK);
    if (out_word >> CV_SLOT_BITS != item)
        return cv_stage_fail(st, CONVEYOR_E_CORRUPT, "stage '%s': the job words %#llx and %#llx "
                             "name different items (%llu and %llu)", name,
                             (unsigned long long)in_word, (unsigned long long)out_word, item,
                             (unsigned long long)(out_word >> CV_SLOT_BITS));
    if (st->in_pool == NULL) {
        if (in_slot != CONVEYOR_STAGE_NO_SLOT)
            return cv_stage_fail(st, CONVEYOR_E_CORRUPT, "stage '%s' item %llu: a source's "
                                 "input word has slot %#x, not %#x", name, item, in_slot,
                                 CONVEYOR_STAGE_NO_SLOT);
    } else if (in_slot >= conveyor_pool_slot_count(st->in_pool)) {
        return cv_stage_fail(st, CONVEYOR_E_CORRUPT, "stage '%s' item %llu: input slot %u is "
                             "outside in_pool (%u slots)", name, item, in_slot,
                             conveyor_pool_slot_count(st->in_pool));
    }
    if (st->env.in_place && out_word != in_word)
        return cv_stage_fail(st, CONVEYOR_E_CORRUPT, "stage '%s' item %llu: in place, the output "
                             "word %#llx must equal the input word %#llx", name, item,
                             (unsigned long long)out_word, (unsigned long long)in_word);
    if (out_slot >= conveyor_pool_slot_count(st->out_pool))
        return cv_stage_fail(st, CONVEYOR_E_CORRUPT, "stage '%s' item %llu: output slot %u is "
                             "outside %s (%u slots)", name, item, out_slot,
                             st->env.in_place ? "in_pool" : "out_pool",
                             conveyor_pool_slot_count(st->out_pool));
    if (st->in_pool == NULL) {
        *input = NULL;
        return CONVEYOR_OK;
    }
    int status = conveyor_pool_frame(st->in_pool, in_slot, input, input_info);
    if (status != CONVEYOR_OK)
        return cv_stage_fail(st, CONVEYOR_E_CORRUPT, "stage '%s' item %llu: input slot %u's "
                             "descriptor is impossible (%s)", name, item, in_slot,
                             conveyor_status_name(status));
    if (!cv_same_frame(input_info, &st->env.in.frame) || input_info->tag != item) {
        cv_stage_decl found = {.present = true, .frame = *input_info};
        char holds[96], declared[96];
        cv_stage_decl_text(&found, holds, sizeof holds);
        cv_stage_decl_text(&st->env.in, declared, sizeof declared);
        return cv_stage_fail(st, CONVEYOR_E_CORRUPT, "stage '%s' item %llu: input slot %u holds "
                             "%s (%llu bytes) tagged %llu; the contract declares %s for item %llu",
                             name, item, in_slot, holds,
                             (unsigned long long)input_info->byte_length,
                             (unsigned long long)input_info->tag, declared, item);
    }
    return CONVEYOR_OK;
}

/* One item: check, call fn, describe the output, send it on `done`. */
static int cv_stage_item(cv_stage *st, uint64_t in_word, uint64_t out_word,
                         conveyor_stage_fn fn, void *context) {
    const void *input = NULL;
    conveyor_frame_info input_info;
    int status = cv_stage_check_job(st, in_word, out_word, &input, &input_info);
    if (status != CONVEYOR_OK) return status;
    uint64_t item = in_word >> CV_SLOT_BITS;
    uint32_t out_slot = (uint32_t)(out_word & CV_SLOT_MASK);
    conveyor_frame_info output_info = st->env.out.frame;
    output_info.tag = item;
    conveyor_stage_item view = {
        .item = item, .replica = st->env.replica, .input = input,
        .input_info = input == NULL ? NULL : &input_info,
        .output = conveyor_pool_slot(st->out_pool, out_slot), .output_info = &output_info,
        .name = st->env.name,
    };
    char message[CONVEYOR_STAGE_MESSAGE_MAX];
    message[0] = '\0';
    int result = fn(context, &view, message, sizeof message);
    if (result != 0) {
        message[sizeof message - 1] = '\0';  /* whatever the callee left */
        if (message[0] == '\0')
            snprintf(message, sizeof message, "the stage's function failed (returned %d)", result);
        return cv_stage_fail(st, CONVEYOR_E_BAD_STATE, "stage '%s' item %llu: %s", st->env.name,
                             (unsigned long long)item, message);
    }
    output_info.tag = item;  /* fn saw it read-only; described exactly as declared */
    if ((status = conveyor_pool_describe(st->out_pool, out_slot, &output_info)) != CONVEYOR_OK)
        return cv_stage_fail(st, status, "stage '%s' item %llu: describing output slot %u: %s",
                             st->env.name, (unsigned long long)item, out_slot,
                             conveyor_status_name(status));
    if ((status = conveyor_channel_send(st->done, out_word, -1)) != CONVEYOR_OK)
        return cv_stage_fail(st, status, "stage '%s' item %llu: sending on done: %s%s",
                             st->env.name, (unsigned long long)item, conveyor_status_name(status),
                             status == CONVEYOR_E_PEER_DEAD ? " (the pipeline died)" : "");
    return CONVEYOR_OK;
}

/* Items until the pipeline closes `jobs`. The waits have no timeout: a pipeline that dies
 * is reported by the channel as PEER_DEAD (and its death kills us anyway). */
static int cv_stage_loop(cv_stage *st, conveyor_stage_fn fn, void *context) {
    for (;;) {
        uint64_t in_word, out_word;
        int status = conveyor_channel_receive(st->jobs, 0, -1, &in_word);
        if (status == CONVEYOR_E_END_OF_STREAM) break;
        if (status == CONVEYOR_OK) {
            status = conveyor_channel_receive(st->jobs, 0, -1, &out_word);
            if (status == CONVEYOR_E_END_OF_STREAM)
                return cv_stage_fail(st, CONVEYOR_E_CORRUPT, "stage '%s' item %llu: jobs ended "
                                     "between the item's two words", st->env.name,
                                     (unsigned long long)(in_word >> CV_SLOT_BITS));
        }
        if (status != CONVEYOR_OK)
            return cv_stage_fail(st, status, "stage '%s': receiving on jobs: %s%s", st->env.name,
                                 conveyor_status_name(status),
                                 status == CONVEYOR_E_PEER_DEAD ? " (the pipeline died)" : "");
        if ((status = cv_stage_item(st, in_word, out_word, fn, context)) != CONVEYOR_OK)
            return status;
    }
    int status = conveyor_channel_close(st->done);
    if (status != CONVEYOR_OK)
        return cv_stage_fail(st, status, "stage '%s': closing done: %s", st->env.name,
                             conveyor_status_name(status));
    return CONVEYOR_OK;
}

int conveyor_stage_serve(const conveyor_stage_contract *contract, conveyor_stage_fn fn,
                         void *context) {
    cv_stage st = {.env = {.report = -1, .name = "?"}};
    int status = cv_stage_start(&st, contract, fn);
    if (status == CONVEYOR_OK) status = cv_stage_loop(&st, fn, context);
    /* A failure leaves `done` unclosed on purpose: the pipeline must see a death, not an
     * end of stream. */
    conveyor_channel_destroy(st.done);
    conveyor_channel_destroy(st.jobs);
    if (st.out_pool != st.in_pool) conveyor_pool_destroy(st.out_pool);
    conveyor_pool_destroy(st.in_pool);
    free(st.line);
    return status;
}

int conveyor_stage_main(const conveyor_stage_contract *contract, conveyor_stage_fn fn,
                        void *context) {
    int status = conveyor_stage_serve(contract, fn, context);
    if (status == CONVEYOR_OK) return 0;
    if (status == CONVEYOR_E_INVALID_ARGUMENT || status == CONVEYOR_E_VERSION) return 2;
    return 1;
}
