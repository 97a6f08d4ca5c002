/* process.c — the stage program's own-process system calls (see process.h). */
#include "internal.h"
#include "process.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

int cv_die_with_parent(int sig) {
    return prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0UL, 0UL, 0UL) == 0 ? 0 : -1;
}

int64_t cv_parent_pid(void) { return (int64_t)getppid(); }

const char *cv_environment(const char *name) { return getenv(name); }

/* Blocking SIGPIPE per thread (not ignoring it process-wide) leaves the program's own
 * disposition alone: a library must not change what a signal does to its host. */
int cv_write_all(int fd, const void *data, size_t bytes) {
    sigset_t pipe_only, previous, pending;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    if (pthread_sigmask(SIG_BLOCK, &pipe_only, &previous) != 0) return -1;
    sigemptyset(&pending);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE) == 1;

    const char *p = data;
    int result = 0, saved = 0;
    while (bytes > 0) {
        ssize_t n = write(fd, p, bytes);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            saved = n < 0 ? errno : EIO;
            result = -1;
            break;
        }
        p += n;
        bytes -= (size_t)n;
    }
    if (result != 0 && saved == EPIPE && !was_pending) {
        const struct timespec now = {0, 0};
        sigtimedwait(&pipe_only, NULL, &now);  /* the SIGPIPE this write raised */
    }
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    if (result != 0) errno = saved;
    return result;
}
