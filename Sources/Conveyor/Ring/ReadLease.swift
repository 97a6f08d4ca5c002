internal import CKernels

/// A frame received by the consumer: read it in place, where the producer wrote it. The
/// slot is released (given back to the producer) when the lease ends.
///
/// `~Copyable` (released exactly once) and not `Sendable`: drop it on the thread that
/// received it, before receiving again.
public struct ReadLease: ~Copyable {
    let handle: RingHandle
    let base: UnsafeRawPointer
    /// The element type the producer declared; `nil` for raw bytes.
    public let dtype: DType?
    /// The extents of the frame (rank = `shape.count`, 0...4).
    public let shape: [Int]
    /// Payload size in bytes.
    public let byteCount: Int
    /// The producer's tag (e.g. an item index).
    public let tag: UInt64

    init(handle: RingHandle, base: UnsafeRawPointer, info: conveyor_frame_info) {
        self.handle = handle
        self.base = base
        dtype = DType(conveyorDType: info.dtype)
        let extents = [info.shape.0, info.shape.1, info.shape.2, info.shape.3]
        shape = extents.prefix(Int(info.rank)).map { Int($0) }
        byteCount = Int(info.byte_length)
        tag = info.tag
    }

    /// Calls `body` with the frame as a read-only `Matrix`, without copying it.
    ///
    /// Mutating the matrix inside `body` copies it first (copy-on-write): the slot itself is
    /// never written. Copies kept past the call are detached (they keep a snapshot).
    /// - Throws: ``RingError/dtypeMismatch(expected:actual:)`` or
    ///   ``RingError/notAMatrix(rank:)`` if the frame is not a matrix of `Element`.
    public func withMatrix<Element: MatrixElement, R>(
        of element: Element.Type, _ body: (Matrix<Element>) throws -> R
    ) throws -> R {
        guard dtype == Element.dtype else { throw RingError.dtypeMismatch(expected: Element.dtype, actual: dtype) }
        guard shape.count == 2 else { throw RingError.notAMatrix(rank: shape.count) }
        let slot = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: Element.self))
        return try SlotMatrix.withMatrix(slot: slot, rows: shape[0], cols: shape[1], lender: handle,
                                         writeBack: false) { (matrix: inout Matrix<Element>) in
            let view = matrix  // a second reference: any mutation in body copies first
            return try body(view)
        }
    }

    /// Calls `body` with the payload bytes.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: base, count: byteCount))
    }

    // BAD_STATE: the side changed hands since the receive (the frame is the new owner's to
    // receive again); BUSY: after a fork another process owns the side now; CORRUPT: the
    // re-claim found impossible shared counters. The frame is not ours to release then.
    deinit {
        ConveyorError.expect(conveyor_ring_release(handle.pointer), from: "conveyor_ring_release",
                             outcomes: [.badState, .busy, .corrupt])
    }
}
