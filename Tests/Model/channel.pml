/*
 * channel.pml — a Promela model of the index channel's wait/wake, close, backpressure and
 * sender-takeover protocol (CKernels/src/channel_layout.h is the specification, channel.c
 * the code; the design is "Channel protocol" in the issue 12 plan), checked exhaustively
 * with spin by scripts/check-model, next to ring.pml. Every modelled step names the
 * channel_layout.h step and SYNC POINT (A, B, C, D) it stands for.
 *
 * WHAT IS MODELLED
 *   - L (2 or 3) lanes, each an SPSC queue of CAP words with its own sender process on its
 *     own CPU; sender l sends NW words (the word sent k-th is k, k = 1...NW) and closes:
 *       send:   wait while the lane is full (the sender's wait below); word into
 *               slot pos % CAP; store_release(send_head)  SYNC POINT A; then the
 *               receiver's doorbell (FENCE C; if recv_sleeping: ATOMIC ADD recv_doorbell
 *               (a locked RMW: several senders write it); futex_wake(recv_doorbell))
 *       close:  store_release(send_closed = 1)  SYNC POINT D; then the same doorbell
 *   - One receiver on its own CPU, in one of two modes:
 *       -DRECV_ANY=1  receive_any: lanes tried round-robin from the one after the lane
 *                     served last; a lane with a word is ready; closed and drained lanes are
 *                     skipped; END_OF_STREAM once every lane is; PEER_DEAD naming a lane
 *                     whose sender is gone without closing, when no lane has a word
 *       -DRECV_ANY=0  receive(lane): the receiver asks lane 0, then the next unfinished
 *                     lane, and so on (a word or END_OF_STREAM moves it on), so it sleeps
 *                     on one lane while another lane fills up (backpressure)
 *     Either way it waits on the ONE receiver doorbell (every lane's sender rings it):
 *       bell = load(recv_doorbell)            (1)
 *       recv_sleeping = 1
 *       FENCE                                 (C)
 *       check the lane(s): closed (acquire, SYNC POINT D) before head (acquire, A)
 *       peer check (the lane(s)' sender gone without closing: PEER_DEAD after a re-check)
 *       futex_wait(&recv_doorbell, bell)
 *     and after taking a word: store_release(take_tail)  SYNC POINT B; FENCE C; if
 *     send_sleeping: take_doorbell += 1 (a plain load + store: only the
 *     receiver writes it); futex_wake(take_doorbell)  (backpressure's wake-up).
 *   - The sender's wait on a full lane, symmetric: bell = load(take_doorbell);
 *     send_sleeping = 1; FENCE C; load(take_tail) (acquire, B); peer check (the
 *     receiver gone); futex_wait(&take_doorbell, bell).
 *   - x86-64 TSO exactly as ring.pml: a FIFO store buffer per CPU, loads see the own
 *     youngest buffered store, a Flusher drains the oldest entry at any moment; a fence, a
 *     locked RMW (atomic add, owner CAS) and a futex syscall drain the buffer; release /
 *     acquire are plain MOVs. -DSEQ_CST_MEMORY: direct stores (a control).
 *   - The futex as ring.pml: futex_wait drains, then queues the caller only if the word
 *     still equals `bell` (atomically with respect to futex_wake); futex_wake dequeues.
 *     NO TIME SLICE while it would hide a lost wake-up: a sleeper returns by its slice
 *     (CONVEYOR_RING_PEER_CHECK_NS) only while the peer its peer check looks at is gone
 *     (the receiver: lane 0's current sender, the only one that can die; a sender: the
 *     receiver). This is ring.pml's -DSTRICT_SLICE, always on here.
 *   - Death (Promela `unless`, as ring.pml): lane 0's sender (-DS_DIES) and/or the receiver
 *     (-DR_DIES) may be killed before any step; a killed process takes no further step,
 *     leaves the futex queue, its buffered stores drain, then it is seen dead.
 *   - Sender takeover (-DTAKEOVER, needs S_DIES): a replacement claims lane 0 once its
 *     sender is dead (CAS of lane.send_owner from a gone owner: drains), reloads head
 *     then tail from the lane (cv_load_position's counterpart: it resumes at the shared
 *     head, so no word is sent twice and none is skipped), rings the receiver's doorbell as
 *     after a send (the ring's FINDING: the previous sender may have died between its head
 *     store and its doorbell with the receiver already asleep), then sends the rest and
 *     closes. -DIDLE: the replacement may also stop for good right after its claim (an
 *     application that claims a lane and has nothing to send yet): then nothing but the
 *     takeover doorbell wakes a receiver that slept through the death.
 *     The receiver, on PEER_DEAD: retries once lane 0 has been taken over, else hands its
 *     end back (conveyor_channel_destroy: owner LEFT, seen by the senders as gone).
 *   - Receiver takeover (-DR_TAKEOVER, needs R_DIES; run with L=1 to fit): a replacement
 *     claims recv_owner once the receiver is dead (CAS: drains), loads every lane's head
 *     then tail (cv_receiver_take_over: all checked before any is used), resumes at the
 *     tails (the words the dead receiver took are lost, no other), rings every lane's
 *     take_doorbell as after a receive (a sender may sleep on a full lane the dead
 *     receiver freed just before dying), then receives; with -DIDLE it may also stop for
 *     good right after. A sender on PEER_DEAD retries once the receiver was replaced, else
 *     closes its lane and stops.
 *
 * WHAT IS ABSTRACTED AWAY
 *   - The spin phase (spin = 0), timeouts and deadlines (-1), the rate limit of liveness
 *     checks (they see liveness as it is), spurious futex returns (-DSPURIOUS allows them,
 *     with any slice: then only the assertions and the Monitor mean anything), stats
 *     counters, the geometry and TRUST checks (asserted never to fire: CORRUPT is
 *     unreachable), words other than their sequence numbers, fork hand-over.
 *   - Lanes never claimed (NONE), receiver takeover with more than one lane (state space),
 *     deaths of lanes other than lane 0, a second death on an end, ARM / C11 (only x86-64
 *     TSO).
 *   - Indices and doorbells are bytes (no wrap within NW words).
 *   - Steps: each d_step makes at most one access another CPU can observe, as in ring.pml.
 *
 * VARIABLES -> channel_layout.h
 *   mem[W_RSLEEP]            receiver cold line: recv_sleeping
 *   mem[W_RBELL]             receiver cold line: recv_doorbell (senders add, receiver waits)
 *   mem[W_HEAD(l)]           lane l sender hot line: head
 *   mem[W_CLOSED(l)]         lane l sender hot line: closed
 *   mem[W_TAIL(l)]           lane l receiver hot line: tail
 *   mem[W_SSLEEP(l)]         lane l sender cold line: send_sleeping
 *   mem[W_SBELL(l)]          lane l sender cold line: take_doorbell (receiver rings it)
 *   mem[W_SLOT(l, k)]        lane l word k (words_offset + (l * capacity + k) * 8)
 *   owner0                   lane 0 sender owner word (1 the first sender, 2 the
 *                            replacement; only a CAS writes it, never buffered)
 *   s_dead                   lane 0's first sender has exited (its owner is gone)
 *   r_dead, r_left           the first receiver was killed / handed its end back (LEFT)
 *   r_owner                  recv_owner (1 the first receiver, 2 the replacement; only a
 *                            CAS writes it)
 *   fw_r, fw_s[l]            the kernel's futex queue on recv_doorbell / lane l's
 *                            take_doorbell
 *   g_*                      ghost counters for the assertions
 *
 * PROPERTIES
 *   - Assertions: each lane's words arrive in order, each once (the k-th word taken from
 *     lane l is k, counting every sender of the lane, the replacement included); a sender
 *     never overwrites a word not yet taken; END_OF_STREAM only with every lane closed and
 *     every word sent taken; PEER_DEAD only for lane 0 with its first sender dead and every
 *     word it sent taken; a sender's PEER_DEAD only with the receiver gone; a replacement
 *     resumes exactly after the last word sent; CORRUPT never.
 *   - No invalid end state: no process blocks forever (without -DIDLE the only end labels
 *     are the Flushers' idle loop, the Monitor, and a replacement waiting for a death that
 *     may never come).
 *   - The Monitor (no lost wake-up, stated directly): when nothing in the system can move
 *     (spin's `timeout`: every store buffer drained), the receiver is not queued on its
 *     doorbell while a lane it waits on has a word (head != tail) or an end of stream to
 *     report, and no sender is queued on its lane's doorbell while the lane has room.
 *     With -DIDLE the futex waits are valid end states (waiting for a live sender that has
 *     nothing to send is fine), so this is what catches a lost wake-up there.
 *   - Non-progress cycles (-DNP, pan -l -f): every infinite run sends or receives
 *     infinitely often.
 *   - Mutants (-DMUTANT_...) must each fail: NO_RECV_DOORBELL (a sender never rings),
 *     NO_SEND_DOORBELL (the receiver never rings a sleeping sender: backpressure hangs),
 *     NO_FENCE_C (the sender's fence before loading recv_sleeping), NO_FENCE_C_WAITER (the
 *     receiver's fence after recv_sleeping = 1), NO_FENCE_C_RECV (the receiver's fence
 *     before loading send_sleeping), SWAP_CLOSED_HEAD (head loaded before closed: END_OF_STREAM
 *     loses a word), NO_TAKEOVER_DOORBELL (with -DIDLE: the receiver sleeps forever on a word
 *     the dead sender published), NO_RECV_TAKEOVER_DOORBELL (with -DIDLE: a sender sleeps
 *     forever on a lane the dead receiver had freed).
 *
 * RESULTS (spin 6.5.2, pan built with gcc -O1 -DSAFETY, or -DNP run as pan -l -f;
 * exhaustive: no state compression; depth <= ~510). States stored, seconds of pan, on the
 * shared 2-core machine (channel.c as of commit 3161bea). The channel runs of
 * scripts/check-model took 82 s of wall clock (spin -a and gcc included) at load ~3, and
 * ~110 s at load ~6:
 *   must verify                                                   states  errors  seconds
 *   ch-any-l2              L=2 NW=2/1, receive_any                5239517      0      8.3
 *   ch-lane-l2             L=2 NW=2/1, receive(lane)              1410366      0      2.1
 *   ch-any-l3              L=3 NW=1/0, receive_any                2256850      0      4.2
 *   ch-any-sender-dies     lane 0's sender killed anywhere        2605835      0      4.9
 *   ch-lane-receiver-dies  the receiver killed anywhere           1688315      0      3.2
 *   ch-any-takeover-idle   sender takeover, -DIDLE                2469635      0      4.4
 *   ch-lane-takeover-idle  the same, receive(lane)                1452653      0      3.1
 *   ch-any-l1-recv-takeover-idle  receiver takeover, -DIDLE, L=1  1313734      0      1.2
 *   ch-any-spurious-takeover  -DSPURIOUS, sender takeover         2614303      0      4.0
 *   np-ch-any-l2           non-progress cycles                    1281490      0     10.6
 *   ch-control-seqcst-no-fences  SC memory, all fences cut         404396      0      0.5
 *   must fail (each by the named assertion)
 *   ch-mutant-no-recv-doorbell          receiver_asleep_with_work      599      1
 *   ch-mutant-no-send-doorbell          sender_asleep_with_room        107      1
 *   ch-mutant-no-fence-c                receiver_asleep_with_work      100      1
 *   ch-mutant-no-fence-c-waiter         receiver_asleep_with_work      813      1
 *   ch-mutant-no-fence-c-recv           sender_asleep_with_room      22169      1
 *   ch-mutant-swap-closed-head          END_OF_STREAM before a word   4910      1
 *   ch-mutant-no-takeover-doorbell      receiver_asleep_with_work   384615      1
 *   ch-mutant-no-recv-takeover-doorbell sender_asleep_with_room     141194      1
 *   (Larger configurations, e.g. L=2 NW=2/2, L=3 with words on every lane, or a receiver
 *   takeover on two lanes, exceed 2 GB of states: the run list keeps the script near two
 *   minutes.) No finding: channel.c as written verifies in every configuration above.
 */

/* ---- configuration (spin -D...) ---------------------------------------------------- */
#ifndef L
#define L 2             /* lanes (senders): 2 or 3 (1 for the receiver-takeover runs) */
#endif
#ifndef CAP
#define CAP 1           /* words per lane */
#endif
#ifndef NW
#define NW 2            /* words lane 0's sender(s) send before closing */
#endif
#ifndef NW1
#define NW1 1           /* words each other lane's sender sends before it closes */
#endif
#define LANE_NW(l) ((l) == 0 -> NW : NW1)
#ifndef RECV_ANY
#define RECV_ANY 1      /* 1 receive_any, 0 receive(lane) */
#endif
#ifndef S_DIES
#define S_DIES 0        /* lane 0's sender may be killed before any step */
#endif
#ifndef R_DIES
#define R_DIES 0        /* the receiver may be killed before any step */
#endif
#ifndef TAKEOVER
#define TAKEOVER 0      /* a replacement may take lane 0 over from its dead sender */
#endif
#ifndef R_TAKEOVER
#define R_TAKEOVER 0    /* a replacement receiver may take over from the dead one (needs R_DIES) */
#endif

#define SB 6            /* store-buffer entries per CPU (asserted never to overflow) */

/* statuses (conveyor.h: CONVEYOR_OK, _E_TIMEOUT, _E_END_OF_STREAM, _E_PEER_DEAD) */
#define OK        0
#define TIMEOUT   1
#define EOS       2
#define PEER_DEAD 3

/* the words of the channel the protocol uses, as indices into mem[] */
#define W_RSLEEP 0
#define W_RBELL  1
#define LANE_WORDS (5 + CAP)
#define W_HEAD(l)   (2 + (l) * LANE_WORDS)
#define W_CLOSED(l) (3 + (l) * LANE_WORDS)
#define W_TAIL(l)   (4 + (l) * LANE_WORDS)
#define W_SSLEEP(l) (5 + (l) * LANE_WORDS)
#define W_SBELL(l)  (6 + (l) * LANE_WORDS)
#define W_SLOT(l, k) (7 + (l) * LANE_WORDS + (k))
#define NWORDS (2 + L * LANE_WORDS)

/* CPUs: the receiver's, then one per lane's sender (the replacement uses lane 0's: it
 * starts only after the dead sender's buffer has drained). */
#define R 0
#define SCPU(l) (1 + (l))
#define NCPU (1 + L)

byte mem[NWORDS];
byte sb_a[NCPU * SB];
byte sb_v[NCPU * SB];
byte sb_n[NCPU];
hidden byte sb_i;

bit fw_r;               /* the receiver is queued on recv_doorbell */
bit fw_s[L];            /* sender l is queued on lane l's take_doorbell */
byte owner0 = 1;        /* lane 0's send_owner: 1 the first sender, 2 the replacement */
bit s_dead;             /* lane 0's first sender has exited */
bit r_dead, r_left;     /* the (first) receiver was killed / handed its end back */
byte r_owner = 1;       /* recv_owner: 1 the first receiver, 2 its replacement */
bit kill_s, kill_r;     /* set by the killers */
byte r_lane = 255;      /* the lane receive(lane) waits on (255: receive_any), for the Monitor */

byte g_sent[L];         /* ghost: words sent on lane l (head stores executed), all senders */
byte g_sent_first;      /* ghost: words lane 0's first sender sent */
byte g_taken[L];        /* ghost: words taken from lane l (tail stores executed) */
bit g_closed[L];        /* ghost: lane l's closed store executed */

/* ---- x86-64 TSO: store buffers (as ring.pml) ------------------------------------------ */
#define SBX(cpu, k) ((cpu) * SB + (k))

#ifndef SEQ_CST_MEMORY
inline _store(cpu, w, v) {
    assert(sb_n[cpu] < SB);
    sb_a[SBX(cpu, sb_n[cpu])] = w;
    sb_v[SBX(cpu, sb_n[cpu])] = v;
    sb_n[cpu]++
}
#else
inline _store(cpu, w, v) {
    mem[w] = v
}
#endif

inline _load(cpu, w, r) {
    r = mem[w];
    sb_i = 0;
    do
    :: sb_i < sb_n[cpu] ->
        if
        :: sb_a[SBX(cpu, sb_i)] == w -> r = sb_v[SBX(cpu, sb_i)]
        :: else -> skip
        fi;
        sb_i++
    :: else -> break
    od;
    sb_i = 0
}

inline _flush1(cpu) {
    mem[sb_a[SBX(cpu, 0)]] = sb_v[SBX(cpu, 0)];
    sb_i = 1;
    do
    :: sb_i < sb_n[cpu] ->
        sb_a[SBX(cpu, sb_i - 1)] = sb_a[SBX(cpu, sb_i)];
        sb_v[SBX(cpu, sb_i - 1)] = sb_v[SBX(cpu, sb_i)];
        sb_i++
    :: else -> break
    od;
    sb_n[cpu]--;
    sb_a[SBX(cpu, sb_n[cpu])] = 0;
    sb_v[SBX(cpu, sb_n[cpu])] = 0;
    sb_i = 0
}

inline _drain(cpu) {
    do
    :: sb_n[cpu] > 0 -> _flush1(cpu)
    :: else -> break
    od
}

proctype Flusher(byte cpu) {
end:
    do
    :: d_step { sb_n[cpu] > 0 -> _flush1(cpu) }
    od
}

/* ---- liveness as the peer checks and the slices see it ----------------------------- */

/* The receiver's peer check of lane 0 (the only lane whose sender can die): its current
 * send_owner is gone. */
#define LANE0_GONE (owner0 == 1 && s_dead)
/* A sender's peer check: recv_owner is gone (dead, or LEFT). */
#define RECV_GONE (r_owner == 1 && (r_dead || r_left))

#ifdef SPURIOUS
#define R_SLICE (1)
#define S_SLICE (1)
#else
#define R_SLICE (LANE0_GONE && (r_lane == 255 || r_lane == 0))
#define S_SLICE (RECV_GONE)
#endif

/* ---- sender -------------------------------------------------------------------------- */

/* channel.c cv_room, the sender's ready(): room in its lane. leave = 1 inside the wait loop: the loop's exit
 * store send_sleeping = 0 folds into the step (buffered: invisible until flushed). */
inline send_ready(leave) {
    if
    :: pos - cache < CAP -> st = OK                 /* local: cached tail says there is room */
    :: else ->
        d_step {
            _load(cpu, W_TAIL(l), t);               /* load_acquire(take_tail)  SYNC POINT B */
            assert(t <= pos && pos - t <= CAP);     /* head - tail > capacity: CORRUPT: never */
            cache = t;
            if
            :: pos - t < CAP -> st = OK
            :: else -> st = TIMEOUT
            fi;
            t = 0;
            if
            :: leave && st != TIMEOUT -> _store(cpu, W_SSLEEP(l), 0)  /* send_sleeping = 0 */
            :: else -> skip
            fi
        }
    fi
}

/* wait.c cv_wait_slow for conveyor_channel_send: the sender's wait on a full lane (sleeps
 * on take_doorbell, peer check cv_receiver_gone). */
inline send_wait() {
    send_ready(0);
    if
    :: st == TIMEOUT ->
        do
        :: d_step {
                _load(cpu, W_SBELL(l), bell);       /* bell = load(take_doorbell)  (1) */
                _store(cpu, W_SSLEEP(l), 1)         /* send_sleeping = 1 */
            }
            d_step { _drain(cpu) }                  /* FENCE  SYNC POINT C */
            send_ready(1);
            if
            :: st != TIMEOUT -> break
            :: else -> skip
            fi;
            if
            :: RECV_GONE ->                         /* peer check: the receiver is gone */
                send_ready(0);                      /* re-check after the death */
                d_step {
                    if
                    :: st == TIMEOUT -> st = PEER_DEAD
                    :: else -> skip
                    fi;
                    _store(cpu, W_SSLEEP(l), 0)
                }
                break
            :: else -> skip
            fi;
            d_step {                                /* futex_wait(&take_doorbell, bell) */
                _drain(cpu);
                if
                :: mem[W_SBELL(l)] == bell -> fw_s[l] = 1
                :: else -> skip
                fi;
                bell = 0
            }
#ifdef IDLE
end_swait:
#endif
            atomic { (fw_s[l] == 0 || S_SLICE) -> fw_s[l] = 0 }
        od
    :: else -> skip
    fi
}

/* wait.h cv_doorbell_ring_shared(&hdr->recv_doorbell, &hdr->recv_sleeping, &lane->send_wakes):
 * rung by conveyor_channel_send, conveyor_channel_close and cv_sender_take_over. */
inline recv_doorbell() {
#ifndef MUTANT_NO_FENCE_C
    d_step { _drain(cpu) }                          /* FENCE  SYNC POINT C */
#endif
    d_step {
        _load(cpu, W_RSLEEP, t);                    /* if (load(recv_sleeping)) */
#ifdef MUTANT_NO_RECV_DOORBELL
        t = 0;
#endif
        skip
    }
    if
    :: t ->
        d_step { _drain(cpu); mem[W_RBELL] = mem[W_RBELL] + 1 }  /* atomic add recv_doorbell, 1: locked, drains */
        d_step { t = 0; fw_r = 0 }                  /* futex_wake(&recv_doorbell) */
    :: else -> skip
    fi
}

proctype Sender(byte l; byte id) {
    byte pos;       /* local head */
    byte cache;     /* the last tail seen */
    byte st, bell, t;
    byte cpu = SCPU(l);
    {
        if
        :: id == 2 ->
            /* the replacement of lane 0: conveyor_channel_attach_fd/open(SENDER, 0) -> owner.c
             * cv_claim_owner -> channel.c cv_sender_take_over */
end_claim:  atomic {
                owner0 == 1 && s_dead ->            /* send_owner is gone: free to take */
                _drain(cpu);                        /* CAS(lane.send_owner): locked, drains */
                owner0 = 2
            }
            d_step { _load(cpu, W_HEAD(l), pos) }   /* reload: head = load_acquire(send_head) (its own line, left by the dead owner) */
            d_step {
                _load(cpu, W_TAIL(l), cache);       /* tail = load_acquire(take_tail)  SYNC POINT B */
                assert(cache <= pos && pos - cache <= CAP);  /* else CORRUPT (nothing claimed): never */
                assert(pos == g_sent[l])            /* resumes after the last word sent */
            }
            d_step { _store(cpu, W_SSLEEP(l), 0) }  /* cv_sender_take_over: send_sleeping = 0 (a dead owner's stale 1) */
#ifndef MUTANT_NO_TAKEOVER_DOORBELL
            recv_doorbell();                        /* cv_sender_take_over: cv_doorbell_ring_shared, as after a send */
#endif
#ifdef IDLE
            if
            :: true ->
end_idle:       false                               /* the application has nothing to send, for good */
            :: true -> skip
            fi
#endif
        :: else -> skip
        fi;
        do
        :: pos < LANE_NW(l) ->
send_again: if
            :: RECV_GONE -> st = PEER_DEAD          /* the periodic peer check of send */
            :: true -> send_wait()
            fi;
            if
            :: st == PEER_DEAD ->
                assert(r_dead || r_left);           /* only once the receiver died or left */
                if
                :: r_owner == 2 -> st = OK; goto send_again  /* the application retries once the receiver was replaced */
                :: else -> break                    /* or closes its lane */
                fi
            :: else -> skip
            fi;
            d_step {
                assert(pos - g_taken[l] < CAP);     /* the slot's previous word was taken */
                _store(cpu, W_SLOT(l, pos % CAP), pos + 1);  /* words[lane][head % capacity] = word */
                pos++;
                _store(cpu, W_HEAD(l), pos);        /* store_release(send_head)  SYNC POINT A */
                g_sent[l] = pos;
                if
                :: id == 1 && l == 0 -> g_sent_first = pos
                :: else -> skip
                fi
            }
progress_send:
            recv_doorbell()
        :: else -> break
        od;
        atomic {
            _store(cpu, W_CLOSED(l), 1);            /* close: store_release(send_closed, 1)  SYNC POINT D */
            g_closed[l] = 1
        }
        recv_doorbell()
    } unless {
        atomic { kill_s && l == 0 && id == 1 -> fw_s[l] = 0 };
        (sb_n[cpu] == 0) -> s_dead = 1
    }
}

/* ---- receiver ------------------------------------------------------------------------ */

/* channel.c cv_lane_ready, one lane's readiness: r = 1 a word, 2 closed and drained, 0 nothing yet. Closed is
 * loaded before head (SYNC POINT D, then A), so closed + head == tail means drained. */
inline lane_check(ln) {
    if
    :: cache[ln] != pos[ln] -> r = 1
    :: else ->
#ifndef MUTANT_SWAP_CLOSED_HEAD
        d_step { _load(R, W_CLOSED(ln), cl) }       /* load_acquire(send_closed)  SYNC POINT D */
        d_step {
            _load(R, W_HEAD(ln), hd);               /* load_acquire(send_head)  SYNC POINT A */
#else
        d_step { _load(R, W_HEAD(ln), hd) }
        d_step {
            _load(R, W_CLOSED(ln), cl);
#endif
            assert(hd >= pos[ln] && hd - pos[ln] <= CAP);  /* head - tail > capacity: CORRUPT: never */
            cache[ln] = hd;
            if
            :: hd != pos[ln] -> r = 1
            :: else ->
                if
                :: cl -> r = 2
                :: else -> r = 0
                fi
            fi;
            hd = 0;
            cl = 0
        }
    fi
}

/* channel.c cv_any_ready (receive_any) / cv_one_ready (receive): receive_any scans every lane round-robin from the one after
 * the lane served last; receive(lane) checks r_lane only. Sets st, and lane (the lane
 * with a word), and done (a bit per closed, drained lane). */
inline recv_ready(leave) {
    done = 0;
#if RECV_ANY
    i = 0;
    do
    :: i < L ->
        j = (last + 1 + i) % L;                     /* from next_lane = the lane served last + 1 */
        lane_check(j);
        if
        :: r == 1 -> lane = j; break
        :: r == 2 -> done = done | (1 << j)
        :: else -> skip
        fi;
        i++
    :: else -> break
    od;
    r = r;                                          /* (a break target outside the d_step) */
    d_step {
        if
        :: r == 1 -> st = OK
        :: done == (1 << L) - 1 -> st = EOS
        :: else -> st = TIMEOUT
        fi;
        i = 0; j = 0; r = 0;
        if
        :: leave && st != TIMEOUT -> _store(R, W_RSLEEP, 0)   /* recv_sleeping = 0 */
        :: else -> skip
        fi
    }
#else
    lane_check(r_lane);
    d_step {
        lane = r_lane;
        if
        :: r == 1 -> st = OK
        :: r == 2 -> st = EOS; done = 1 << r_lane
        :: else -> st = TIMEOUT
        fi;
        r = 0;
        if
        :: leave && st != TIMEOUT -> _store(R, W_RSLEEP, 0)
        :: else -> skip
        fi
    }
#endif
}

/* The receiver's peer check: lane 0 (or r_lane, for receive(lane)) has a gone sender and
 * is not closed and drained. */
/* channel.c cv_any_gone / cv_one_gone -> cv_sender_gone: the owner is gone (acquire),
 * then send_closed == 0 (SYNC POINT D; the dead sender's stores have all drained, so
 * memory is what it left). */
#if RECV_ANY
#define RECV_PEER_GONE (LANE0_GONE && (done & 1) == 0 && mem[W_CLOSED(0)] == 0)
#else
#define RECV_PEER_GONE (LANE0_GONE && r_lane == 0 && mem[W_CLOSED(0)] == 0)
#endif

/* wait.c cv_wait_slow via channel.c cv_receiver_wait: the receiver's wait on recv_doorbell. */
inline recv_wait() {
    recv_ready(0);
    if
    :: st == TIMEOUT ->
        do
        :: d_step {
                _load(R, W_RBELL, bell);            /* bell = load(recv_doorbell)  (1) */
                _store(R, W_RSLEEP, 1)              /* recv_sleeping = 1 */
            }
#ifndef MUTANT_NO_FENCE_C_WAITER
            d_step { _drain(R) }                    /* FENCE  SYNC POINT C */
#endif
            recv_ready(1);                          /* check the lane(s) */
            if
            :: st != TIMEOUT -> break
            :: else -> skip
            fi;
            if
            :: RECV_PEER_GONE ->                    /* peer check: lane 0's sender gone without closing */
                recv_ready(0);                      /* re-check after the death */
                d_step {
                    if
                    :: st == TIMEOUT ->
                        st = PEER_DEAD;
                        lane = 0;
                        assert(s_dead && pos[0] >= g_sent_first);  /* every word the dead sender sent was taken */
                        assert(!g_closed[0] || owner0 == 2)         /* never for a lane its sender closed */
                    :: else -> skip
                    fi;
                    _store(R, W_RSLEEP, 0)
                }
                break
            :: else -> skip
            fi;
            d_step {                                /* futex_wait(&recv_doorbell, bell) */
                _drain(R);
                if
                :: mem[W_RBELL] == bell -> fw_r = 1
                :: else -> skip
                fi;
                bell = 0
            }
#ifdef IDLE
end_rwait:
#endif
            atomic { (fw_r == 0 || R_SLICE) -> fw_r = 0 }
        od
    :: else -> skip
    fi
}

/* channel.c cv_take -> wait.h cv_doorbell_ring(&lane->take_doorbell, &lane->send_sleeping,
 * &lane->take_wakes): after taking a word from lane ln, ring its sender if it sleeps. */
inline send_doorbell(ln) {
#ifndef MUTANT_NO_FENCE_C_RECV
    d_step { _drain(R) }                            /* FENCE  SYNC POINT C */
#endif
    d_step {
        _load(R, W_SSLEEP(ln), v);                  /* if (load(send_sleeping)) */
#ifdef MUTANT_NO_SEND_DOORBELL
        v = 0;
#endif
        if
        :: v ->
            _load(R, W_SBELL(ln), v);               /* take_doorbell += 1: only the receiver writes it */
            _store(R, W_SBELL(ln), v + 1);
            v = 1
        :: else -> skip
        fi
    }
    if
    :: v -> d_step { v = 0; _drain(R); fw_s[ln] = 0 }  /* futex_wake(&take_doorbell) */
    :: else -> skip
    fi
}

proctype Receiver(byte id) {
    byte pos[L];    /* local tail of each lane */
    byte cache[L];  /* the last head seen on each lane */
    byte last = L - 1;  /* the lane served last */
    byte st, lane, bell, v, hd, cl, r, i, j, done, finished;
    {
        if
        :: id == 2 ->
            /* the replacement: attach/open(RECEIVER) -> owner.c cv_claim_owner ->
             * channel.c cv_receiver_take_over */
end_rclaim: atomic {
                r_owner == 1 && (r_dead || r_left) ->  /* recv_owner is gone: free to take */
                _drain(R);                          /* CAS(hdr->recv_owner): locked, drains */
                r_owner = 2
            }
            i = 0;
            do                                      /* for each lane: heads[l], tails[l] */
            :: i < L ->
                d_step { _load(R, W_HEAD(i), cache[i]) }  /* load_acquire(lane->send_head)  SYNC POINT A */
                d_step {
                    _load(R, W_TAIL(i), pos[i]);    /* load_acquire(lane->take_tail)  SYNC POINT B */
                    assert(cache[i] >= pos[i] && cache[i] - pos[i] <= CAP);  /* else CORRUPT: never */
                    assert(pos[i] == g_taken[i]);   /* resumes after the last word taken (the dead
                                                       receiver's taken words are lost, none other) */
                    i++
                }
            :: else -> break
            od;
            i = 0;
            d_step { _store(R, W_RSLEEP, 0) }       /* cv_receiver_take_over: recv_sleeping = 0 (a dead owner's stale 1) */
#ifndef MUTANT_NO_RECV_TAKEOVER_DOORBELL
            do                                      /* ring every lane's take_doorbell, as after a receive */
            :: i < L -> send_doorbell(i); i++
            :: else -> break
            od;
            i = 0;
#endif
#ifdef IDLE
            if
            :: true ->
end_ridle:      false                               /* the application takes nothing more, for good */
            :: true -> skip
            fi
#endif
        :: else -> skip
        fi;
#if !RECV_ANY
        r_lane = 0;
#endif
        do
        :: recv_wait();
            if
            :: st == OK ->
                d_step {                            /* word = words[lane][tail % capacity] (after SYNC POINT A) */
                    _load(R, W_SLOT(lane, pos[lane] % CAP), v);
                    assert(v == pos[lane] + 1);     /* the next word of that lane, in order, once */
                    v = 0;
                    pos[lane]++;
                    _store(R, W_TAIL(lane), pos[lane]);  /* store_release(take_tail)  SYNC POINT B */
                    assert(pos[lane] == g_taken[lane] + 1);
                    g_taken[lane] = pos[lane];
                    last = lane
                }
progress_take:
                send_doorbell(lane)
            :: st == EOS ->
#if RECV_ANY
                d_step {
                    i = 0;
                    do
                    :: i < L -> assert(g_closed[i] && pos[i] == g_sent[i]); i++
                    :: else -> break
                    od;
                    i = 0
                }
                break
#else
                d_step {
                    assert(g_closed[r_lane] && pos[r_lane] == g_sent[r_lane]);
                    finished = finished | (1 << r_lane)
                }
#endif
            :: st == PEER_DEAD ->
                if
                :: owner0 == 2 -> skip              /* lane 0 was taken over: receive again */
                :: else ->                          /* conveyor_channel_destroy: owner LEFT (a CAS: drains) */
                    d_step { _drain(R); r_left = 1 };
                    break
                fi
            fi;
#if !RECV_ANY
            /* receive(lane): on to the next unfinished lane (after a word, or an end) */
            d_step {
                if
                :: finished == (1 << L) - 1 -> r_lane = 255
                :: else ->
                    if
                    :: st != PEER_DEAD ->
                        i = 1;
                        do
                        :: finished & (1 << ((r_lane + i) % L)) -> i++
                        :: else -> break
                        od;
                        r_lane = (r_lane + i) % L;
                        i = 0
                    :: else -> skip
                    fi
                fi
            };
            if
            :: finished == (1 << L) - 1 -> break
            :: else -> skip
            fi
#endif
        od
    } unless {
        atomic { kill_r && id == 1 -> fw_r = 0 };
        (sb_n[R] == 0) -> r_dead = 1
    }
}

proctype KillSender() { if :: kill_s = 1 :: skip fi }
proctype KillReceiver() { if :: kill_r = 1 :: skip fi }

/* ---- the Monitor: no lost wake-up, stated directly ----------------------------------- */

/* Lane ln has something for a receiver waiting on it: a word, or (any mode) ... */
#define HAS_WORD(ln) (mem[W_HEAD(ln)] != mem[W_TAIL(ln)])
#define DRAINED_CLOSED(ln) (mem[W_CLOSED(ln)] && !HAS_WORD(ln))
#define ROOM(ln) (mem[W_HEAD(ln)] - mem[W_TAIL(ln)] < CAP)

#if L == 1
#define ANY_WORD (HAS_WORD(0))
#define ALL_DONE (DRAINED_CLOSED(0))
#define SENDER_STUCK (fw_s[0] && ROOM(0))
#elif L == 2
#define ANY_WORD (HAS_WORD(0) || HAS_WORD(1))
#define ALL_DONE (DRAINED_CLOSED(0) && DRAINED_CLOSED(1))
#define SENDER_STUCK ((fw_s[0] && ROOM(0)) || (fw_s[1] && ROOM(1)))
#else
#define ANY_WORD (HAS_WORD(0) || HAS_WORD(1) || HAS_WORD(2))
#define ALL_DONE (DRAINED_CLOSED(0) && DRAINED_CLOSED(1) && DRAINED_CLOSED(2))
#define SENDER_STUCK ((fw_s[0] && ROOM(0)) || (fw_s[1] && ROOM(1)) || (fw_s[2] && ROOM(2)))
#endif

#if RECV_ANY
#define RECEIVER_STUCK (fw_r && (ANY_WORD || ALL_DONE))
#else
#define RECEIVER_STUCK (fw_r && r_lane != 255 && (HAS_WORD(r_lane) || mem[W_CLOSED(r_lane)]))
#endif

proctype Monitor() {
    bit receiver_asleep_with_work, sender_asleep_with_room;  /* named, so spin's report says which */
end_monitor:
    timeout ->
        d_step {
            receiver_asleep_with_work = RECEIVER_STUCK;
            sender_asleep_with_room = SENDER_STUCK
        };
        assert(!receiver_asleep_with_work);  /* lost wake-up: the receiver sleeps for good with work */
        assert(!sender_asleep_with_room)     /* lost wake-up: a sender sleeps for good with room */
}

init {
    byte k = 0;
    atomic {
        do
        :: k < NCPU -> run Flusher(k); k++
        :: else -> break
        od;
        run Receiver(1);
#if R_TAKEOVER
        run Receiver(2);
#endif
        k = 0;
        do
        :: k < L -> run Sender(k, 1); k++
        :: else -> break
        od;
#if TAKEOVER
        run Sender(0, 2);
#endif
#if S_DIES
        run KillSender();
#endif
#if R_DIES
        run KillReceiver();
#endif
        run Monitor()
    }
}
