/*
 * mpi_bench.h — the timed loops of `conveyor-bench mpi` (trait MPI), in C so that the
 * floor is MPI itself with nothing around it: one rank sends, the other receives, and
 * each round ends with a 0-byte acknowledgement from the receiver, timed on the sender
 * (which waits for it by testing and napping 20 us, in every variant alike).
 *   floor   MPI_Send of the payload, MPI_Recv on the other side (MPI_COMM_WORLD), from
 *           and into private memory (malloc); with `shared`, from and into shared
 *           anonymous memory (MAP_SHARED, as ring and pool slots are): the same MPI calls,
 *           to tell what the kind of memory costs apart from what the bridge does.
 *   bridge  the sender commits the payload into a ring, the send bridge (its own thread)
 *           sends it from the slot, the receive bridge (a thread of the other rank)
 *           receives it straight into a slot of a ring there, whose consumer takes it.
 *   link    the link alone, driven by the ranks' main threads (no rings, no bridge
 *           threads): what the bridge costs beyond MPI, split from the rings' hand-offs.
 * Not part of any product.
 */
#ifndef CONVEYOR_MPI_BENCH_H
#define CONVEYOR_MPI_BENCH_H

#include <stdint.h>

/* Fills us[0..<rounds] (sender only) with each round's microseconds, after `warmup`
 * untimed rounds. Both ranks call it with the same arguments (`sending` differs).
 * Returns 0, or a conveyor status (bridge) / -1 (an MPI call failed). */
int cvb_mpi_floor(uint64_t bytes, int rounds, int warmup, int peer, int sending, int shared, double *us);
int cvb_mpi_link(uint64_t bytes, int rounds, int warmup, int peer, int sending, uint64_t chunk_bytes, double *us);
int cvb_mpi_bridge(uint64_t bytes, int rounds, int warmup, int peer, int sending, uint64_t chunk_bytes, double *us);

/* A barrier on MPI_COMM_WORLD, so that both sides start a variant together. */
int cvb_mpi_barrier(void);

#endif
