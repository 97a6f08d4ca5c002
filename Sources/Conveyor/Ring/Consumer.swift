internal import CKernels

#if canImport(Glibc)
import Glibc
#endif

/// The reading end of a ring. Exactly one exists per ring (it is `~Copyable`); move it to
/// the thread or process that consumes.
public struct Consumer: ~Copyable, Sendable {
    let handle: RingHandle

    init(handle: RingHandle) { self.handle = handle }

    /// Attaches to the consumer side of a sealed `.memfd` ring by descriptor. If the previous
    /// consumer died or let go of its handle while holding a frame, that frame is received
    /// again.
    /// - Throws: as ``Producer/attach(fileDescriptor:)``.
    public static func attach(fileDescriptor: Int32) throws(RingError) -> Consumer {
        Consumer(handle: try RingHandle.attach(fileDescriptor: fileDescriptor, role: CONVEYOR_RING_CONSUMER))
    }

    /// Attaches to the consumer side of the named ring `name` ("/name").
    public static func attach(name: String) throws(RingError) -> Consumer {
        Consumer(handle: try RingHandle.attach(name: name, role: CONVEYOR_RING_CONSUMER))
    }

    /// Waits for the next frame and lends it, read-only, in place; `nil` once the producer
    /// has closed the ring and every frame was received.
    ///
    /// `timeout`: nil waits without limit, `.zero` tries once. Frames come in commit order,
    /// each once. Cost when a frame is ready: a few loads, no system call.
    /// - Throws: ``RingError/timedOut``, ``RingError/peerDied`` (the producer died without
    ///   closing; every frame it committed was received first), ``RingError/core(_:errno:)``
    ///   with `CONVEYOR_E_BAD_STATE` if the previous lease is still alive, or
    ///   `CONVEYOR_E_CORRUPT`.
    public func receive(timeout: Duration? = nil) throws(RingError) -> ReadLease? {
        var data: UnsafeRawPointer?
        var info = conveyor_frame_info()
        let status = conveyor_ring_receive(handle.pointer, RingHandle.nanoseconds(timeout), &data, &info)
        if status == Int32(CONVEYOR_E_END_OF_STREAM.rawValue) { return nil }
        try RingError.check(status)
        return ReadLease(handle: handle, base: data!, info: info)
    }

    /// ``receive(timeout:)-19tsq`` for async code, which never blocks a thread of the
    /// cooperative pool.
    ///
    /// Tries once without waiting (when a frame is ready: a few loads, no system call, no
    /// thread switch). If it must wait, the task suspends and a dedicated OS thread waits
    /// for it: a wake-up of that thread and a resumption of the task, some
    /// microseconds, are the price. Same timeouts, errors and `nil` at end of stream as the
    /// blocking form, plus ``RingError/cancelled``, thrown within 5 ms of the task's
    /// cancellation (a frame that arrives in that time is returned instead, never lost),
    /// and ``RingError/core(_:errno:)`` with ``ConveyorError/system`` and the error of
    /// `pthread_create` if the system refuses a waiter thread.
    public func receive(timeout: Duration? = nil) async throws(RingError) -> ReadLease? {
        let endOfStream = Int32(CONVEYOR_E_END_OF_STREAM.rawValue)
        let outcome = try await RingWait.run(handle, timeout: timeout, success: endOfStream) { handle, slice in
            var data: UnsafeRawPointer?
            var info = conveyor_frame_info()
            let status = conveyor_ring_receive(handle.pointer, slice, &data, &info)
            return RingAttempt(status: status, errno: status == 0 ? 0 : errno,
                               address: UnsafeMutableRawPointer(mutating: data), info: info)
        }
        if outcome.status == endOfStream { return nil }
        return ReadLease(handle: handle, base: UnsafeRawPointer(outcome.address!), info: outcome.info)
    }

    /// Records this process as the consumer's owner (first thing in a forked child).
    public func claim() throws(RingError) {
        try RingError.check(conveyor_ring_claim(handle.pointer))
    }

    /// The ring's counters.
    public var stats: RingStats { handle.stats }

    /// The memfd or shared-memory descriptor behind the ring, or nil if anonymous.
    public var fileDescriptor: Int32? { handle.fileDescriptor }
}
