internal import CKernels

/// A ring slot lent to the producer: write a matrix into it in place, then ``commit(tag:)``
/// to publish it. Dropping the lease without committing abandons it (nothing is published
/// and the slot is loaned again next time).
///
/// A lease is `~Copyable` (it is published or abandoned exactly once) and not `Sendable`:
/// commit it on the thread that loaned it, before using its ``Producer`` again.
public struct WriteLease<Element: MatrixElement>: ~Copyable {
    let handle: RingHandle
    let slot: UnsafeMutablePointer<Element>
    /// Rows of the matrix this lease holds.
    public let rows: Int
    /// Columns of the matrix this lease holds.
    public let cols: Int
    private var published = false

    init(handle: RingHandle, slot: UnsafeMutablePointer<Element>, rows: Int, cols: Int) {
        self.handle = handle
        self.slot = slot
        self.rows = rows
        self.cols = cols
    }

    /// Calls `body` with the slot as a `Matrix` to fill in place (zero-copy): use its
    /// mutating operations (`fillUniform`, `apply`, `+=`, subscripts...) or pointer access.
    /// Replacing the matrix with another of the same shape copies it into the slot;
    /// another shape traps. Copies kept past the call are detached (they keep a snapshot).
    public mutating func withMatrix<R, E: Error>(_ body: (inout Matrix<Element>) throws(E) -> R) throws(E) -> R {
        try SlotMatrix.withMatrix(slot: slot, rows: rows, cols: cols, lender: handle, writeBack: true, body)
    }

    /// Calls `body` with the slot's elements as raw mutable memory, row-major.
    public mutating func withUnsafeMutableBufferPointer<R, E: Error>(
        _ body: (UnsafeMutableBufferPointer<Element>) throws(E) -> R
    ) throws(E) -> R {
        try body(UnsafeMutableBufferPointer(start: slot, count: rows * cols))
    }

    /// Publishes the slot as the next frame (a rows × cols matrix of `Element`, with `tag`).
    ///
    /// Cost: a release store and a fence; a futex wake only if the consumer sleeps.
    /// - Throws: ``RingError`` if the C core refuses (e.g. the handle was misused); the
    ///   loan is then abandoned.
    public consuming func commit(tag: UInt64 = 0) throws(RingError) {
        var info = conveyor_frame_info()
        info.dtype = Element.dtype.conveyorDType
        info.rank = 2
        info.shape.0 = UInt64(rows)
        info.shape.1 = UInt64(cols)
        info.byte_length = UInt64(rows * cols * MemoryLayout<Element>.stride)
        info.tag = tag
        let status = conveyor_ring_commit(handle.pointer, &info)
        published = status == 0
        try RingError.check(status)
    }

    deinit {
        // BAD_STATE: the side changed hands since the loan (the loan is gone already);
        // BUSY: after a fork another process owns the side now. Nothing is left to give back.
        if !published {
            ConveyorError.expect(conveyor_ring_abandon(handle.pointer), from: "conveyor_ring_abandon",
                                 outcomes: [.badState, .busy, .corrupt])
        }
    }
}
