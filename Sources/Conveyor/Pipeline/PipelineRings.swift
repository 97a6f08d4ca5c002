internal import CKernels

/// The rings of a pipeline run, created before any worker starts (so forked stage
/// processes inherit them) and destroyed when the run's last reference goes. They carry
/// item and slot numbers, never matrices: the matrices stay in their ``SlotPool`` slots.
///
/// - `forward[n][j][k]`: from replica j of node n to replica k of node n + 1. Item i is
///   handled by replica i % r of every node, so every worker knows which ring holds its
///   next item, and items stay in order with no merge step. (An order-free sink reads
///   whichever of its rings has a frame; each ring is still in order.)
/// - `returns[h][k][j]`: from replica k of the node that reads producer h's slots (the next
///   closure stage or the sink) back to replica j of h: "item i is done, its slot is free".
///
/// Capacities: at most `buffer` items per producer replica are in flight, so a forward ring
/// sized for all of them (and a return ring for `buffer`) never fills: the only waits are
/// for an item and for a free slot.
final class PipelineRings: @unchecked Sendable {
    typealias Pair = (producer: OpaquePointer, consumer: OpaquePointer)
    private var forward: [[[Pair]]] = []
    private var returns: [[[Pair]]] = []
    /// Shared memory held by the rings (headers, descriptors, 8-byte frames in pages).
    private(set) var bytes = 0

    /// - Parameters:
    ///   - replicas: workers per node, source first, sink last.
    ///   - inFlight: for each edge n → n + 1, the most items that can be on it at once.
    ///   - returnEdges: for each producer node h, nil or (reader node, buffer).
    init(replicas: [Int], inFlight: [Int], returnEdges: [(reader: Int, buffer: Int)?]) throws(PipelineError) {
        for n in 0..<(replicas.count - 1) {
            forward.append(try mesh(replicas[n], replicas[n + 1], slots: inFlight[n], "forward ring from node \(n)"))
        }
        for (h, edge) in returnEdges.enumerated() {
            guard let edge else { returns.append([]); continue }
            returns.append(try mesh(replicas[edge.reader], replicas[h], slots: edge.buffer, "return ring to node \(h)"))
        }
    }

    private func mesh(_ from: Int, _ to: Int, slots: Int, _ what: String) throws(PipelineError) -> [[Pair]] {
        var config = conveyor_ring_config()
        config.slot_count = UInt32(slots)
        config.slot_bytes = UInt64(MemoryLayout<UInt64>.size)
        config.spin = UInt32(RingConfiguration.defaultSpin)
        var rows: [[Pair]] = []
        for _ in 0..<from {
            var row: [Pair] = []
            for _ in 0..<to {
                var p: OpaquePointer?, c: OpaquePointer?
                let status = conveyor_ring_create(&config, &p, &c)
                guard status == 0 else {
                    forward.append(rows + [row])  // whichever mesh failed: deinit destroys every ring listed
                    throw .setupFailed("\(what): " + String(cString: conveyor_status_message(status)))
                }
                row.append((p!, c!))
                var stats = conveyor_ring_stats()
                _ = conveyor_ring_get_stats(p, &stats)
                bytes += Int(stats.mapped_bytes)
            }
            rows.append(row)
        }
        return rows
    }

    deinit {
        for mesh in forward + returns { for row in mesh { for ring in row {
            conveyor_ring_destroy(ring.producer)
            conveyor_ring_destroy(ring.consumer)
        } } }
    }

    func forwardProducer(_ n: Int, from j: Int, to k: Int) -> OpaquePointer { forward[n][j][k].producer }
    func forwardConsumer(_ n: Int, from j: Int, to k: Int) -> OpaquePointer { forward[n][j][k].consumer }
    func returnProducer(_ h: Int, from k: Int, to j: Int) -> OpaquePointer { returns[h][k][j].producer }
    func returnConsumer(_ h: Int, from k: Int, to j: Int) -> OpaquePointer { returns[h][k][j].consumer }

    /// What a frame says: item `item` sits in slot `slot` of its owner's ``SlotPool``.
    struct Frame: Equatable {
        var item: Int
        var slot: Int
    }

    /// Sends a frame: the item number as the frame's tag, the slot index as its 8 bytes.
    static func send(_ ring: OpaquePointer, _ frame: Frame, timeout: Int64) -> Int32 {
        var info = conveyor_frame_info()
        info.dtype = UInt32(CONVEYOR_DTYPE_BYTES.rawValue)
        info.rank = 1
        info.shape.0 = 8
        info.byte_length = 8
        info.tag = UInt64(frame.item)
        var value = UInt64(frame.slot)
        return conveyor_ring_push(ring, timeout, &value, &info)
    }

    /// Receives a frame into `frame` (item -1 if it is not one of ours); the caller
    /// releases it.
    static func receive(_ ring: OpaquePointer, timeout: Int64, into frame: inout Frame) -> Int32 {
        var data: UnsafeRawPointer?
        var info = conveyor_frame_info()
        let status = conveyor_ring_receive(ring, timeout, &data, &info)
        if status == 0 {
            let slot = data!.loadUnaligned(as: UInt64.self)
            let valid = info.byte_length == 8 && info.tag <= UInt64(Int.max) && slot <= UInt64(Int.max)
            frame = valid ? Frame(item: Int(info.tag), slot: Int(slot)) : Frame(item: -1, slot: -1)
        }
        return status
    }
}
