internal import CKernels

#if canImport(Glibc)
import Glibc
#endif

/// Runs one pipeline: lays out the slots and rings (``RunMemory``), starts a worker
/// (thread or process) per stage replica, runs the sink on the calling thread, and tears
/// everything down whatever happens.
///
/// Data path (see ``SlotPlan``): the source and closure stages write each item into a slot
/// of their own pool; kernel stages transform it in that slot and hand it on; the next
/// closure stage or the sink reads it in place and hands the slot back. Rings carry only
/// item numbers, forward and back (see ``PipelineRings``). Item i is handled by replica
/// i % r of every node, which keeps items in order without any merge step.
struct PipelineRunner<Element: MatrixElement> {
    enum Role {
        case source(@Sendable (Int, inout Matrix<Element>) throws -> Void)
        case stage(Stage<Element>.Work)
        case sink
    }

    struct Node {
        var name: String
        var replicas: Int
        var role: Role
        var outputShape: Shape

        /// Writes new items into slots of its own (the source, closure stages).
        var producesSlots: Bool {
            switch role {
            case .source, .stage(.closure): return true
            case .stage(.kernel), .sink: return false
            }
        }

        /// Reads its input slot and hands it back to its owner (closure stages, the sink).
        var readsSlots: Bool {
            switch role {
            case .stage(.closure), .sink: return true
            case .source, .stage(.kernel): return false
            }
        }
    }

    let nodes: [Node]
    let items: Int
    let mode: ExecutionMode
    let buffer: Int
    let plan: SlotPlan

    init(pipeline: Pipeline<Element>, mode: ExecutionMode, buffer: Int, fusion: Bool) throws(PipelineError) {
        let stages = fusion ? fuse(pipeline.stages) : pipeline.stages
        var nodes = [Node(name: pipeline.source.name, replicas: pipeline.source.replicas,
                          role: .source(pipeline.sourceBody), outputShape: pipeline.shape)]
        for stage in stages {
            nodes.append(Node(name: stage.name, replicas: stage.replicas, role: .stage(stage.work),
                              outputShape: stage.outputShape ?? nodes.last!.outputShape))
        }
        nodes.append(Node(name: "sink", replicas: 1, role: .sink, outputShape: nodes.last!.outputShape))
        guard pipeline.items >= 0 else { throw .invalidDefinition("items must be >= 0, got \(pipeline.items)") }
        for node in nodes {
            guard node.replicas >= 1, node.replicas <= 64 else {
                throw .invalidDefinition("stage '\(node.name)' has \(node.replicas) replicas; use 1...64")
            }
            guard node.outputShape.rows >= 1, node.outputShape.cols >= 1 else {
                throw .invalidDefinition("stage '\(node.name)' outputs \(node.outputShape)")
            }
        }
        // Every item a replica has in flight must fit one forward ring.
        let maxReplicas = nodes.map(\.replicas).max()!
        guard buffer >= 1, buffer * maxReplicas <= Int(CONVEYOR_RING_MAX_SLOTS) else {
            throw .invalidDefinition("buffer must be in 1...\(Int(CONVEYOR_RING_MAX_SLOTS) / maxReplicas), got \(buffer)")
        }
        self.plan = SlotPlan(producesSlots: nodes.map(\.producesSlots))
        self.nodes = nodes
        self.items = pipeline.items
        self.mode = mode
        self.buffer = buffer
    }

    /// Runs to completion; `reduce` sees every item in order on the calling thread.
    func run(cancelled: () -> Bool, _ reduce: (Matrix<Element>) throws -> Void) throws(PipelineError) -> PipelineStats {
        let memory = try RunMemory(nodes: nodes, plan: plan, buffer: buffer)
        var workers: [(node: Int, replica: Int)] = []
        for n in 0..<(nodes.count - 1) { for k in 0..<nodes[n].replicas { workers.append((n, k)) } }
        let control = try ControlBlock(workers: workers.count)

        let start = nowNanoseconds()
        var threads: [pthread_t] = []
        var children: [Child] = []
        for (w, worker) in workers.enumerated() {
            switch mode {
            case .threads:
                guard let thread = startThread({ _ = self.work(worker.node, worker.replica, w, memory, control) }) else {
                    control.abort()
                    break
                }
                threads.append(thread)
            case .processes:
                fflush(nil)
                let pid = fork()
                if pid == 0 {
                    claim(node: worker.node, replica: worker.replica, memory.rings)
                    _exit(work(worker.node, worker.replica, w, memory, control))
                }
                if pid < 0 { control.abort() } else { children.append(Child(pid: pid, worker: w, node: worker.node)) }
            }
        }

        var crash: PipelineError?
        var sinkError: PipelineError?
        var sinkStats = (items: 0, busy: UInt64(0), inputWait: UInt64(0))
        let progress = ProgressLine(total: items)
        let sink = nodes.count - 1, last = sink - 1, owner = plan.owner[last]
        let pool = memory.pools[owner]!
        let shape = nodes[last].outputShape
        sinkLoop: for item in 0..<items {
            let ring = memory.rings.forwardConsumer(last, from: item % nodes[last].replicas, to: 0)
            let t0 = nowNanoseconds()
            var received = -1
            while true {
                if cancelled() { sinkError = .cancelled; control.abort(); break sinkLoop }
                let status = PipelineRings.receive(ring, timeout: Self.slice, into: &received)
                if status == 0 { break }
                if status == Int32(CONVEYOR_E_TIMEOUT.rawValue) {
                    if let failure = reap(&children, control, blocking: false) { crash = failure; control.abort() }
                    if control.aborted { break sinkLoop }
                    progress.update(item)
                    continue
                }
                control.abort()  // end of stream or dead peer before the last item: upstream failed
                break sinkLoop
            }
            let t1 = nowNanoseconds()
            guard received == item else {
                sinkError = .setupFailed("the sink expected item \(item) and received \(received)")
                control.abort()
                break sinkLoop
            }
            do {
                try SlotMatrix.withMatrix(slot: pool.slot(of: item).assumingMemoryBound(to: Element.self),
                                          rows: shape.rows, cols: shape.cols, lender: memory, writeBack: false) {
                    (matrix: inout Matrix<Element>) in
                    let view = matrix
                    try reduce(view)
                }
            } catch {
                sinkError = .sinkFailed(item: item, message: "\(error)")
                _ = conveyor_ring_release(ring)
                control.abort()
                break sinkLoop
            }
            _ = conveyor_ring_release(ring)
            let back = memory.rings.returnProducer(owner, from: 0, to: item % nodes[owner].replicas)
            guard PipelineRings.send(back, item, timeout: Self.slice) == 0 else { control.abort(); break sinkLoop }
            sinkStats.items += 1
            sinkStats.busy += nowNanoseconds() - t1
            sinkStats.inputWait += t1 - t0
            progress.update(item + 1)
        }
        progress.finish()

        // Teardown: on any failure every worker sees the abort flag within a wait slice.
        if sinkStats.items < items { control.abort() }
        for thread in threads { pthread_join(thread, nil) }
        if let failure = reap(&children, control, blocking: true), crash == nil { crash = failure }
        let seconds = Double(nowNanoseconds() - start) / 1e9

        if let sinkError { throw sinkError }
        if let failure = control.failure {
            throw .stageFailed(stage: nodes[workers[failure.worker].node].name, item: failure.item, message: failure.message)
        }
        if let crash { throw crash }
        if sinkStats.items < items {
            throw .setupFailed("the sink received \(sinkStats.items) of \(items) items")
        }
        return statistics(workers: workers, control: control, sink: sinkStats, seconds: seconds, memory: memory)
    }

    /// How long one wait lasts before the waiter checks for an abort, a crash or a
    /// cancellation: the bound on how late a stop is noticed.
    static var slice: Int64 { 20_000_000 }

    /// Reaps stage processes that ended; returns the first abnormal ending as an error.
    /// With `blocking`, waits for all of them, killing any still alive after 2 s.
    /// A stage process: its pid, its worker index in the control block, and its node.
    private struct Child {
        var pid: pid_t
        var worker: Int
        var node: Int
    }

    private func reap(_ children: inout [Child], _ control: ControlBlock,
                      blocking: Bool) -> PipelineError? {
        var failure: PipelineError?
        let deadline = nowNanoseconds() + 2_000_000_000
        while !children.isEmpty {
            var remaining: [Child] = []
            for child in children {
                var status: Int32 = 0
                let done = waitpid(child.pid, &status, WNOHANG)
                if done == 0 { remaining.append(child); continue }
                let workerName = nodes[child.node].name
                let signal = status & 0x7f, code = (status >> 8) & 0xff
                if signal != 0, failure == nil {
                    failure = .stageCrashed(stage: workerName, item: control.currentItem(worker: child.worker), signal: signal)
                } else if code != 0, code != Self.failedStatus, failure == nil, control.failure == nil {
                    failure = .stageExited(stage: workerName, status: code)
                }
            }
            children = remaining
            if !blocking || children.isEmpty { break }
            if nowNanoseconds() > deadline { children.forEach { kill($0.pid, SIGKILL) } }
            usleep(1_000)
        }
        return failure
    }

    /// Exit status of a stage process whose failure is recorded in the control block.
    static var failedStatus: Int32 { 3 }

    /// One worker: replica `k` of node `n`, handling items k, k + r, k + 2r... Returns its
    /// exit status: 0 done (or stopped by an abort), `failedStatus` failed (recorded in
    /// `control`).
    private func work(_ n: Int, _ k: Int, _ w: Int, _ memory: RunMemory, _ control: ControlBlock) -> Int32 {
        // One core per stage worker: parallelism comes from the pipeline and its replicas,
        // and a kernel's own threads would only compete with the other stages.
        _ = conveyor_set_threads_local(1)
        let node = nodes[n], next = nodes[n + 1], rings = memory.rings
        let inOwner = n > 0 ? plan.owner[n - 1] : n
        let outPool = memory.pools[plan.owner[n]]!, inPool = memory.pools[inOwner]!
        let returnsSlots = node.readsSlots
        defer {
            for q in 0..<next.replicas { _ = conveyor_ring_close(rings.forwardProducer(n, from: k, to: q)) }
            if returnsSlots {
                for j in 0..<nodes[inOwner].replicas { _ = conveyor_ring_close(rings.returnProducer(inOwner, from: k, to: j)) }
            }
        }
        var item = k
        while item < items {
            control.setCurrentItem(worker: w, item)
            let t0 = nowNanoseconds()
            var input: OpaquePointer?
            if n > 0 {
                input = rings.forwardConsumer(n - 1, from: item % nodes[n - 1].replicas, to: k)
                guard expect(item, from: input!, control, w) else { return Self.exitStatus(control, w) }
            }
            let t1 = nowNanoseconds()
            if node.producesSlots, outPool.ordinal(of: item) >= buffer {
                // Reuse the slot of this replica's item `buffer` places back, once it is returned.
                let earlier = item - node.replicas * buffer
                let back = rings.returnConsumer(n, from: earlier % nodes[plan.reader[n]!].replicas, to: k)
                guard expect(earlier, from: back, control, w) else { return Self.exitStatus(control, w) }
                _ = conveyor_ring_release(back)
            }
            let t2 = nowNanoseconds()
            let out = outPool.slot(of: item).assumingMemoryBound(to: Element.self)
            let outShape = node.outputShape
            do {
                switch node.role {
                case let .source(body):
                    try SlotMatrix.withMatrix(slot: out, rows: outShape.rows, cols: outShape.cols, lender: memory,
                                              writeBack: true) { (m: inout Matrix<Element>) in try body(item, &m) }
                case let .stage(.kernel(ops)):
                    KernelCalls.program(out, out, outShape.rows * outShape.cols, ops)  // in place, slot handed on
                case let .stage(.closure(body)):
                    let inShape = nodes[n - 1].outputShape
                    try SlotMatrix.withMatrix(slot: inPool.slot(of: item).assumingMemoryBound(to: Element.self),
                                              rows: inShape.rows, cols: inShape.cols, lender: memory,
                                              writeBack: false) { (input: inout Matrix<Element>) in
                        let view = input
                        try SlotMatrix.withMatrix(slot: out, rows: outShape.rows, cols: outShape.cols, lender: memory,
                                                  writeBack: true) { (m: inout Matrix<Element>) in try body(view, &m) }
                    }
                case .sink:
                    break
                }
            } catch {
                control.fail(worker: w, item: item, message: "\(error)")
                return Self.failedStatus
            }
            let t3 = nowNanoseconds()
            let onward = rings.forwardProducer(n, from: k, to: item % next.replicas)
            guard PipelineRings.send(onward, item, timeout: Self.slice) == 0 else { control.abort(); return 0 }
            if returnsSlots {
                let back = rings.returnProducer(inOwner, from: k, to: item % nodes[inOwner].replicas)
                guard PipelineRings.send(back, item, timeout: Self.slice) == 0 else { control.abort(); return 0 }
            }
            if let input { _ = conveyor_ring_release(input) }
            control.add(worker: w, items: 1, busy: t3 - t2, inputWait: t1 - t0, outputWait: t2 - t1)
            item += node.replicas
        }
        return 0
    }

    /// Waits in slices for the next frame on `ring` and checks it carries `item`; false
    /// after an abort, an end of stream, a dead peer or a wrong item (recorded as a failure).
    /// On success the frame is held: the caller releases it.
    private func expect(_ item: Int, from ring: OpaquePointer, _ control: ControlBlock, _ w: Int) -> Bool {
        var received = -1
        while true {
            let status = PipelineRings.receive(ring, timeout: Self.slice, into: &received)
            if status == 0 { break }
            if status != Int32(CONVEYOR_E_TIMEOUT.rawValue) || control.aborted {
                control.abort()
                return false
            }
        }
        guard received == item else {
            _ = conveyor_ring_release(ring)
            control.fail(worker: w, item: item, message: "protocol error: expected item \(item), received \(received)")
            return false
        }
        return true
    }

    /// 0 when a worker stopped because of someone else's failure, `failedStatus` when its own
    /// failure is recorded.
    private static func exitStatus(_ control: ControlBlock, _ w: Int) -> Int32 {
        control.failure?.worker == w ? failedStatus : 0
    }

    /// In a forked stage process: claims the ring ends replica `k` of node `n` uses, so that
    /// its peers notice at once if this process dies.
    private func claim(node n: Int, replica k: Int, _ rings: PipelineRings) {
        if n > 0 {
            for j in 0..<nodes[n - 1].replicas { _ = conveyor_ring_claim(rings.forwardConsumer(n - 1, from: j, to: k)) }
        }
        for q in 0..<nodes[n + 1].replicas { _ = conveyor_ring_claim(rings.forwardProducer(n, from: k, to: q)) }
        if nodes[n].producesSlots, let reader = plan.reader[n] {
            for r in 0..<nodes[reader].replicas { _ = conveyor_ring_claim(rings.returnConsumer(n, from: r, to: k)) }
        }
        if nodes[n].readsSlots {
            let owner = plan.owner[n - 1]
            for j in 0..<nodes[owner].replicas { _ = conveyor_ring_claim(rings.returnProducer(owner, from: k, to: j)) }
        }
    }

    private func statistics(workers: [(node: Int, replica: Int)], control: ControlBlock,
                            sink: (items: Int, busy: UInt64, inputWait: UInt64), seconds: Double,
                            memory: RunMemory) -> PipelineStats {
        var rows: [PipelineStats.StageStats] = []
        for (n, node) in nodes.enumerated() {
            var items = 0, busy: UInt64 = 0, inWait: UInt64 = 0, outWait: UInt64 = 0
            if n == nodes.count - 1 {
                (items, busy, inWait) = (sink.items, sink.busy, sink.inputWait)
            } else {
                for (w, worker) in workers.enumerated() where worker.node == n {
                    let c = control.counters(worker: w)
                    items += Int(c.items); busy += c.busy; inWait += c.inputWait; outWait += c.outputWait
                }
            }
            let wall = max(seconds, 1e-9)
            rows.append(.init(name: node.name, replicas: node.replicas, items: items, busySeconds: Double(busy) / 1e9,
                              inputWaitSeconds: Double(inWait) / 1e9, outputWaitSeconds: Double(outWait) / 1e9,
                              itemsPerSecond: Double(items) / wall,
                              utilization: Double(busy) / 1e9 / wall / Double(node.replicas)))
        }
        return PipelineStats(stages: rows, seconds: seconds, sharedMemoryBytes: memory.bytes, mode: mode)
    }
}
