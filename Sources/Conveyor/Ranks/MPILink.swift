#if MPI
internal import CKernels
internal import ConveyorMPI

/// Tuning of the links a run across ranks opens between its stages (conveyor_mpi.h).
public struct LinkOptions: Sendable {
    /// Payload bytes per MPI message: larger frames go in chunks this size (1 B...1 GiB).
    public var chunkBytes: Int
    /// A rank silent for this long is dead: the run fails with
    /// ``PipelineError/rankFailed(rank:message:)`` within `liveness + heartbeat`.
    public var liveness: Duration
    /// Interval between the heartbeats each end of a link sends.
    public var heartbeat: Duration

    /// 4 MiB chunks, a 10 s liveness bound, heartbeats every 100 ms.
    public init(chunkBytes: Int = 4 << 20, liveness: Duration = .seconds(10), heartbeat: Duration = .milliseconds(100)) {
        self.chunkBytes = chunkBytes
        self.liveness = liveness
        self.heartbeat = heartbeat
    }
}

/// What a link did: frames and bytes it carried, and how long its user waited in it.
public struct LinkStats: Sendable, Equatable {
    /// The rank that sends on this link.
    public var from: Int
    /// The rank that receives.
    public var to: Int
    /// Items that crossed (end of stream not counted).
    public var frames: Int
    /// Their payload bytes.
    public var bytes: Int
    /// Seconds this end spent waiting inside the link: for the peer, the network, or (a
    /// sender) the receiver's flow control. Where a pipeline across ranks stalls.
    public var blockedSeconds: Double
}

/// A communicator of one run's own (conveyor_mpi_world_dup): its links' messages never
/// meet another run's. Made collectively by every rank; freed when the last link is gone.
final class RunCommunicator: @unchecked Sendable {
    fileprivate var comm: MPI_Comm?

    init() throws(PipelineError) {
        let status = conveyor_mpi_world_dup(&comm)
        guard status == 0 else { throw .setupFailed("MPI_Comm_dup: \(String(cString: conveyor_mpi_status_message(status)))") }
    }

    deinit { conveyor_mpi_comm_release(&comm) }
}

/// One end of a conveyor_mpi link. A class so that the bridge closures of a run can share
/// it; used by one thread at a time (the source worker that receives, or the sink that
/// sends), with the link's own heartbeat thread beside it. Destroyed with its last reference.
final class MPILink: @unchecked Sendable {
    private let handle: OpaquePointer
    /// Kept so that the communicator outlives the link.
    private let communicator: RunCommunicator
    /// The link's liveness bound in nanoseconds (0: the C default).
    private let liveness: Int64
    let peer: Int
    let sending: Bool

    /// Opens the end toward `peer` on `channel` of `communicator`. Throws
    /// ``PipelineError/setupFailed(_:)``.
    init(sending: Bool, peer: Int, channel: Int, on communicator: RunCommunicator, options: LinkOptions) throws(PipelineError) {
        var config = conveyor_mpi_link_config()
        config.comm = communicator.comm
        config.peer = Int32(peer)
        config.channel = Int32(channel)
        config.chunk_bytes = UInt64(max(options.chunkBytes, 0))
        config.liveness_ns = options.liveness.saturatingNanoseconds
        config.heartbeat_ns = options.heartbeat.saturatingNanoseconds
        var link: OpaquePointer?
        let status = conveyor_mpi_link_open(&config, Int32(sending ? 1 : 2), &link)
        guard status == 0, let link else {
            throw .setupFailed("the link \(sending ? "to" : "from") rank \(peer) (channel \(channel)): "
                + String(cString: conveyor_mpi_status_message(status)))
        }
        handle = link
        liveness = config.liveness_ns != 0 ? config.liveness_ns : 10_000_000_000
        self.communicator = communicator
        self.peer = peer
        self.sending = sending
    }

    deinit { conveyor_mpi_link_destroy(handle) }

    /// A link failure in words: the status and the link's own message.
    struct Failure: Error, CustomStringConvertible {
        let status: Int32
        let message: String
        var description: String { message }
    }

    private func failure(_ status: Int32) -> Failure {
        let detail = String(cString: conveyor_mpi_link_error(handle))
        return Failure(status: status, message: detail.isEmpty ? String(cString: conveyor_mpi_status_message(status)) : detail)
    }

    /// Sends `bytes` bytes at `data` as one frame of `shape` and `dtype`, tagged with the
    /// item; returns once the bytes are out (they may be reused). Waits in slices of
    /// `slice` nanoseconds, asking `stop` between them: a send the receiver does not take
    /// (its rank stopped, alive) must not hold this rank forever.
    func send(_ data: UnsafeRawPointer, shape: Shape, dtype: DType, item: Int, slice: Int64,
              stop: () -> Bool) throws(Failure) {
        var info = conveyor_frame_info()
        info.dtype = dtype.conveyorDType
        info.rank = 2
        info.shape.0 = UInt64(shape.rows)
        info.shape.1 = UInt64(shape.cols)
        info.byte_length = UInt64(shape.rows * shape.cols * dtype.size)
        info.tag = UInt64(item)
        var status = conveyor_mpi_link_send_post(handle, data, &info)
        // Once the rank stops, the frame still gets up to the liveness bound to go out: the
        // slot it is sent from is unmapped when the run ends, and a receiver that already
        // matched it would read unmapped memory.
        var stoppedAt: UInt64?
        while status == 0 {
            status = conveyor_mpi_link_send_wait(handle, 0, slice, nil)
            if status == Int32(CONVEYOR_E_TIMEOUT.rawValue) {
                if stoppedAt == nil && stop() { stoppedAt = nowNanoseconds() }
                if let stoppedAt, nowNanoseconds() - stoppedAt > UInt64(liveness) {
                    throw Failure(status: Int32(CONVEYOR_E_CLOSED.rawValue), message: "the run on this rank stopped")
                }
                status = 0
                continue
            }
            if status == 0 { return }
        }
        throw failure(status)
    }

    /// Ends the stream and waits for the receiver to acknowledge it.
    func close() throws(Failure) {
        let status = conveyor_mpi_link_close(handle)
        if status != 0 { throw failure(status) }
    }

    /// Waits for the next descriptor in slices of `slice` nanoseconds, asking `stop` between
    /// them; returns the status of conveyor_mpi_link_next that is not a timeout.
    private func next(_ info: inout conveyor_frame_info, slice: Int64, stop: () -> Bool) throws(Failure) -> Int32 {
        var status: Int32
        repeat {
            if stop() { throw Failure(status: Int32(CONVEYOR_E_CLOSED.rawValue), message: "the run on this rank stopped") }
            status = conveyor_mpi_link_next(handle, slice, &info)
        } while status == Int32(CONVEYOR_E_TIMEOUT.rawValue)
        return status
    }

    /// Receives the next frame straight into `slot` (`capacity` bytes), checking that it is
    /// item `item` of `shape` and `dtype`. Waits in slices of `slice` nanoseconds, asking
    /// `stop` between them. Returns false at end of stream.
    func receive(into slot: UnsafeMutableRawPointer, capacity: Int, shape: Shape, dtype: DType, item: Int,
                 slice: Int64, stop: () -> Bool) throws(Failure) -> Bool {
        var info = conveyor_frame_info()
        var status = try next(&info, slice: slice, stop: stop)
        if status == Int32(CONVEYOR_E_END_OF_STREAM.rawValue) { return false }
        if status != 0 { throw failure(status) }
        guard info.dtype == dtype.conveyorDType, info.rank == 2, info.shape.0 == UInt64(shape.rows),
              info.shape.1 == UInt64(shape.cols), info.tag == UInt64(item) else {
            throw Failure(status: Int32(CONVEYOR_E_CORRUPT.rawValue),
                          message: "rank \(peer) sent item \(info.tag) of dtype \(info.dtype), shape \(info.shape.0)x\(info.shape.1)"
                              + " where item \(item), \(dtype) \(shape) was due (do all ranks run the same pipeline?)")
        }
        status = conveyor_mpi_link_receive_payload(handle, slot, UInt64(capacity))
        if status != 0 { throw failure(status) }
        return true
    }

    /// Waits (in slices, asking `stop`) for the end of the stream, after the last item.
    func expectEnd(slice: Int64, stop: () -> Bool) throws(Failure) {
        var info = conveyor_frame_info()
        let status = try next(&info, slice: slice, stop: stop)
        if status == 0 {
            throw Failure(status: Int32(CONVEYOR_E_CORRUPT.rawValue),
                          message: "rank \(peer) sent more items than the pipeline has (do all ranks run the same pipeline?)")
        }
        if status != Int32(CONVEYOR_E_END_OF_STREAM.rawValue) { throw failure(status) }
    }

    /// Sends `bytes` as one frame of raw bytes, and ends the stream.
    func sendMessage(_ bytes: [UInt8]) throws(Failure) {
        var info = conveyor_frame_info()
        info.dtype = UInt32(CONVEYOR_DTYPE_BYTES.rawValue)
        info.rank = 1
        info.shape.0 = UInt64(bytes.count)
        info.byte_length = UInt64(bytes.count)
        let status = bytes.withUnsafeBytes { conveyor_mpi_link_send(handle, $0.baseAddress, &info) }
        if status != 0 { throw failure(status) }
        try close()
    }

    /// Receives one frame of at most `limit` raw bytes, then the end of the stream.
    func receiveMessage(limit: Int) throws(Failure) -> [UInt8] {
        var info = conveyor_frame_info()
        var status = conveyor_mpi_link_next(handle, -1, &info)
        if status != 0 { throw failure(status) }
        guard info.dtype == UInt32(CONVEYOR_DTYPE_BYTES.rawValue), info.byte_length <= UInt64(limit) else {
            throw Failure(status: Int32(CONVEYOR_E_CORRUPT.rawValue), message: "rank \(peer) sent a report of \(info.byte_length) bytes")
        }
        var bytes = [UInt8](repeating: 0, count: Int(info.byte_length))
        status = bytes.withUnsafeMutableBytes { conveyor_mpi_link_receive_payload(handle, $0.baseAddress, UInt64($0.count)) }
        if status != 0 { throw failure(status) }
        try expectEnd(slice: -1, stop: { false })
        return bytes
    }

    /// What the link did so far.
    func stats(from: Int, to: Int) -> LinkStats {
        var s = conveyor_mpi_link_stats()
        _ = conveyor_mpi_link_get_stats(handle, &s)
        return LinkStats(from: from, to: to, frames: Int(s.frames), bytes: Int(s.bytes),
                         blockedSeconds: Double(s.blocked_ns) / 1e9)
    }
}
#endif
