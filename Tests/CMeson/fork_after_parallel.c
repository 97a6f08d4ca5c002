/*
 * fork_after_parallel.c — a process that ran a parallel kernel forks; the child runs the
 * same kernels and must neither hang (libgomp's pool does not survive fork: parallel.c
 * then runs the child's chunks on one thread) nor get different bits. The child has 10 s
 * (alarm) before SIGALRM turns a hang into a failure. Built against the installed library.
 */
#include <conveyor.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    const size_t n = (size_t)1 << 20;  /* 8 MiB of doubles: above the parallel threshold */
    double *x = malloc(n * sizeof *x), before = 0, after = 0;
    if (x == NULL) return 2;
    if (conveyor_has_openmp() && conveyor_set_threads(2) != CONVEYOR_OK) return 2;
    if (conveyor_f64_fill_uniform(x, n, 2016, 1, 0) != CONVEYOR_OK ||
        conveyor_f64_sum(x, n, &before) != CONVEYOR_OK)
        return 2;
    fflush(NULL);
    pid_t child = fork();
    if (child < 0) return 2;
    if (child == 0) {
        alarm(10);
        int ok = conveyor_f64_fill_uniform(x, n, 2016, 1, 0) == CONVEYOR_OK &&
                 conveyor_f64_sum(x, n, &after) == CONVEYOR_OK && after == before;
        exit(ok ? 0 : 3);  /* exit, not _exit: libomp removes its /dev/shm registration */
    }
    int status = 0;
    if (waitpid(child, &status, 0) != child) return 2;
    free(x);
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "fork_after_parallel: child killed by signal %d (hung)\n", WTERMSIG(status));
        return 1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "fork_after_parallel: child's sum differs (status %d)\n", WEXITSTATUS(status));
        return 1;
    }
    printf("fork_after_parallel: child of a parallel parent summed the same bits (%.17g)\n", before);
    return 0;
}
