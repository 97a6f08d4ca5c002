/*
 * mpiext.h — what the C files of the extension module conveyor._mpi share.
 *
 * conveyor._mpi is the Python face of libconveyor_mpi's links (Bridges/mpi): the job
 * (init, rank, size, finalize, abort) in module.c and the Link type in link.c. It is a
 * second extension next to conveyor._core, built only when MPI is found. It passes no
 * handle of the core between the two: the bridge sources it links use nothing of the core
 * but the frame-info struct and the status messages (CKernels/src/status.c, stateless),
 * so a process that imports both has no second copy of any core state that matters.
 * Limited API 3.11 and the buffer protocol; numpy is not needed to build or to run it.
 */
#ifndef CONVEYOR_PY_MPIEXT_H
#define CONVEYOR_PY_MPIEXT_H

#ifndef Py_LIMITED_API
#define Py_LIMITED_API 0x030b0000
#endif
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "conveyor_mpi.h"

/* Casts a METH_VARARGS|METH_KEYWORDS function to PyCFunction without a warning. */
#define CVMPI_METH(fn) ((PyCFunction)(void (*)(void))(fn))
/* PyType_Slot.pfunc is a void *: the conversion POSIX and CPython rely on. */
#define CVMPI_SLOT(fn) (__extension__(void *)(fn))

/* The longest a blocking wait runs with the GIL released before it looks at signals. */
#define CVMPI_SLICE_NS 20000000LL

/* Raises conveyor.MPIError (conveyor.PeerDead for CONVEYOR_E_PEER_DEAD) for `status`,
 * with `what` and `detail` (the link's own message, may be NULL or ""). Returns NULL. */
PyObject *cvmpi_raise(int status, const char *what, const char *detail);

/* Raises conveyor.MPIError with a message of the caller's (no C status). Returns NULL. */
PyObject *cvmpi_raise_message(const char *message);

/* Looks up conveyor.MPIError and conveyor.PeerDead (module.c, at import). 0 or -1. */
int cvmpi_errors_init(void);

/* Adds the Link type to the module (link.c). 0 or -1. */
int cvmpi_link_init(PyObject *module);

/* Links created and not yet destroyed in this process (finalize refuses while > 0). */
extern long cvmpi_live_links;

#endif
