internal import CKernels

/// An index channel of the C core (`conveyor_channel`, section 9 of `conveyor.h`): one
/// receiver and `lanes` senders, each lane a single-producer/single-consumer queue of
/// `capacity` 64-bit words in shared memory. The receiver waits on one lane or on all of
/// them at once (wait-any) on a single futex doorbell that every sender rings: no polling.
///
/// This object is the channel's HOLDER: it keeps the mapping and claims no end. Open the
/// ends where they are used — in a forked process after the fork, so that the end belongs
/// to that process and its peers learn at once if it dies — with ``openReceiver()`` and
/// ``openSender(lane:)``. Ends are ``ChannelReceiver`` and ``ChannelSender``; each hands its
/// end back when it is deinitialized.
///
/// Statuses: what a peer or hostile memory can cause (end of stream, a dead peer, corrupt
/// indices, a busy end) is thrown as ``ConveyorError``; what only a bug of the caller can
/// cause (a wrong role, a lane out of range, a NULL handle) traps with the status name.
///
/// `@unchecked Sendable`: a holder is never used for sending or receiving, only to open
/// ends, which the C core allows from any thread.
final class Channel: @unchecked Sendable {
    fileprivate let pointer: OpaquePointer
    /// Senders (lanes) of the channel.
    let lanes: Int
    /// Words each lane holds.
    let capacity: Int

    /// Creates an anonymous channel (shared with processes forked afterwards) and holds it;
    /// with `passable`, a sealed memfd channel whose ``fd`` another program can attach
    /// (`conveyor_channel_attach_fd`).
    /// Ends start with `spin` busy-wait iterations before they sleep. The corresponding C
    /// function is `conveyor_channel_create`. Cost: one mmap of a header page, 384 bytes per
    /// lane and `lanes * capacity * 8` bytes of words.
    /// - Throws: ``ConveyorError`` with `CONVEYOR_E_INVALID_ARGUMENT` (lanes outside
    ///   1...64, capacity outside 1...65536), `CONVEYOR_E_SYSTEM`, `CONVEYOR_E_NO_MEMORY`.
    init(lanes: Int, capacity: Int, spin: Int, passable: Bool = false) throws(ConveyorError) {
        guard let lanes32 = UInt32(exactly: lanes), let capacity32 = UInt32(exactly: capacity),
              let spin32 = UInt32(exactly: spin) else {
            throw .invalidArgument
        }
        var config = conveyor_channel_config()
        config.lanes = lanes32
        config.capacity = capacity32
        config.spin = spin32
        config.backing = Int32((passable ? CONVEYOR_RING_MEMFD : CONVEYOR_RING_ANONYMOUS).rawValue)
        var holder: OpaquePointer?
        try ConveyorError.check(conveyor_channel_create(&config, &holder))
        pointer = holder!
        self.lanes = Int(conveyor_channel_lanes(pointer))
        self.capacity = Int(conveyor_channel_capacity(pointer))
    }

    deinit { conveyor_channel_destroy(pointer) }

    /// The memfd behind a passable channel (owned by this object; close-on-exec), or -1.
    var fd: Int32 { conveyor_channel_fd(pointer) }

    /// Bytes of the channel's shared mapping (`conveyor_channel_read_stats`).
    var mappedBytes: Int {
        var stats = conveyor_channel_stats()
        let status = conveyor_channel_read_stats(pointer, &stats, MemoryLayout<conveyor_channel_stats>.size)
        if status != 0 { preconditionFailure("conveyor_channel_read_stats: \(ConveyorError(rawValue: status).name)") }
        return Int(stats.mapped_bytes)
    }

    /// Opens the receiving end for the calling process (`conveyor_channel_open`).
    /// - Throws: ``ConveyorError`` `CONVEYOR_E_BUSY` (a live handle holds it),
    ///   `CONVEYOR_E_CORRUPT`, `CONVEYOR_E_NO_MEMORY`.
    func openReceiver() throws(ConveyorError) -> ChannelReceiver {
        ChannelReceiver(try open(role: CONVEYOR_CHANNEL_RECEIVER, lane: 0))
    }

    /// Opens the sender of `lane` for the calling process (`conveyor_channel_open`).
    /// - Throws: as ``openReceiver()``. Traps for a lane outside `0..<lanes`.
    func openSender(lane: Int) throws(ConveyorError) -> ChannelSender {
        precondition(lane >= 0 && lane < lanes, "conveyor_channel_open: lane \(lane) of \(lanes)")
        return ChannelSender(try open(role: CONVEYOR_CHANNEL_SENDER, lane: UInt32(lane)))
    }

    private func open(role: conveyor_channel_role, lane: UInt32) throws(ConveyorError) -> OpaquePointer {
        var end: OpaquePointer?
        let status = conveyor_channel_open(pointer, Int32(role.rawValue), lane, &end)
        if status == ConveyorError.invalidArgument.rawValue || status == ConveyorError.nullPointer.rawValue {
            preconditionFailure("conveyor_channel_open: \(ConveyorError(rawValue: status).name)")
        }
        try ConveyorError.check(status)
        return end!
    }

    /// Traps for the statuses only a caller's bug causes; returns the status otherwise.
    fileprivate static func trappingMisuse(_ status: Int32, _ call: StaticString) -> Int32 {
        switch ConveyorError(rawValue: status) {
        case .wrongRole, .nullPointer, .invalidArgument, .closed:
            preconditionFailure("\(call): \(ConveyorError(rawValue: status).name)")
        default:
            return status
        }
    }
}

/// The sender of one lane of a ``Channel``, owned by the process that opened it. Used by one
/// thread at a time. Deinitializing it hands the lane back: the receiver then sees
/// `CONVEYOR_E_PEER_DEAD` on this lane once it is drained, unless ``close()`` ended it first.
final class ChannelSender {
    private let pointer: OpaquePointer

    fileprivate init(_ pointer: OpaquePointer) { self.pointer = pointer }

    deinit { conveyor_channel_destroy(pointer) }

    /// Appends `word` to the lane, waiting while it is full for at most `timeout`
    /// nanoseconds (0: try once; negative: no limit). Returns false on a timeout. The
    /// corresponding C function is `conveyor_channel_send`. Cost: a release store and a
    /// fence; a futex wake only if the receiver sleeps.
    /// - Throws: ``ConveyorError`` `CONVEYOR_E_PEER_DEAD` (the receiver died or left),
    ///   `CONVEYOR_E_CORRUPT`. Traps when the lane was closed by this sender (a bug).
    func send(_ word: UInt64, timeout: Int64) throws(ConveyorError) -> Bool {
        let status = Channel.trappingMisuse(conveyor_channel_send(pointer, word, timeout), "conveyor_channel_send")
        if status == ConveyorError.timeout.rawValue { return false }
        try ConveyorError.check(status)
        return true
    }

    /// Ends the lane (`conveyor_channel_close`): the receiver takes every word sent before,
    /// then the lane reports end of stream. Closing twice is fine. Cannot fail on a sender.
    func close() {
        let status = conveyor_channel_close(pointer)
        if status != 0 { preconditionFailure("conveyor_channel_close: \(ConveyorError(rawValue: status).name)") }
    }
}

/// The receiving end of a ``Channel``, owned by the process that opened it. Used by one
/// thread at a time.
final class ChannelReceiver {
    private let pointer: OpaquePointer

    fileprivate init(_ pointer: OpaquePointer) { self.pointer = pointer }

    deinit { conveyor_channel_destroy(pointer) }

    /// Takes the next word of `lane`, in the order it was sent, waiting while the lane is
    /// empty for at most `timeout` nanoseconds (0: try once; negative: no limit). Returns nil
    /// on a timeout. The corresponding C function is `conveyor_channel_receive`. Cost when a
    /// word is ready: a few loads, no system call.
    /// - Throws: ``ConveyorError`` `CONVEYOR_E_END_OF_STREAM` (the lane was closed and
    ///   drained), `CONVEYOR_E_PEER_DEAD` (its sender died without closing, every word it sent
    ///   taken), `CONVEYOR_E_CORRUPT`. Traps for a lane outside the channel.
    func receive(lane: Int, timeout: Int64) throws(ConveyorError) -> UInt64? {
        var word: UInt64 = 0
        let status = Channel.trappingMisuse(
            conveyor_channel_receive(pointer, UInt32(truncatingIfNeeded: lane), timeout, &word), "conveyor_channel_receive")
        if status == ConveyorError.timeout.rawValue { return nil }
        try ConveyorError.check(status)
        return word
    }

    /// Wait-any: takes the next word of whichever lane has one (round-robin from the lane
    /// after the one served last, so none starves), sleeping until any lane has one for at
    /// most `timeout` nanoseconds. Returns the word and its lane, nil on a timeout. The
    /// corresponding C function is `conveyor_channel_receive_any`. Cost: as ``receive(lane:timeout:)``
    /// plus a look at each lane.
    /// - Throws: ``ConveyorError`` `CONVEYOR_E_END_OF_STREAM` (every lane closed and
    ///   drained), `CONVEYOR_E_PEER_DEAD` (a lane's sender died without closing and no lane
    ///   has a word), `CONVEYOR_E_CORRUPT`.
    func receiveAny(timeout: Int64) throws(ConveyorError) -> (lane: Int, word: UInt64)? {
        var lane: UInt32 = 0
        var word: UInt64 = 0
        let status = Channel.trappingMisuse(conveyor_channel_receive_any(pointer, timeout, &lane, &word),
                                            "conveyor_channel_receive_any")
        if status == ConveyorError.timeout.rawValue { return nil }
        try ConveyorError.check(status)
        return (Int(lane), word)
    }
}
