internal import CKernels

/// Every ring of a pipeline run, created before any worker starts (so forked stage
/// processes inherit them) and destroyed when the run's last reference goes.
final class RingSet: @unchecked Sendable {
    /// edges[n][j][k]: (producer, consumer) from replica j of node n to replica k of n + 1.
    private var edges: [[[(producer: OpaquePointer, consumer: OpaquePointer)]]] = []
    /// Shared memory held by the rings.
    private(set) var bytes = 0

    init<Element>(nodes: [PipelineRunner<Element>.Node], buffer: Int, elementSize: Int) throws(PipelineError) {
        for n in 0..<(nodes.count - 1) {
            let slotBytes = nodes[n].outputShape.rows * nodes[n].outputShape.cols * elementSize
            var config = conveyor_ring_config()
            config.slot_count = UInt32(buffer)
            config.slot_bytes = UInt64(slotBytes)
            config.spin = UInt32(RingConfiguration.defaultSpin)
            var fromReplicas: [[(producer: OpaquePointer, consumer: OpaquePointer)]] = []
            for _ in 0..<nodes[n].replicas {
                var toReplicas: [(producer: OpaquePointer, consumer: OpaquePointer)] = []
                for _ in 0..<nodes[n + 1].replicas {
                    var p: OpaquePointer?, c: OpaquePointer?
                    let status = conveyor_ring_create(&config, &p, &c)
                    guard status == 0 else {
                        edges.append(fromReplicas + [toReplicas])
                        throw .setupFailed("ring for \(nodes[n].name) -> \(nodes[n + 1].name): "
                                           + String(cString: conveyor_status_message(status)))
                    }
                    toReplicas.append((p!, c!))
                    let page = 4096
                    bytes += 4096 + (buffer * 64 + page - 1) / page * page + buffer * ((slotBytes + page - 1) / page * page)
                }
                fromReplicas.append(toReplicas)
            }
            edges.append(fromReplicas)
        }
    }

    deinit {
        for edge in edges { for row in edge { for ring in row {
            conveyor_ring_destroy(ring.producer)
            conveyor_ring_destroy(ring.consumer)
        } } }
    }

    func producer(edge: Int, from: Int, to: Int) -> OpaquePointer { edges[edge][from][to].producer }
    func consumer(edge: Int, from: Int, to: Int) -> OpaquePointer { edges[edge][from][to].consumer }

    /// In a forked stage process: claims the ends replica `replica` of node `node` uses,
    /// so that its peers notice at once if this process dies.
    func claim<Element>(node: Int, replica: Int, nodes: [PipelineRunner<Element>.Node]) {
        if node > 0 {
            for j in 0..<nodes[node - 1].replicas { _ = conveyor_ring_claim(consumer(edge: node - 1, from: j, to: replica)) }
        }
        for q in 0..<nodes[node + 1].replicas { _ = conveyor_ring_claim(producer(edge: node, from: replica, to: q)) }
    }
}
