internal import CKernels

/// One side's C handle (`conveyor_ring *`). A class so that a lease can keep the mapping
/// alive after its ``Producer`` or ``Consumer`` is gone: the mapping is unmapped when the
/// last of them ends.
///
/// `@unchecked Sendable`: the handle is used by one owner at a time, which the ~Copyable
/// ``Producer``/``Consumer`` and their non-Sendable leases enforce.
final class RingHandle: @unchecked Sendable {
    let pointer: OpaquePointer
    /// Capacity of a slot, read once (geometry never changes).
    let slotBytes: Int

    init(_ pointer: OpaquePointer) {
        self.pointer = pointer
        var s = conveyor_ring_stats()
        _ = conveyor_ring_get_stats(pointer, &s)
        self.slotBytes = Int(s.slot_bytes)
    }

    deinit { conveyor_ring_destroy(pointer) }

    /// Attaches to one side of the ring behind a descriptor (`conveyor_ring_attach_fd`).
    static func attach(fileDescriptor: Int32, role: conveyor_ring_role) throws(RingError) -> RingHandle {
        var ring: OpaquePointer?
        try RingError.check(conveyor_ring_attach_fd(fileDescriptor, Int32(role.rawValue), &ring))
        return RingHandle(ring!)
    }

    /// Attaches to one side of a named ring (`conveyor_ring_attach_named`).
    static func attach(name: String, role: conveyor_ring_role) throws(RingError) -> RingHandle {
        var ring: OpaquePointer?
        try RingError.check(conveyor_ring_attach_named(name, Int32(role.rawValue), &ring))
        return RingHandle(ring!)
    }

    var stats: RingStats {
        var s = conveyor_ring_stats()
        _ = conveyor_ring_get_stats(pointer, &s)
        return RingStats(
            framesCommitted: Int(s.frames_committed), bytesCommitted: Int(s.bytes_committed),
            framesReleased: Int(s.frames_released), producerWaits: Int(s.producer_waits),
            producerWakes: Int(s.producer_wakes), consumerWaits: Int(s.consumer_waits),
            consumerWakes: Int(s.consumer_wakes), peakOccupancy: Int(s.peak_occupancy),
            slotCount: Int(s.slot_count), slotBytes: Int(s.slot_bytes), closed: s.closed != 0,
            mappedBytes: Int(s.mapped_bytes))
    }

    var fileDescriptor: Int32? {
        let fd = conveyor_ring_fd(pointer)
        return fd >= 0 ? fd : nil
    }

    /// Runs a blocking C call with a timeout (nil: no limit).
    static func nanoseconds(_ timeout: Duration?) -> Int64 {
        guard let timeout else { return -1 }
        let (seconds, attoseconds) = timeout.components
        if seconds < 0 { return 0 }
        let (ns, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? Int64.max : ns &+ attoseconds / 1_000_000_000
    }

    /// Waits in slices of at most 5 ms so that a cancelled task stops waiting promptly.
    /// `attempt` receives the slice's timeout in nanoseconds.
    static func waitCancellably(timeout: Duration?, _ attempt: (Int64) -> Int32) async throws(RingError) {
        let clock = ContinuousClock()
        let deadline = timeout.map { clock.now.advanced(by: $0) }
        while true {
            if Task.isCancelled { throw .cancelled }
            var slice: Int64 = 5_000_000
            if let deadline {
                let left = nanoseconds(clock.now.duration(to: deadline))
                slice = min(slice, max(left, 0))
            }
            let status = attempt(slice)
            if status == Int32(CONVEYOR_E_TIMEOUT.rawValue),
               deadline.map({ clock.now < $0 }) ?? true {
                await Task.yield()
                continue
            }
            try RingError.check(status)
            return
        }
    }
}
