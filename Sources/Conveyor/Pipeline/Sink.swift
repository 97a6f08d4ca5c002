/// The sink: runs on the calling thread, reduces every item in place in its slot and hands
/// the slot back to its owner.
///
/// The merge (``Intake``): round-robin and in order, item i comes on the lane of replica
/// i % r of the last stage, and the sink waits on that lane; dealt dynamically and in
/// order, it takes whichever lane has a word and holds items that came early until the
/// ones before them have come. Order-free, it takes the first word of any lane
/// (`conveyor_channel_receive_any`: one futex doorbell that every lane's sender rings), so
/// an item another replica finished never waits behind a slow one. Each lane is still in
/// increasing item order, which is what the checks rely on. Either way the sink sleeps in the C core
/// until a word comes, and wakes every ``slice`` only to let the supervisor look for a
/// cancellation, a crashed or stalled stage.
struct Sink<Element: MatrixElement> {
    let plan: RunPlan
    let transport: RunTransport
    let control: ControlBlock

    /// The bound on how late the sink notices a cancellation, a crash or a stall.
    static var slice: Int64 { Intake.slice }

    /// Receives and reduces `plan.items` items. `cancelled` is read before each item;
    /// `idle` runs after every `slice` without a word and returns false to stop. Returns
    /// how many items were reduced and the sink's own failure (a throwing reduce, a
    /// cancellation, its channels), if any; every other stop is in the control block.
    func run(cancelled: () -> Bool, idle: () -> Bool, progress: ProgressLine,
             _ reduce: (Matrix<Element>) throws -> Void) -> (done: Int, failure: PipelineError?) {
        let ends: WorkerEnds
        do throws(ConveyorError) {
            ends = try transport.openEnds(node: plan.sink, replica: 0)
        } catch {
            control.abort()
            return (0, .setupFailed("the sink's channels: \(error)"))
        }
        defer { ends.close() }
        let last = plan.sink - 1, owner = plan.slots.owner[last]
        let slots = transport.pools[owner]!, shape = plan.nodes[last].outputShape
        var intake = Intake(plan: plan, node: plan.sink, replica: 0, worker: plan.sinkWorker, control: control,
                            transport: transport, ends: ends)
        var done = 0
        while done < plan.items {
            if cancelled() {
                control.abort()
                return (done, .cancelled)
            }
            let t0 = nowNanoseconds()
            // While it waits, the line still shows the rate falling.
            guard case let .item(item, word?) = intake.next(idle: { progress.update(done); return idle() }) else { break }
            let t1 = nowNanoseconds()
            do {
                try SlotMatrix.withMatrix(slot: slots.pool.slot(word.slot).assumingMemoryBound(to: Element.self),
                                          rows: shape.rows, cols: shape.cols, lender: transport, writeBack: false) {
                    (matrix: inout Matrix<Element>) in
                    let view = matrix
                    try reduce(view)
                }
            } catch {
                control.abort()
                return (done, .sinkFailed(item: item, message: "\(error)"))
            }
            do throws(ConveyorError) {
                // Never full: see RunTransport.
                guard try ends.back[slots.owner(of: word.slot)].send(word.word, timeout: Self.slice) else { break }
            } catch {
                break
            }
            done += 1
            control.add(worker: plan.sinkWorker, items: 1, busy: nowNanoseconds() - t1, inputWait: t1 - t0)
            progress.update(done)
        }
        if done < plan.items { control.abort() }
        return (done, nil)
    }
}
