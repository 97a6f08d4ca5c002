/*
 * process.c — the module's thin system-call layer for the processes of a pipeline:
 * die_with_parent, so that a stage process never outlives the process that started it.
 */
#include "core.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <unistd.h>

static PyObject *process_die_with_parent(PyObject *module, PyObject *arg) {
    (void)module;
    uint64_t parent;
    /* pid_t is a 32-bit int on Linux; 0 and negative values are not one process. */
    if (cvpy_arg_u64(arg, "parent_pid", 1, INT32_MAX, NULL, &parent) < 0) return NULL;
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)  /* cvpy_error reads errno first */
        return cvpy_error(CONVEYOR_E_SYSTEM, NULL, "prctl(PR_SET_PDEATHSIG, SIGKILL) failed");
    /* The parent may have died before the prctl: then this process was re-parented
     * already and no death signal will come. Do what it would have done. */
    if (getppid() != (pid_t)parent) {
        (void)kill(getpid(), SIGKILL);
        _exit(128 + SIGKILL);  /* not reached: a SIGKILL to oneself lands before kill returns */
    }
    Py_RETURN_NONE;
}

static PyMethodDef process_methods[] = {
    {"die_with_parent", process_die_with_parent, METH_O,
     "die_with_parent($module, parent_pid)\n--\n\n"
     "Makes the kernel SIGKILL this process when its parent dies (prctl(PR_SET_PDEATHSIG,\n"
     "SIGKILL)); if the parent is no longer `parent_pid` (it died before the call, and this\n"
     "process was re-parented), SIGKILLs this process at once, as the parent's death would\n"
     "have. Linux sends the signal when the parent THREAD that forked this process ends:\n"
     "fork from a thread that lives as long as the parent process. The setting survives\n"
     "execve (not of set-user-ID programs) and is cleared in this process's own children.\n"
     "Cost: one prctl, one getppid. Raises InvalidArgument (not an int in 1...2**31-1),\n"
     "SystemCallFailed (the prctl failed; .errno says why)."},
    {NULL, NULL, 0, NULL},
};

int cvpy_process_init(PyObject *module) { return PyModule_AddFunctions(module, process_methods); }
