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
/// (item, slot) frames, forward and back (see ``PipelineRings``). Item i is handled by
/// replica i % r of every node, which keeps items in order without any merge step; an
/// order-free run lets the sink take items from whichever replica has one, and their
/// owners reuse whichever slot comes back first.
///
/// Why no wait can be lost or deadlock: every forward ring holds all the items its
/// producer can have in flight and every return ring all the slots it can hand back, so a
/// send never blocks. A worker waits only for its next input (an earlier item, which its
/// upstream replica will send) or for one of its own slots (which comes back once a
/// downstream reader has taken an earlier item). Slot waits point downstream and end at the
/// sink, which waits for nothing but items, so by induction from the sink every wait ends.
struct PipelineRunner<Element: MatrixElement>: Sendable {
    enum Role: Sendable {
        case source(SourceBody)
        case kernel(KernelProgram)
        case closure(ClosureBody)
        case sink
    }

    struct Node: Sendable {
        var name: String
        var replicas: Int
        var role: Role
        var outputShape: Shape
        var dtype: DType

        /// Writes new items into slots of its own (the source, closure stages).
        var producesSlots: Bool {
            switch role {
            case .source, .closure: return true
            case .kernel, .sink: return false
            }
        }

        /// Reads its input slot and hands it back to its owner (closure stages, the sink).
        var readsSlots: Bool {
            switch role {
            case .closure, .sink: return true
            case .source, .kernel: return false
            }
        }
    }

    let nodes: [Node]
    let items: Int
    let mode: ExecutionMode
    let buffer: Int
    let ordered: Bool
    /// Nanoseconds a worker may compute on one item before the run stops it; nil: no limit.
    let stallTimeout: UInt64?
    let plan: SlotPlan

    init(pipeline: Pipeline<Element>, mode: ExecutionMode, buffer: Int, fusion: Bool, ordered: Bool,
         stallTimeout: Duration?) throws(PipelineError) {
        var nodes: [Node] = []
        for stage in [pipeline.source] + (fusion ? fuse(pipeline.stages) : pipeline.stages) {
            let role: Role = switch stage.work {
            case let .source(body): .source(body)
            case let .kernel(program): .kernel(program)
            case let .closure(body): .closure(body)
            }
            nodes.append(Node(name: stage.name, replicas: stage.replicas, role: role,
                              outputShape: stage.outputShape, dtype: stage.outputDType))
        }
        let last = nodes.last!
        nodes.append(Node(name: "sink", replicas: 1, role: .sink, outputShape: last.outputShape, dtype: last.dtype))
        guard pipeline.items >= 0 else { throw .invalidDefinition("items must be >= 0, got \(pipeline.items)") }
        for node in nodes {
            guard node.replicas >= 1, node.replicas <= 64 else {
                throw .invalidDefinition("stage '\(node.name)' has \(node.replicas) replicas; use 1...64")
            }
            guard node.outputShape.rows >= 1, node.outputShape.cols >= 1 else {
                throw .invalidDefinition("stage '\(node.name)' outputs \(node.outputShape)")
            }
            if case let .kernel(program) = node.role, let problem = program.problem(node.outputShape) {
                throw .invalidDefinition("stage '\(node.name)': \(problem)")
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
        self.ordered = ordered
        if let stallTimeout {
            guard stallTimeout > .zero else { throw .invalidDefinition("stallTimeout must be positive, got \(stallTimeout)") }
            let (seconds, attoseconds) = stallTimeout.components
            self.stallTimeout = UInt64(min(seconds, 1 << 32)) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000)
        } else {
            self.stallTimeout = nil
        }
    }

    /// Runs to completion; `reduce` sees every item on the calling thread, in index order
    /// unless the run is order-free.
    func run(cancelled: () -> Bool, monitor: PipelineMonitor?,
             _ reduce: (Matrix<Element>) throws -> Void) throws(PipelineError) -> PipelineStats {
        let memory = try RunMemory(nodes: nodes, plan: plan, buffer: buffer)
        var workers: [(node: Int, replica: Int)] = []
        for n in 0..<(nodes.count - 1) { for k in 0..<nodes[n].replicas { workers.append((n, k)) } }
        let sinkWorker = workers.count  // the sink's counters follow the workers'
        let control = try ControlBlock(workers: workers.count + 1)

        let start = nowNanoseconds()
        let memoryBytes = memory.bytes
        monitor?.attach { [self, workers] in
            statistics(workers: workers, control: control, seconds: Double(nowNanoseconds() - start) / 1e9,
                       memoryBytes: memoryBytes)
        }
        var threads: [(worker: Int, thread: pthread_t)] = []
        var children: [Child] = []
        var startFailure: PipelineError?  // a thread or process that could not be started
        startLoop: for (w, worker) in workers.enumerated() {
            switch mode {
            case .threads:
                guard let thread = startThread({ _ = self.work(worker.node, worker.replica, w, memory, control) }) else {
                    startFailure = .setupFailed("could not start a thread for stage '\(nodes[worker.node].name)'")
                    control.abort()
                    break startLoop
                }
                threads.append((w, thread))
            case .processes:
                switch Posix.fork() {
                case .success(0):
                    claim(node: worker.node, replica: worker.replica, memory.rings)
                    _exit(work(worker.node, worker.replica, w, memory, control))
                case let .success(pid):
                    children.append(Child(pid: pid, worker: w, node: worker.node))
                    monitor?.recordStageProcess(pid)
                case let .failure(error):
                    startFailure = .setupFailed("could not start a process for stage '\(nodes[worker.node].name)': \(error)")
                    control.abort()
                    break startLoop
                }
            }
        }

        var crash: PipelineError?
        var sinkError: PipelineError?  // the sink's own failure, a cancellation or a stall
        var done = 0
        let progress = ProgressLine(total: items)
        let sink = nodes.count - 1, last = sink - 1, owner = plan.owner[last]
        let pool = memory.pools[owner]!
        let shape = nodes[last].outputShape
        // Next item expected on the ring from each replica of the last stage: every ring
        // delivers its replica's items in order, whether or not the merge is.
        var expected = Array(0..<nodes[last].replicas)
        sinkLoop: while done < items {
            if cancelled() { sinkError = .cancelled; control.abort(); break sinkLoop }
            let t0 = nowNanoseconds()
            let next = nextForSink(&expected, memory.rings, pool, control, w: sinkWorker) {
                if cancelled() { sinkError = .cancelled; return false }
                if let failure = reap(&children, control, blocking: false) { crash = failure; return false }
                if let (w, seconds) = stalledWorker(workers.count, control) {
                    sinkError = .stageStalled(stage: nodes[workers[w].node].name, item: control.currentItem(worker: w),
                                              seconds: seconds)
                    // Stop it: a process is killed (and reaped below); a thread cannot be,
                    // so it is detached and finishes on its own, holding the run's memory.
                    if let child = children.first(where: { $0.worker == w }) { Posix.kill(child.pid, SIGKILL) }
                    if let i = threads.firstIndex(where: { $0.worker == w }) {
                        pthread_detach(threads[i].thread)
                        threads.remove(at: i)
                    }
                    return false
                }
                progress.update(done)
                return !control.aborted
            }
            guard let (ring, frame) = next else { control.abort(); break sinkLoop }
            let t1 = nowNanoseconds()
            do {
                try SlotMatrix.withMatrix(slot: pool.slot(frame.slot).assumingMemoryBound(to: Element.self),
                                          rows: shape.rows, cols: shape.cols, lender: memory, writeBack: false) {
                    (matrix: inout Matrix<Element>) in
                    let view = matrix
                    try reduce(view)
                }
            } catch {
                sinkError = .sinkFailed(item: frame.item, message: "\(error)")
                _ = conveyor_ring_release(ring)
                control.abort()
                break sinkLoop
            }
            _ = conveyor_ring_release(ring)
            let back = memory.rings.returnProducer(owner, from: 0, to: frame.item % nodes[owner].replicas)
            guard PipelineRings.send(back, frame, timeout: Self.slice) == 0 else { control.abort(); break sinkLoop }
            done += 1
            control.add(worker: sinkWorker, items: 1, busy: nowNanoseconds() - t1, inputWait: t1 - t0)
            progress.update(done)
        }
        progress.finish()

        // Teardown: on any failure every worker sees the abort flag within a wait slice.
        if done < items { control.abort() }
        for thread in threads { pthread_join(thread.thread, nil) }
        if let failure = reap(&children, control, blocking: true), crash == nil { crash = failure }
        let stats = statistics(workers: workers, control: control, seconds: Double(nowNanoseconds() - start) / 1e9,
                               memoryBytes: memoryBytes)
        monitor?.finish(stats)

        if let startFailure { throw startFailure }
        if let sinkError { throw sinkError }
        if let failure = control.failure {
            let name = failure.worker == sinkWorker ? "sink" : nodes[workers[failure.worker].node].name
            throw .stageFailed(stage: name, item: failure.item, message: failure.message)
        }
        if let crash { throw crash }
        if done < items { throw .setupFailed("the sink received \(done) of \(items) items") }
        return stats
    }

    /// Waits for the sink's next frame and returns it with the ring it came on (the caller
    /// releases it); nil when the run must stop.
    ///
    /// In order, the next item's ring is known, and the sink blocks on it. Order-free, the
    /// sink takes the first frame any ring offers: it tries each ring without waiting, then
    /// sleeps on the ring of the oldest outstanding item (the likeliest next) for at most
    /// `orderFreePoll`, so an item finished elsewhere waits at most that long. Every
    /// `slice`, `idle` checks for cancellation and crashes (false: stop).
    private func nextForSink(_ expected: inout [Int], _ rings: PipelineRings, _ pool: SlotPool,
                             _ control: ControlBlock, w: Int, idle: () -> Bool)
        -> (OpaquePointer, PipelineRings.Frame)?
    {
        let last = nodes.count - 2
        var lastIdle = nowNanoseconds()
        while true {
            let oldest = expected.indices.min { expected[$0] < expected[$1] }!
            let candidates = ordered ? [oldest] : expected.indices.filter { expected[$0] < items }
            for j in candidates where candidates.count > 1 {
                // Order-free: take whatever is ready, without sleeping.
                let ring = rings.forwardConsumer(last, from: j, to: 0)
                var frame = PipelineRings.Frame(item: -1, slot: -1)
                let status = PipelineRings.receive(ring, timeout: 0, into: &frame)
                if status == 0 { return accept(frame, from: ring, j, &expected, pool, control, w) }
                if status != Int32(CONVEYOR_E_TIMEOUT.rawValue) { return nil }
            }
            let ring = rings.forwardConsumer(last, from: oldest, to: 0)
            var frame = PipelineRings.Frame(item: -1, slot: -1)
            let status = PipelineRings.receive(ring, timeout: candidates.count > 1 ? Self.orderFreePoll : Self.slice,
                                               into: &frame)
            if status == 0 { return accept(frame, from: ring, oldest, &expected, pool, control, w) }
            // End of stream or a dead peer before the last item: upstream failed.
            if status != Int32(CONVEYOR_E_TIMEOUT.rawValue) { return nil }
            let now = nowNanoseconds()
            if candidates.count == 1 || now - lastIdle >= UInt64(Self.slice) {
                lastIdle = now
                guard idle() else { return nil }
            }
        }
    }

    /// Checks a frame the sink received on ring `j` against the item that ring owes (see
    /// ``verify(_:item:in:replica:ring:_:_:)``) and moves that ring's expectation on.
    private func accept(_ frame: PipelineRings.Frame, from ring: OpaquePointer, _ j: Int, _ expected: inout [Int],
                        _ pool: SlotPool, _ control: ControlBlock, _ w: Int) -> (OpaquePointer, PipelineRings.Frame)? {
        guard verify(frame, item: expected[j], in: pool, ring: ring, control, w) else { return nil }
        expected[j] += expected.count
        return (ring, frame)
    }

    /// The first worker that has computed on one item for longer than `stallTimeout`, with
    /// how long, if any.
    private func stalledWorker(_ workers: Int, _ control: ControlBlock) -> (Int, Double)? {
        guard let limit = stallTimeout else { return nil }
        let now = nowNanoseconds()
        for w in 0..<workers {
            if let since = control.busySince(worker: w), now > since, now - since > limit {
                return (w, Double(now - since) / 1e9)
            }
        }
        return nil
    }

    /// How long an order-free sink sleeps on one ring before looking at the others: the
    /// most an item finished by another replica waits.
    static var orderFreePoll: Int64 { 200_000 }

    /// How long one wait lasts before the waiter checks for an abort, a crash or a
    /// cancellation: the bound on how late a stop is noticed.
    static var slice: Int64 { 20_000_000 }

    /// A stage process: its pid, its worker index in the control block, and its node.
    private struct Child {
        var pid: pid_t
        var worker: Int
        var node: Int
    }

    /// Reaps stage processes that ended (``Posix/reap(_:blocking:)``, which also removes
    /// what each one's OpenMP runtime left in /dev/shm); returns the first abnormal ending
    /// as an error. With `blocking`, waits for all of them, killing any still alive after
    /// 2 s (the abort flag stops a healthy worker within a wait slice).
    private func reap(_ children: inout [Child], _ control: ControlBlock,
                      blocking: Bool) -> PipelineError? {
        var failure: PipelineError?
        let deadline = nowNanoseconds() + 2_000_000_000
        while !children.isEmpty {
            var remaining: [Child] = []
            for child in children {
                let ending: Posix.Ending
                do throws(SystemCallError) {
                    guard let ended = try Posix.reap(child.pid, blocking: false) else { remaining.append(child); continue }
                    ending = ended
                } catch {
                    // waitid refused the call itself (EINVAL: not with these flags); a child
                    // reaped elsewhere comes back as .unknown instead. Nothing to wait for.
                    if failure == nil { failure = .setupFailed("reaping stage '\(nodes[child.node].name)': \(error)") }
                    continue
                }
                let workerName = nodes[child.node].name
                switch ending {
                case let .signalled(signal) where failure == nil:
                    failure = .stageCrashed(stage: workerName, item: control.currentItem(worker: child.worker), signal: signal)
                case let .exited(code) where code != 0 && code != Self.failedStatus && failure == nil && control.failure == nil:
                    failure = .stageExited(stage: workerName, status: code)
                default:
                    break
                }
            }
            children = remaining
            if !blocking || children.isEmpty { break }
            if nowNanoseconds() > deadline { children.forEach { Posix.kill($0.pid, SIGKILL) } }
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
        // Slots come back in item order unless the sink reads them and the merge is order-free.
        let reader = plan.reader[n]
        let returnsInOrder = ordered || reader != nodes.count - 1
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
            var inSlot = -1
            if n > 0 {
                let ring = rings.forwardConsumer(n - 1, from: item % nodes[n - 1].replicas, to: k)
                guard let frame = expect(item, from: ring, in: inPool, control, w) else { return Self.exitStatus(control, w) }
                (input, inSlot) = (ring, frame.slot)
            }
            let t1 = nowNanoseconds()
            var outSlot = inSlot  // kernel stages work in the slot they received
            if node.producesSlots {
                if outPool.ordinal(of: item) < buffer {
                    outSlot = outPool.initialSlot(of: item)
                } else {
                    // Wait for one of this replica's slots to come back; in order, it is the
                    // slot of the item `buffer` places back, the most recently released.
                    let earlier = item - node.replicas * buffer
                    let back = rings.returnConsumer(n, from: earlier % nodes[reader!].replicas, to: k)
                    guard let frame = expect(returnsInOrder ? earlier : nil, from: back, in: outPool, replica: k, control, w)
                    else { return Self.exitStatus(control, w) }
                    outSlot = frame.slot
                    _ = conveyor_ring_release(back)
                }
            }
            let t2 = nowNanoseconds()
            control.setBusy(worker: w, since: t2)
            defer { control.setBusy(worker: w, since: nil) }
            let out = outPool.slot(outSlot)
            let shape = node.outputShape
            do {
                switch node.role {
                case let .source(body):
                    try body.run(item, out, shape, memory)
                case let .kernel(program):
                    program.run(out, shape.rows * shape.cols)  // in place, slot handed on
                case let .closure(body):
                    try body.run(inPool.slot(inSlot), nodes[n - 1].outputShape, out, shape, memory)
                case .sink:
                    break
                }
            } catch {
                control.fail(worker: w, item: item, message: "\(error)")
                return Self.failedStatus
            }
            let t3 = nowNanoseconds()
            let onward = rings.forwardProducer(n, from: k, to: item % next.replicas)
            guard PipelineRings.send(onward, .init(item: item, slot: outSlot), timeout: Self.slice) == 0 else {
                control.abort()
                return 0
            }
            if returnsSlots {
                let back = rings.returnProducer(inOwner, from: k, to: item % nodes[inOwner].replicas)
                guard PipelineRings.send(back, .init(item: item, slot: inSlot), timeout: Self.slice) == 0 else {
                    control.abort()
                    return 0
                }
            }
            if let input { _ = conveyor_ring_release(input) }
            control.add(worker: w, items: 1, busy: t3 - t2, inputWait: t1 - t0, outputWait: t2 - t1)
            item += node.replicas
        }
        return 0
    }

    /// Waits in slices for the next frame on `ring` and checks it: it must carry `item`
    /// (any item when nil) and a slot of `pool` (of `replica`'s slots, when given). Returns
    /// nil after an abort, an end of stream, a dead peer or a bad frame (recorded as a
    /// failure). On success the frame is held: the caller releases it.
    private func expect(_ item: Int?, from ring: OpaquePointer, in pool: SlotPool, replica: Int? = nil,
                        _ control: ControlBlock, _ w: Int) -> PipelineRings.Frame? {
        var frame = PipelineRings.Frame(item: -1, slot: -1)
        while true {
            let status = PipelineRings.receive(ring, timeout: Self.slice, into: &frame)
            if status == 0 { break }
            if status != Int32(CONVEYOR_E_TIMEOUT.rawValue) || control.aborted {
                control.abort()
                return nil
            }
        }
        return verify(frame, item: item, in: pool, replica: replica, ring: ring, control, w) ? frame : nil
    }

    /// Whether a received frame carries `item` (any item when nil) and a slot of `pool` (of
    /// `replica`'s slots, when given): frames come from shared memory, so check before
    /// trusting. A bad frame is released and recorded as a protocol error.
    private func verify(_ frame: PipelineRings.Frame, item: Int?, in pool: SlotPool, replica: Int? = nil,
                        ring: OpaquePointer, _ control: ControlBlock, _ w: Int) -> Bool {
        let slotOK = replica.map { pool.owns(frame.slot, replica: $0) } ?? pool.contains(frame.slot)
        guard frame.item >= 0, item == nil || frame.item == item, slotOK else {
            _ = conveyor_ring_release(ring)
            let wanted = item.map { "item \($0)" } ?? "an item"
            control.fail(worker: w, item: item ?? -1,
                         message: "protocol error: expected \(wanted), received item \(frame.item) in slot \(frame.slot)")
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

    /// The per-stage table from the control block's counters (the sink's follow the workers').
    private func statistics(workers: [(node: Int, replica: Int)], control: ControlBlock, seconds: Double,
                            memoryBytes: Int) -> PipelineStats {
        var rows: [PipelineStats.StageStats] = []
        for (n, node) in nodes.enumerated() {
            var items = 0, busy: UInt64 = 0, inWait: UInt64 = 0, outWait: UInt64 = 0
            let mine = n == nodes.count - 1 ? [workers.count] : workers.indices.filter { workers[$0].node == n }
            for w in mine {
                let c = control.counters(worker: w)
                items += Int(c.items); busy += c.busy; inWait += c.inputWait; outWait += c.outputWait
            }
            let wall = max(seconds, 1e-9)
            rows.append(.init(name: node.name, replicas: node.replicas, items: items, busySeconds: Double(busy) / 1e9,
                              inputWaitSeconds: Double(inWait) / 1e9, outputWaitSeconds: Double(outWait) / 1e9,
                              itemsPerSecond: Double(items) / wall,
                              utilization: Double(busy) / 1e9 / wall / Double(node.replicas)))
        }
        return PipelineStats(stages: rows, seconds: seconds, sharedMemoryBytes: memoryBytes, mode: mode)
    }
}
