/* channel_bench.c — see bench_channel.h. */
#include "bench_channel.h"
#include "bench_pingpong.h"

static int bench_take(conveyor_channel *receiver, int any, uint64_t *word) {
    uint32_t lane = 0;
    return any ? conveyor_channel_receive_any(receiver, -1, &lane, word)
               : conveyor_channel_receive(receiver, 0, -1, word);
}

int bench_channel_ping(conveyor_channel *const *senders, uint32_t lanes, conveyor_channel *reply,
                       uint64_t iters, double *samples_us) {
    for (uint64_t i = 0; i < iters; i++) {
        int64_t start = bench_now_ns();
        int status = conveyor_channel_send(senders[i % lanes], i, -1);
        uint64_t back = 0;
        if (status == CONVEYOR_OK) status = conveyor_channel_receive(reply, 0, -1, &back);
        if (status != CONVEYOR_OK) return status;
        if (back != i) return -1;
        samples_us[i] = (double)(bench_now_ns() - start) / 1e3;
    }
    return CONVEYOR_OK;
}

int bench_channel_pong(conveyor_channel *receiver, int any, conveyor_channel *reply, uint64_t iters) {
    for (uint64_t i = 0; i < iters; i++) {
        uint64_t word;
        int status = bench_take(receiver, any, &word);
        if (status == CONVEYOR_OK) status = conveyor_channel_send(reply, word, -1);
        if (status != CONVEYOR_OK) return status;
    }
    return CONVEYOR_OK;
}

int bench_channel_stream_send(conveyor_channel *const *senders, uint32_t lanes, uint64_t words) {
    for (uint64_t w = 1; w <= words; w++) {
        int status = conveyor_channel_send(senders[w % lanes], w, -1);
        if (status != CONVEYOR_OK) return status;
    }
    for (uint32_t lane = 0; lane < lanes; lane++) {
        int status = conveyor_channel_close(senders[lane]);
        if (status != CONVEYOR_OK) return status;
    }
    return CONVEYOR_OK;
}

int bench_channel_stream_receive(conveyor_channel *receiver, int any, uint64_t *words, uint64_t *sum) {
    uint64_t n = 0, total = 0, word;
    int status;
    while ((status = bench_take(receiver, any, &word)) == CONVEYOR_OK) {
        n++;
        total += word;
    }
    *words = n;
    *sum = total;
    return status == CONVEYOR_E_END_OF_STREAM ? CONVEYOR_OK : status;
}
