/*
 * link_receive.c — the receiving end: descriptors checked before they are trusted, and
 * payloads received straight into the caller's buffer.
 *
 * One receive of the next descriptor is always posted (from open on), so a descriptor
 * lands as soon as it arrives, while the caller still works on the previous frame. Its
 * payload is received only when the caller gives the buffer (receive_payload), chunk by
 * chunk in order, a few chunks posted at once; the sender's chunk size comes in the
 * descriptor, and each chunk's size is checked against it.
 */
#include <string.h>

#include "link_internal.h"

static int usable_receiver(conveyor_mpi_link *link) {
    if (!link) return CONVEYOR_E_NULL_POINTER;
    if (link->direction != CONVEYOR_MPI_RECEIVER) return CONVEYOR_E_WRONG_ROLE;
    if (link->broken) return cv_mpi_fail(link, CONVEYOR_E_BAD_STATE, "the link is broken by an earlier error");
    return CONVEYOR_OK;
}

static int corrupt(conveyor_mpi_link *link, const char *what) {
    link->broken = true;
    return cv_mpi_fail(link, CONVEYOR_E_CORRUPT, "a descriptor breaks the protocol: %s", what);
}

/* Checks the descriptor that came against the protocol; fills link->current. */
static int take_descriptor(conveyor_mpi_link *link, const MPI_Status *status) {
    int count = 0;
    MPI_Get_count(status, MPI_BYTE, &count);
    const wire_descriptor *d = &link->incoming;
    if (count != (int)sizeof *d) return corrupt(link, "wrong size");
    if (d->magic != WIRE_MAGIC) return corrupt(link, "wrong magic (not a Conveyor link, or another byte order)");
    if (d->version != WIRE_VERSION) return corrupt(link, "another protocol version");
    if (d->seq != link->seq) return corrupt(link, "out of sequence");
    if (d->kind == WIRE_END) return CONVEYOR_E_END_OF_STREAM;
    if (d->kind != WIRE_FRAME) return corrupt(link, "unknown kind");
    conveyor_frame_info info;
    memset(&info, 0, sizeof info);
    info.dtype = d->dtype;
    info.rank = d->rank;
    for (uint32_t r = 0; r < CONVEYOR_FRAME_MAX_RANK && r < d->rank; r++) info.shape[r] = d->shape[r];
    info.byte_length = d->byte_length;
    info.tag = d->tag;
    if (cv_mpi_check_frame(&info) != CONVEYOR_OK) return corrupt(link, "dtype, rank or shape disagrees with the byte length");
    if (d->chunk_bytes == 0 || d->chunk_bytes > CONVEYOR_MPI_MAX_CHUNK_BYTES) return corrupt(link, "chunk size out of range");
    link->current = info;
    link->current_chunk_bytes = d->chunk_bytes;
    return CONVEYOR_OK;
}

/* Acknowledges END (the sender's close waits for it). */
static int acknowledge_end(conveyor_mpi_link *link) {
    link->ack_out = (wire_word){WIRE_ACK, link->seq};
    MPI_Request request = MPI_REQUEST_NULL;
    int rc = MPI_Isend(&link->ack_out, sizeof link->ack_out, MPI_BYTE, link->peer, link->tag_back, link->comm, &request);
    if (rc != MPI_SUCCESS) return cv_mpi_call_failed(link, "MPI_Isend (acknowledgement)", rc);
    int status = cv_mpi_wait_request(link, &request, "MPI_Test (acknowledgement)", false);
    if (status != CONVEYOR_OK) cv_mpi_give_up(link, &request, true);
    return status;
}

int conveyor_mpi_link_next(conveyor_mpi_link *link, int64_t timeout_ns, conveyor_frame_info *info) {
    int status = usable_receiver(link);
    if (status != CONVEYOR_OK) return status;
    if (!info) return CONVEYOR_E_NULL_POINTER;
    if (link->finished) return CONVEYOR_E_END_OF_STREAM;
    if (link->described) return cv_mpi_fail(link, CONVEYOR_E_BAD_STATE, "the previous frame's payload was not taken");
    int64_t start = cv_mpi_now_ns();
    int64_t deadline = timeout_ns < 0 || timeout_ns > INT64_MAX - start ? INT64_MAX : start + timeout_ns;
    for (;;) {
        int done = 0;
        MPI_Status mpi_status;
        int rc = MPI_Test(&link->incoming_request, &done, &mpi_status);
        if (rc != MPI_SUCCESS) {
            int error_class = MPI_SUCCESS;
            MPI_Error_class(rc, &error_class);
            status = error_class == MPI_ERR_TRUNCATE ? corrupt(link, "larger than a descriptor")
                                                     : cv_mpi_call_failed(link, "MPI_Test (descriptor)", rc);
            break;
        }
        if (done) {
            status = take_descriptor(link, &mpi_status);
            if (status == CONVEYOR_E_END_OF_STREAM) {
                int ack = acknowledge_end(link);
                if (ack == CONVEYOR_OK) {
                    link->finished = true;
                    cv_mpi_beats_end(link);
                } else {
                    status = ack;
                }
                break;
            }
            if (status != CONVEYOR_OK) break;
            // The next descriptor gets its place at once.
            rc = MPI_Irecv(&link->incoming, sizeof link->incoming, MPI_BYTE, link->peer, link->tag_desc, link->comm,
                           &link->incoming_request);
            if (rc != MPI_SUCCESS) { status = cv_mpi_call_failed(link, "MPI_Irecv (descriptor)", rc); break; }
            link->stats.messages++;
            link->described = true;
            *info = link->current;
            break;
        }
        if ((status = cv_mpi_check_peer(link)) != CONVEYOR_OK) break;
        if (cv_mpi_now_ns() >= deadline) { status = CONVEYOR_E_TIMEOUT; break; }
        cv_mpi_pause_idle(start);
    }
    link->stats.blocked_ns += (uint64_t)(cv_mpi_now_ns() - start);
    return status;
}

int conveyor_mpi_link_receive_payload(conveyor_mpi_link *link, void *buffer, uint64_t capacity) {
    int status = usable_receiver(link);
    if (status != CONVEYOR_OK) return status;
    if (!link->described) return cv_mpi_fail(link, CONVEYOR_E_BAD_STATE, "no frame was described (call next first)");
    uint64_t length = link->current.byte_length, chunk = link->current_chunk_bytes;
    if (length > capacity) {
        link->broken = true;
        return cv_mpi_fail(link, CONVEYOR_E_TOO_LARGE, "a frame of %llu bytes does not fit the %llu bytes given",
                           (unsigned long long)length, (unsigned long long)capacity);
    }
    if (length > 0 && !buffer) return CONVEYOR_E_NULL_POINTER;
    unsigned char *bytes = buffer;
    uint64_t chunks = (length + chunk - 1) / chunk, posted = 0, received = 0;
    MPI_Request request[CHUNKS_IN_FLIGHT];
    uint64_t expected[CHUNKS_IN_FLIGHT];
    for (int c = 0; c < CHUNKS_IN_FLIGHT; c++) request[c] = MPI_REQUEST_NULL;
    int64_t start = cv_mpi_now_ns();
    while (status == CONVEYOR_OK && received < chunks) {
        for (int c = 0; c < CHUNKS_IN_FLIGHT && posted < chunks; c++) {
            if (request[c] != MPI_REQUEST_NULL) continue;
            uint64_t offset = posted * chunk, size = length - offset < chunk ? length - offset : chunk;
            int rc = MPI_Irecv(bytes + offset, (int)size, MPI_BYTE, link->peer, link->tag_data, link->comm, &request[c]);
            if (rc != MPI_SUCCESS) { status = cv_mpi_call_failed(link, "MPI_Irecv (payload)", rc); break; }
            expected[c] = size;
            posted++;
        }
        bool moved = false;
        for (int c = 0; c < CHUNKS_IN_FLIGHT && status == CONVEYOR_OK; c++) {
            if (request[c] == MPI_REQUEST_NULL) continue;
            int done = 0, count = 0;
            MPI_Status mpi_status;
            int rc = MPI_Test(&request[c], &done, &mpi_status);
            if (rc != MPI_SUCCESS) {
                // A chunk larger than its place is MPI_ERR_TRUNCATE: the sender broke the protocol.
                int error_class = MPI_SUCCESS;
                MPI_Error_class(rc, &error_class);
                if (error_class == MPI_ERR_TRUNCATE) status = corrupt(link, "a payload chunk is larger than announced");
                else status = cv_mpi_call_failed(link, "MPI_Test (payload)", rc);
                break;
            }
            if (!done) continue;
            MPI_Get_count(&mpi_status, MPI_BYTE, &count);
            if ((uint64_t)count != expected[c]) { status = corrupt(link, "a payload chunk is shorter than announced"); break; }
            received++;
            moved = true;
            link->stats.messages++;
        }
        if (status == CONVEYOR_OK && !moved && received < chunks && (status = cv_mpi_check_peer(link)) == CONVEYOR_OK)
            cv_mpi_pause();
    }
    link->stats.blocked_ns += (uint64_t)(cv_mpi_now_ns() - start);
    if (status != CONVEYOR_OK) {
        // Receives into the caller's buffer are cancelled; one MPI cannot let go of (a chunk
        // already arriving from a peer that then stopped) is freed, and may still write
        // the buffer until the job ends (see the header).
        for (int c = 0; c < CHUNKS_IN_FLIGHT; c++) cv_mpi_give_up(link, &request[c], false);
        link->broken = true;
        return status;
    }
    link->described = false;
    link->seq++;
    link->stats.frames++;
    link->stats.bytes += length;
    return CONVEYOR_OK;
}
