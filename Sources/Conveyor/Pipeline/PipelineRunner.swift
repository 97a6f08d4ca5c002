internal import CKernels

#if canImport(Glibc)
import Glibc
#endif

/// Runs one pipeline: builds the rings of every edge, starts a worker (thread or process)
/// per stage replica, runs the sink on the calling thread, and tears everything down
/// whatever happens.
///
/// Edges: between node n (m replicas) and node n+1 (q replicas) there is one ring per
/// (producer replica j, consumer replica k). Item i is handled by replica i % r of every
/// node, so it travels from replica i % m to replica i % q through ring [j][k]; each ring
/// has one producer and one consumer, and every worker knows which ring holds its next
/// item, which keeps items in order without any merge step.
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
    }

    let nodes: [Node]
    let items: Int
    let mode: ExecutionMode
    let buffer: Int

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
        guard buffer >= 1, buffer <= Int(CONVEYOR_RING_MAX_SLOTS) else {
            throw .invalidDefinition("buffer must be in 1...\(CONVEYOR_RING_MAX_SLOTS), got \(buffer)")
        }
        for node in nodes {
            guard node.replicas >= 1, node.replicas <= 64 else {
                throw .invalidDefinition("stage '\(node.name)' has \(node.replicas) replicas; use 1...64")
            }
            guard node.outputShape.rows >= 1, node.outputShape.cols >= 1 else {
                throw .invalidDefinition("stage '\(node.name)' outputs \(node.outputShape)")
            }
        }
        self.nodes = nodes
        self.items = pipeline.items
        self.mode = mode
        self.buffer = buffer
    }

    /// Runs to completion; `reduce` sees every item in order on the calling thread.
    func run(cancelled: () -> Bool, _ reduce: (Matrix<Element>) throws -> Void) throws(PipelineError) -> PipelineStats {
        let rings = try RingSet(nodes: nodes, buffer: buffer, elementSize: MemoryLayout<Element>.stride)
        var workers: [(node: Int, replica: Int)] = []
        for n in 0..<(nodes.count - 1) { for k in 0..<nodes[n].replicas { workers.append((n, k)) } }
        let control = try ControlBlock(workers: workers.count)

        let start = nowNanoseconds()
        var threads: [pthread_t] = []
        var children: [Child] = []
        for (w, worker) in workers.enumerated() {
            switch mode {
            case .threads:
                guard let thread = startThread({ _ = self.work(worker.node, worker.replica, w, rings, control) }) else {
                    control.abort()
                    break
                }
                threads.append(thread)
            case .processes:
                fflush(nil)
                let pid = fork()
                if pid == 0 {
                    rings.claim(node: worker.node, replica: worker.replica, nodes: nodes)
                    _exit(work(worker.node, worker.replica, w, rings, control))
                }
                if pid < 0 { control.abort() } else { children.append(Child(pid: pid, worker: w, node: worker.node)) }
            }
        }

        var crash: PipelineError?
        var sinkError: PipelineError?
        var sinkStats = (items: 0, busy: UInt64(0), inputWait: UInt64(0))
        let progress = ProgressLine(total: items)
        sinkLoop: for item in 0..<items {
            if cancelled() { sinkError = .cancelled; control.abort(); break sinkLoop }
            let ring = rings.consumer(edge: nodes.count - 2, from: item % nodes[nodes.count - 2].replicas, to: 0)
            var data: UnsafeRawPointer?
            var info = conveyor_frame_info()
            let t0 = nowNanoseconds()
            while true {
                let status = conveyor_ring_receive(ring, 20_000_000, &data, &info)
                if status == 0 { break }
                if status == Int32(CONVEYOR_E_TIMEOUT.rawValue) {
                    if cancelled() { sinkError = .cancelled; control.abort(); break sinkLoop }
                    if let failure = reap(&children, control, blocking: false) { crash = failure; control.abort() }
                    if control.aborted { break sinkLoop }
                    progress.update(item)
                    continue
                }
                control.abort()  // end of stream or dead peer before the last item: upstream failed
                break sinkLoop
            }
            let t1 = nowNanoseconds()
            let shape = nodes[nodes.count - 1].outputShape
            do {
                try SlotMatrix.withMatrix(slot: UnsafeMutablePointer(mutating: data!.assumingMemoryBound(to: Element.self)),
                                          rows: shape.rows, cols: shape.cols, lender: rings, writeBack: false) {
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
        return statistics(workers: workers, control: control, sink: sinkStats, seconds: seconds, rings: rings)
    }

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
    private func work(_ n: Int, _ k: Int, _ w: Int, _ rings: RingSet, _ control: ControlBlock) -> Int32 {
        // One core per stage worker: parallelism comes from the pipeline and its replicas,
        // and a kernel's own threads would only compete with the other stages.
        _ = conveyor_set_threads_local(1)
        let node = nodes[n], next = nodes[n + 1]
        let inShape = n > 0 ? nodes[n - 1].outputShape : node.outputShape
        let outShape = node.outputShape
        var item = k
        defer { for q in 0..<next.replicas { _ = conveyor_ring_close(rings.producer(edge: n, from: k, to: q)) } }
        while item < items {
            control.setCurrentItem(worker: w, item)
            var input: OpaquePointer?
            var inData: UnsafeRawPointer?
            var info = conveyor_frame_info()
            let t0 = nowNanoseconds()
            if n > 0 {
                input = rings.consumer(edge: n - 1, from: item % nodes[n - 1].replicas, to: k)
                guard wait(control, { conveyor_ring_receive(input, 20_000_000, &inData, &info) }) else { return 0 }
            }
            let t1 = nowNanoseconds()
            let output = rings.producer(edge: n, from: k, to: item % next.replicas)
            var outData: UnsafeMutableRawPointer?
            guard wait(control, { conveyor_ring_loan(output, 20_000_000, &outData, nil) }) else { return 0 }
            let t2 = nowNanoseconds()
            let out = outData!.assumingMemoryBound(to: Element.self)
            do {
                switch node.role {
                case let .source(body):
                    try SlotMatrix.withMatrix(slot: out, rows: outShape.rows, cols: outShape.cols, lender: rings,
                                              writeBack: true) { (m: inout Matrix<Element>) in try body(item, &m) }
                case let .stage(.kernel(ops)):
                    KernelCalls.program(out, inData!.assumingMemoryBound(to: Element.self), outShape.rows * outShape.cols, ops)
                case let .stage(.closure(body)):
                    let inSlot = UnsafeMutablePointer(mutating: inData!.assumingMemoryBound(to: Element.self))
                    try SlotMatrix.withMatrix(slot: inSlot, rows: inShape.rows, cols: inShape.cols, lender: rings,
                                              writeBack: false) { (input: inout Matrix<Element>) in
                        let view = input
                        try SlotMatrix.withMatrix(slot: out, rows: outShape.rows, cols: outShape.cols, lender: rings,
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
            var outInfo = conveyor_frame_info()
            outInfo.dtype = Element.dtype == .float64 ? UInt32(CONVEYOR_DTYPE_F64.rawValue) : UInt32(CONVEYOR_DTYPE_F32.rawValue)
            outInfo.rank = 2
            outInfo.shape.0 = UInt64(outShape.rows)
            outInfo.shape.1 = UInt64(outShape.cols)
            outInfo.byte_length = UInt64(outShape.rows * outShape.cols * MemoryLayout<Element>.stride)
            outInfo.tag = UInt64(item)
            guard conveyor_ring_commit(output, &outInfo) == 0 else { control.abort(); return 0 }
            if let input { _ = conveyor_ring_release(input) }
            control.add(worker: w, items: 1, busy: t3 - t2, inputWait: t1 - t0, outputWait: t2 - t1)
            item += node.replicas
        }
        return 0
    }

    /// Repeats a ring call in short slices until it succeeds (true), or stops (false) on
    /// an abort, an end of stream or a dead peer (whose cause is reported elsewhere).
    private func wait(_ control: ControlBlock, _ attempt: () -> Int32) -> Bool {
        while true {
            let status = attempt()
            if status == 0 { return true }
            if status != Int32(CONVEYOR_E_TIMEOUT.rawValue) || control.aborted {
                control.abort()
                return false
            }
        }
    }

    private func statistics(workers: [(node: Int, replica: Int)], control: ControlBlock,
                            sink: (items: Int, busy: UInt64, inputWait: UInt64), seconds: Double,
                            rings: RingSet) -> PipelineStats {
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
        return PipelineStats(stages: rows, seconds: seconds, sharedMemoryBytes: rings.bytes, mode: mode)
    }
}
