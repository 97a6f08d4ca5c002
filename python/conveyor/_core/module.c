/*
 * module.c — PyInit__core: the module, its types, exceptions and functions; the lazy
 * numpy import; the small argument helpers every other file uses (dtypes, shapes,
 * timeouts, keyword arguments).
 */
#include "core.h"

#include <math.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

cvpy_globals cvpy;
volatile unsigned long cvpy_forks;
volatile long cvpy_pid;

/* In the child of every fork(): from now on every Producer and Consumer opened before is
 * a copy of the parent's (cvpy_side_foreign). getpid() is async-signal-safe. */
static void cvpy_after_fork_child(void) {
    cvpy_forks++;
    cvpy_pid = (long)getpid();
}

/* ---- numpy ------------------------------------------------------------------------- */

int cvpy_numpy_ready(void) {
    if (cvpy.np_ndarray != NULL) return 0;
    PyObject *np = PyImport_ImportModule("numpy");
    if (np == NULL) return -1;
    PyObject *ndarray = PyObject_GetAttrString(np, "ndarray");
    PyObject *dtype = PyObject_GetAttrString(np, "dtype");
    Py_DECREF(np);
    if (ndarray == NULL || dtype == NULL) goto fail;
    static const char *const names[3] = {"uint8", "float32", "float64"};
    PyObject *dtypes[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3; i++) {
        dtypes[i] = PyObject_CallFunction(dtype, "s", names[i]);
        if (dtypes[i] == NULL) {
            for (int j = 0; j < i; j++) Py_DECREF(dtypes[j]);
            goto fail;
        }
    }
    for (int i = 0; i < 3; i++) cvpy.np_dtypes[i] = dtypes[i];
    cvpy.np_dtype = dtype;
    cvpy.np_ndarray = ndarray;  /* last: it is the "ready" flag */
    return 0;
fail:
    Py_XDECREF(ndarray);
    Py_XDECREF(dtype);
    return -1;
}

Py_ssize_t cvpy_itemsize(uint32_t dtype) {
    switch (dtype) {
    case CONVEYOR_DTYPE_BYTES: return 1;
    case CONVEYOR_DTYPE_F32: return 4;
    case CONVEYOR_DTYPE_F64: return 8;
    default: return 0;
    }
}

const char *cvpy_format(uint32_t dtype) {
    switch (dtype) {
    case CONVEYOR_DTYPE_F32: return "f";
    case CONVEYOR_DTYPE_F64: return "d";
    default: return "B";
    }
}

int cvpy_dtype_of_format(const char *format) {
    if (format == NULL) return CONVEYOR_DTYPE_BYTES;  /* NULL means "B" */
    const uint16_t probe = 1;
    int little = *(const uint8_t *)&probe == 1;
    if (format[0] == '@' || format[0] == '=' || (little ? format[0] == '<' : format[0] == '>'))
        format++;
    if (format[0] == '\0' || format[1] != '\0') return -1;
    switch (format[0]) {
    case 'B': return CONVEYOR_DTYPE_BYTES;
    case 'f': return CONVEYOR_DTYPE_F32;
    case 'd': return CONVEYOR_DTYPE_F64;
    default: return -1;
    }
}

int cvpy_dtype_code(PyObject *dtype_like, PyObject *ring_desc, uint32_t *code) {
    if (cvpy_numpy_ready() < 0) return -1;
    for (uint32_t i = 0; i < 3; i++) {
        if (dtype_like == cvpy.np_dtypes[i]) {
            *code = i;
            return 0;
        }
    }
    PyObject *dtype = PyObject_CallOneArgCompat(cvpy.np_dtype, dtype_like);
    if (dtype == NULL) {
        PyErr_Clear();
        cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, ring_desc,
                    "%R is not a dtype; frames hold float64, float32 or uint8", dtype_like);
        return -1;
    }
    for (uint32_t i = 0; i < 3; i++) {
        int equal = PyObject_RichCompareBool(dtype, cvpy.np_dtypes[i], Py_EQ);
        if (equal < 0) {
            Py_DECREF(dtype);
            return -1;
        }
        if (equal) {
            Py_DECREF(dtype);
            *code = i;
            return 0;
        }
    }
    cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, ring_desc,
                "dtype %S is not supported; frames hold float64, float32 or uint8 in native "
                "byte order",
                dtype);
    Py_DECREF(dtype);
    return -1;
}

/* ---- shapes ------------------------------------------------------------------------ */

int cvpy_frame_info(PyObject *shape, uint32_t dtype, uint64_t slot_bytes, PyObject *ring_desc,
                    conveyor_frame_info *info, PyObject **shape_tuple) {
    PyObject *items;
    if (PyLong_Check(shape) || PyIndex_Check(shape)) {
        items = PyTuple_Pack(1, shape);
    } else if (PyTuple_Check(shape) || PyList_Check(shape)) {
        items = PySequence_Tuple(shape);
    } else {
        cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, ring_desc,
                    "shape must be an int or a tuple of ints, not %R", shape);
        return -1;
    }
    if (items == NULL) return -1;
    Py_ssize_t rank = PyTuple_Size(items);
    if (rank > CONVEYOR_FRAME_MAX_RANK) {
        cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, ring_desc,
                    "shape %R has rank %zd; frames have at most %d dimensions", items, rank,
                    CONVEYOR_FRAME_MAX_RANK);
        Py_DECREF(items);
        return -1;
    }
    memset(info, 0, sizeof *info);
    info->dtype = dtype;
    info->rank = (uint32_t)rank;
    PyObject *canonical = PyTuple_New(rank);
    if (canonical == NULL) {
        Py_DECREF(items);
        return -1;
    }
    uint64_t bytes = (uint64_t)cvpy_itemsize(dtype);
    int too_large = 0, empty = 0;
    for (Py_ssize_t d = 0; d < rank; d++) {
        PyObject *item = PyTuple_GetItem(items, d);
        PyObject *index = PyNumber_Index(item);
        if (index == NULL) {
            PyErr_Clear();
            cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, ring_desc,
                        "shape %R: extent %R is not an int", items, item);
            goto fail;
        }
        int overflow = 0;
        long long extent = PyLong_AsLongLongAndOverflow(index, &overflow);
        if (extent == -1 && PyErr_Occurred()) {
            Py_DECREF(index);
            goto fail;
        }
        if (overflow > 0) {
            too_large = 1;
            extent = 1;
        }
        if (overflow < 0 || extent < 0) {
            Py_DECREF(index);
            cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, ring_desc,
                        "shape %R: extents must be >= 0", items);
            goto fail;
        }
        PyTuple_SetItem(canonical, d, index);  /* steals */
        info->shape[d] = (uint64_t)extent;
        if (extent == 0) empty = 1;
    }
    if (!too_large && !empty) {
        for (Py_ssize_t d = 0; d < rank; d++) {
            if (info->shape[d] != 0 && bytes > UINT64_MAX / info->shape[d]) {
                too_large = 1;
                break;
            }
            bytes *= info->shape[d];
        }
    }
    if (empty) bytes = 0;
    if (too_large || bytes > slot_bytes || bytes > (uint64_t)PY_SSIZE_T_MAX) {
        if (too_large)
            cvpy_errorf(CONVEYOR_E_TOO_LARGE, ring_desc,
                        "a frame of shape %R and itemsize %zd is too large for any slot", items,
                        cvpy_itemsize(dtype));
        else
            cvpy_errorf(CONVEYOR_E_TOO_LARGE, ring_desc,
                        "a frame of shape %R and itemsize %zd takes %llu bytes; slots hold %llu",
                        items, cvpy_itemsize(dtype), (unsigned long long)bytes,
                        (unsigned long long)slot_bytes);
        goto fail;
    }
    info->byte_length = bytes;
    Py_DECREF(items);
    *shape_tuple = canonical;
    return 0;
fail:
    Py_DECREF(items);
    Py_DECREF(canonical);
    return -1;
}

/* ---- arguments --------------------------------------------------------------------- */

int cvpy_parse_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                    const char *const *names, int positional, const char *fname,
                    PyObject **out) {
    int count = 0;
    while (names[count] != NULL) count++;
    for (int i = 0; i < count; i++) out[i] = NULL;
    if (nargs > positional) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %d positional arguments (%zd given)",
                     fname, positional, nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) out[i] = args[i];
    if (kwnames == NULL) return 0;
    Py_ssize_t nkw = PyTuple_Size(kwnames);
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GetItem(kwnames, k);
        int found = -1;
        for (int i = 0; i < count && found < 0; i++)
            if (PyUnicode_CompareWithASCIIString(key, names[i]) == 0) found = i;
        if (found < 0) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument %R", fname,
                         key);
            return -1;
        }
        if (out[found] != NULL) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fname,
                         names[found]);
            return -1;
        }
        out[found] = args[nargs + k];
    }
    return 0;
}

int cvpy_timeout_ns(PyObject *timeout, PyObject *ring_desc, int64_t *ns) {
    if (timeout == NULL || timeout == Py_None) {
        *ns = -1;
        return 0;
    }
    if (PyLong_Check(timeout)) {
        int overflow = 0;
        long long seconds = PyLong_AsLongLongAndOverflow(timeout, &overflow);
        if (seconds == -1 && PyErr_Occurred()) return -1;
        if (overflow < 0 || (overflow == 0 && seconds < 0)) goto negative;
        if (overflow > 0 || seconds > INT64_MAX / 1000000000LL) *ns = -1;
        else *ns = seconds * 1000000000LL;
        return 0;
    }
    double seconds = PyFloat_AsDouble(timeout);
    if (seconds == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, ring_desc,
                    "timeout must be None or a number of seconds, not %R", timeout);
        return -1;
    }
    if (isnan(seconds)) {
        cvpy_error(CONVEYOR_E_INVALID_ARGUMENT, ring_desc, "timeout must not be NaN");
        return -1;
    }
    if (seconds < 0) goto negative;
    if (seconds >= 9.2e9) *ns = -1;  /* beyond INT64_MAX ns (292 years): forever */
    else *ns = (int64_t)(seconds * 1e9);
    return 0;
negative:
    cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, ring_desc,
                "timeout must be None (wait forever), 0 (poll) or > 0 seconds, not %R", timeout);
    return -1;
}

/* ---- module ------------------------------------------------------------------------ */

static PyObject *cvpy_version_py(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    return PyUnicode_FromString(conveyor_version_string());
}

int cvpy_dict_set_u64(PyObject *dict, const char *key, uint64_t value) {
    PyObject *v = PyLong_FromUnsignedLongLong(value);
    if (v == NULL) return -1;
    int status = PyDict_SetItemString(dict, key, v);
    Py_DECREF(v);
    return status;
}

static PyMethodDef cvpy_module_methods[] = {
    {"_error", CVPY_METH(cvpy_make_error_py), METH_FASTCALL | METH_KEYWORDS,
     "_error($module, status, detail=None, ring=None)\n--\n\nReturns ConveyorError. "
     "The exception instance conveyor raises for C status `status` (not raised). For the\n"
     "Python layer's own validation. Cost: one exception object."},
    {"c_version", cvpy_version_py, METH_NOARGS,
     "c_version($module)\n--\n\nThe version string of the linked C core, e.g. '0.6.0'."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef cvpy_module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "conveyor._core",
    .m_doc = "The C extension behind the conveyor package: rings (RingHolder, Producer,\n"
             "Consumer, Loan, Frame), pools and channels (Pool, SlotBuffer, Channel,\n"
             "ChannelEnd, die_with_parent), the stage-program side (serve_stage), their\n"
             "exceptions and the numeric kernels, over the\n"
             "C core's conveyor.h. Use the package `conveyor`, not this module.",
    .m_size = -1,
    .m_methods = cvpy_module_methods,
};

static int cvpy_add_int(PyObject *module, const char *name, long long value) {
    PyObject *v = PyLong_FromLongLong(value);
    if (v == NULL) return -1;
    int status = PyModule_AddObjectRef(module, name, v);
    Py_DECREF(v);
    return status;
}

static int cvpy_add_constants(PyObject *module) {
    static const struct { const char *name; long long value; } constants[] = {
        {"DTYPE_BYTES", CONVEYOR_DTYPE_BYTES},
        {"DTYPE_F32", CONVEYOR_DTYPE_F32},
        {"DTYPE_F64", CONVEYOR_DTYPE_F64},
        {"BACKING_ANONYMOUS", CONVEYOR_RING_ANONYMOUS},
        {"BACKING_MEMFD", CONVEYOR_RING_MEMFD},
        {"BACKING_NAMED", CONVEYOR_RING_NAMED},
        {"MAX_SLOTS", CONVEYOR_RING_MAX_SLOTS},
        {"MAX_SLOT_BYTES", (long long)CONVEYOR_RING_MAX_SLOT_BYTES},
        {"MAX_RANK", CONVEYOR_FRAME_MAX_RANK},
        {"DEFAULT_SPIN", CONVEYOR_RING_DEFAULT_SPIN},
        {"MAX_THREADS", CONVEYOR_MAX_THREADS},
        {"PROGRAM_MAX_OPS", CONVEYOR_PROGRAM_MAX_OPS},
        {"OP_COPY", CONVEYOR_OP_COPY},
        {"OP_ADD_SCALAR", CONVEYOR_OP_ADD_SCALAR},
        {"OP_SUB_SCALAR", CONVEYOR_OP_SUB_SCALAR},
        {"OP_RSUB_SCALAR", CONVEYOR_OP_RSUB_SCALAR},
        {"OP_MUL_SCALAR", CONVEYOR_OP_MUL_SCALAR},
        {"OP_DIV_SCALAR", CONVEYOR_OP_DIV_SCALAR},
        {"OP_RDIV_SCALAR", CONVEYOR_OP_RDIV_SCALAR},
        {"OP_SQUARE", CONVEYOR_OP_SQUARE},
        {"OP_AFFINE", CONVEYOR_OP_AFFINE},
        {"OP_MIN_SCALAR", CONVEYOR_OP_MIN_SCALAR},
        {"OP_MAX_SCALAR", CONVEYOR_OP_MAX_SCALAR},
        {"OP_ADD", CONVEYOR_OP_ADD},
        {"OP_SUB", CONVEYOR_OP_SUB},
        {"OP_MUL", CONVEYOR_OP_MUL},
        {"OP_DIV", CONVEYOR_OP_DIV},
        {"OP_MIN", CONVEYOR_OP_MIN},
        {"OP_MAX", CONVEYOR_OP_MAX},
        {"CHANNEL_SENDER", CONVEYOR_CHANNEL_SENDER},
        {"CHANNEL_RECEIVER", CONVEYOR_CHANNEL_RECEIVER},
        {"CHANNEL_HOLDER", CONVEYOR_CHANNEL_HOLDER},
        {"POOL_MAX_SLOTS", CONVEYOR_POOL_MAX_SLOTS},
        {"CHANNEL_MAX_LANES", CONVEYOR_CHANNEL_MAX_LANES},
        {"CHANNEL_MAX_CAPACITY", CONVEYOR_CHANNEL_MAX_CAPACITY},
    };
    for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++)
        if (cvpy_add_int(module, constants[i].name, constants[i].value) < 0) return -1;
    return 0;
}

PyMODINIT_FUNC PyInit__core(void) {
    PyObject *module = PyModule_Create(&cvpy_module_def);
    if (module == NULL) return NULL;
    cvpy_pid = (long)getpid();
    if (pthread_atfork(NULL, NULL, cvpy_after_fork_child) != 0) {
        Py_DECREF(module);
        return PyErr_NoMemory();
    }
    cvpy.str_setflags = PyUnicode_InternFromString("setflags");
    cvpy.kw_write_false = Py_BuildValue("{s:O}", "write", Py_False);
    cvpy.empty_tuple = PyTuple_New(0);
    cvpy.msg_frame_readonly = PyUnicode_FromString(
        "a received conveyor frame is read-only (the producer's next frames reuse its slot); "
        "copy it, e.g. numpy.array(x), to modify it");
    if (cvpy.msg_frame_readonly == NULL || cvpy.str_setflags == NULL || cvpy.kw_write_false == NULL || cvpy.empty_tuple == NULL ||
        cvpy_errors_init(module) < 0 || cvpy_holder_init(module) < 0 ||
        cvpy_side_init(module) < 0 || cvpy_frame_init(module) < 0 ||
        cvpy_kernels_init(module) < 0 || cvpy_pool_init(module) < 0 ||
        cvpy_channel_init(module) < 0 || cvpy_process_init(module) < 0 ||
        cvpy_stage_init(module) < 0 ||
        cvpy_add_constants(module) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
