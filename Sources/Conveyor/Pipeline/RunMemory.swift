/// All the shared memory of one pipeline run, made before any worker starts and fixed
/// until the run ends: the slot pool of every producing node and the rings between nodes.
final class RunMemory: @unchecked Sendable {
    /// pools[n]: the slots node n writes into, nil for nodes that write none.
    let pools: [SlotPool?]
    let rings: PipelineRings

    init<Element>(nodes: [PipelineRunner<Element>.Node], plan: SlotPlan, buffer: Int) throws(PipelineError) {
        var pools: [SlotPool?] = []
        for node in nodes {
            guard node.producesSlots else { pools.append(nil); continue }
            let shape = node.outputShape
            let (count, overflow) = shape.rows.multipliedReportingOverflow(by: shape.cols)
            let (bytes, bytesOverflow) = count.multipliedReportingOverflow(by: node.dtype.size)
            guard !overflow, !bytesOverflow else { throw .invalidDefinition("stage '\(node.name)' outputs \(shape): too large") }
            pools.append(try SlotPool(replicas: node.replicas, buffer: buffer, slotBytes: bytes))
        }
        // An edge carries items of one pool: at most buffer per replica of its owner.
        let inFlight = (0..<(nodes.count - 1)).map { buffer * nodes[plan.owner[$0]].replicas }
        let returnEdges = plan.reader.map { reader in reader.map { (reader: $0, buffer: buffer) } }
        self.pools = pools
        self.rings = try PipelineRings(replicas: nodes.map(\.replicas), inFlight: inFlight, returnEdges: returnEdges)
    }

    /// Bytes of shared memory held: slots plus rings.
    var bytes: Int { pools.reduce(rings.bytes) { $0 + ($1?.bytes ?? 0) } }
}
