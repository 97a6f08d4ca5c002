/*
 * ring.pml — a Promela model of the ring's wait/wake, close and takeover protocol
 * (CKernels/src/ring_layout.h is the specification, ring.c the code), checked
 * exhaustively with spin by scripts/check-model. It mirrors ring.c as of commit 0a63e1b
 * ("Ring hardening: ..."): every modelled step names the ring.c (or shm.c) function and
 * statement it stands for, and its SYNC POINT (A, B, C, D).
 *
 * WHAT IS MODELLED
 *   - One producer: N frames, each loan (cv_wait with cv_slot_free) then commit (slot
 *     write, prod_head store, SYNC POINT A, then cv_ring_doorbell), then close
 *     (prod_closed store, SYNC POINT D, then cv_ring_doorbell).
 *   - One consumer: receive (cv_wait with cv_frame_ready: prod_closed loaded before
 *     prod_head), read the slot, release (cons_tail store, SYNC POINT B, then
 *     cv_ring_doorbell), until END_OF_STREAM or PEER_DEAD.
 *   - cv_wait's sleeping handshake, statement by statement: bell = load(doorbell) (1);
 *     sleeping = 1; FENCE (C); ready(); peer check; futex_wait(doorbell, bell); and
 *     cv_ring_doorbell: FENCE (C); if peer_sleeping { doorbell++ (a plain load + store,
 *     cv_bump_u32); futex_wake }. Both sides, symmetric.
 *   - The futex: futex_wait drains the caller's store buffer (the syscall runs locked
 *     instructions), then atomically queues the caller only if the word still equals
 *     `bell`; futex_wake drains and dequeues the waiter. NO TIME SLICE while the peer is
 *     alive (a real sleeper also wakes every CONVEYOR_RING_PEER_CHECK_NS, which would hide
 *     any lost wake-up): a sleeper returns by the slice only once its peer is dead, which
 *     is how it notices PEER_DEAD (see PROD_SLICE below for the takeover case).
 *   - x86-64 TSO: each CPU has a FIFO store buffer (the producer's; the consumer's,
 *     reused by the replacement consumer); a load sees its own CPU's youngest buffered
 *     store to the word, else memory; a Flusher process drains the oldest entry at any
 *     moment; a fence, a locked RMW (the owner CAS) and a futex syscall drain the buffer.
 *     Release stores and acquire loads are plain MOVs on x86-64. -DSEQ_CST_MEMORY replaces
 *     the buffers by direct stores (a control: the fence mutants then pass).
 *   - Death: a killer may kill the first consumer and/or the producer before any step
 *     (Promela `unless`). A killed process takes no further step; the kernel dequeues it
 *     from the futex; its buffered stores still drain (its exit runs locked instructions)
 *     and only then does its pidfd poll readable, i.e. can anyone see it dead. (A side
 *     handed back by conveyor_ring_destroy, CV_OWNER_LEFT, is seen like a dead one; the
 *     hand-back CAS drains, so a death at the same point covers it.)
 *   - Takeover: a replacement consumer claims the side once the owner is dead
 *     (cv_ring_claim_side: CAS from a gone owner), reloads prod_head then cons_tail
 *     (cv_load_position) and carries on; a frame the dead consumer held is received again.
 *     The producer, on PEER_DEAD, retries the loan if the side has been taken over, else
 *     closes (an application's two reasonable reactions).
 *
 * WHAT IS ABSTRACTED AWAY
 *   - The spin phase of cv_wait: its re-checks of ready() are the same loads a little
 *     later (spin = 0), but its peer check (every CV_SPINS_PER_CLOCK_READ spins) is kept.
 *   - Timeouts and deadlines (timeout_ns = -1), polls (timeout 0), the rate limit of
 *     cv_peer_dead (it sees liveness as it is: the rate limit only delays by a slice),
 *     spurious futex returns (-DSPURIOUS allows them, and the real slices with them: then
 *     no wait blocks and only the assertions mean anything).
 *   - Descriptor and payload: one word per slot holding the frame number; frame
 *     validation (cv_check_frame), abandon, stats counters (prod_frames, prod_peak, waits,
 *     wakes: written only by their side, read by nobody in the protocol), fork hand-over,
 *     the geometry and the TRUST checks (asserted never to fire: CORRUPT is unreachable).
 *   - 64-bit sequence numbers are bytes (no wrap within N frames); doorbells are bytes.
 *   - Producer takeover (symmetric to the consumer's, not modelled), a second consumer
 *     death, ARM and the C11 memory model (only x86-64 TSO is modelled).
 *   - Steps: each d_step makes at most one access another CPU can observe (a load from
 *     memory, a drain, a futex operation, a liveness check); stores into the own store
 *     buffer and local computation are invisible to others until flushed, so they are
 *     folded into the neighbouring step.
 *
 * VARIABLES -> cv_ring_header
 *   mem[W_HEAD] prod_head        mem[W_CLOSED] prod_closed     mem[W_TAIL] cons_tail
 *   mem[W_PSLEEP] prod_sleeping  mem[W_PBELL] prod_doorbell
 *   mem[W_CSLEEP] cons_sleeping  mem[W_CBELL] cons_doorbell
 *   mem[W_SLOT + s]              descriptor + payload of slot s (cv_slot_desc, slots_offset)
 *   cons_owner                   cons_owner (1: first consumer, 2: replacement; never in
 *                                a store buffer: only a CAS writes it)
 *   p_dead, c_dead[i]            prod_owner / cons_owner's process has exited
 *                                (cv_owner_gone); c_dead[cons_owner] is cv_peer_dead()
 *   Producer pos / cache         ring->position (head) / ring->peer_cache (tail seen)
 *   Consumer pos / cache         ring->position (tail) / ring->peer_cache (head seen)
 *   fw[C] / fw[P]                the kernel's futex queue on prod_doorbell / cons_doorbell
 *   g_*                          ghost counters for the assertions
 *
 * PROPERTIES
 *   - Assertions: the frame received is frame position+1; a held frame is not overwritten
 *     before its release; the producer never writes a slot whose frame is unreleased;
 *     frames are released exactly once each, 1..k in order, counting every consumer;
 *     END_OF_STREAM only after every committed frame was received (and released);
 *     PEER_DEAD only with the producer dead and after every frame it committed; a
 *     replacement resumes exactly after the last released frame; CORRUPT never.
 *   - No invalid end state: no process blocks forever (lost wake-up, deadlock). The only
 *     `end` labels: the Flushers' idle loop and a replacement waiting for a death that
 *     may never come.
 *   - Non-progress cycles (-DNP, pan -l -f, weak fairness): every infinite run commits or
 *     releases infinitely often (progress labels), so no livelock.
 *   - Mutants (-DMUTANT_...) must each fail: NO_DOORBELL (the producer's
 *     `if (cv_load_relaxed_u32(peer_sleeping))` false), SWAP_CLOSED_HEAD (cv_frame_ready
 *     loads prod_head before prod_closed), NO_FENCE_C (cv_ring_doorbell's fence removed),
 *     NO_FENCE_C_WAITER (cv_wait's fence removed).
 *
 * FINDING, now fixed in ring.c (scripts/check-model keeps it as MUTANT_NO_TAKEOVER_DOORBELL)
 *   After a takeover a sleeper can miss its wake-up and is rescued only by its 10 ms slice.
 *   SC = 1: the consumer releases frame 1 (cons_tail = 1 enters its store buffer) and is
 *   killed before cv_ring_doorbell's futex_wake. The producer, loaning frame 2, finds the
 *   ring full (tail = 0 still in the dying CPU's buffer): (1) bell; prod_sleeping = 1;
 *   FENCE; cv_slot_free sees tail 0; cv_peer_dead: the consumer is not dead yet (it is
 *   still exiting); futex_wait(cons_doorbell, bell) queues it. The dying consumer's buffer
 *   drains (tail = 1), its pidfd becomes readable, a replacement claims the side, loads
 *   head 1 and tail 1: nothing to receive, so it sleeps on prod_doorbell. The producer
 *   sleeps with a free slot; nobody will ring cons_doorbell; its cv_peer_dead now sees a
 *   live owner. Only the slice wakes it: a stall of up to CONVEYOR_RING_PEER_CHECK_NS
 *   (10 ms) per such takeover, not a hang. Under -DSTRICT_SLICE (a sleeper's slice fires
 *   only while cv_peer_dead would say dead) this is an invalid end state. The window: from
 *   the cons_tail store (B) to futex_wake, and a replacement claiming before the producer's
 *   next peer check. Symmetric, by the same argument (producer takeover is not modelled):
 *   a producer killed between its prod_head or prod_closed store and futex_wake and then
 *   replaced leaves the consumer asleep on a frame (or on the end of stream) until the
 *   replacement's next commit or the slice. Fix (in ring.c since; verified under
 *   -DSTRICT_SLICE for the consumer side): after a successful takeover
 *   (cv_ring_claim_side, in `if (!handover)` once cv_load_position succeeded), ring the
 *   peer's doorbell once, as a release does: a consumer calls cv_ring_doorbell(
 *   &hdr->cons_doorbell, &hdr->prod_sleeping, &hdr->cons_wakes), a producer
 *   cv_ring_doorbell(&hdr->prod_doorbell, &hdr->cons_sleeping, &hdr->prod_wakes). A peer
 *   that went to sleep before the takeover is woken; one that sleeps later sees the
 *   counters the dead owner left (they drained before its death).
 *
 * RESULTS (spin 6.5.2, pan built with gcc -O1 -DSAFETY, or -DNP run as pan -l -f;
 * exhaustive: no -DBITSTATE, -DCOLLAPSE or other state compression; depth <= ~400 of the
 * 1000000 allowed). States stored; seconds on a shared 2-core machine under load ~8 (the
 * whole script: 47 s of CPU, 134 s of wall clock there):
 *   must verify                                             states   errors  seconds
 *   sc1-n3-consumer-takeover    SC=1 N=3, consumer dies    2967134      0      4.4
 *   sc2-n3-consumer-takeover    SC=2 N=3, consumer dies    4977372      0      7.4
 *   sc1-n3-producer-dies        SC=1 N=3, producer dies     416005      0      1.2
 *   sc2-n3-producer-dies        SC=2 N=3, producer dies     701580      0      2.0
 *   sc1-n2-all-deaths           SC=1 N=2, both die         4340292      0      6.3
 *   sc1-n2-spurious-wakes       SC=1 N=2, both, -DSPURIOUS 4862073      0      5.8
 *   np-sc2-n3                   non-progress, no deaths     225865      0      3.2
 *   np-sc1-n2-consumer-takeover non-progress, takeover     1196805      0      4.2
 *   control-seqcst-no-fences    SC memory, both fences cut   35671      0      0.4
 *   sc1-n3-takeover-strict-slice  STRICT_SLICE           2938844      0      3.4
 *   must fail
 *   mutant-no-takeover-doorbell STRICT_SLICE, no fix       116885      1      0.2  invalid end state
 *   mutant-no-doorbell                                          47      1      0.3  invalid end state
 *   mutant-swap-closed-head                                   1026      1      0.3  assertion (END_OF_STREAM lost a frame)
 *   mutant-no-fence-c                                          361      1      0.5  invalid end state (Dekker)
 *   mutant-no-fence-c-waiter                                   139      1      0.4  invalid end state (Dekker)
 *   (Also checked once, not in the script: the fix under STRICT_SLICE with SC=2 N=3,
 *   4934535 states, and SC=1 N=2 with both deaths, 4480262 states: no errors.)
 */

/* ---- configuration (spin -D...) ---------------------------------------------------- */
#ifndef SC
#define SC 1            /* slot_count */
#endif
#ifndef N
#define N 3             /* frames the producer commits before it closes */
#endif
#ifndef CONS_DIES
#define CONS_DIES 1     /* the first consumer may be killed before any step */
#endif
#ifndef PROD_DIES
#define PROD_DIES 1     /* the producer may be killed before any step */
#endif
#ifndef TAKEOVER
#define TAKEOVER 1      /* a replacement consumer may take over from a dead one */
#endif

#define SB 8            /* store-buffer entries per CPU (asserted never to overflow) */

/* statuses (conveyor.h: CONVEYOR_OK, CONVEYOR_E_TIMEOUT, _E_END_OF_STREAM, _E_PEER_DEAD) */
#define OK        0
#define TIMEOUT   1
#define EOS       2
#define PEER_DEAD 3

/* the words of cv_ring_header the protocol uses, as indices into mem[] */
#define W_HEAD   0      /* prod_head */
#define W_CLOSED 1      /* prod_closed */
#define W_TAIL   2      /* cons_tail */
#define W_PSLEEP 3      /* prod_sleeping */
#define W_PBELL  4      /* prod_doorbell: the producer rings it, the consumer sleeps on it */
#define W_CSLEEP 5      /* cons_sleeping */
#define W_CBELL  6      /* cons_doorbell: the consumer rings it, the producer sleeps on it */
#define W_SLOT   7      /* W_SLOT + s: descriptor + payload of slot s, folded into one word
                           holding the number (1..N) of the frame written there */
#define NW (W_SLOT + SC)

/* CPUs, one store buffer each. The replacement consumer uses the consumer's: it starts
 * only after the dead consumer's buffer has drained (see the death escape). */
#define P 0
#define C 1

byte mem[NW];           /* shared memory, as every CPU sees it once stores have drained */
byte sb_a[2 * SB];      /* store buffers: FIFO of (word, value), sb_n[cpu] entries, */
byte sb_v[2 * SB];      /*   the oldest at index cpu * SB */
byte sb_n[2];
hidden byte sb_i;       /* scratch, used only inside a d_step */

bit fw[2];              /* futex queues: fw[C] the consumer is queued on prod_doorbell,
                           fw[P] the producer is queued on cons_doorbell */
byte cons_owner = 1;    /* cons_owner: 1 the first consumer, 2 the replacement */
bit c_dead[3];          /* consumer i has exited: its pidfd polls readable */
bit p_dead;             /* the producer has exited */
bit kill_c, kill_p;     /* set by the killers: the victim's next step is its death */

byte g_committed;       /* ghost: frames committed (prod_head stores executed) */
byte g_released;        /* ghost: frames released (cons_tail stores executed), all consumers */
bit g_closed;           /* ghost: the prod_closed store executed */

/* ---- x86-64 TSO: store buffers ------------------------------------------------------
 * The _ versions are for use inside a d_step: each d_step below is one indivisible step. */
#define SBX(cpu, k) ((cpu) * SB + (k))

#ifndef SEQ_CST_MEMORY
inline _store(cpu, w, v) {          /* a store (any ordering): into the CPU's buffer */
    assert(sb_n[cpu] < SB);
    sb_a[SBX(cpu, sb_n[cpu])] = w;
    sb_v[SBX(cpu, sb_n[cpu])] = v;
    sb_n[cpu]++
}
#else
inline _store(cpu, w, v) {          /* control: sequentially consistent memory */
    mem[w] = v
}
#endif

inline _load(cpu, w, r) {           /* a load (any ordering): own youngest buffered store, else memory */
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
    od
}

inline _flush1(cpu) {               /* the oldest buffered store reaches memory */
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
    sb_v[SBX(cpu, sb_n[cpu])] = 0
}

inline _drain(cpu) {                /* MFENCE, a locked instruction, a syscall */
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

/* ---- what cv_peer_dead() and the sleep slice observe -------------------------------- */

/* The producer's cv_peer_dead(): cv_owner_gone(cv_load_relaxed_u64(&hdr->cons_owner)). */
#define CONS_OWNER_DEAD (c_dead[cons_owner])

/* When a queued sleeper may return by its slice (CONVEYOR_RING_PEER_CHECK_NS): never
 * while its peer is alive, since the slice would hide lost wake-ups.
 * Consumer: once the producer is dead (there is no producer takeover in the model).
 * Producer, default: once a consumer has died (for the rest of the run): a dead peer
 *   cannot ring, and the slice is what rescues a sleeper that relied on it, even after a
 *   replacement has taken the side over (FINDING in the header).
 * Producer, -DSTRICT_SLICE: only while cv_peer_dead() would say dead, i.e. while the
 *   side's current owner is dead. Without the takeover doorbell
 *   (-DMUTANT_NO_TAKEOVER_DOORBELL) the model then deadlocks after a takeover; with it,
 *   as ring.c is now, it verifies.
 * -DSPURIOUS: a futex_wait may return at any time (EINTR, and the real slices). */
#ifdef SPURIOUS
#define CONS_SLICE (1)
#define PROD_SLICE (1)
#else
#define CONS_SLICE (p_dead)
#ifdef STRICT_SLICE
#define PROD_SLICE (CONS_OWNER_DEAD)
#else
#define PROD_SLICE (c_dead[1])
#endif
#endif

/* ---- producer ------------------------------------------------------------------------ */

/* ring.c cv_slot_free, the producer's ready(): a local step, or one step (the tail load).
 * leave = 1 inside cv_wait's loop: on success the loop's exit store `sleeping = 0`
 * (buffered, so invisible until flushed) is folded into the same step. */
inline prod_ready(leave) {
    if
    :: pos - cache < SC -> st = OK                  /* cv_slot_free: if (ring->position - ring->peer_cache < ring->slot_count) return CONVEYOR_OK */
    :: else ->
        d_step {
            _load(P, W_TAIL, t);                    /* cv_slot_free: uint64_t tail = cv_load_acquire_u64(&ring->hdr->cons_tail)  SYNC POINT B */
            assert(t <= pos && pos - t <= SC);      /* cv_slot_free: if (ring->position - tail > ring->slot_count) return CONVEYOR_E_CORRUPT: never */
            cache = t;                              /* cv_slot_free: ring->peer_cache = tail */
            if                                      /* cv_slot_free: return ring->position - tail < ring->slot_count ? CONVEYOR_OK : CONVEYOR_E_TIMEOUT */
            :: pos - t < SC -> st = OK
            :: else -> st = TIMEOUT
            fi;
            t = 0;
            if
            :: leave && st != TIMEOUT ->            /* cv_wait: if (status != CONVEYOR_E_TIMEOUT) break; */
                _store(P, W_PSLEEP, 0)              /* cv_wait: cv_store_relaxed_u32(sleeping, 0) */
            :: else -> skip
            fi
        }
    fi
}

/* ring.c cv_wait(ring, timeout_ns = -1, cv_slot_free, &hdr->cons_doorbell, &hdr->prod_sleeping, ...) */
inline prod_wait() {
    prod_ready(0);                                  /* cv_wait: int status = ready(ring) */
    if
    :: st == TIMEOUT ->                             /* cv_wait: if (status != CONVEYOR_E_TIMEOUT) return status */
        /* cv_wait: for (uint32_t i = 1; i <= ring->spin; i++) { ... }: the re-checks of
         * ready() are abstracted, the peer check every CV_SPINS_PER_CLOCK_READ is kept: */
        if
        :: CONS_OWNER_DEAD ->                       /* cv_wait, spinning: if (cv_peer_dead(ring, now)) return cv_after_peer_death(ring, ready) */
            prod_ready(0);                          /* cv_after_peer_death: int status = ready(ring) */
            if                                      /* cv_after_peer_death: return status == CONVEYOR_E_TIMEOUT ? CONVEYOR_E_PEER_DEAD : status */
            :: st == TIMEOUT -> st = PEER_DEAD
            :: else -> skip
            fi
        :: true ->
            do                                      /* cv_wait: for (;;) { */
            :: d_step {
                    _load(P, W_CBELL, bell);        /* cv_wait: uint32_t bell = cv_load_relaxed_u32(doorbell)  (1) */
                    _store(P, W_PSLEEP, 1)          /* cv_wait: cv_store_relaxed_u32(sleeping, 1) */
                }
#ifndef MUTANT_NO_FENCE_C_WAITER
                d_step { _drain(P) }                /* cv_wait: cv_fence_full()  SYNC POINT C */
#endif
                prod_ready(1);                      /* cv_wait: status = ready(ring); if (status != CONVEYOR_E_TIMEOUT) break */
                if
                :: st != TIMEOUT -> break
                :: else -> skip
                fi;
                /* cv_wait: if (now >= deadline) break: timeout_ns = -1, never */
                if
                :: CONS_OWNER_DEAD ->               /* cv_wait: if (cv_peer_dead(ring, now)) { */
                    prod_ready(0);                  /* cv_wait: status = cv_after_peer_death(ring, ready): int status = ready(ring) */
                    d_step {
                        if                          /* cv_after_peer_death: return status == TIMEOUT ? PEER_DEAD : status;  cv_wait: break } */
                        :: st == TIMEOUT -> st = PEER_DEAD
                        :: else -> skip
                        fi;
                        _store(P, W_PSLEEP, 0)      /* cv_wait: cv_store_relaxed_u32(sleeping, 0) */
                    }
                    break
                :: else -> skip
                fi;
                d_step {                            /* cv_wait: cv_futex_wait(doorbell, bell, slice): the syscall drains the */
                    _drain(P);                      /*   store buffer; the kernel queues the caller only if the word still */
                    if                              /*   == bell, atomically with respect to futex_wake */
                    :: mem[W_CBELL] == bell -> fw[P] = 1
                    :: else -> skip
                    fi;
                    bell = 0
                }
                atomic { (fw[P] == 0 || PROD_SLICE) -> fw[P] = 0 }  /* returns: woken (or the word differed), or the slice */
            od                                      /* cv_wait: } */
        fi
    :: else -> skip
    fi
}

/* ring.c cv_ring_doorbell(&hdr->prod_doorbell, &hdr->cons_sleeping, &hdr->prod_wakes): after commit and close */
inline prod_doorbell() {
#ifndef MUTANT_NO_FENCE_C
    d_step { _drain(P) }                            /* cv_ring_doorbell: cv_fence_full()  SYNC POINT C */
#endif
    d_step {
        _load(P, W_CSLEEP, t);                      /* cv_ring_doorbell: if (cv_load_relaxed_u32(peer_sleeping)) { */
#ifdef MUTANT_NO_DOORBELL
        t = 0;                                      /* MUTANT: the condition is always false */
#endif
        if
        :: t ->                                     /* cv_ring_doorbell: cv_bump_u32(doorbell, 1): a plain load + store of a */
            _load(P, W_PBELL, t);                   /*   word only this side writes (so the load is local) */
            _store(P, W_PBELL, t + 1);
            t = 1
        :: else -> skip
        fi
    }
    if
    :: t -> d_step { t = 0; _drain(P); fw[C] = 0 }  /* cv_ring_doorbell: cv_futex_wake(doorbell): the syscall drains, dequeues the consumer } */
    :: else -> skip
    fi
}

proctype Producer() {
    byte pos;       /* ring->position: head */
    byte cache;     /* ring->peer_cache: the last tail seen */
    byte st, bell, t;
    {
        do
        :: pos < N ->
            /* conveyor_ring_loan: if (cv_load_relaxed_u32(&hdr->prod_closed)) return CLOSED: its own word, 0 here */
loan:       if
            :: CONS_OWNER_DEAD -> st = PEER_DEAD    /* conveyor_ring_loan: every CV_PEER_CHECK_EVERY loans: if (cv_peer_dead(...)) return CONVEYOR_E_PEER_DEAD */
            :: true -> prod_wait()                  /* conveyor_ring_loan: status = cv_wait(ring, timeout_ns, cv_slot_free, ...) */
            fi;
            if
            :: st == PEER_DEAD ->                   /* the application, on PEER_DEAD: */
                st = OK;
                if
                :: cons_owner == 2 -> goto loan     /*   retries once a replacement consumer has taken over, */
                :: true -> break                    /*   or closes the ring */
                fi
            :: else -> skip
            fi;
            d_step {
                assert(pos - g_released < SC);      /* the slot's previous frame has been released */
                _store(P, W_SLOT + pos % SC, pos + 1);  /* conveyor_ring_commit: desc->... = info (and the payload, written during the loan) */
                pos++;                              /* conveyor_ring_commit: ring->position++ */
                _store(P, W_HEAD, pos);             /* conveyor_ring_commit: cv_store_release_u64(&hdr->prod_head, ring->position)  SYNC POINT A */
                g_committed = pos
            }
progress_commit:
            prod_doorbell()                         /* conveyor_ring_commit: cv_ring_doorbell(&hdr->prod_doorbell, &hdr->cons_sleeping, ...) */
        :: else -> break
        od;
        atomic {
            _store(P, W_CLOSED, 1);                 /* conveyor_ring_close: cv_store_release_u32(&hdr->prod_closed, 1)  SYNC POINT D */
            g_closed = 1
        }
        prod_doorbell()                             /* conveyor_ring_close: cv_ring_doorbell(&hdr->prod_doorbell, &hdr->cons_sleeping, ...) */
    } unless {
        /* Killed: no further step. The kernel dequeues a killed futex waiter; the CPU's
         * buffered stores drain (the exit path runs locked instructions) before the pidfd
         * polls readable, i.e. before anyone can see the process dead. */
        atomic { kill_p -> fw[P] = 0 };
        (sb_n[P] == 0) -> p_dead = 1
    }
}

/* ---- consumer ------------------------------------------------------------------------ */

/* ring.c cv_frame_ready, the consumer's ready(): a local step, or two steps (closed, then
 * head). leave: as for prod_ready. */
inline cons_ready(leave) {
    if
    :: cache != pos -> st = OK                      /* cv_frame_ready: if (ring->peer_cache != ring->position) return CONVEYOR_OK */
    :: else ->
#ifndef MUTANT_SWAP_CLOSED_HEAD
        d_step { _load(C, W_CLOSED, closed) }       /* cv_frame_ready: uint32_t closed = cv_load_acquire_u32(&ring->hdr->prod_closed)  SYNC POINT D */
        d_step {
            _load(C, W_HEAD, head);                 /* cv_frame_ready: uint64_t head = cv_load_acquire_u64(&ring->hdr->prod_head)  SYNC POINT A */
#else
        d_step { _load(C, W_HEAD, head) }           /* MUTANT: prod_head loaded first, */
        d_step {
            _load(C, W_CLOSED, closed);             /* MUTANT: prod_closed second */
#endif
            assert(head >= pos && head - pos <= SC);  /* cv_frame_ready: if (head - ring->position > ring->slot_count) return CONVEYOR_E_CORRUPT: never */
            cache = head;                           /* cv_frame_ready: ring->peer_cache = head */
            if
            :: head != pos -> st = OK               /* cv_frame_ready: if (head != ring->position) return CONVEYOR_OK */
            :: else ->                              /* cv_frame_ready: return closed ? CONVEYOR_E_END_OF_STREAM : CONVEYOR_E_TIMEOUT */
                if
                :: closed -> st = EOS
                :: else -> st = TIMEOUT
                fi
            fi;
            head = 0;
            closed = 0;
            if
            :: leave && st != TIMEOUT ->            /* cv_wait: if (status != CONVEYOR_E_TIMEOUT) break; */
                _store(C, W_CSLEEP, 0)              /* cv_wait: cv_store_relaxed_u32(sleeping, 0) */
            :: else -> skip
            fi
        }
    fi
}

/* ring.c cv_wait(ring, timeout_ns = -1, cv_frame_ready, &hdr->prod_doorbell, &hdr->cons_sleeping, ...) */
inline cons_wait() {
    cons_ready(0);                                  /* cv_wait: int status = ready(ring) */
    if
    :: st == TIMEOUT ->                             /* cv_wait: if (status != CONVEYOR_E_TIMEOUT) return status */
        /* cv_wait: for (uint32_t i = 1; i <= ring->spin; i++) { ... }: the re-checks of
         * ready() are abstracted, the peer check every CV_SPINS_PER_CLOCK_READ is kept: */
        if
        :: p_dead ->                                /* cv_wait, spinning: if (cv_peer_dead(ring, now)) return cv_after_peer_death(ring, ready) */
            cons_ready(0);                          /* cv_after_peer_death: int status = ready(ring) */
            if                                      /* cv_after_peer_death: return status == CONVEYOR_E_TIMEOUT ? CONVEYOR_E_PEER_DEAD : status */
            :: st == TIMEOUT -> st = PEER_DEAD
            :: else -> skip
            fi
        :: true ->
            do                                      /* cv_wait: for (;;) { */
            :: d_step {
                    _load(C, W_PBELL, bell);        /* cv_wait: uint32_t bell = cv_load_relaxed_u32(doorbell)  (1) */
                    _store(C, W_CSLEEP, 1)          /* cv_wait: cv_store_relaxed_u32(sleeping, 1) */
                }
#ifndef MUTANT_NO_FENCE_C_WAITER
                d_step { _drain(C) }                /* cv_wait: cv_fence_full()  SYNC POINT C */
#endif
                cons_ready(1);                      /* cv_wait: status = ready(ring); if (status != CONVEYOR_E_TIMEOUT) break */
                if
                :: st != TIMEOUT -> break
                :: else -> skip
                fi;
                /* cv_wait: if (now >= deadline) break: timeout_ns = -1, never */
                if
                :: p_dead ->                        /* cv_wait: if (cv_peer_dead(ring, now)) { */
                    cons_ready(0);                  /* cv_wait: status = cv_after_peer_death(ring, ready): int status = ready(ring) */
                    d_step {
                        if                          /* cv_after_peer_death: return status == TIMEOUT ? PEER_DEAD : status;  cv_wait: break } */
                        :: st == TIMEOUT -> st = PEER_DEAD
                        :: else -> skip
                        fi;
                        _store(C, W_CSLEEP, 0)      /* cv_wait: cv_store_relaxed_u32(sleeping, 0) */
                    }
                    break
                :: else -> skip
                fi;
                d_step {                            /* cv_wait: cv_futex_wait(doorbell, bell, slice): as for the producer */
                    _drain(C);
                    if
                    :: mem[W_PBELL] == bell -> fw[C] = 1
                    :: else -> skip
                    fi;
                    bell = 0
                }
                atomic { (fw[C] == 0 || CONS_SLICE) -> fw[C] = 0 }  /* returns: woken (or the word differed), or the slice */
            od                                      /* cv_wait: } */
        fi
    :: else -> skip
    fi
}

/* ring.c cv_ring_doorbell(&hdr->cons_doorbell, &hdr->prod_sleeping, &hdr->cons_wakes): after release */
inline cons_doorbell() {
#ifndef MUTANT_NO_FENCE_C
    d_step { _drain(C) }                            /* cv_ring_doorbell: cv_fence_full()  SYNC POINT C */
#endif
    d_step {
        _load(C, W_PSLEEP, v);                      /* cv_ring_doorbell: if (cv_load_relaxed_u32(peer_sleeping)) { */
        if
        :: v ->                                     /* cv_ring_doorbell: cv_bump_u32(doorbell, 1): a plain load + store of a */
            _load(C, W_CBELL, v);                   /*   word only this side writes (so the load is local) */
            _store(C, W_CBELL, v + 1);
            v = 1
        :: else -> skip
        fi
    }
    if
    :: v -> d_step { v = 0; _drain(C); fw[P] = 0 }  /* cv_ring_doorbell: cv_futex_wake(doorbell): the syscall drains, dequeues the producer } */
    :: else -> skip
    fi
}

proctype Consumer(byte id) {
    byte pos;       /* ring->position: tail */
    byte cache;     /* ring->peer_cache: the last head seen */
    byte st, bell, closed, head, v;
    {
        if
        :: id == 2 ->
            /* a replacement: conveyor_ring_attach_* -> shm.c cv_ring_validate_and_open -> ring.c cv_ring_claim_side */
end_claim:  atomic {                                /* cv_ring_claim_side: current = cv_load_acquire_u64(owner); */
                cons_owner == 1 && c_dead[1] ->     /*   bool free = ... || cv_owner_gone(current) (else BUSY: the application retries) */
                _drain(C);                          /*   cv_cas_u64(owner, &current, me): a locked RMW, drains */
                cons_owner = 2
            }
            d_step {                                /* cv_ring_claim_side: if (!handover) status = cv_load_position(ring): */
                _load(C, W_HEAD, cache)             /* cv_load_position: uint64_t head = cv_load_acquire_u64(&hdr->prod_head)  SYNC POINT A */
            }
            d_step {
                _load(C, W_TAIL, pos);              /* cv_load_position: uint64_t tail = cv_load_acquire_u64(&hdr->cons_tail)  SYNC POINT B */
                assert(cache >= pos && cache - pos <= SC);  /* cv_load_position: if (head - tail > ring->slot_count) return CONVEYOR_E_CORRUPT: never */
                assert(pos == g_released)           /* position = tail, peer_cache = head: it resumes after the last frame anyone released */
            }
            d_step { _store(C, W_CSLEEP, 0) }       /* cv_ring_peer_after_takeover: cons_sleeping = 0 (a dead owner's stale 1) */
#ifndef MUTANT_NO_TAKEOVER_DOORBELL
            cons_doorbell()                         /* cv_ring_claim_side: cv_ring_peer_after_takeover(ring) rings the peer's doorbell (the FINDING's fix) */
#endif
        :: else -> skip
        fi;
        do
        :: cons_wait();                             /* conveyor_ring_receive: status = cv_wait(ring, timeout_ns, cv_frame_ready, ...) */
            if
            :: st == OK ->
                d_step {                            /* conveyor_ring_receive: copy = *desc (after SYNC POINT A) */
                    _load(C, W_SLOT + pos % SC, v);
                    assert(v == pos + 1);           /*   it is frame position + 1 */
                    v = 0
                }
                d_step {
                    _load(C, W_SLOT + pos % SC, v); /* the application's last read of the frame it holds: */
                    assert(v == pos + 1);           /*   not overwritten while held */
                    v = 0;
                    pos++;                          /* conveyor_ring_release: ring->position++ */
                    _store(C, W_TAIL, pos);         /* conveyor_ring_release: cv_store_release_u64(&hdr->cons_tail, ring->position)  SYNC POINT B */
                    assert(pos == g_released + 1);  /* each frame released once, in order, counting every consumer */
                    g_released = pos
                }
progress_release:
                cons_doorbell()                     /* conveyor_ring_release: cv_ring_doorbell(&hdr->cons_doorbell, &hdr->prod_sleeping, ...) */
            :: st == EOS ->                         /* END_OF_STREAM: every committed frame was received (and released) first */
                assert(g_closed && pos == g_committed);
                break
            :: st == PEER_DEAD ->                   /* PEER_DEAD: the producer is dead, every frame it committed was received */
                assert(p_dead && pos == g_committed);
                break
            fi
        od
    } unless {
        /* Killed (the first consumer only): as for the producer. */
        atomic { kill_c && id == 1 -> fw[C] = 0 };
        (sb_n[C] == 0) -> c_dead[1] = 1
    }
}

proctype KillConsumer() { if :: kill_c = 1 :: skip fi }
proctype KillProducer() { if :: kill_p = 1 :: skip fi }

init {
    atomic {
        run Flusher(P);
        run Flusher(C);
        run Producer();
        run Consumer(1);
#if TAKEOVER
        run Consumer(2);
#endif
#if CONS_DIES
        run KillConsumer();
#endif
#if PROD_DIES
        run KillProducer();
#endif
    }
}
