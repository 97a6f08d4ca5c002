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

#if canImport(Glibc)
import Glibc
#endif

/// "conveyor: 412/1000 items, 1203.4 items/s" on stderr, rewritten in place twice a second,
/// only when stderr is a terminal and the run has lasted more than a second.
final class ProgressLine {
    private let total: Int
    private let start = nowNanoseconds()
    private var lastPrint: UInt64 = 0
    private var printed = false
    private let enabled = isatty(2) != 0

    init(total: Int) { self.total = total }

    func update(_ done: Int) {
        guard enabled else { return }
        let now = nowNanoseconds()
        guard now - start > 1_000_000_000, now - lastPrint > 500_000_000 else { return }
        lastPrint = now
        printed = true
        let rate = Double(done) / (Double(now - start) / 1e9)
        let line = "\rconveyor: \(done)/\(total) items, \((rate * 10).rounded() / 10) items/s   "
        write(line)
    }

    func finish() {
        if printed { write("\n") }
    }

    private func write(_ text: String) {
        var bytes = Array(text.utf8)
        _ = Glibc.write(2, &bytes, bytes.count)  // fd 2: no shared FILE* state
    }
}
