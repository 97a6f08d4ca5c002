/*
 * errors.c — conveyor.ConveyorError and one subclass per C status code, and the one
 * function that raises them, so every message names the status and the ring.
 */
#include "core.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

/* Which builtin exception a class also derives from, besides its conveyor parent. */
enum { CVPY_ALSO_NONE, CVPY_ALSO_VALUE, CVPY_ALSO_MEMORY, CVPY_ALSO_TIMEOUT,
       CVPY_ALSO_EXISTS, CVPY_ALSO_OS };

typedef struct {
    int status;
    const char *name;     /* class name in module conveyor */
    int parent;           /* status of the conveyor parent class, 0 = ConveyorError */
    int also;             /* CVPY_ALSO_* */
    const char *doc;
} cvpy_error_class;

static const cvpy_error_class cvpy_classes[] = {
    {CONVEYOR_E_NULL_POINTER, "NullPointer", 0, CVPY_ALSO_NONE,
     "A required pointer was NULL inside the C core (a bug in the caller of the C API)."},
    {CONVEYOR_E_INVALID_ARGUMENT, "InvalidArgument", 0, CVPY_ALSO_VALUE,
     "An argument is outside its documented range: a bad dtype, shape, rank, timeout,\n"
     "slot count or name. Also a ValueError. Raised before anything changed."},
    {CONVEYOR_E_OVERFLOW, "SizeOverflow", CONVEYOR_E_INVALID_ARGUMENT, CVPY_ALSO_NONE,
     "An element count times the element size does not fit in the address space."},
    {CONVEYOR_E_MISALIGNED, "Misaligned", CONVEYOR_E_INVALID_ARGUMENT, CVPY_ALSO_NONE,
     "A buffer is not aligned to its element type."},
    {CONVEYOR_E_OVERLAP, "Overlap", CONVEYOR_E_INVALID_ARGUMENT, CVPY_ALSO_NONE,
     "An output buffer partially overlaps an input (exactly the same buffer is fine)."},
    {CONVEYOR_E_UNSUPPORTED, "Unsupported", 0, CVPY_ALSO_NONE,
     "The feature is not built into this library (e.g. threads > 1 without OpenMP)."},
    {CONVEYOR_E_NO_MEMORY, "OutOfMemory", 0, CVPY_ALSO_MEMORY,
     "An allocation failed in the C core. Also a MemoryError."},
    {CONVEYOR_E_TIMEOUT, "Timeout", 0, CVPY_ALSO_TIMEOUT,
     "Nothing became ready before the timeout (timeout=0 polls once). Also a TimeoutError."},
    {CONVEYOR_E_END_OF_STREAM, "EndOfStream", 0, CVPY_ALSO_NONE,
     "The producer closed the ring and every frame was received. Iterating a consumer\n"
     "stops here instead of raising."},
    {CONVEYOR_E_CLOSED, "Closed", 0, CVPY_ALSO_NONE,
     "The ring, producer or consumer is closed: no more frames may be loaned or received\n"
     "through it."},
    {CONVEYOR_E_PEER_DEAD, "PeerDied", 0, CVPY_ALSO_NONE,
     "The process on the other side died, or left without closing (a producer leaving a\n"
     "`with` block by an exception). Noticed within about 10 ms."},
    {CONVEYOR_E_BAD_STATE, "BadState", 0, CVPY_ALSO_NONE,
     "A call out of order: a second open loan, a commit after abandon, a receive while every\n"
     "slot is held by live views."},
    {CONVEYOR_E_WRONG_ROLE, "WrongRole", 0, CVPY_ALSO_NONE,
     "A producer call on a consumer handle or the reverse; or a call on a Producer,\n"
     "Consumer or Loan in another process than the one that opened it (a forked child's\n"
     "inherited copy: the child calls ring.producer() or ring.consumer() itself)."},
    {CONVEYOR_E_NOT_A_RING, "NotARing", 0, CVPY_ALSO_NONE,
     "The shared memory attached does not start with a conveyor ring header."},
    {CONVEYOR_E_VERSION, "VersionMismatch", 0, CVPY_ALSO_NONE,
     "The ring was made by a conveyor with another memory layout version."},
    {CONVEYOR_E_TRUNCATED, "Truncated", 0, CVPY_ALSO_NONE,
     "The ring's file is smaller than its header says."},
    {CONVEYOR_E_CORRUPT, "RingCorrupt", 0, CVPY_ALSO_NONE,
     "A shared index or frame header is impossible: the other process wrote garbage.\n"
     "Nothing outside the mapping was touched."},
    {CONVEYOR_E_EXISTS, "Exists", 0, CVPY_ALSO_EXISTS,
     "A named ring of that name already exists. Also a FileExistsError."},
    {CONVEYOR_E_BUSY, "Busy", 0, CVPY_ALSO_NONE,
     "That side of the ring is held by another live producer or consumer (in this or\n"
     "another process)."},
    {CONVEYOR_E_SYSTEM, "SystemCallFailed", 0, CVPY_ALSO_OS,
     "A system call failed. Also an OSError: .errno and .strerror tell which way\n"
     "(e.g. errno.ENOENT when attaching a name that does not exist)."},
    {CONVEYOR_E_TOO_LARGE, "TooLarge", CONVEYOR_E_INVALID_ARGUMENT, CVPY_ALSO_NONE,
     "A frame does not fit in a slot."},
    {CONVEYOR_E_NOT_SEALED, "NotSealed", 0, CVPY_ALSO_NONE,
     "A ring fd is not sealed against resizing: not a memfd ring's (attach named rings by\n"
     "name)."},
};

static PyObject *cvpy_base_error;
static PyObject *cvpy_by_status[CVPY_MAX_STATUS + 1];

static PyObject *cvpy_also(int also) {
    switch (also) {
    case CVPY_ALSO_VALUE: return PyExc_ValueError;
    case CVPY_ALSO_MEMORY: return PyExc_MemoryError;
    case CVPY_ALSO_TIMEOUT: return PyExc_TimeoutError;
    case CVPY_ALSO_EXISTS: return PyExc_FileExistsError;
    case CVPY_ALSO_OS: return PyExc_OSError;
    default: return NULL;
    }
}

/* A class attribute dict {"status": status, "name": "CONVEYOR_E_..."}. */
static PyObject *cvpy_class_dict(int status) {
    PyObject *dict = PyDict_New();
    if (dict == NULL) return NULL;
    PyObject *code = status > 0 ? PyLong_FromLong(status) : Py_NewRef(Py_None);
    PyObject *name = status > 0 ? PyUnicode_FromString(conveyor_status_name(status))
                                : Py_NewRef(Py_None);
    int failed = code == NULL || name == NULL || PyDict_SetItemString(dict, "status", code) < 0 ||
                 PyDict_SetItemString(dict, "name", name) < 0;
    Py_XDECREF(code);
    Py_XDECREF(name);
    if (failed) {
        Py_DECREF(dict);
        return NULL;
    }
    return dict;
}

static int cvpy_add_class(PyObject *module, const char *name, const char *doc, PyObject *bases,
                          int status, PyObject **out) {
    char qualified[64];
    PyOS_snprintf(qualified, sizeof qualified, "conveyor.%s", name);
    PyObject *dict = cvpy_class_dict(status);
    if (dict == NULL) return -1;
    PyObject *cls = PyErr_NewExceptionWithDoc(qualified, doc, bases, dict);
    Py_DECREF(dict);
    if (cls == NULL) return -1;
    if (PyModule_AddObjectRef(module, name, cls) < 0) {
        Py_DECREF(cls);
        return -1;
    }
    *out = cls;
    return 0;
}

int cvpy_errors_init(PyObject *module) {
    if (cvpy_add_class(module, "ConveyorError",
                       "Base class of every conveyor error. Attributes: .status (the C status\n"
                       "code, an int) and .name (its symbolic name, e.g. 'CONVEYOR_E_PEER_DEAD').\n"
                       "str(e) is '<message> (<NAME>) on ring <name, memfd:N or anonymous>'.",
                       PyExc_Exception, 0, &cvpy_base_error) < 0)
        return -1;
    for (size_t i = 0; i < sizeof cvpy_classes / sizeof cvpy_classes[0]; i++) {
        const cvpy_error_class *c = &cvpy_classes[i];
        PyObject *parent = c->parent ? cvpy_by_status[c->parent] : cvpy_base_error;
        PyObject *also = cvpy_also(c->also);
        PyObject *bases = also ? PyTuple_Pack(2, parent, also) : PyTuple_Pack(1, parent);
        if (bases == NULL) return -1;
        int failed = cvpy_add_class(module, c->name, c->doc, bases, c->status,
                                    &cvpy_by_status[c->status]);
        Py_DECREF(bases);
        if (failed) return -1;
    }
    return 0;
}

/* A new exception instance for `status`, or NULL with another exception set. With
 * `context`, detail says what was being done and the C message follows it. */
static PyObject *cvpy_build_error(int status, PyObject *ring_desc, PyObject *detail, int err,
                                  int context) {
    PyObject *cls = status > 0 && status <= CVPY_MAX_STATUS && cvpy_by_status[status]
                        ? cvpy_by_status[status]
                        : cvpy_base_error;
    const char *name = conveyor_status_name(status);
    PyObject *message;
    if (detail == NULL) detail = PyUnicode_FromString(conveyor_status_message(status));
    else if (context) detail = PyUnicode_FromFormat("%U: %s", detail, conveyor_status_message(status));
    else Py_INCREF(detail);
    if (detail == NULL) return NULL;
    if (status == CONVEYOR_E_SYSTEM) {
        const char *reason = err != 0 ? strerror(err) : "unknown error";
        message = ring_desc ? PyUnicode_FromFormat("%U: %s (%s) on ring %U", detail, reason, name,
                                                   ring_desc)
                            : PyUnicode_FromFormat("%U: %s (%s)", detail, reason, name);
    } else {
        message = ring_desc ? PyUnicode_FromFormat("%U (%s) on ring %U", detail, name, ring_desc)
                            : PyUnicode_FromFormat("%U (%s)", detail, name);
    }
    Py_DECREF(detail);
    if (message == NULL) return NULL;
    PyObject *args = status == CONVEYOR_E_SYSTEM ? Py_BuildValue("(iO)", err, message)
                                                 : PyTuple_Pack(1, message);
    Py_DECREF(message);
    if (args == NULL) return NULL;
    PyObject *exc = PyObject_CallObject(cls, args);
    Py_DECREF(args);
    if (exc == NULL) return NULL;
    PyObject *code = PyLong_FromLong(status);
    PyObject *name_obj = PyUnicode_FromString(name);
    int failed = code == NULL || name_obj == NULL ||
                 PyObject_SetAttrString(exc, "status", code) < 0 ||
                 PyObject_SetAttrString(exc, "name", name_obj) < 0;
    Py_XDECREF(code);
    Py_XDECREF(name_obj);
    if (failed) {
        Py_DECREF(exc);
        return NULL;
    }
    return exc;
}

static PyObject *cvpy_raise(int status, PyObject *ring_desc, PyObject *detail, int err,
                            int context) {
    PyObject *exc = cvpy_build_error(status, ring_desc, detail, err, context);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

static PyObject *cvpy_raise_text(int status, PyObject *ring_desc, const char *text, int err,
                                 int context) {
    PyObject *detail = NULL;
    if (text != NULL && (detail = PyUnicode_FromString(text)) == NULL) return NULL;
    cvpy_raise(status, ring_desc, detail, err, context);
    Py_XDECREF(detail);
    return NULL;
}

PyObject *cvpy_error(int status, PyObject *ring_desc, const char *detail) {
    int err = errno;  /* before anything can change it */
    return cvpy_raise_text(status, ring_desc, detail, err, 0);
}

PyObject *cvpy_error_in(int status, PyObject *ring_desc, const char *context) {
    int err = errno;
    return cvpy_raise_text(status, ring_desc, context, err, 1);
}

static PyObject *cvpy_raise_formatted(int status, PyObject *ring_desc, int context,
                                      const char *format, va_list ap) {
    int err = errno;
    PyObject *detail = PyUnicode_FromFormatV(format, ap);
    if (detail == NULL) return NULL;
    cvpy_raise(status, ring_desc, detail, err, context);
    Py_DECREF(detail);
    return NULL;
}

PyObject *cvpy_errorf(int status, PyObject *ring_desc, const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    cvpy_raise_formatted(status, ring_desc, 0, format, ap);
    va_end(ap);
    return NULL;
}

PyObject *cvpy_errorf_in(int status, PyObject *ring_desc, const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    cvpy_raise_formatted(status, ring_desc, 1, format, ap);
    va_end(ap);
    return NULL;
}

PyObject *cvpy_make_error_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames) {
    (void)module;
    static const char *const names[] = {"status", "detail", "ring", NULL};
    PyObject *a[3];
    if (cvpy_parse_args(args, nargs, kwnames, names, 3, "_error", a) < 0) return NULL;
    if (a[0] == NULL) {
        PyErr_SetString(PyExc_TypeError, "_error() needs a status");
        return NULL;
    }
    int status = (int)PyLong_AsLong(a[0]);
    if (status == -1 && PyErr_Occurred()) return NULL;
    PyObject *detail = a[1] == Py_None ? NULL : a[1];
    PyObject *ring = a[2] == Py_None ? NULL : a[2];
    if ((detail && !PyUnicode_Check(detail)) || (ring && !PyUnicode_Check(ring))) {
        PyErr_SetString(PyExc_TypeError, "_error(): detail and ring must be str or None");
        return NULL;
    }
    return cvpy_build_error(status, ring, detail, status == CONVEYOR_E_SYSTEM ? errno : 0, 0);
}
