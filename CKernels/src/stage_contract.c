/*
 * stage_contract.c — the CONVEYOR_STAGE line (conveyor.h section 10): a strict parse into
 * a cv_stage_env, and the check of that against what the program accepts. The line is
 * read in place through spans (pointer + length), never modified or copied.
 */
#include "stage_contract.h"

#include <stdio.h>
#include <string.h>

#define CV_STAGE_PROTOCOL_TOKEN "conveyor-stage/1"
#define CV_STAGE_PROTOCOL_PREFIX "conveyor-stage/"
/* The most bytes of a token (or name) a message quotes: enough to recognise it, short
 * enough that the reason after it survives CONVEYOR_STAGE_MESSAGE_MAX. */
#define CV_QUOTED_MAX 160

typedef struct cv_span {
    const char *p;
    size_t n;
} cv_span;

static int cv_quoted(cv_span s) { return (int)(s.n < CV_QUOTED_MAX ? s.n : CV_QUOTED_MAX); }

static bool cv_span_is(cv_span s, const char *literal) {
    return s.n == strlen(literal) && memcmp(s.p, literal, s.n) == 0;
}

static int cv_malformed(char *message, size_t size, cv_span token, const char *why) {
    snprintf(message, size, "malformed " CONVEYOR_STAGE_ENV ": token '%.*s': %s",
             cv_quoted(token), token.p, why);
    return CONVEYOR_E_INVALID_ARGUMENT;
}

const char *cv_dtype_name(uint32_t dtype) {
    switch (dtype) {
    case CONVEYOR_DTYPE_BYTES: return "bytes";
    case CONVEYOR_DTYPE_F32: return "f32";
    case CONVEYOR_DTYPE_F64: return "f64";
    default: return "an unknown dtype";
    }
}

static uint64_t cv_dtype_size(uint32_t dtype) {
    return dtype == CONVEYOR_DTYPE_F64 ? 8 : dtype == CONVEYOR_DTYPE_F32 ? 4 : 1;
}

/* Decimal digits only (no sign, no space), at least one, at most `max`. */
static bool cv_parse_decimal(cv_span s, uint64_t max, uint64_t *out) {
    if (s.n == 0) return false;
    uint64_t value = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') return false;
        uint64_t digit = (uint64_t)(s.p[i] - '0');
        if (value > (max - digit) / 10) return false;  /* value * 10 + digit > max */
        value = value * 10 + digit;
    }
    *out = value;
    return true;
}

static int cv_parse_fd(cv_span token, cv_span value, int *fd, char *message, size_t size) {
    uint64_t v;
    if (!cv_parse_decimal(value, INT32_MAX, &v))
        return cv_malformed(message, size, token, "a file descriptor is a decimal integer >= 0");
    *fd = (int)v;
    return CONVEYOR_OK;
}

/* "TYPE:E1xE2..." (1 to 4 extents >= 1), or "none" when `none_ok`. The payload may be at
 * most CONVEYOR_RING_MAX_SLOT_BYTES, the largest slot: nothing bigger could be served,
 * and the bound keeps every product below overflow. */
static int cv_parse_decl(cv_span token, cv_span value, bool none_ok, cv_stage_decl *decl,
                         char *message, size_t size) {
    *decl = (cv_stage_decl){0};
    if (cv_span_is(value, "none")) {
        if (!none_ok) return cv_malformed(message, size, token, "only the input may be none");
        return CONVEYOR_OK;
    }
    const char *colon = memchr(value.p, ':', value.n);
    if (colon == NULL)
        return cv_malformed(message, size, token, "expected TYPE:SHAPE, e.g. f64:500x2000");
    cv_span type = {value.p, (size_t)(colon - value.p)};
    cv_span shape = {colon + 1, value.n - type.n - 1};
    conveyor_frame_info *f = &decl->frame;
    if (cv_span_is(type, "bytes")) f->dtype = CONVEYOR_DTYPE_BYTES;
    else if (cv_span_is(type, "f32")) f->dtype = CONVEYOR_DTYPE_F32;
    else if (cv_span_is(type, "f64")) f->dtype = CONVEYOR_DTYPE_F64;
    else return cv_malformed(message, size, token, "the type is one of bytes, f32, f64");

    uint64_t bytes = cv_dtype_size(f->dtype);
    size_t start = 0;
    for (size_t i = 0; i <= shape.n; i++) {
        if (i < shape.n && shape.p[i] != 'x') continue;
        if (f->rank == CONVEYOR_FRAME_MAX_RANK)
            return cv_malformed(message, size, token, "a shape has 1 to 4 extents");
        cv_span extent = {shape.p + start, i - start};
        uint64_t e;
        if (!cv_parse_decimal(extent, UINT64_MAX, &e) || e < 1)
            return cv_malformed(message, size, token,
                                "an extent is a decimal integer >= 1 (extents joined by 'x')");
        if (e > CONVEYOR_RING_MAX_SLOT_BYTES / bytes)
            return cv_malformed(message, size, token, "the items are larger than any slot (2^40 bytes)");
        bytes *= e;
        f->shape[f->rank++] = e;
        start = i + 1;
    }
    f->byte_length = bytes;
    decl->present = true;
    return CONVEYOR_OK;
}

enum cv_stage_key {
    CV_KEY_IN, CV_KEY_OUT, CV_KEY_IN_POOL, CV_KEY_OUT_POOL, CV_KEY_JOBS, CV_KEY_DONE,
    CV_KEY_REPORT, CV_KEY_PARENT, CV_KEY_REPLICA, CV_KEY_NAME, CV_KEY_COUNT
};

static const char *const cv_key_names[CV_KEY_COUNT] = {
    "in", "out", "in_pool", "out_pool", "jobs", "done", "report", "parent", "replica", "name",
};

static int cv_parse_value(int key, cv_span token, cv_span value, cv_stage_env *env,
                          char *message, size_t size) {
    uint64_t v;
    switch (key) {
    case CV_KEY_IN: return cv_parse_decl(token, value, true, &env->in, message, size);
    case CV_KEY_OUT: return cv_parse_decl(token, value, false, &env->out, message, size);
    case CV_KEY_IN_POOL: return cv_parse_fd(token, value, &env->in_pool, message, size);
    case CV_KEY_OUT_POOL:
        if (cv_span_is(value, "in")) {
            env->in_place = true;
            return CONVEYOR_OK;
        }
        return cv_parse_fd(token, value, &env->out_pool, message, size);
    case CV_KEY_JOBS: return cv_parse_fd(token, value, &env->jobs, message, size);
    case CV_KEY_DONE: return cv_parse_fd(token, value, &env->done, message, size);
    case CV_KEY_REPORT: return cv_parse_fd(token, value, &env->report, message, size);
    case CV_KEY_PARENT:
        if (!cv_parse_decimal(value, INT32_MAX, &v) || v < 1)
            return cv_malformed(message, size, token, "a pid is a decimal integer >= 1");
        env->parent = (int64_t)v;
        return CONVEYOR_OK;
    default: /* CV_KEY_REPLICA */
        if (!cv_parse_decimal(value, UINT32_MAX, &v))
            return cv_malformed(message, size, token, "a replica is a decimal integer >= 0");
        env->replica = (uint32_t)v;
        return CONVEYOR_OK;
    }
}

/* The rules between keys, once every token is read. */
static int cv_check_keys(const cv_stage_env *env, unsigned seen, char *message, size_t size) {
    static const int required[] = {CV_KEY_IN, CV_KEY_OUT, CV_KEY_OUT_POOL, CV_KEY_JOBS,
                                   CV_KEY_DONE, CV_KEY_REPORT, CV_KEY_PARENT, CV_KEY_REPLICA,
                                   CV_KEY_NAME};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        if (seen & (1u << required[i])) continue;
        snprintf(message, size, "malformed " CONVEYOR_STAGE_ENV ": no '%s=' token%s",
                 cv_key_names[required[i]],
                 required[i] == CV_KEY_NAME ? " (it must be the last one)" : "");
        return CONVEYOR_E_INVALID_ARGUMENT;
    }
    const char *why = NULL;
    bool has_in_pool = seen & (1u << CV_KEY_IN_POOL);
    if (env->in.present && !has_in_pool) why = "no 'in_pool=' token (only in=none has none)";
    else if (!env->in.present && has_in_pool) why = "in=none (a source) takes no in_pool";
    else if (!env->in.present && env->in_place) why = "out_pool=in (in place) needs an input, not in=none";
    else if (env->in_place && (env->in.frame.dtype != env->out.frame.dtype ||
                               env->in.frame.rank != env->out.frame.rank ||
                               memcmp(env->in.frame.shape, env->out.frame.shape,
                                      sizeof env->in.frame.shape) != 0))
        why = "out_pool=in (in place) needs the out type and shape equal to the in ones";
    if (why == NULL) return CONVEYOR_OK;
    snprintf(message, size, "malformed " CONVEYOR_STAGE_ENV ": %s", why);
    return CONVEYOR_E_INVALID_ARGUMENT;
}

/* The report fd, found before the strict parse so that a malformed line (whatever token
 * is wrong) is still reported where the pipeline reads: the first well-formed
 * "report=N" token before "name=", or -1. */
static int cv_find_report(const char *line) {
    for (const char *p = line; *p != '\0';) {
        while (*p == ' ') p++;
        size_t n = strcspn(p, " ");
        if (n >= 5 && memcmp(p, "name=", 5) == 0) break;
        uint64_t fd;
        if (n > 7 && memcmp(p, "report=", 7) == 0 &&
            cv_parse_decimal((cv_span){p + 7, n - 7}, INT32_MAX, &fd))
            return (int)fd;
        p += n;
    }
    return -1;
}

int cv_stage_parse(const char *line, cv_stage_env *env, char *message, size_t size) {
    *env = (cv_stage_env){.in_pool = -1, .out_pool = -1, .jobs = -1, .done = -1, .report = -1};
    message[0] = '\0';
    env->report = cv_find_report(line);
    size_t length = strlen(line);
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c < 0x20 || c == 0x7F) {
            snprintf(message, size, "malformed " CONVEYOR_STAGE_ENV ": control character 0x%02x "
                     "at offset %zu (the contract is one line)", c, i);
            return CONVEYOR_E_INVALID_ARGUMENT;
        }
    }
    const char *p = line, *end = line + length;
    unsigned seen = 0;
    bool first = true;
    for (;;) {
        while (p < end && *p == ' ') p++;
        if (p == end) break;
        if (!first && (size_t)(end - p) >= 5 && memcmp(p, "name=", 5) == 0) {
            env->name = p + 5;  /* the rest of the line, spaces and all */
            if (*env->name == '\0')
                return cv_malformed(message, size, (cv_span){p, 5}, "the name is empty");
            seen |= 1u << CV_KEY_NAME;
            break;
        }
        const char *space = memchr(p, ' ', (size_t)(end - p));
        cv_span token = {p, (size_t)((space ? space : end) - p)};
        p += token.n;
        if (first) {
            first = false;
            if (cv_span_is(token, CV_STAGE_PROTOCOL_TOKEN)) continue;
            size_t prefix = strlen(CV_STAGE_PROTOCOL_PREFIX);
            if (token.n > prefix && memcmp(token.p, CV_STAGE_PROTOCOL_PREFIX, prefix) == 0) {
                snprintf(message, size, CONVEYOR_STAGE_ENV " speaks protocol '%.*s'; this "
                         "program speaks " CV_STAGE_PROTOCOL_TOKEN, cv_quoted(token), token.p);
                return CONVEYOR_E_VERSION;
            }
            return cv_malformed(message, size, token, "the line must start with "
                                CV_STAGE_PROTOCOL_TOKEN);
        }
        const char *eq = memchr(token.p, '=', token.n);
        if (eq == NULL) return cv_malformed(message, size, token, "not key=value");
        cv_span key = {token.p, (size_t)(eq - token.p)};
        cv_span value = {eq + 1, token.n - key.n - 1};
        int k = 0;
        while (k < CV_KEY_NAME && !cv_span_is(key, cv_key_names[k])) k++;
        if (k == CV_KEY_NAME) return cv_malformed(message, size, token, "unknown key");
        if (seen & (1u << k)) return cv_malformed(message, size, token, "key given twice");
        if (value.n == 0) return cv_malformed(message, size, token, "empty value");
        int status = cv_parse_value(k, token, value, env, message, size);
        if (status != CONVEYOR_OK) return status;
        seen |= 1u << k;
    }
    if (first) {
        snprintf(message, size, "malformed " CONVEYOR_STAGE_ENV ": the line is empty");
        return CONVEYOR_E_INVALID_ARGUMENT;
    }
    return cv_check_keys(env, seen, message, size);
}

void cv_stage_decl_text(const cv_stage_decl *decl, char *out, size_t size) {
    if (!decl->present) {
        snprintf(out, size, "none");
        return;
    }
    int used = snprintf(out, size, "%s ", cv_dtype_name(decl->frame.dtype));
    for (uint32_t i = 0; i < decl->frame.rank && used >= 0 && (size_t)used < size; i++)
        used += snprintf(out + used, size - (size_t)used, "%s%llu", i ? "x" : "",
                         (unsigned long long)decl->frame.shape[i]);
}

/* What a program's side accepts, as the messages show it: "f32 (any shape)", "f64 500x*". */
static void cv_side_text(const conveyor_stage_side *side, char *out, size_t size) {
    int used = snprintf(out, size, "%s ", side->any_dtype ? "any type" : cv_dtype_name(side->dtype));
    if (side->rank == 0 && used >= 0 && (size_t)used < size)
        snprintf(out + used, size - (size_t)used, "(any shape)");
    for (uint32_t i = 0; i < side->rank && used >= 0 && (size_t)used < size; i++) {
        if (side->shape[i] == 0)
            used += snprintf(out + used, size - (size_t)used, "%s*", i ? "x" : "");
        else
            used += snprintf(out + used, size - (size_t)used, "%s%llu", i ? "x" : "",
                             (unsigned long long)side->shape[i]);
    }
}

static bool cv_side_valid(const conveyor_stage_side *side) {
    return side->reserved == 0 && side->rank <= CONVEYOR_FRAME_MAX_RANK &&
           (side->any_dtype || side->dtype <= CONVEYOR_DTYPE_F64);
}

static bool cv_side_accepts(const conveyor_stage_side *side, const conveyor_frame_info *f) {
    if (!side->any_dtype && side->dtype != f->dtype) return false;
    if (side->rank == 0) return true;
    if (side->rank != f->rank) return false;
    for (uint32_t i = 0; i < side->rank; i++)
        if (side->shape[i] != 0 && side->shape[i] != f->shape[i]) return false;
    return true;
}

static int cv_refuse_side(const cv_stage_env *env, const char *which, const cv_stage_decl *decl,
                          const conveyor_stage_side *side, char *message, size_t size) {
    char declared[96], accepted[96];
    cv_stage_decl_text(decl, declared, sizeof declared);
    cv_side_text(side, accepted, sizeof accepted);
    snprintf(message, size, "stage '%.*s' refuses its %s: the pipeline declares %s, the "
             "program accepts %s", cv_quoted((cv_span){env->name, strlen(env->name)}),
             env->name, which, declared, accepted);
    return CONVEYOR_E_INVALID_ARGUMENT;
}

int cv_stage_check(const cv_stage_env *env, const conveyor_stage_contract *contract,
                   char *message, size_t size) {
    if (contract == NULL) return CONVEYOR_OK;
    int shown = cv_quoted((cv_span){env->name, strlen(env->name)});
    if (!cv_side_valid(&contract->input) || !cv_side_valid(&contract->output)) {
        snprintf(message, size, "stage '%.*s': the program's conveyor_stage_contract is invalid "
                 "(a reserved field is not 0, a rank is above 4 or a dtype is unknown)",
                 shown, env->name);
        return CONVEYOR_E_INVALID_ARGUMENT;
    }
    const char *why = NULL;
    if (!env->in.present && !contract->allow_source)
        why = "to be a source: the pipeline declares in=none, the program needs an input";
    else if (env->in_place && !contract->allow_in_place)
        why = "to work in place: the pipeline declares out_pool=in, the program needs an output "
              "slot of its own";
    if (why != NULL) {
        snprintf(message, size, "stage '%.*s' refuses %s", shown, env->name, why);
        return CONVEYOR_E_INVALID_ARGUMENT;
    }
    if (env->in.present && !cv_side_accepts(&contract->input, &env->in.frame))
        return cv_refuse_side(env, "input", &env->in, &contract->input, message, size);
    if (!cv_side_accepts(&contract->output, &env->out.frame))
        return cv_refuse_side(env, "output", &env->out, &contract->output, message, size);
    return CONVEYOR_OK;
}
