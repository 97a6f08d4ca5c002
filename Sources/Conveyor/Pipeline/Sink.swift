/// The sink: runs on the calling thread, reduces every item in place in its slot and hands
/// the slot back to its owner.
///
/// The merge: in order, item i comes on the lane of replica i % r of the last stage, and
/// the sink waits on that lane. Order-free, it takes the first word of any lane
/// (`conveyor_channel_receive_any`: one futex doorbell that every lane's sender rings), so
/// an item another replica finished never waits behind a slow one. Each lane is still in
/// item order, which is what the checks rely on. Either way the sink sleeps in the C core
/// until a word comes, and wakes every ``slice`` only to let the supervisor look for a
/// cancellation, a crashed or stalled stage.
struct Sink<Element: MatrixElement> {
    let plan: RunPlan
    let transport: RunTransport
    let control: ControlBlock

    /// The bound on how late the sink notices a cancellation, a crash or a stall.
    static var slice: Int64 { 10_000_000 }

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
        let slots = transport.pools[owner]!, lanes = plan.nodes[last].replicas
        let shape = plan.nodes[last].outputShape, described = (shape, plan.nodes[last].stage!.outputDType)
        // Next item each lane owes: every lane delivers its replica's items in order,
        // whether or not the merge is.
        var expected = Array(0..<lanes)
        var done = 0
        while done < plan.items {
            if cancelled() {
                control.abort()
                return (done, .cancelled)
            }
            let t0 = nowNanoseconds()
            // While it waits, the line still shows the rate falling.
            guard let (lane, word) = next(ends.input!, lane: done % lanes, { progress.update(done); return idle() })
            else { break }
            if let problem = slots.problem(with: word, item: expected[lane], described: described) {
                control.fail(worker: plan.sinkWorker, item: expected[lane], message: problem)
                break
            }
            expected[lane] += lanes
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
                return (done, .sinkFailed(item: word.item, message: "\(error)"))
            }
            let back = ends.back[word.item % plan.nodes[owner].replicas]
            do throws(ConveyorError) {
                guard try back.send(word.word, timeout: Self.slice) else { break }  // never full: see RunTransport
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

    /// Waits for the next word: on `lane` in order, on any lane order-free. Nil when the run
    /// must stop: `idle` said so, or a lane ended or lost its sender before the last item
    /// (an upstream failure, which the supervisor reports).
    private func next(_ input: ChannelReceiver, lane: Int, _ idle: () -> Bool) -> (lane: Int, word: SlotWord)? {
        while true {
            do throws(ConveyorError) {
                if plan.ordered {
                    if let word = try input.receive(lane: lane, timeout: Self.slice) { return (lane, SlotWord(word)) }
                } else if let (lane, word) = try input.receiveAny(timeout: Self.slice) {
                    return (lane, SlotWord(word))
                }
            } catch {
                return nil
            }
            guard idle(), !control.aborted else { return nil }
        }
    }
}
