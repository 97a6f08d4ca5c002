/// Runs one pipeline: lays out its shared memory (``RunTransport``), starts a worker
/// (thread or process) per stage replica (``RunningWorkers``), runs the ``Sink`` on the
/// calling thread while watching the workers, and tears everything down whatever happens.
///
/// Data path (see ``SlotPlan``): the source and closure stages write each item into a slot
/// of their own pool; kernel stages transform it in that slot and hand it on; the next
/// closure stage or the sink reads it in place and hands the slot back. Channels carry only
/// slot words (``SlotWord``), forward and back.
///
/// Why no wait can be lost or deadlock: every lane holds all the words its sender can have
/// in flight, so a send never blocks. A worker waits only for its next input (an earlier
/// item, which its upstream replica will send) or for one of its own slots (which comes
/// back once a downstream reader has taken an earlier item). Slot waits point downstream
/// and end at the sink, which waits for nothing but items, so by induction from the sink
/// every wait ends. Lost wake-ups are the channel's business (its doorbell protocol).
struct Supervisor<Element: MatrixElement> {
    let plan: RunPlan

    /// Runs to completion; `reduce` sees every item on the calling thread, in index order
    /// unless the run is order-free. `cancelled` is polled by the sink (per item, and every
    /// wait slice).
    func run(cancelled: () -> Bool, monitor: PipelineMonitor?,
             _ reduce: (Matrix<Element>) throws -> Void) throws(PipelineError) -> PipelineStats {
        let transport = try RunTransport(plan: plan)
        let control = try ControlBlock(workers: plan.workers.count + 1)
        let start = nowNanoseconds(), memoryBytes = transport.bytes
        monitor?.attach { [plan] in
            PipelineStats(plan: plan, control: control, seconds: Double(nowNanoseconds() - start) / 1e9,
                          memoryBytes: memoryBytes)
        }
        let (started, startFailure) = RunningWorkers.start(plan, transport, control, monitor: monitor)
        var workers = started

        var crash: PipelineError?    // a stage process that died
        var stopped: PipelineError?  // a cancellation or a stall, seen by the sink's idle check
        let progress = ProgressLine(total: plan.items, display: plan.progress)
        let sink = Sink<Element>(plan: plan, transport: transport, control: control)
        let (done, sinkFailure) = sink.run(cancelled: cancelled, idle: {
            if cancelled() { stopped = .cancelled; return false }
            if let failure = workers.reapEnded() { crash = failure; return false }
            if let stall = workers.stopStalled() { stopped = stall; return false }
            return true
        }, progress: progress, reduce)
        progress.finish()

        // Teardown: on any failure every worker sees the abort flag within a wait slice.
        if done < plan.items { control.abort() }
        if let failure = workers.finish(), crash == nil { crash = failure }
        let stats = PipelineStats(plan: plan, control: control, seconds: Double(nowNanoseconds() - start) / 1e9,
                                  memoryBytes: memoryBytes)
        monitor?.finish(stats)

        // Which error wins: what stopped the run first and explains the rest.
        if let startFailure { throw startFailure }
        if let failure = sinkFailure ?? stopped { throw failure }
        if let failure = control.failure {
            let name = failure.worker == plan.sinkWorker ? "sink" : plan.nodes[plan.workers[failure.worker].node].name
            throw .stageFailed(stage: name, item: failure.item, message: failure.message)
        }
        if let crash { throw crash }
        if done < plan.items { throw .setupFailed("the sink received \(done) of \(plan.items) items") }
        return stats
    }
}
