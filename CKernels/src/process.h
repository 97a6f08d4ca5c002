/*
 * process.h — the system calls a stage program makes about its own process (conveyor.h
 * section 10): dying with its parent, asking who its parent is, reading the environment
 * and writing a line to a pipe that may have no reader left. Thin wrappers only, so
 * stage.c holds the protocol and this file the system; each returns -1 with errno set
 * (as the call left it) on failure. Not API.
 */
#ifndef CONVEYOR_PROCESS_H
#define CONVEYOR_PROCESS_H

#include <stddef.h>
#include <stdint.h>

/* prctl(PR_SET_PDEATHSIG, sig): the kernel sends `sig` to this process when the THREAD
 * that created it exits (a pipeline must start stage programs from a thread that lives as
 * long as the pipeline). 0, or -1 with errno. */
int cv_die_with_parent(int sig);

/* getppid(): the pid of the parent now (1 or a subreaper's once the parent is gone). */
int64_t cv_parent_pid(void);

/* getenv(name): the value, or NULL. Owned by the environment: copy it before anything
 * may call setenv. */
const char *cv_environment(const char *name);

/* Writes all `bytes` of `data` to `fd`, retrying short writes and EINTR. SIGPIPE is
 * blocked on the calling thread for the duration and a SIGPIPE this write raised is
 * consumed, so a reader that is gone gives -1 with errno EPIPE instead of killing the
 * process; a SIGPIPE pending from elsewhere is left pending. 0, or -1 with errno. */
int cv_write_all(int fd, const void *data, size_t bytes);

#endif /* CONVEYOR_PROCESS_H */
