/*
 * module.c — PyInit__mpi: the MPI job (init, rank, size, finalize, abort) and the one
 * function that raises conveyor.MPIError.
 */
#include "mpiext.h"

#include <dlfcn.h>
#include <unistd.h>

long cvmpi_live_links = 0;

static PyObject *cvmpi_error_class;      /* conveyor.MPIError */
static PyObject *cvmpi_peer_dead_class;  /* conveyor.PeerDead */
static long cvmpi_init_pid = 0;          /* getpid() of the process that called init() */

int cvmpi_errors_init(void) {
    PyObject *errors = PyImport_ImportModule("conveyor._mpi_errors");
    if (errors == NULL) return -1;
    cvmpi_error_class = PyObject_GetAttrString(errors, "MPIError");
    cvmpi_peer_dead_class = cvmpi_error_class ? PyObject_GetAttrString(errors, "PeerDead") : NULL;
    Py_DECREF(errors);
    return cvmpi_peer_dead_class ? 0 : -1;
}

static PyObject *cvmpi_raise_with(PyObject *cls, const char *message, int status, const char *name) {
    PyObject *error = PyObject_CallFunction(cls, "siz", message, status, name);
    if (error != NULL) {
        PyErr_SetObject(cls, error);
        Py_DECREF(error);
    }
    return NULL;
}

PyObject *cvmpi_raise(int status, const char *what, const char *detail) {
    char message[640];
    const char *text = conveyor_mpi_status_message(status);
    if (detail != NULL && detail[0] != '\0')
        PyOS_snprintf(message, sizeof message, "%s: %s (%s)", what, detail, text);
    else
        PyOS_snprintf(message, sizeof message, "%s: %s", what, text);
    const char *name = status == CONVEYOR_MPI_E_MPI ? "CONVEYOR_MPI_E_MPI" : conveyor_status_name(status);
    PyObject *cls = status == CONVEYOR_E_PEER_DEAD ? cvmpi_peer_dead_class : cvmpi_error_class;
    return cvmpi_raise_with(cls, message, status, name);
}

PyObject *cvmpi_raise_message(const char *message) {
    return cvmpi_raise_with(cvmpi_error_class, message, 0, NULL);
}

/* Open MPI loads its components (mca_*.so) with dlopen and expects libmpi's symbols to be
 * global; an extension module is loaded RTLD_LOCAL, so make libmpi global first (what
 * mpi4py does). Harmless for other MPI libraries: RTLD_NOLOAD only promotes a library
 * already loaded. */
static void cvmpi_promote_libmpi(void) {
    Dl_info info;
    if (dladdr(__extension__(void *)&MPI_Init_thread, &info) && info.dli_fname != NULL)
        (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
}

static PyObject *cvmpi_init(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    if (cvmpi_init_pid != 0 && cvmpi_init_pid != (long)getpid())
        return cvmpi_raise_message("conveyor._mpi.init: MPI was initialized by the parent of this "
                                   "forked process; a forked child must never call MPI");
    cvmpi_promote_libmpi();
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = conveyor_mpi_init(NULL, NULL);
    Py_END_ALLOW_THREADS
    if (status != CONVEYOR_OK) return cvmpi_raise(status, "conveyor._mpi.init (MPI_THREAD_MULTIPLE)", NULL);
    cvmpi_init_pid = (long)getpid();
    Py_RETURN_NONE;
}

static PyObject *cvmpi_rank(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    return PyLong_FromLong(conveyor_mpi_world_rank());
}

static PyObject *cvmpi_size(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    return PyLong_FromLong(conveyor_mpi_world_size());
}

static PyObject *cvmpi_finalize(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    if (cvmpi_init_pid != (long)getpid()) Py_RETURN_NONE;  /* not ours: a forked child, or never */
    if (cvmpi_live_links > 0) {
        char message[200];
        PyOS_snprintf(message, sizeof message, "conveyor._mpi.finalize: %ld links are not destroyed "
                      "(destroy them first, or abort() after a failure)", cvmpi_live_links);
        return cvmpi_raise_message(message);
    }
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = conveyor_mpi_finalize();
    Py_END_ALLOW_THREADS
    if (status != CONVEYOR_OK) return cvmpi_raise(status, "conveyor._mpi.finalize", NULL);
    Py_RETURN_NONE;
}

static PyObject *cvmpi_abort(PyObject *self, PyObject *arg) {
    (void)self;
    int code = (int)PyLong_AsLong(arg);
    if (code == -1 && PyErr_Occurred()) return NULL;
    if (cvmpi_init_pid != (long)getpid()) _exit(code ? code : 1);  /* a forked child: no MPI */
    conveyor_mpi_abort(code);
    Py_RETURN_NONE;  /* not reached */
}

static PyMethodDef cvmpi_methods[] = {
    {"init", cvmpi_init, METH_NOARGS,
     "init()\n--\n\nInitializes MPI with MPI_THREAD_MULTIPLE (unless this process already "
     "did) and makes\nMPI errors on MPI_COMM_WORLD come back as statuses. Call it in the "
     "rank's main process,\nbefore any Link; a forked child must never call it. Cost: MPI's "
     "start-up (milliseconds).\nRaises MPIError (status CONVEYOR_E_UNSUPPORTED when MPI offers "
     "less than\nMPI_THREAD_MULTIPLE, CONVEYOR_E_SYSTEM when MPI_Init_thread fails)."},
    {"rank", cvmpi_rank, METH_NOARGS,
     "rank()\n--\n\nThis process's rank in MPI_COMM_WORLD, or -1 before init() or after "
     "finalize(). Cost: an\nMPI query. Never raises."},
    {"size", cvmpi_size, METH_NOARGS,
     "size()\n--\n\nThe number of ranks in MPI_COMM_WORLD, or -1 before init() or after "
     "finalize(). Cost: an\nMPI query. Never raises."},
    {"finalize", cvmpi_finalize, METH_NOARGS,
     "finalize()\n--\n\nFinalizes MPI after a run whose links were all destroyed; a no-op if "
     "MPI is not\ninitialized, already finalized, or was initialized by another process (a "
     "forked child's\ninherited state). Waits for every other rank to finalize too (MPI_Finalize): "
     "after a\npeer died, call abort() instead. Raises MPIError while links are alive, or if\n"
     "MPI_Finalize fails."},
    {"abort", cvmpi_abort, METH_O,
     "abort(code)\n--\n\nEnds the whole MPI job (MPI_Abort on MPI_COMM_WORLD with `code`) "
     "after flushing stdout and\nstderr: the way out after a dead peer, since finalize() would "
     "wait for it. Does not return.\nIn a forked child it only ends that process (_exit)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef cvmpi_module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "conveyor._mpi",
    .m_doc = "Conveyor's MPI bridge for Python: links that carry arrays (float32, float64, bytes;\n"
             "any C-contiguous buffer) from one rank of an MPI job to another, zero copy on\n"
             "both ends (the network's copy is the only one), with heartbeats so that a dead\n"
             "peer is an error (PeerDead), never a hang. Built only when MPI was found.\n"
             "Only the rank's main process may use it: forked children never call MPI.",
    .m_size = -1,
    .m_methods = cvmpi_methods,
};

PyMODINIT_FUNC PyInit__mpi(void) {
    if (cvmpi_errors_init() < 0) return NULL;
    PyObject *module = PyModule_Create(&cvmpi_module_def);
    if (module == NULL) return NULL;
    if (cvmpi_link_init(module) < 0 ||
        PyModule_AddIntConstant(module, "DEFAULT_CHUNK_BYTES", (long)CONVEYOR_MPI_DEFAULT_CHUNK_BYTES) < 0 ||
        PyModule_AddIntConstant(module, "MAX_CHANNEL", CONVEYOR_MPI_MAX_CHANNEL) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
