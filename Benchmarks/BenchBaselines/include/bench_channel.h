/*
 * bench_channel.h — the timed loops of the `channel` and `wait-any` rows of
 * `conveyor-bench ring`, in C like bench_pingpong.h: 64-bit words through index channels
 * (conveyor.h section 9), one lane or wait-any over several. Benchmark-only.
 */
#ifndef BENCH_CHANNEL_H
#define BENCH_CHANNEL_H

#include <conveyor.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Ping side: `iters` times, sends the round's number on lane i % lanes (senders[lane] is
 * that lane's sender on the pong's channel), then waits for it back on `reply` (a
 * one-lane channel's receiver). Writes each round trip in microseconds to samples.
 * Returns 0, a conveyor status, or -1 when a reply carries the wrong word.
 */
int bench_channel_ping(conveyor_channel *const *senders, uint32_t lanes, conveyor_channel *reply,
                       uint64_t iters, double *samples_us);
/**
 * Pong side: `iters` times takes a word (receive_any when `any`, else lane 0) and sends
 * it back on `reply` (a sender on lane 0).
 */
int bench_channel_pong(conveyor_channel *receiver, int any, conveyor_channel *reply, uint64_t iters);

/** Streams words 1...words round-robin over the lanes, then closes every lane. */
int bench_channel_stream_send(conveyor_channel *const *senders, uint32_t lanes, uint64_t words);
/**
 * Receives (receive_any when `any`, else lane 0) until end of stream; *words gets the
 * count and *sum the sum of the words. Returns 0 or a status.
 */
int bench_channel_stream_receive(conveyor_channel *receiver, int any, uint64_t *words, uint64_t *sum);

#ifdef __cplusplus
}
#endif

#endif
