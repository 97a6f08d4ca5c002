#if canImport(Glibc)
import Glibc
#endif

/// Dedicated OS threads for the blocking waits of async calls, so that no wait ever holds
/// a thread of Swift's cooperative pool (which has one thread per core: a few blocked
/// waits would stall every task of the process).
///
/// Each job gets a thread to itself for as long as it runs, so any number of waits block
/// at once without queueing behind each other. Threads are kept after their job for
/// ``idleSeconds`` and reused, so a stream of waits pays a condition-variable wake-up
/// (a few microseconds) per wait rather than a thread creation; an idle thread exits
/// after that, so a quiet process holds none. Not a Dispatch queue and not a task: plain
/// pthreads, invisible to the cooperative pool.
///
/// In a forked child the cache belongs to the parent (its threads were not copied, and
/// its lock may have been held at fork time), so there every job gets a fresh thread that
/// exits after it, and the cache is never touched.
enum BlockingThreads {
    /// How long a thread waits for another job before it exits.
    static var idleSeconds: Int { 10 }

    /// Runs `job` on a dedicated OS thread and returns at once: 0 when the job was handed
    /// over, otherwise the error of `pthread_create` (e.g. `EAGAIN`), and then `job` will
    /// never run. Cost: a mutex and a condition-variable signal when an idle thread is
    /// free, else one thread creation (tens of microseconds).
    static func run(_ job: @escaping @Sendable () -> Void) -> Int32 {
        let cache = ThreadCache.shared
        guard getpid() == cache.creator else { return ThreadCache.spawn(BlockingWorker(job: job, cache: nil)) }
        if cache.handToIdle(job) { return 0 }
        return ThreadCache.spawn(BlockingWorker(job: job, cache: cache))
    }
}

/// The idle threads of ``BlockingThreads``, under one pthread mutex (a pthread one, since
/// each idle thread sleeps on a condition variable that needs it).
private final class ThreadCache: @unchecked Sendable {
    // @unchecked: `idle` and every worker's `job` are read and written only with `mutex`
    // held; the pointers themselves never change.
    static let shared = ThreadCache()

    /// The process that made the cache: its threads exist only there.
    let creator = getpid()
    let mutex: UnsafeMutablePointer<pthread_mutex_t>
    /// Threads waiting for a job, most recently idle last.
    var idle: [BlockingWorker] = []

    private init() {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)  // default attributes cannot fail on Linux
    }

    /// Gives `job` to an idle thread; false if there is none.
    func handToIdle(_ job: @escaping @Sendable () -> Void) -> Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        guard let worker = idle.popLast() else { return false }
        worker.job = job
        pthread_cond_signal(worker.wakeup)
        return true
    }

    /// Starts a detached thread running `worker`; 0 or the error of `pthread_create`
    /// (through ``Posix/Thread``, the package's one wrapper of it).
    static func spawn(_ worker: BlockingWorker) -> Int32 {
        do throws(SystemCallError) {
            try Posix.Thread.start { worker.main() }.detach()
            return 0
        } catch {
            return error.errno
        }
    }
}

/// One thread of ``BlockingThreads``: runs its job, then (when it belongs to the cache)
/// waits idle for the next one.
private final class BlockingWorker: @unchecked Sendable {
    // @unchecked: `job` is handed over under the cache's mutex (see ThreadCache).
    var job: (@Sendable () -> Void)?
    let wakeup: UnsafeMutablePointer<pthread_cond_t>
    private let cache: ThreadCache?

    init(job: @escaping @Sendable () -> Void, cache: ThreadCache?) {
        self.job = job
        self.cache = cache
        wakeup = .allocate(capacity: 1)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)  // idle timeouts ignore clock changes
        pthread_cond_init(wakeup, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(wakeup)
        wakeup.deallocate()
    }

    func main() {
        var next = job.take()
        while let current = next {
            current()
            next = waitForJob()
        }
    }

    /// The next job, or nil when none came within the idle time (the thread then exits).
    private func waitForJob() -> (@Sendable () -> Void)? {
        guard let cache else { return nil }
        pthread_mutex_lock(cache.mutex)
        defer { pthread_mutex_unlock(cache.mutex) }
        cache.idle.append(self)
        // The package's one monotonic clock, which the condition variable was set to use.
        let end = nowNanoseconds() + UInt64(BlockingThreads.idleSeconds) * 1_000_000_000
        var deadline = timespec(tv_sec: Int(end / 1_000_000_000), tv_nsec: Int(end % 1_000_000_000))
        while job == nil {
            if pthread_cond_timedwait(wakeup, cache.mutex, &deadline) == ETIMEDOUT, job == nil {
                cache.idle.removeAll { $0 === self }  // under the mutex: no job can be on its way
                return nil
            }
        }
        return job.take()
    }
}
