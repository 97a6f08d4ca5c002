/*
 * bench_pingpong.h — the timed loops of `conveyor-bench ring`, in C so that the loops
 * themselves add nothing and a forked child runs no Swift runtime code: ring ping-pong and
 * streaming through conveyor.h, the same through pipes, and the machine's floors (a bare
 * shared atomic word, a bare futex). Benchmark-only.
 */
#ifndef BENCH_PINGPONG_H
#define BENCH_PINGPONG_H

#include <conveyor.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** CLOCK_MONOTONIC in nanoseconds (shared by every process on the machine). */
int64_t bench_now_ns(void);

/**
 * Ping side: `iters` times, sends a frame of `payload` bytes on `out` (zero-copy: writes
 * only its first 8 bytes; `copy_from` non-NULL: copies the whole payload in, like push),
 * then waits for the reply on `in`. Writes each round trip in microseconds to samples.
 * Returns 0 or a conveyor status.
 */
int bench_ring_ping(conveyor_ring *out, conveyor_ring *in, uint64_t payload, const void *copy_from,
                    uint64_t iters, double *samples_us);
/** Pong side of bench_ring_ping: receives on `in`, replies on `out`. */
int bench_ring_pong(conveyor_ring *in, conveyor_ring *out, uint64_t payload, const void *copy_from,
                    uint64_t iters);

/** Streams `frames` frames of `payload` bytes into `out`, then closes it. */
int bench_ring_stream_produce(conveyor_ring *out, uint64_t payload, const void *copy_from,
                              uint64_t frames);
/** Receives until end of stream; *frames gets the count. Returns 0 or a status. */
int bench_ring_stream_consume(conveyor_ring *in, uint64_t *frames);

/** Writes all `bytes` to fd (looping over short writes). Returns 0, or -1 on error/EOF. */
int bench_write_all(int fd, const void *buf, uint64_t bytes);
/** Reads exactly `bytes` from fd (looping over short reads). Returns 0, or -1 on error/EOF. */
int bench_read_all(int fd, void *buf, uint64_t bytes);

/** Pipe ping: writes `bytes` from buf to wfd, reads `bytes` back from rfd; RTT in us. */
int bench_pipe_ping(int wfd, int rfd, void *buf, uint64_t bytes, uint64_t iters, double *samples_us);
/** Pipe pong: reads `bytes` from rfd, writes them back to wfd. */
int bench_pipe_pong(int rfd, int wfd, void *buf, uint64_t bytes, uint64_t iters);
/** Writes `frames` payloads of `bytes`. */
int bench_pipe_stream_write(int wfd, const void *buf, uint64_t bytes, uint64_t frames);
/** Reads `frames` payloads of `bytes`. */
int bench_pipe_stream_read(int rfd, void *buf, uint64_t bytes, uint64_t frames);

/** Floor ping on one shared 32-bit word: spin (use_futex 0) or FUTEX_WAIT/WAKE (1). */
void bench_floor_ping(uint32_t *word, uint64_t iters, int use_futex, double *samples_us);
/** Floor pong. */
void bench_floor_pong(uint32_t *word, uint64_t iters, int use_futex);

/** CPU time the calling thread has used, in seconds (CLOCK_THREAD_CPUTIME_ID). */
double bench_thread_cpu_seconds(void);

/** Fork; returns the child's pid in the parent, 0 in the child (stdio flushed first). */
int bench_fork(void);
/** _exit(status) without running any atexit handler (for forked children). */
void bench_exit_child(int status);

#ifdef __cplusplus
}
#endif

#endif
