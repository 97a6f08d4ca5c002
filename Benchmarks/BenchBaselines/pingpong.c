/* pingpong.c — see bench_pingpong.h. */
#define _GNU_SOURCE
#include "bench_pingpong.h"

#include <linux/futex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int64_t bench_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static conveyor_frame_info bench_frame(uint64_t payload, uint64_t tag) {
    conveyor_frame_info info = {.dtype = CONVEYOR_DTYPE_BYTES, .rank = 1, .shape = {payload},
                                .byte_length = payload, .tag = tag};
    return info;
}

static int bench_send(conveyor_ring *out, uint64_t payload, const void *copy_from, uint64_t tag) {
    conveyor_frame_info info = bench_frame(payload, tag);
    if (copy_from != NULL) return conveyor_ring_push(out, -1, copy_from, &info);
    void *slot;
    int status = conveyor_ring_loan(out, -1, &slot, NULL);
    if (status != CONVEYOR_OK) return status;
    memcpy(slot, &tag, sizeof tag);  /* zero-copy: the frame was built in place */
    return conveyor_ring_commit(out, &info);
}

static int bench_take(conveyor_ring *in, uint64_t *tag) {
    const void *data;
    conveyor_frame_info info;
    int status = conveyor_ring_receive(in, -1, &data, &info);
    if (status != CONVEYOR_OK) return status;
    *tag = info.tag;
    return conveyor_ring_release(in);
}

int bench_ring_ping(conveyor_ring *out, conveyor_ring *in, uint64_t payload, const void *copy_from,
                    uint64_t iters, double *samples_us) {
    for (uint64_t i = 0; i < iters; i++) {
        int64_t start = bench_now_ns();
        uint64_t tag;
        int status = bench_send(out, payload, copy_from, i);
        if (status == CONVEYOR_OK) status = bench_take(in, &tag);
        if (status != CONVEYOR_OK) return status;
        samples_us[i] = (double)(bench_now_ns() - start) / 1e3;
    }
    return CONVEYOR_OK;
}

int bench_ring_pong(conveyor_ring *in, conveyor_ring *out, uint64_t payload, const void *copy_from,
                    uint64_t iters) {
    for (uint64_t i = 0; i < iters; i++) {
        uint64_t tag;
        int status = bench_take(in, &tag);
        if (status == CONVEYOR_OK) status = bench_send(out, payload, copy_from, tag);
        if (status != CONVEYOR_OK) return status;
    }
    return CONVEYOR_OK;
}

int bench_ring_stream_produce(conveyor_ring *out, uint64_t payload, const void *copy_from,
                              uint64_t frames) {
    for (uint64_t i = 0; i < frames; i++) {
        int status = bench_send(out, payload, copy_from, i);
        if (status != CONVEYOR_OK) return status;
    }
    return conveyor_ring_close(out);
}

int bench_ring_stream_consume(conveyor_ring *in, uint64_t *frames) {
    uint64_t n = 0, tag;
    int status;
    while ((status = bench_take(in, &tag)) == CONVEYOR_OK) n++;
    *frames = n;
    return status == CONVEYOR_E_END_OF_STREAM ? CONVEYOR_OK : status;
}

int bench_write_all(int fd, const void *buf, uint64_t bytes) {
    const char *p = buf;
    while (bytes > 0) {
        ssize_t n = write(fd, p, bytes);
        if (n <= 0) return -1;
        p += n;
        bytes -= (uint64_t)n;
    }
    return 0;
}

int bench_read_all(int fd, void *buf, uint64_t bytes) {
    char *p = buf;
    while (bytes > 0) {
        ssize_t n = read(fd, p, bytes);
        if (n <= 0) return -1;
        p += n;
        bytes -= (uint64_t)n;
    }
    return 0;
}

int bench_pipe_ping(int wfd, int rfd, void *buf, uint64_t bytes, uint64_t iters, double *samples_us) {
    for (uint64_t i = 0; i < iters; i++) {
        int64_t start = bench_now_ns();
        if (bench_write_all(wfd, buf, bytes) || bench_read_all(rfd, buf, bytes)) return -1;
        samples_us[i] = (double)(bench_now_ns() - start) / 1e3;
    }
    return 0;
}

int bench_pipe_pong(int rfd, int wfd, void *buf, uint64_t bytes, uint64_t iters) {
    for (uint64_t i = 0; i < iters; i++)
        if (bench_read_all(rfd, buf, bytes) || bench_write_all(wfd, buf, bytes)) return -1;
    return 0;
}

int bench_pipe_stream_write(int wfd, const void *buf, uint64_t bytes, uint64_t frames) {
    for (uint64_t i = 0; i < frames; i++)
        if (bench_write_all(wfd, buf, bytes)) return -1;
    return 0;
}

int bench_pipe_stream_read(int rfd, void *buf, uint64_t bytes, uint64_t frames) {
    for (uint64_t i = 0; i < frames; i++)
        if (bench_read_all(rfd, buf, bytes)) return -1;
    return 0;
}

/* The floor protocol: the word counts hops; ping waits for even values, pong for odd. */
static void bench_floor_wait(_Atomic uint32_t *w, uint32_t target, int use_futex) {
    uint32_t v;
    while ((v = atomic_load_explicit(w, memory_order_acquire)) != target) {
        if (use_futex) syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT, v, NULL, NULL, 0);
        else __builtin_ia32_pause();
    }
}

static void bench_floor_post(_Atomic uint32_t *w, uint32_t value, int use_futex) {
    atomic_store_explicit(w, value, memory_order_release);
    if (use_futex) syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

void bench_floor_ping(uint32_t *word, uint64_t iters, int use_futex, double *samples_us) {
    _Atomic uint32_t *w = (_Atomic uint32_t *)word;
    for (uint64_t i = 0; i < iters; i++) {
        int64_t start = bench_now_ns();
        bench_floor_post(w, (uint32_t)(2 * i + 1), use_futex);
        bench_floor_wait(w, (uint32_t)(2 * i + 2), use_futex);
        samples_us[i] = (double)(bench_now_ns() - start) / 1e3;
    }
}

void bench_floor_pong(uint32_t *word, uint64_t iters, int use_futex) {
    _Atomic uint32_t *w = (_Atomic uint32_t *)word;
    for (uint64_t i = 0; i < iters; i++) {
        bench_floor_wait(w, (uint32_t)(2 * i + 1), use_futex);
        bench_floor_post(w, (uint32_t)(2 * i + 2), use_futex);
    }
}

double bench_thread_cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int bench_fork(void) {
    fflush(NULL);
    return (int)fork();
}

void bench_exit_child(int status) { _exit(status); }
