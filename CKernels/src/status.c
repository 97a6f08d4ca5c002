/* status.c — versions, status messages and the argument checks every kernel shares. */
#include "internal.h"

int conveyor_version_number(void) { return CONVEYOR_VERSION_NUMBER; }

const char *conveyor_version_string(void) { return CONVEYOR_VERSION_STRING; }

typedef struct cv_status_text {
    const char *name;
    const char *message;
} cv_status_text;

/* Indexed by code; a code's row never changes once released. */
static const cv_status_text cv_status_table[] = {
    [CONVEYOR_OK] = {"CONVEYOR_OK", "success"},
    [CONVEYOR_E_NULL_POINTER] = {"CONVEYOR_E_NULL_POINTER",
                                 "a required pointer argument is NULL"},
    [CONVEYOR_E_INVALID_ARGUMENT] = {"CONVEYOR_E_INVALID_ARGUMENT",
                                     "an argument is outside its documented range"},
    [CONVEYOR_E_OVERFLOW] = {"CONVEYOR_E_OVERFLOW",
                             "the byte size of an array exceeds PTRDIFF_MAX"},
    [CONVEYOR_E_MISALIGNED] = {"CONVEYOR_E_MISALIGNED",
                               "a pointer is not aligned to its element type"},
    [CONVEYOR_E_OVERLAP] = {"CONVEYOR_E_OVERLAP", "an output partially overlaps an input"},
    [CONVEYOR_E_UNSUPPORTED] = {"CONVEYOR_E_UNSUPPORTED",
                                "not supported by this build (built without OpenMP?)"},
    [CONVEYOR_E_NO_MEMORY] = {"CONVEYOR_E_NO_MEMORY", "out of memory"},
    [CONVEYOR_E_TIMEOUT] = {"CONVEYOR_E_TIMEOUT", "nothing became ready before the timeout"},
    [CONVEYOR_E_END_OF_STREAM] = {"CONVEYOR_E_END_OF_STREAM",
                                  "the producer closed the ring and every frame was received"},
    [CONVEYOR_E_CLOSED] = {"CONVEYOR_E_CLOSED", "the ring is closed"},
    [CONVEYOR_E_PEER_DEAD] = {"CONVEYOR_E_PEER_DEAD",
                              "the process on the other side of the ring died (or left) without closing it"},
    [CONVEYOR_E_BAD_STATE] = {"CONVEYOR_E_BAD_STATE",
                              "call out of order (commit without loan, release without receive...)"},
    [CONVEYOR_E_WRONG_ROLE] = {"CONVEYOR_E_WRONG_ROLE",
                               "a producer call on a consumer handle, or the reverse"},
    [CONVEYOR_E_NOT_A_RING] = {"CONVEYOR_E_NOT_A_RING", "the memory is not a conveyor ring, pool or channel of the kind asked for"},
    [CONVEYOR_E_VERSION] = {"CONVEYOR_E_VERSION", "the ring has another layout version"},
    [CONVEYOR_E_TRUNCATED] = {"CONVEYOR_E_TRUNCATED", "the file starts like a ring but is smaller than its header says"},
    [CONVEYOR_E_CORRUPT] = {"CONVEYOR_E_CORRUPT",
                            "a shared index or frame header of the ring is impossible"},
    [CONVEYOR_E_EXISTS] = {"CONVEYOR_E_EXISTS", "a ring with that name already exists"},
    [CONVEYOR_E_BUSY] = {"CONVEYOR_E_BUSY", "that side of the ring is held by another live handle (in this or another process)"},
    [CONVEYOR_E_SYSTEM] = {"CONVEYOR_E_SYSTEM", "a system call failed (see errno)"},
    [CONVEYOR_E_TOO_LARGE] = {"CONVEYOR_E_TOO_LARGE", "the frame does not fit in a ring slot"},
    [CONVEYOR_E_NOT_SEALED] = {"CONVEYOR_E_NOT_SEALED",
                               "the ring file is not sealed against resizing (F_SEAL_SHRINK, "
                               "F_SEAL_GROW): another process could truncate it"},
};

static const cv_status_text *cv_status_lookup(int status) {
    size_t count = sizeof cv_status_table / sizeof cv_status_table[0];
    if (status < 0 || (size_t)status >= count || cv_status_table[status].name == NULL)
        return NULL;
    return &cv_status_table[status];
}

const char *conveyor_status_message(int status) {
    const cv_status_text *text = cv_status_lookup(status);
    return text ? text->message : "unknown conveyor status code";
}

const char *conveyor_status_name(int status) {
    const cv_status_text *text = cv_status_lookup(status);
    return text ? text->name : "CONVEYOR_E_UNKNOWN";
}

int cv_check_array(const void *p, size_t n, size_t elem_size) {
    if (n > (size_t)PTRDIFF_MAX / elem_size) return CONVEYOR_E_OVERFLOW;
    if (n == 0) return CONVEYOR_OK;
    if (p == NULL) return CONVEYOR_E_NULL_POINTER;
    if ((uintptr_t)p % elem_size != 0) return CONVEYOR_E_MISALIGNED;
    return CONVEYOR_OK;
}

int cv_check_alias(const void *out, const void *in, size_t bytes) {
    uintptr_t o = (uintptr_t)out, i = (uintptr_t)in;
    if (bytes == 0 || o == i) return CONVEYOR_OK;
    bool disjoint = o + bytes <= i || i + bytes <= o;
    return disjoint ? CONVEYOR_OK : CONVEYOR_E_OVERLAP;
}
