internal import CKernels

#if canImport(Glibc)
import Glibc
#endif

/// The writing end of a ring. Exactly one exists per ring (it is `~Copyable`); move it to
/// the thread or process that produces.
public struct Producer: ~Copyable, Sendable {
    let handle: RingHandle

    init(handle: RingHandle) { self.handle = handle }

    /// Attaches to the producer side of a `.memfd` ring whose descriptor came from another
    /// process (the descriptor is duplicated; close yours freely). The memfd must be sealed
    /// against resizing, as Conveyor's are, so no process can truncate it under another; a
    /// `.named` ring is attached by name instead. If the previous producer died or left,
    /// the new one continues after its last commit.
    /// - Throws: ``RingError/core(_:errno:)``: `CONVEYOR_E_NOT_SEALED`, `_NOT_A_RING`,
    ///   `_VERSION`, `_TRUNCATED`, `_CORRUPT`, or `_BUSY` if another live handle holds the side.
    public static func attach(fileDescriptor: Int32) throws(RingError) -> Producer {
        Producer(handle: try RingHandle.attach(fileDescriptor: fileDescriptor, role: CONVEYOR_RING_PRODUCER))
    }

    /// Attaches to the producer side of the named ring `name` ("/name").
    public static func attach(name: String) throws(RingError) -> Producer {
        Producer(handle: try RingHandle.attach(name: name, role: CONVEYOR_RING_PRODUCER))
    }

    /// Waits for a free slot and lends it for a rows × cols matrix of `Element`.
    ///
    /// `timeout`: nil waits without limit, `.zero` tries once. Cost when a slot is free: a
    /// few loads, no system call.
    /// - Throws: ``RingError/frameTooLarge(bytes:capacity:)`` (checked before waiting),
    ///   ``RingError/timedOut``, ``RingError/closed``, ``RingError/peerDied``.
    public func loan<Element: MatrixElement>(rows: Int, cols: Int, of element: Element.Type = Element.self,
                                             timeout: Duration? = nil) throws(RingError) -> WriteLease<Element> {
        try checkFits(rows: rows, cols: cols, of: Element.self)
        var data: UnsafeMutableRawPointer?
        try RingError.check(conveyor_ring_loan(handle.pointer, RingHandle.nanoseconds(timeout), &data, nil))
        return WriteLease(handle: handle, slot: data!.assumingMemoryBound(to: Element.self), rows: rows, cols: cols)
    }

    /// ``loan(rows:cols:of:timeout:)-4ptu0`` for async code, which never blocks a thread of the
    /// cooperative pool.
    ///
    /// Tries once without waiting (a slot is usually free: a few loads, no system call,
    /// no thread switch). If it must wait, the task suspends and a dedicated OS thread
    /// waits for it: a wake-up of that thread and a resumption of the task,
    /// some microseconds, are the price. Same timeouts and errors as the blocking form,
    /// plus ``RingError/cancelled``, thrown within 5 ms of the task's cancellation, and
    /// ``RingError/core(_:errno:)`` with ``ConveyorError/system`` and the error of
    /// `pthread_create` if the system refuses a waiter thread.
    public func loan<Element: MatrixElement>(rows: Int, cols: Int, of element: Element.Type = Element.self,
                                             timeout: Duration? = nil) async throws(RingError) -> WriteLease<Element> {
        try checkFits(rows: rows, cols: cols, of: Element.self)
        let outcome = try await RingWait.run(handle, timeout: timeout) { handle, slice in
            var data: UnsafeMutableRawPointer?
            let status = conveyor_ring_loan(handle.pointer, slice, &data, nil)
            return RingAttempt(status: status, errno: status == 0 ? 0 : errno, address: data)
        }
        return WriteLease(handle: handle, slot: outcome.address!.assumingMemoryBound(to: Element.self),
                          rows: rows, cols: cols)
    }

    /// Copies `matrix` into a slot and publishes it: the copying queue, for a matrix that
    /// was not built in a loaned slot. Errors as ``loan(rows:cols:of:timeout:)-4ptu0``.
    public func push<Element: MatrixElement>(_ matrix: Matrix<Element>, tag: UInt64 = 0,
                                             timeout: Duration? = nil) throws(RingError) {
        var lease = try loan(rows: matrix.rows, cols: matrix.cols, of: Element.self, timeout: timeout)
        lease.withUnsafeMutableBufferPointer { slot in
            matrix.withUnsafeBufferPointer { source in
                if let from = source.baseAddress { slot.baseAddress!.update(from: from, count: source.count) }
            }
        }
        try lease.commit(tag: tag)
    }

    /// Ends the stream: the consumer receives every frame committed so far, then `nil`.
    /// Closing twice is fine.
    public func close() throws(RingError) {
        try RingError.check(conveyor_ring_close(handle.pointer))
    }

    /// Records this process as the producer's owner. Call it first thing in a forked child
    /// that received this producer, so the consumer can tell if the child dies.
    public func claim() throws(RingError) {
        try RingError.check(conveyor_ring_claim(handle.pointer))
    }

    /// The ring's counters.
    public var stats: RingStats { handle.stats }

    /// The memfd or shared-memory descriptor behind the ring (owned by this end), or nil
    /// for an anonymous ring.
    public var fileDescriptor: Int32? { handle.fileDescriptor }

    private func checkFits<Element: MatrixElement>(rows: Int, cols: Int, of: Element.Type) throws(RingError) {
        let capacity = handle.slotBytes
        guard rows >= 0, cols >= 0 else { throw .invalidConfiguration("matrix shape \(rows)x\(cols)") }
        guard let bytes = elementByteCount(rows: rows, cols: cols, stride: MemoryLayout<Element>.stride) else {
            throw .frameTooLarge(bytes: Int.max, capacity: capacity)
        }
        guard bytes <= capacity else { throw .frameTooLarge(bytes: bytes, capacity: capacity) }
    }
}
