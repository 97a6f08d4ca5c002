/*
 * bridge.c — rings across ranks: the send bridge drains a ring into a link, the receive
 * bridge fills a ring from one.
 *
 * The send bridge holds up to `window` received frames of its ring at once (the ring's
 * hold limit), each in flight on the link straight from its slot; it releases them oldest
 * first as the link retires them, so the producer gets each slot back once its frame is on
 * the way and the transfer of one frame overlaps the production of the next. While frames
 * are in flight it polls the ring (timeout 0) between rounds of MPI progress; with none in
 * flight it sleeps on the ring in slices of the heartbeat interval and checks the peer.
 *
 * The receive bridge loans a slot for each frame the link describes, receives the payload
 * into it and commits it with the sender's description (the tag included): the network's
 * copy is the only one. While the ring is full it waits for a slot in slices and checks
 * the peer, and the sender's messages wait in MPI (flow control) meanwhile.
 */
#include "link_internal.h"

static int release_retired(conveyor_ring *consumer, uint32_t retired) {
    for (uint32_t i = 0; i < retired; i++) {
        int status = conveyor_ring_release(consumer);
        if (status != CONVEYOR_OK) return status;
    }
    return CONVEYOR_OK;
}

int conveyor_mpi_send_bridge(conveyor_mpi_link *link, conveyor_ring *consumer) {
    if (!link || !consumer) return CONVEYOR_E_NULL_POINTER;
    conveyor_ring_stats ring;
    int status = conveyor_ring_get_stats(consumer, &ring);
    if (status != CONVEYOR_OK) return status;
    uint32_t window = link->window < ring.slot_count ? link->window : ring.slot_count;
    if ((status = conveyor_ring_set_hold_limit(consumer, window)) != CONVEYOR_OK) return status;
    for (;;) {
        uint32_t retired = 0;
        if (link->in_flight >= window) {
            status = conveyor_mpi_link_send_wait(link, window - 1, -1, &retired);
            if (status == CONVEYOR_OK) status = release_retired(consumer, retired);
            if (status != CONVEYOR_OK) return status;
        }
        const void *data = NULL;
        conveyor_frame_info info;
        int64_t slice = link->in_flight > 0 ? 0 : link->heartbeat_ns;
        status = conveyor_ring_receive(consumer, slice, &data, &info);
        if (status == CONVEYOR_E_END_OF_STREAM) break;
        if (status == CONVEYOR_E_TIMEOUT) {
            // Nothing new: move what is in flight, or just make sure the peer is alive.
            status = link->in_flight > 0 ? conveyor_mpi_link_send_wait(link, link->in_flight, 0, &retired)
                                         : conveyor_mpi_link_check(link);
            if (status == CONVEYOR_OK) status = release_retired(consumer, retired);
            if (status != CONVEYOR_OK) return status;
            if (link->in_flight > 0) cv_mpi_pause();
            continue;
        }
        if (status != CONVEYOR_OK) return status;
        if ((status = conveyor_mpi_link_send_post(link, data, &info)) != CONVEYOR_OK) return status;
    }
    uint32_t retired = 0;
    status = conveyor_mpi_link_send_wait(link, 0, -1, &retired);
    if (status == CONVEYOR_OK) status = release_retired(consumer, retired);
    return status == CONVEYOR_OK ? conveyor_mpi_link_close(link) : status;
}

int conveyor_mpi_receive_bridge(conveyor_mpi_link *link, conveyor_ring *producer) {
    if (!link || !producer) return CONVEYOR_E_NULL_POINTER;
    for (;;) {
        conveyor_frame_info info;
        int status = conveyor_mpi_link_next(link, -1, &info);
        if (status == CONVEYOR_E_END_OF_STREAM) return conveyor_ring_close(producer);
        if (status != CONVEYOR_OK) return status;
        void *slot = NULL;
        uint64_t capacity = 0;
        while ((status = conveyor_ring_loan(producer, link->heartbeat_ns, &slot, &capacity)) == CONVEYOR_E_TIMEOUT) {
            if ((status = conveyor_mpi_link_check(link)) != CONVEYOR_OK) return status;
        }
        if (status != CONVEYOR_OK) return status;
        if ((status = conveyor_mpi_link_receive_payload(link, slot, capacity)) != CONVEYOR_OK) {
            conveyor_ring_abandon(producer);
            return status;
        }
        if ((status = conveyor_ring_commit(producer, &info)) != CONVEYOR_OK) return status;
    }
}
