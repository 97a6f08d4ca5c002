/*
 * owner.c — claiming and giving back an owner word, and owner liveness (owner.h; the rules
 * are OWNERSHIP in ring_layout.h). Shared by rings and channels.
 */
#include "internal.h"
#include "owner.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The fork epoch: bumped in both parent and child at every fork(), so a handle can tell
 * that its claim may have passed to another process. */
static cv_atomic_u64 cv_forks = 0;
static pthread_once_t cv_atfork_once = PTHREAD_ONCE_INIT;

static void cv_after_fork(void) { cv_bump_u64(&cv_forks, 1); }
static void cv_register_atfork(void) { pthread_atfork(NULL, cv_after_fork, cv_after_fork); }

static cv_atomic_u32 cv_nonces = 0;

uint32_t cv_next_nonce(void) {
    uint32_t nonce;
    do nonce = cv_add_relaxed_u32(&cv_nonces, 1) + 1;
    while (nonce == 0);
    return nonce;
}

uint64_t cv_fork_epoch(void) {
    pthread_once(&cv_atfork_once, cv_register_atfork);
    return cv_load_relaxed_u64(&cv_forks);
}

bool cv_claim_stale(const cv_claim *claim) {
    /* A handle that claimed registered the fork handler then (cv_fork_epoch), so no fork
     * since can have gone uncounted. */
    return claim->fork_epoch != cv_load_relaxed_u64(&cv_forks);
}

/* True unless `pid` has exited (a zombie counts as exited) or does not exist. A pidfd
 * polls readable once its process has terminated, which kill(pid, 0) cannot tell. */
static bool cv_process_alive(uint32_t pid) {
    if (pid == 0 || (pid_t)pid == getpid()) return true;
    int fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
    if (fd < 0) {
        if (errno == ESRCH) return false;
        return kill((pid_t)pid, 0) == 0 || errno != ESRCH; /* no pidfd support: best effort */
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int ready = poll(&p, 1, 0);
    close(fd);
    return ready <= 0;
}

static uint32_t cv_owner_pid(uint64_t owner) { return (uint32_t)(owner >> 32); }

bool cv_owner_gone(uint64_t owner) {
    return owner == CV_OWNER_LEFT || !cv_process_alive(cv_owner_pid(owner));
}

int cv_claim_owner(cv_claim *claim, cv_atomic_u64 *owner, cv_takeover_fn takeover, void *ctx) {
    uint64_t me = (uint64_t)(uint32_t)getpid() << 32 | claim->nonce;
    uint64_t current = cv_load_acquire_u64(owner);
    /* `current == me` for a handle that never claimed is a dead predecessor's word (its pid
     * reused, its nonce counter restarted like ours): a takeover, not ours already. */
    if (current != me || claim->claimed_owner != me) {
        bool handover = false;
        for (;;) {
            handover = claim->claimed_owner != CV_OWNER_NONE && current == claim->claimed_owner;
            bool free = current == CV_OWNER_NONE || current == me || cv_owner_gone(current);
            if (!handover && !free) return CONVEYOR_E_BUSY;
            if (cv_cas_u64(owner, &current, me)) break;  /* else `current` is the new word */
        }
        if (!handover) {
            /* The acq_rel swap made everything the previous owner published visible: the
             * new owner resumes from the shared counters and wakes a peer that may have
             * gone to sleep on a doorbell the previous owner died before ringing. */
            int status = takeover(ctx);
            if (status != CONVEYOR_OK) {
                uint64_t expected = me;  /* put the previous word back: claim nothing */
                cv_cas_u64(owner, &expected, current);
                return status;
            }
        }
    }
    claim->claimed_owner = me;
    claim->fork_epoch = cv_fork_epoch();
    return CONVEYOR_OK;
}

void cv_hand_back_owner(const cv_claim *claim, cv_atomic_u64 *owner) {
    if (claim->claimed_owner == CV_OWNER_NONE || cv_claim_stale(claim)) return;
    uint64_t expected = claim->claimed_owner;
    cv_cas_u64(owner, &expected, CV_OWNER_LEFT);
}
