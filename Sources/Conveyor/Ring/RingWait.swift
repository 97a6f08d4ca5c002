internal import CKernels
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What one call of a blocking ring function gave: its status, the errno it left (for
/// `CONVEYOR_E_SYSTEM`, read on the thread that made the call) and its outputs.
///
/// `@unchecked Sendable`: the pointer points into the ring's mapping and is handed from
/// the waiter thread to the waiting task exactly once, through the continuation (which
/// orders the two); neither side touches it while the other may.
struct RingAttempt: @unchecked Sendable {
    var status: Int32
    var errno: Int32 = 0
    var address: UnsafeMutableRawPointer?
    var info = conveyor_frame_info()

    /// The status the C call returned when it gave up waiting.
    static var timeoutStatus: Int32 { Int32(CONVEYOR_E_TIMEOUT.rawValue) }
}

/// The async form of a blocking ring call, which never blocks a thread of the cooperative
/// pool.
///
/// It tries once without waiting (timeout 0: a few loads). Only if it must wait does it
/// suspend the task and hand the wait to a dedicated OS thread (``BlockingThreads``),
/// which calls the C function in slices of at most ``slice`` until it succeeds, fails,
/// the deadline passes or the task is cancelled, then resumes the task. A cancellation
/// handler raises a flag that the thread reads between slices, so a cancelled wait ends
/// within one slice. A success wins over a cancellation that comes during the same slice
/// (the frame or slot is then returned, not lost). The handle is used by one thread at a
/// time: the task does not run until the waiter thread is done with it.
enum RingWait {
    /// The longest a waiter thread sleeps in C before it looks at the cancellation flag:
    /// 5 ms.
    static var slice: Int64 { 5_000_000 }

    /// Runs `attempt(handle, timeoutNanoseconds)` as described above. Returns the attempt
    /// that succeeded (status 0, or `success`); throws ``RingError/cancelled``,
    /// ``RingError/timedOut`` once `timeout` (nil: no limit) has passed, or the error of
    /// any other status.
    static func run(
        _ handle: RingHandle, timeout: Duration?, success: Int32? = nil,
        _ attempt: @escaping @Sendable (RingHandle, Int64) -> RingAttempt
    ) async throws(RingError) -> RingAttempt {
        if Task.isCancelled { throw .cancelled }
        let deadline = timeout.map { nowNanoseconds().addingSaturated($0.saturatingNanoseconds) }
        var outcome = attempt(handle, 0)
        if outcome.status == RingAttempt.timeoutStatus, deadline.map({ nowNanoseconds() < $0 }) ?? true {
            let waiter = SlicedWait(handle: handle, deadline: deadline, attempt: attempt)
            outcome = await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in waiter.start(continuation) }
            } onCancel: {
                waiter.cancel()
            }
            waiter.join()
            if outcome.status == RingAttempt.timeoutStatus, waiter.wasCancelled { throw .cancelled }
        }
        if outcome.status == 0 || outcome.status == success { return outcome }
        try RingError.check(outcome.status, errno: outcome.errno)
        return outcome  // not reached: a nonzero status always throws
    }
}

/// One wait parked on a waiter thread: the slices, the deadline and the cancellation flag.
private final class SlicedWait: Sendable {
    let handle: RingHandle
    /// `nowNanoseconds()` at which to give up; nil: never.
    let deadline: UInt64?
    let attempt: @Sendable (RingHandle, Int64) -> RingAttempt
    private let cancelled = Atomic<Bool>(false)
    /// Set (release) by the waiter thread when it is done with the handle, read (acquire)
    /// by the task when it resumes: the continuation orders the two already, but this
    /// edge is one ThreadSanitizer sees (it does not see through Dispatch on Linux), so
    /// the handle's fields written by the waiter are not reported as racing with the
    /// task's next call.
    private let finished = Atomic<Bool>(false)

    init(handle: RingHandle, deadline: UInt64?, attempt: @escaping @Sendable (RingHandle, Int64) -> RingAttempt) {
        self.handle = handle
        self.deadline = deadline
        self.attempt = attempt
    }

    var wasCancelled: Bool { cancelled.load(ordering: .acquiring) }

    /// In the resumed task: takes over the handle from the waiter thread.
    func join() {
        let done = finished.load(ordering: .acquiring)
        precondition(done, "Conveyor bug: a ring wait resumed before its waiter thread finished")
    }

    /// Called by the cancellation handler, on any thread: the waiter stops at its next
    /// look at the flag, within one slice.
    func cancel() { cancelled.store(true, ordering: .releasing) }

    /// Hands the wait to a waiter thread, which resumes `continuation` exactly once. If no
    /// thread can be started, resumes it at once with `CONVEYOR_E_SYSTEM` and the error.
    func start(_ continuation: CheckedContinuation<RingAttempt, Never>) {
        let status = BlockingThreads.run {
            let outcome = self.wait()
            self.finished.store(true, ordering: .releasing)
            continuation.resume(returning: outcome)
        }
        if status != 0 {
            finished.store(true, ordering: .releasing)
            continuation.resume(returning: RingAttempt(status: Int32(CONVEYOR_E_SYSTEM.rawValue), errno: status))
        }
    }

    /// On the waiter thread: slices until something other than a timeout, the deadline or
    /// a cancellation.
    private func wait() -> RingAttempt {
        while true {
            if wasCancelled { return RingAttempt(status: RingAttempt.timeoutStatus) }
            var slice = RingWait.slice
            if let deadline {
                let now = nowNanoseconds()
                guard now < deadline else { return RingAttempt(status: RingAttempt.timeoutStatus) }
                slice = min(slice, Int64(clamping: deadline - now))
            }
            let outcome = attempt(handle, slice)
            if outcome.status != RingAttempt.timeoutStatus { return outcome }
        }
    }
}

extension UInt64 {
    /// self + a non-negative count of nanoseconds, saturated at `UInt64.max` (a deadline
    /// that never comes) instead of wrapping.
    func addingSaturated(_ nanoseconds: Int64) -> UInt64 {
        let (sum, overflow) = addingReportingOverflow(UInt64(Swift.max(nanoseconds, 0)))
        return overflow ? .max : sum
    }
}
