/*
 * core.h — what the C files of the extension module conveyor._core share.
 *
 * The module is written against the Limited API of CPython 3.11 (one abi3 build serves
 * every later CPython) and the public C contract in conveyor.h; numpy is imported
 * lazily at run time, never needed to build.
 *
 * Files: module.c (PyInit, numpy cache, dtypes), errors.c (exception classes),
 * wait.c (sliced blocking waits), ring.c (RingHolder), side.c (Producer, Consumer),
 * frame.c (Frame, Loan), kernels.c (fill_uniform, program, sum), pool.c (Pool,
 * SlotBuffer), channel.c (Channel, ChannelEnd), process.c (die_with_parent), stage.c
 * (serve_stage: a stage program's side of conveyor_stage_serve).
 *
 * State is process-global (single-phase module init): the C core's settings are
 * process-wide too, and the types must stay reachable from Python subclasses, which
 * PyType_GetModuleByDef cannot serve under the 3.11 Limited API.
 */
#ifndef CONVEYOR_PY_CORE_H
#define CONVEYOR_PY_CORE_H

#ifndef Py_LIMITED_API
#define Py_LIMITED_API 0x030b0000
#endif
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include "conveyor.h"

#include <stdint.h>

/* The largest status code this module maps to an exception class. */
#define CVPY_MAX_STATUS 22
/* The longest a blocking call waits with the GIL released before it looks at signals. */
#define CVPY_SLICE_NS 20000000LL

/* callable(arg): PyObject_CallOneArg is not in the 3.11 Limited API. */
static inline PyObject *PyObject_CallOneArgCompat(PyObject *callable, PyObject *arg) {
    return PyObject_CallFunctionObjArgs(callable, arg, NULL);
}

/* PyType_Slot.pfunc is a void *, PyType_GetSlot returns one: ISO C has no conversion
 * between function and object pointers, POSIX (dlsym) and CPython rely on it. The
 * __extension__ keyword tells -Wpedantic that this one is intended. */
#define CVPY_SLOT(fn) (__extension__(void *)(fn))
#define CVPY_GET_SLOT(fntype, type, slot) (__extension__(fntype) PyType_GetSlot((type), (slot)))

/* Casts a METH_FASTCALL / METH_VARARGS function to PyCFunction without a warning. */
#define CVPY_METH(fn) ((PyCFunction)(void (*)(void))(fn))

/* ---- module.c: types, numpy, dtypes ------------------------------------------------ */

typedef struct cvpy_globals {
    PyTypeObject *holder_type;
    PyTypeObject *producer_type;
    PyTypeObject *consumer_type;
    PyTypeObject *frame_type;
    PyTypeObject *loan_type;
    PyTypeObject *pool_type;
    PyTypeObject *channel_type;
    /* numpy, imported at first use */
    PyObject *np_ndarray;       /* numpy.ndarray */
    PyObject *np_dtype;         /* numpy.dtype */
    PyObject *np_dtypes[3];     /* dtype objects for CONVEYOR_DTYPE_BYTES, F32, F64 */
    PyObject *str_setflags;     /* "setflags" */
    PyObject *kw_write_false;   /* {"write": False} */
    PyObject *empty_tuple;
    PyObject *msg_frame_readonly;  /* the BufferError message of a writable request */
} cvpy_globals;

extern cvpy_globals cvpy;

/* Forks seen by this process: bumped in the child by a pthread_atfork handler, which
 * also refreshes cvpy_pid, so no per-call getpid() is needed to tell whether an object was
 * made in this process (cvpy_side.forks == cvpy_forks) or inherited across fork. */
extern volatile unsigned long cvpy_forks;
/* getpid() of this process, cached (refreshed by the same handler). */
extern volatile long cvpy_pid;

/* dict[key] = value as a Python int (the stats() methods of rings and channels). 0, or -1
 * with an exception set. */
int cvpy_dict_set_u64(PyObject *dict, const char *key, uint64_t value);

/* Imports numpy once and fills the np_* fields. 0, or -1 with an exception set. */
int cvpy_numpy_ready(void);

/* Element size of a conveyor dtype (1, 4, 8), or 0 for an unknown one. */
Py_ssize_t cvpy_itemsize(uint32_t dtype);
/* The struct-module format of a conveyor dtype: "B", "f", "d" (static storage). */
const char *cvpy_format(uint32_t dtype);
/* The conveyor dtype of a buffer format ("d", "<d", "=f", "B"...), or -1. */
int cvpy_dtype_of_format(const char *format);
/* The conveyor dtype of anything numpy.dtype() accepts (a dtype, np.float32, "f8"...):
 * 0 and *code, or -1 with InvalidArgument set (unsupported or object dtype). */
int cvpy_dtype_code(PyObject *dtype_like, PyObject *ring_desc, uint32_t *code);

/* A frame description from a shape (int or sequence of ints, rank <= 4) and a conveyor
 * dtype, checked against `slot_bytes`: 0 with *info filled and a new reference to the
 * canonical shape tuple in *shape_tuple, or -1 with InvalidArgument / TooLarge set. */
int cvpy_frame_info(PyObject *shape, uint32_t dtype, uint64_t slot_bytes, PyObject *ring_desc,
                    conveyor_frame_info *info, PyObject **shape_tuple);

/* Parses METH_FASTCALL|METH_KEYWORDS arguments into `out` (borrowed references; NULL for
 * a missing one). `names` is NULL-terminated; the first `positional` names may also be
 * given by position. 0, or -1 with TypeError set. */
int cvpy_parse_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                    const char *const *names, int positional, const char *fname,
                    PyObject **out);

/* A timeout in seconds (None: forever, 0: poll, > 0) as nanoseconds for the C calls (-1:
 * forever). 0, or -1 with InvalidArgument set (negative, NaN, not a number). */
int cvpy_timeout_ns(PyObject *timeout, PyObject *ring_desc, int64_t *ns);

/* A deadline on the cvpy_now_ns() clock for a timeout in nanoseconds (< 0: none, 0: poll):
 * CVPY_FOREVER for none, 0 for a poll (any past time means "one try, then give up"), else
 * now + timeout (saturated). Reads the clock only for a timeout > 0. */
#define CVPY_FOREVER INT64_MAX
int64_t cvpy_deadline(int64_t timeout_ns);

/* ---- errors.c ---------------------------------------------------------------------- */

/* Creates conveyor.ConveyorError and one subclass per status, adds them to `module`. */
int cvpy_errors_init(PyObject *module);
/* Raises the class of `status`: message "<detail or C message> (<NAME>) on ring <desc>"
 * (without " on ring" when ring_desc is NULL); CONVEYOR_E_SYSTEM takes errno. Returns
 * NULL so callers can `return cvpy_error(...)`. */
PyObject *cvpy_error(int status, PyObject *ring_desc, const char *detail);
/* As cvpy_error, with a printf-style detail (PyUnicode_FromFormat conversions). */
PyObject *cvpy_errorf(int status, PyObject *ring_desc, const char *format, ...);
/* For a status the C core returned: "<context>: <C message> (<NAME>) on ring <desc>". */
PyObject *cvpy_error_in(int status, PyObject *ring_desc, const char *context);
PyObject *cvpy_errorf_in(int status, PyObject *ring_desc, const char *format, ...);
/* Python: _core._error(status, detail=None, ring=None) -> the exception instance. */
PyObject *cvpy_make_error_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames);

/* ---- side.c: Producer and Consumer ------------------------------------------------- */

struct cvpy_loan;

/* One side of a ring: a conveyor_ring handle of role PRODUCER or CONSUMER. */
typedef struct cvpy_side {
    PyObject_HEAD
    conveyor_ring *handle;      /* NULL once destroyed */
    PyThread_type_lock lock;    /* serializes every use of `handle` */
    unsigned long lock_owner;   /* thread ident holding `lock`, 0 when free */
    unsigned long long lock_waits; /* calls that had to wait for `lock` (diagnostics) */
    unsigned long forks;        /* cvpy_forks at open: another value means a forked copy */
    long pid;                   /* the process that opened the side (for messages) */
    PyObject *holder;           /* the RingHolder it was opened from (strong) */
    PyObject *desc;             /* the ring's name for messages (str) */
    int role;
    int closed;                 /* close()/detach() done: set under the lock, after
                                   conveyor_ring_close for a close */
    int stopping;               /* close()/detach() calls waiting for the lock: waiters
                                   give up at their next slice */
    uint32_t slots;
    uint64_t slot_bytes;
    const char *slot0;          /* address of slot 0 in this handle's mapping */
    uint64_t stride;            /* bytes between slots */
    Py_ssize_t live;            /* Frames or Loans of this side still alive */
    /* consumer */
    uint8_t *done;              /* done[seq % slots]: that held frame's views are gone */
    uint64_t next;              /* local sequence of the next frame received */
    uint64_t oldest;            /* local sequence of the oldest frame held */
    uint64_t seq_base;          /* ring sequence of local sequence 0 */
    PyObject *last_shape;       /* cache: shape tuple of the last frame received */
    uint32_t last_rank;
    uint64_t last_dims[CONVEYOR_FRAME_MAX_RANK];
    /* producer */
    int has_default;            /* def_info/def_shape describe loan() without arguments */
    int has_dtype;              /* def_info.dtype is the default dtype of loan(shape=...) */
    conveyor_frame_info def_info;
    PyObject *def_shape;        /* tuple */
    struct cvpy_loan *open_loan;/* borrowed: the loan not yet committed or abandoned */
    int pending_abandon;        /* a loan died while the lock was taken */
} cvpy_side;

/* Whether `side` was opened in another process (this one is a forked copy of it): then
 * nothing of it may reach the C handle but conveyor_ring_destroy. Cost: one compare. */
static inline int cvpy_side_foreign(const cvpy_side *side) { return side->forks != cvpy_forks; }

/* Raises WrongRole: "this producer belongs to process <pid>; call ring.producer() in this
 * process" (`what`: "producer", "consumer" or "loan's producer"). Returns NULL. */
PyObject *cvpy_side_foreign_error(cvpy_side *side, const char *what);

/* Takes side->lock: at once if free, else in slices of at most CVPY_SLICE_NS with the
 * GIL released, running signal handlers between them, until `deadline` (cvpy_deadline:
 * 0 tries once). Then runs the queued work if it had to wait (cvpy_side_run_pending;
 * taken at once, nothing can be queued). 0, or -1 with an
 * exception set: WrongRole (a forked copy), RuntimeError (a re-entrant call from the
 * thread that holds it), Timeout (the deadline passed), or a signal handler's
 * (KeyboardInterrupt). */
int cvpy_side_lock(cvpy_side *side, int64_t deadline);
/* Non-blocking: 1 if taken, 0 if another holder has it or the side is a forked copy.
 * The caller queues its work (a done frame, pending_abandon) first and unlocks at once. */
int cvpy_side_trylock(cvpy_side *side);
/* Runs queued work, destroys the handle if the side is closed and nothing of it is
 * alive, and gives the lock back. Runs no Python code. */
void cvpy_side_unlock(cvpy_side *side);
/* Lock held: runs what dying Frames and Loans queued while another thread held the lock:
 * releases frames, oldest first, while the oldest is done (consumer); abandons the C loan
 * of a Loan that died open (producer). Runs no Python code. */
void cvpy_side_run_pending(cvpy_side *side);

int cvpy_side_init(PyObject *module);

/* ---- wait.c ------------------------------------------------------------------------ */

/* One bounded attempt of a blocking C call, run with the GIL released: returns a
 * conveyor status (CONVEYOR_E_TIMEOUT when the slice ran out). */
typedef int (*cvpy_attempt_fn)(conveyor_ring *handle, int64_t slice_ns, void *context);

/* Calls `attempt` in slices of at most CVPY_SLICE_NS until it returns something other
 * than CONVEYOR_E_TIMEOUT or `deadline` (cvpy_deadline; 0: one poll) passes. Lock held on
 * entry and exit. Between slices, with the GIL: queued work is run
 * (cvpy_side_run_pending), a close() or detach() from another thread ends the wait, and
 * PyErr_CheckSignals is called. Returns a conveyor status, CONVEYOR_E_CLOSED if the side
 * is closed or being closed, or -1 with the exception of a signal handler
 * (KeyboardInterrupt) set. */
int cvpy_wait(cvpy_side *side, int64_t deadline, cvpy_attempt_fn attempt, void *context);

/* Monotonic clock in nanoseconds. */
int64_t cvpy_now_ns(void);

/* ---- ring.c: RingHolder ------------------------------------------------------------ */

typedef struct cvpy_holder {
    PyObject_HEAD
    conveyor_ring *handle;      /* role HOLDER; NULL once closed */
    int backing;                /* a conveyor_ring_backing */
    PyObject *name;             /* str for NAMED rings, else None */
    PyObject *desc;             /* str: the name, "memfd:N" or "anonymous" */
    uint32_t slots;
    uint64_t slot_bytes;
    uint64_t mapped_bytes;
    int creator;                /* this process made the named ring and still owns its name */
    long creator_pid;
    PyObject *weakrefs;
} cvpy_holder;

int cvpy_holder_init(PyObject *module);

/* ---- frame.c: Frame and Loan ------------------------------------------------------- */

enum { CVPY_LOAN_OPEN = 0, CVPY_LOAN_COMMITTED = 1, CVPY_LOAN_ABANDONED = 2 };

/* Geometry of a frame as a C-contiguous buffer. */
typedef struct cvpy_view {
    conveyor_frame_info info;
    Py_ssize_t itemsize;
    Py_ssize_t shape[CONVEYOR_FRAME_MAX_RANK];
    Py_ssize_t strides[CONVEYOR_FRAME_MAX_RANK];
} cvpy_view;

typedef struct cvpy_frame {
    PyObject_HEAD
    cvpy_side *consumer;        /* strong */
    const char *data;
    uint64_t seq;               /* local sequence in the consumer */
    uint32_t slot;
    cvpy_view view;
    Py_ssize_t exports;
} cvpy_frame;

typedef struct cvpy_loan {
    PyObject_HEAD
    cvpy_side *producer;        /* strong */
    char *data;
    uint64_t capacity;
    uint32_t slot;
    int state;                  /* CVPY_LOAN_* */
    int closed_by_producer;     /* abandoned because the producer closed */
    cvpy_view view;
    PyObject *shape;            /* tuple */
    PyObject *array_ref;        /* weak reference to the array handed out, or NULL */
    Py_ssize_t exports;
} cvpy_loan;

/* A new Frame over a received frame; the consumer's live count is raised. */
cvpy_frame *cvpy_frame_new(cvpy_side *consumer, const void *data, const conveyor_frame_info *info,
                           uint64_t seq);
/* A new open Loan over a loaned slot; the producer's live count is raised. */
cvpy_loan *cvpy_loan_new(cvpy_side *producer, void *data, uint64_t capacity,
                         const conveyor_frame_info *info, PyObject *shape);
/* numpy.ndarray(shape, dtype, buffer=exporter): a new reference, or NULL. */
PyObject *cvpy_ndarray(PyObject *shape, uint32_t dtype, PyObject *exporter);
/* Marks a loan committed/abandoned and its array read-only (runs Python code: call it
 * without the producer's lock). */
void cvpy_loan_finish(cvpy_loan *loan, int state);
/* Fills a view's itemsize, shape and strides from its info. */
void cvpy_view_fill(cvpy_view *view, const conveyor_frame_info *info);

int cvpy_frame_init(PyObject *module);

/* ---- kernels.c ----------------------------------------------------------------------- */

int cvpy_kernels_init(PyObject *module);

/* ---- pool.c: Pool and SlotBuffer; the argument helpers channel.c and process.c share -- */

/* An int (or an object with __index__; never a bool) in min...max: 0 and *out, or -1 with
 * InvalidArgument set, "<what> must be an int in <min>...<max>, not <value>" (a NULL value
 * reads as None). */
int cvpy_arg_u64(PyObject *value, const char *what, uint64_t min, uint64_t max,
                 PyObject *desc, uint64_t *out);
/* A backing (NULL: BACKING_MEMFD) and, for BACKING_NAMED, its str name: 0 with *backing
 * and *name (UTF-8 owned by `name_obj`, NULL unless NAMED) set, or -1 with InvalidArgument
 * set. */
int cvpy_arg_backing(PyObject *backing_obj, PyObject *name_obj, int *backing, const char **name);

int cvpy_pool_init(PyObject *module);

/* ---- channel.c: Channel and ChannelEnd ------------------------------------------------ */

int cvpy_channel_init(PyObject *module);

/* ---- process.c: the module's thin system-call layer ----------------------------------- */

int cvpy_process_init(PyObject *module);

/* ---- stage.c: serve_stage, the program side of a pipeline stage ----------------------- */

int cvpy_stage_init(PyObject *module);

#endif /* CONVEYOR_PY_CORE_H */
