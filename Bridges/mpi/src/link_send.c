/*
 * link_send.c — the sending end: frames posted nonblocking, a window of them in flight.
 *
 * A posted frame is its descriptor (one message on DESC) and its payload in chunks of
 * chunk_bytes (messages on DATA, at most CHUNKS_IN_FLIGHT posted at once per frame, the
 * next one posted as one completes). Frames are posted, and their chunks, in order, and
 * the receiver posts its receives in the same order: MPI's ordering per (sender, tag,
 * communicator) then matches chunk k of frame n with the receive meant for it. So no
 * chunk of a frame is posted before every chunk of the frames before it was. A frame
 * retires when all its messages are out, oldest first, so a caller hands buffers back in
 * the order it got them.
 */
#include <string.h>

#include "link_internal.h"

static bool frame_done(const pending_frame *frame) {
    if (frame->desc_request != MPI_REQUEST_NULL || frame->next_chunk < frame->chunks) return false;
    for (int c = 0; c < CHUNKS_IN_FLIGHT; c++)
        if (frame->chunk[c] != MPI_REQUEST_NULL) return false;
    return true;
}

/* Posts chunks of `frame` into its free request places, in order. */
static int post_chunks(conveyor_mpi_link *link, pending_frame *frame) {
    for (int c = 0; c < CHUNKS_IN_FLIGHT && frame->next_chunk < frame->chunks; c++) {
        if (frame->chunk[c] != MPI_REQUEST_NULL) continue;
        uint64_t offset = frame->next_chunk * link->chunk_bytes;
        uint64_t length = frame->desc.byte_length - offset;
        if (length > link->chunk_bytes) length = link->chunk_bytes;
        int rc = MPI_Isend(frame->data + offset, (int)length, MPI_BYTE, link->peer, link->tag_data, link->comm,
                           &frame->chunk[c]);
        if (rc != MPI_SUCCESS) return cv_mpi_call_failed(link, "MPI_Isend (payload)", rc);
        frame->next_chunk++;
        link->stats.messages++;
    }
    return CONVEYOR_OK;
}

/* Posts the chunks that may go now: those of the oldest frame with chunks left to post. */
static int post_next_chunks(conveyor_mpi_link *link) {
    for (uint32_t i = 0; i < link->in_flight; i++) {
        pending_frame *frame = &link->frames[(link->oldest + i) % CONVEYOR_MPI_MAX_WINDOW];
        if (frame->next_chunk < frame->chunks) return post_chunks(link, frame);
    }
    return CONVEYOR_OK;
}

/* Moves every frame in flight forward once; retires finished ones, oldest first. */
static int progress(conveyor_mpi_link *link, uint32_t *retired) {
    for (uint32_t i = 0; i < link->in_flight; i++) {
        pending_frame *frame = &link->frames[(link->oldest + i) % CONVEYOR_MPI_MAX_WINDOW];
        int done = 0, rc;
        if (frame->desc_request != MPI_REQUEST_NULL) {
            rc = MPI_Test(&frame->desc_request, &done, MPI_STATUS_IGNORE);
            if (rc != MPI_SUCCESS) return cv_mpi_call_failed(link, "MPI_Test (descriptor)", rc);
        }
        for (int c = 0; c < CHUNKS_IN_FLIGHT; c++) {
            if (frame->chunk[c] == MPI_REQUEST_NULL) continue;
            rc = MPI_Test(&frame->chunk[c], &done, MPI_STATUS_IGNORE);
            if (rc != MPI_SUCCESS) return cv_mpi_call_failed(link, "MPI_Test (payload)", rc);
        }
    }
    int status = post_next_chunks(link);
    if (status != CONVEYOR_OK) return status;
    while (link->in_flight > 0 && frame_done(&link->frames[link->oldest])) {
        link->oldest = (link->oldest + 1) % CONVEYOR_MPI_MAX_WINDOW;
        link->in_flight--;
        if (retired) (*retired)++;
    }
    return CONVEYOR_OK;
}

static int usable_sender(conveyor_mpi_link *link) {
    if (!link) return CONVEYOR_E_NULL_POINTER;
    if (link->direction != CONVEYOR_MPI_SENDER) return CONVEYOR_E_WRONG_ROLE;
    if (link->broken) return cv_mpi_fail(link, CONVEYOR_E_BAD_STATE, "the link is broken by an earlier error");
    return CONVEYOR_OK;
}

int conveyor_mpi_link_send_wait(conveyor_mpi_link *link, uint32_t leave, int64_t timeout_ns, uint32_t *completed) {
    if (completed) *completed = 0;
    int status = usable_sender(link);
    if (status != CONVEYOR_OK) return status;
    // Frames send_post retired to make room count here, so callers hand buffers back in order.
    uint32_t retired = link->unreported;
    link->unreported = 0;
    int64_t start = cv_mpi_now_ns();
    int64_t deadline = timeout_ns < 0 || timeout_ns > INT64_MAX - start ? INT64_MAX : start + timeout_ns;
    while (status == CONVEYOR_OK) {
        status = progress(link, &retired);
        if (status != CONVEYOR_OK || link->in_flight <= leave) break;
        if ((status = cv_mpi_check_peer(link)) != CONVEYOR_OK) break;
        if (cv_mpi_now_ns() >= deadline) { status = CONVEYOR_E_TIMEOUT; break; }
        cv_mpi_pause_idle(start);
    }
    link->stats.blocked_ns += (uint64_t)(cv_mpi_now_ns() - start);
    if (completed) *completed = retired;
    else link->unreported += retired;
    return status;
}

int conveyor_mpi_link_send_post(conveyor_mpi_link *link, const void *data, const conveyor_frame_info *info) {
    int status = usable_sender(link);
    if (status != CONVEYOR_OK) return status;
    if (!info || (!data && info->byte_length > 0)) return CONVEYOR_E_NULL_POINTER;
    if (link->finished) return cv_mpi_fail(link, CONVEYOR_E_CLOSED, "the stream was closed");
    if (cv_mpi_check_frame(info) != CONVEYOR_OK)
        return cv_mpi_fail(link, CONVEYOR_E_INVALID_ARGUMENT, "the frame's dtype, rank or shape disagrees with its %llu bytes",
                           (unsigned long long)info->byte_length);
    if (link->in_flight >= link->window) {
        status = conveyor_mpi_link_send_wait(link, link->window - 1, -1, NULL);
        if (status != CONVEYOR_OK) return status;
    }
    pending_frame *frame = &link->frames[(link->oldest + link->in_flight) % CONVEYOR_MPI_MAX_WINDOW];
    memset(&frame->desc, 0, sizeof frame->desc);
    frame->desc.magic = WIRE_MAGIC;
    frame->desc.version = WIRE_VERSION;
    frame->desc.kind = WIRE_FRAME;
    frame->desc.dtype = info->dtype;
    frame->desc.rank = info->rank;
    frame->desc.seq = link->seq;
    for (uint32_t d = 0; d < info->rank; d++) frame->desc.shape[d] = info->shape[d];
    frame->desc.byte_length = info->byte_length;
    frame->desc.tag = info->tag;
    frame->desc.chunk_bytes = link->chunk_bytes;
    frame->data = data;
    frame->chunks = (info->byte_length + link->chunk_bytes - 1) / link->chunk_bytes;
    frame->next_chunk = 0;
    int rc = MPI_Isend(&frame->desc, sizeof frame->desc, MPI_BYTE, link->peer, link->tag_desc, link->comm,
                       &frame->desc_request);
    if (rc != MPI_SUCCESS) return cv_mpi_call_failed(link, "MPI_Isend (descriptor)", rc);
    link->stats.messages++;
    link->in_flight++;
    link->seq++;
    link->stats.frames++;
    link->stats.bytes += info->byte_length;
    return post_next_chunks(link);
}

int conveyor_mpi_link_send(conveyor_mpi_link *link, const void *data, const conveyor_frame_info *info) {
    int status = conveyor_mpi_link_send_post(link, data, info);
    return status == CONVEYOR_OK ? conveyor_mpi_link_send_wait(link, 0, -1, NULL) : status;
}

int conveyor_mpi_link_close(conveyor_mpi_link *link) {
    int status = usable_sender(link);
    if (status != CONVEYOR_OK || link->finished) return status;
    if ((status = conveyor_mpi_link_send_wait(link, 0, -1, NULL)) != CONVEYOR_OK) return status;
    // END, then the receiver's acknowledgement of it (posted first, so it has a place).
    // Both live in the link: a request MPI cannot let go of may stay posted on them.
    link->ack_in = (wire_word){0, 0};
    MPI_Request ack_request = MPI_REQUEST_NULL, end_request = MPI_REQUEST_NULL;
    int rc = MPI_Irecv(&link->ack_in, sizeof link->ack_in, MPI_BYTE, link->peer, link->tag_back, link->comm, &ack_request);
    if (rc != MPI_SUCCESS) return cv_mpi_call_failed(link, "MPI_Irecv (acknowledgement)", rc);
    memset(&link->end_out, 0, sizeof link->end_out);
    link->end_out.magic = WIRE_MAGIC;
    link->end_out.version = WIRE_VERSION;
    link->end_out.kind = WIRE_END;
    link->end_out.seq = link->seq;
    rc = MPI_Isend(&link->end_out, sizeof link->end_out, MPI_BYTE, link->peer, link->tag_desc, link->comm, &end_request);
    if (rc != MPI_SUCCESS) status = cv_mpi_call_failed(link, "MPI_Isend (end of stream)", rc);
    if (status == CONVEYOR_OK) status = cv_mpi_wait_request(link, &end_request, "MPI_Test (end of stream)", false);
    // The receiver says BYE right after its acknowledgement, which may overtake it.
    if (status == CONVEYOR_OK) status = cv_mpi_wait_request(link, &ack_request, "MPI_Test (acknowledgement)", true);
    if (status != CONVEYOR_OK) {
        cv_mpi_give_up(link, &end_request, true);
        cv_mpi_give_up(link, &ack_request, true);
        return status;
    }
    const wire_word ack = link->ack_in;
    if (ack.kind != WIRE_ACK || ack.seq != link->seq) {
        link->broken = true;
        return cv_mpi_fail(link, CONVEYOR_E_CORRUPT, "the receiver acknowledged end of stream wrongly (kind %llu, %llu frames, sent %llu)",
                           (unsigned long long)ack.kind, (unsigned long long)ack.seq, (unsigned long long)link->seq);
    }
    link->finished = true;
    cv_mpi_beats_end(link);
    return CONVEYOR_OK;
}
