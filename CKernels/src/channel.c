/*
 * channel.c — the index-channel protocol specified in channel_layout.h: send/close on a
 * lane's sender, receive(lane) and receive_any on the receiver, backpressure, ends of
 * stream, peer death and takeover, stats. Every shared access names its SYNC POINT; the
 * waiting itself is wait.c's, the owner words owner.c's.
 */
#include "channel_internal.h"
#include "wait.h"

#include <string.h>

/* Sends between two liveness checks of the receiver when the lane never fills (as a
 * ring's loans: a clock read per send would cost more than the send). */
#define CV_PEER_CHECK_EVERY 4096

static uint64_t cv_all_lanes(const conveyor_channel *ch) {
    return ch->lanes == 64 ? UINT64_MAX : ((uint64_t)1 << ch->lanes) - 1;
}

/* ---- ownership and takeover (the word itself: owner.c) --------------------------- */

/* A new sender resumes at the lane's head and rings the receiver, as after a send: the
 * previous sender may have died between its head store and its ring. */
static int cv_sender_take_over(conveyor_channel *ch) {
    cv_channel_lane *lane = cv_lane(ch, ch->lane);
    uint64_t head = cv_load_acquire_u64(&lane->send_head);   /* SYNC POINT A */
    uint64_t tail = cv_load_acquire_u64(&lane->take_tail);   /* SYNC POINT B */
    if (head - tail > ch->capacity) return CONVEYOR_E_CORRUPT;
    ch->position = head;
    ch->peer_cache = tail;
    /* A previous sender killed asleep left its flag at 1, and only its own side clears
     * it: without this the receiver would ring (a futex wake) after every receive from
     * the lane. Nobody sleeps on the lane's doorbell now: its previous owner is gone. */
    cv_store_relaxed_u32(&lane->send_sleeping, 0);
    cv_doorbell_ring_shared(&ch->hdr->recv_doorbell, &ch->hdr->recv_sleeping, &lane->send_wakes);
    return CONVEYOR_OK;
}

/* A new receiver resumes at every lane's tail (all checked before any is used) and rings
 * every lane's sender, as after a receive. */
static int cv_receiver_take_over(conveyor_channel *ch) {
    uint64_t tails[CONVEYOR_CHANNEL_MAX_LANES], heads[CONVEYOR_CHANNEL_MAX_LANES];
    for (uint32_t l = 0; l < ch->lanes; l++) {
        cv_channel_lane *lane = cv_lane(ch, l);
        heads[l] = cv_load_acquire_u64(&lane->send_head);    /* SYNC POINT A */
        tails[l] = cv_load_acquire_u64(&lane->take_tail);    /* SYNC POINT B */
        if (heads[l] - tails[l] > ch->capacity) {
            ch->found_lane = l;  /* receive_any's *lane */
            return CONVEYOR_E_CORRUPT;
        }
    }
    memcpy(ch->tail, tails, ch->lanes * sizeof tails[0]);
    memcpy(ch->head_cache, heads, ch->lanes * sizeof heads[0]);
    ch->done = 0;
    ch->bad = 0;
    memset(ch->dead_owner, 0, sizeof ch->dead_owner);
    ch->next_lane = 0;
    /* The previous receiver, if killed asleep, left recv_sleeping at 1: clear it (as a
     * sender's takeover clears its lane's flag), or every send would make a futex wake. */
    cv_store_relaxed_u32(&ch->hdr->recv_sleeping, 0);
    for (uint32_t l = 0; l < ch->lanes; l++) {
        cv_channel_lane *lane = cv_lane(ch, l);
        cv_doorbell_ring(&lane->take_doorbell, &lane->send_sleeping, &lane->take_wakes);
    }
    return CONVEYOR_OK;
}

static int cv_channel_take_over(void *ctx) {
    conveyor_channel *ch = ctx;
    int status = ch->role == CONVEYOR_CHANNEL_SENDER ? cv_sender_take_over(ch)
                                                     : cv_receiver_take_over(ch);
    if (status != CONVEYOR_OK) return status;
    ch->sends_since_check = 0;
    ch->next_peer_check_ns = 0;
    return CONVEYOR_OK;
}

int cv_channel_claim_end(conveyor_channel *ch) {
    return cv_claim_owner(&ch->claim, cv_channel_own_owner(ch), cv_channel_take_over, ch);
}

int conveyor_channel_claim(conveyor_channel *end) {
    if (end == NULL) return CONVEYOR_E_NULL_POINTER;
    if (end->role == CONVEYOR_CHANNEL_HOLDER) return CONVEYOR_E_WRONG_ROLE;
    return cv_channel_claim_end(end);
}

/* Every operation starts here: right role, and this process owns the end (a handle used
 * for the first time after a fork claims it again). */
static int cv_enter(conveyor_channel *ch, int role) {
    if (ch == NULL) return CONVEYOR_E_NULL_POINTER;
    if (ch->role != role) return CONVEYOR_E_WRONG_ROLE;
    if (cv_claim_stale(&ch->claim)) return cv_channel_claim_end(ch);
    return CONVEYOR_OK;
}

/* ---- sender ---------------------------------------------------------------------- */

/* Rate-limited: whether the receiver's process is gone (or it handed its end back). */
static bool cv_receiver_gone(void *ctx, int64_t now) {
    conveyor_channel *ch = ctx;
    if (!cv_check_due(&ch->next_peer_check_ns, now)) return false;
    return cv_owner_gone(cv_load_acquire_u64(&ch->hdr->recv_owner));
}

static int cv_room(void *ctx) {
    conveyor_channel *ch = ctx;
    if (ch->position - ch->peer_cache < ch->capacity) return CONVEYOR_OK;
    uint64_t tail = cv_load_acquire_u64(&cv_lane(ch, ch->lane)->take_tail);  /* SYNC POINT B */
    if (ch->position - tail > ch->capacity) return CONVEYOR_E_CORRUPT;
    ch->peer_cache = tail;
    return ch->position - tail < ch->capacity ? CONVEYOR_OK : CONVEYOR_E_TIMEOUT;
}

int conveyor_channel_send(conveyor_channel *sender, uint64_t word, int64_t timeout_ns) {
    int status = cv_enter(sender, CONVEYOR_CHANNEL_SENDER);
    if (status != CONVEYOR_OK) return status;
    conveyor_channel *ch = sender;
    cv_channel_lane *lane = cv_lane(ch, ch->lane);
    if (cv_load_relaxed_u32(&lane->send_closed)) return CONVEYOR_E_CLOSED;  /* ours to write */
    if (++ch->sends_since_check >= CV_PEER_CHECK_EVERY) {
        ch->sends_since_check = 0;
        ch->next_peer_check_ns = 0;
        if (cv_receiver_gone(ch, cv_now_ns())) return CONVEYOR_E_PEER_DEAD;
    }
    cv_waiter w = {.ctx = ch, .ready = cv_room, .peer_gone = cv_receiver_gone,
                   .doorbell = &lane->take_doorbell, .sleeping = &lane->send_sleeping,
                   .waits = &lane->send_waits, .spin = ch->spin};
    if ((status = cv_wait(&w, timeout_ns)) != CONVEYOR_OK) return status;

    cv_store_relaxed_u64(&cv_lane_words(ch, ch->lane)[ch->position % ch->capacity], word);
    ch->position++;
    cv_store_release_u64(&lane->send_head, ch->position);          /* SYNC POINT A */
    cv_bump_u64(&lane->send_words, 1);
    cv_doorbell_ring_shared(&ch->hdr->recv_doorbell, &ch->hdr->recv_sleeping, &lane->send_wakes);
    return CONVEYOR_OK;
}

int conveyor_channel_close(conveyor_channel *sender) {
    int status = cv_enter(sender, CONVEYOR_CHANNEL_SENDER);
    if (status != CONVEYOR_OK) return status;
    cv_channel_lane *lane = cv_lane(sender, sender->lane);
    cv_store_release_u32(&lane->send_closed, 1);                    /* SYNC POINT D */
    cv_doorbell_ring_shared(&sender->hdr->recv_doorbell, &sender->hdr->recv_sleeping,
                            &lane->send_wakes);
    return CONVEYOR_OK;
}

/* ---- receiver -------------------------------------------------------------------- */

/* Lane l has a word (OK), is closed and drained (END_OF_STREAM, kept in `done`), is empty
 * (TIMEOUT) or impossible (CORRUPT). */
static int cv_lane_ready(conveyor_channel *ch, uint32_t l) {
    if (ch->done >> l & 1) return CONVEYOR_E_END_OF_STREAM;
    if (ch->head_cache[l] != ch->tail[l]) return CONVEYOR_OK;
    cv_channel_lane *lane = cv_lane(ch, l);
    /* closed first (SYNC POINT D), then head: a close seen implies all its sends seen. */
    uint32_t closed = cv_load_acquire_u32(&lane->send_closed);     /* SYNC POINT D */
    uint64_t head = cv_load_acquire_u64(&lane->send_head);         /* SYNC POINT A */
    if (head - ch->tail[l] > ch->capacity) return CONVEYOR_E_CORRUPT;
    ch->head_cache[l] = head;
    if (head != ch->tail[l]) return CONVEYOR_OK;
    if (!closed) return CONVEYOR_E_TIMEOUT;
    ch->done |= (uint64_t)1 << l;
    return CONVEYOR_E_END_OF_STREAM;
}

/* Takes lane l's next word (the caller saw it ready) and frees its place. */
static uint64_t cv_take(conveyor_channel *ch, uint32_t l) {
    cv_channel_lane *lane = cv_lane(ch, l);
    uint64_t word = cv_load_relaxed_u64(&cv_lane_words(ch, l)[ch->tail[l] % ch->capacity]);
    ch->tail[l]++;
    cv_store_release_u64(&lane->take_tail, ch->tail[l]);           /* SYNC POINT B */
    cv_bump_u64(&lane->take_words, 1);
    cv_doorbell_ring(&lane->take_doorbell, &lane->send_sleeping, &lane->take_wakes);
    return word;
}

/* Whether lane l's sender is gone without closing (owner first, then closed: a sender
 * that closed and then left is seen closed). A never-claimed lane is waited for. *owner
 * receives the owner word loaded. */
static bool cv_sender_gone(conveyor_channel *ch, uint32_t l, uint64_t *owner) {
    cv_channel_lane *lane = cv_lane(ch, l);
    *owner = cv_load_acquire_u64(&lane->send_owner);
    if (*owner == CV_OWNER_NONE || !cv_owner_gone(*owner)) return false;
    return cv_load_acquire_u32(&lane->send_closed) == 0;            /* SYNC POINT D */
}

static int cv_one_ready(void *ctx) {
    conveyor_channel *ch = ctx;
    return cv_lane_ready(ch, ch->want_lane);
}

static bool cv_one_gone(void *ctx, int64_t now) {
    conveyor_channel *ch = ctx;
    if (!cv_check_due(&ch->next_peer_check_ns, now)) return false;
    uint64_t owner;
    return cv_sender_gone(ch, ch->want_lane, &owner);
}

/* Round-robin from next_lane, skipping the lanes reported corrupt: the first lane with a
 * word; else the first newly impossible one (CORRUPT, then skipped for good: RECEIVE-ANY
 * ORDER AND ENDS); else END_OF_STREAM once every lane is done or skipped. Every CORRUPT
 * this returns reaches the caller (cv_wait returns any status but TIMEOUT). */
static int cv_any_ready(void *ctx) {
    conveyor_channel *ch = ctx;
    uint32_t corrupt = UINT32_MAX;
    for (uint32_t i = 0, l = ch->next_lane; i < ch->lanes; i++, l = l + 1 < ch->lanes ? l + 1 : 0) {
        if (ch->bad >> l & 1) continue;
        int status = cv_lane_ready(ch, l);
        if (status == CONVEYOR_OK) {
            ch->found_lane = l;
            return status;
        }
        if (status == CONVEYOR_E_CORRUPT && corrupt == UINT32_MAX) corrupt = l;
    }
    if (corrupt != UINT32_MAX) {
        ch->bad |= (uint64_t)1 << corrupt;
        ch->found_lane = corrupt;
        return CONVEYOR_E_CORRUPT;
    }
    return (ch->done | ch->bad) == cv_all_lanes(ch) ? CONVEYOR_E_END_OF_STREAM
                                                    : CONVEYOR_E_TIMEOUT;
}

/* Rate-limited: the first lane (not done, not skipped) whose sender is gone without
 * closing, unless that very owner word was reported already. A lane whose owner word
 * changed since its report (a new sender took it over) is watched again. When no lane
 * can deliver any more (each is done, skipped, or gone and reported), the first gone lane
 * is reported again: the receiver must never wait for good on senders that are all
 * dead, which a lane reported once and then skipped would make it do. */
static bool cv_any_gone(void *ctx, int64_t now) {
    conveyor_channel *ch = ctx;
    if (!cv_check_due(&ch->next_peer_check_ns, now)) return false;
    uint32_t reported = UINT32_MAX;  /* the first gone lane reported before */
    bool can_deliver = false;
    for (uint32_t l = 0; l < ch->lanes; l++) {
        if ((ch->done | ch->bad) >> l & 1) continue;
        uint64_t owner;
        bool gone = cv_sender_gone(ch, l, &owner);
        if (gone && owner == ch->dead_owner[l]) {
            if (reported == UINT32_MAX) reported = l;
            continue;
        }
        ch->dead_owner[l] = 0;  /* never reported, or a new owner since the report */
        if (gone) {
            ch->dead_lane = l;
            ch->dead_word = owner;
            return true;
        }
        can_deliver = true;
    }
    if (can_deliver || reported == UINT32_MAX) return false;
    ch->dead_lane = reported;
    ch->dead_word = ch->dead_owner[reported];
    return true;
}

/* A receiver wait: on the channel's one doorbell, whatever it waits for. */
static int cv_receiver_wait(conveyor_channel *ch, int64_t timeout_ns, int (*ready)(void *),
                            bool (*gone)(void *, int64_t)) {
    cv_waiter w = {.ctx = ch, .ready = ready, .peer_gone = gone,
                   .doorbell = &ch->hdr->recv_doorbell, .sleeping = &ch->hdr->recv_sleeping,
                   .waits = &ch->hdr->recv_waits, .spin = ch->spin};
    return cv_wait(&w, timeout_ns);
}

int conveyor_channel_receive(conveyor_channel *receiver, uint32_t lane, int64_t timeout_ns,
                             uint64_t *word) {
    if (receiver == NULL || word == NULL) return CONVEYOR_E_NULL_POINTER;
    int status = cv_enter(receiver, CONVEYOR_CHANNEL_RECEIVER);
    if (status != CONVEYOR_OK) return status;
    if (lane >= receiver->lanes) return CONVEYOR_E_INVALID_ARGUMENT;
    receiver->want_lane = lane;
    status = cv_receiver_wait(receiver, timeout_ns, cv_one_ready, cv_one_gone);
    if (status != CONVEYOR_OK) return status;
    *word = cv_take(receiver, lane);
    return CONVEYOR_OK;
}

int conveyor_channel_receive_any(conveyor_channel *receiver, int64_t timeout_ns, uint32_t *lane,
                                 uint64_t *word) {
    if (receiver == NULL || lane == NULL || word == NULL) return CONVEYOR_E_NULL_POINTER;
    int status = cv_enter(receiver, CONVEYOR_CHANNEL_RECEIVER);
    if (status == CONVEYOR_OK)
        status = cv_receiver_wait(receiver, timeout_ns, cv_any_ready, cv_any_gone);
    if (status == CONVEYOR_E_PEER_DEAD) {
        *lane = receiver->dead_lane;  /* reported once for this owner word */
        receiver->dead_owner[receiver->dead_lane] = receiver->dead_word;
    }
    /* from the scan, or from a takeover in cv_enter (which names the lane it failed on) */
    if (status == CONVEYOR_E_CORRUPT) *lane = receiver->found_lane;
    if (status != CONVEYOR_OK) return status;
    uint32_t l = receiver->found_lane;
    *word = cv_take(receiver, l);
    receiver->dead_owner[l] = 0;  /* a word after the report: a new sender sent it */
    *lane = l;
    receiver->next_lane = l + 1 < receiver->lanes ? l + 1 : 0;
    return CONVEYOR_OK;
}

/* ---- settings and counters ------------------------------------------------------- */

int conveyor_channel_set_spin(conveyor_channel *end, uint32_t spin) {
    if (end == NULL) return CONVEYOR_E_NULL_POINTER;
    end->spin = spin;
    return CONVEYOR_OK;
}

_Static_assert(sizeof(conveyor_channel_stats) == CONVEYOR_CHANNEL_STATS_SIZE_0_5,
               "conveyor_channel_stats changed size: grow it only at its end");

int conveyor_channel_read_stats(const conveyor_channel *channel, conveyor_channel_stats *stats,
                                size_t size) {
    if (channel == NULL || stats == NULL) return CONVEYOR_E_NULL_POINTER;
    if (size < 8 || size % 8 != 0) return CONVEYOR_E_INVALID_ARGUMENT;
    conveyor_channel_stats all = {
        .receiver_waits = cv_load_relaxed_u64(&channel->hdr->recv_waits),
        .lanes = channel->lanes,
        .capacity = channel->capacity,
        .mapped_bytes = channel->map->bytes,
    };
    for (uint32_t l = 0; l < channel->lanes; l++) {
        cv_channel_lane *lane = cv_lane(channel, l);
        all.words_sent += cv_load_relaxed_u64(&lane->send_words);
        all.words_received += cv_load_relaxed_u64(&lane->take_words);
        all.sender_waits += cv_load_relaxed_u64(&lane->send_waits);
        all.sender_wakes += cv_load_relaxed_u64(&lane->send_wakes);
        all.receiver_wakes += cv_load_relaxed_u64(&lane->take_wakes);
    }
    /* A newer caller's fields past ours read as zero; an older caller's struct ends sooner. */
    if (size > sizeof all) memset((char *)stats + sizeof all, 0, size - sizeof all);
    memcpy(stats, &all, size < sizeof all ? size : sizeof all);
    return CONVEYOR_OK;
}
