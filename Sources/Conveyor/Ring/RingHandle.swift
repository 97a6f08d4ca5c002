internal import CKernels

/// One side's C handle (`conveyor_ring *`). A class so that a lease can keep the mapping
/// alive after its ``Producer`` or ``Consumer`` is gone: the mapping is unmapped when the
/// last of them ends.
///
/// `@unchecked Sendable`: the handle is used by one thread at a time, which the ~Copyable
/// ``Producer``/``Consumer`` and their non-Sendable leases enforce; an async wait lends it
/// to a waiter thread while its task is suspended (``RingWait``), never concurrently.
final class RingHandle: @unchecked Sendable {
    let pointer: OpaquePointer
    /// Capacity of a slot, read once (geometry never changes).
    let slotBytes: Int

    init(_ pointer: OpaquePointer) {
        self.pointer = pointer
        var s = conveyor_ring_stats()
        ConveyorError.expect(conveyor_ring_get_stats(pointer, &s), from: "conveyor_ring_get_stats")
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
        ConveyorError.expect(conveyor_ring_get_stats(pointer, &s), from: "conveyor_ring_get_stats")
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

    /// A C timeout: nil (no limit) is -1, a duration its saturated nanoseconds
    /// (``Swift/Duration/saturatingNanoseconds``: negative is 0, try once).
    static func nanoseconds(_ timeout: Duration?) -> Int64 {
        timeout?.saturatingNanoseconds ?? -1
    }
}
