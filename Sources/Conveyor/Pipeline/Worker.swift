internal import CKernels

/// One worker: replica `replica` of node `node` (never the sink), handling items replica,
/// replica + r, replica + 2r... on its own thread or in its own process.
///
/// Per item: take the input slot's number from the input channel (not for the source);
/// for a producing node, take a free slot of its own (one of the first `buffer`, then one
/// that came back); compute; describe the output slot; send its number on; a closure stage
/// also sends its input slot's number back to that slot's owner.
struct Worker: Sendable {
    let plan: RunPlan
    let transport: RunTransport
    let control: ControlBlock
    let node: Int
    let replica: Int
    /// Index in the control block.
    let index: Int

    /// Exit status of a stage process whose failure is recorded in the control block.
    static var failedStatus: Int32 { 3 }

    /// How long one wait lasts before the worker looks at the abort flag: the bound on how
    /// late a stop is noticed. Waits end at once when a word arrives.
    static var slice: Int64 { 10_000_000 }

    /// Opens its ends, handles its items, closes its lanes. Returns its exit status: 0 done
    /// (or stopped by someone else's failure), ``failedStatus`` failed (recorded in the
    /// control block).
    func run() -> Int32 {
        // One core per stage worker: parallelism comes from the pipeline and its replicas,
        // and a kernel's own threads would only compete with the other stages. 1 is valid
        // in every build, so a failure is a bug.
        let threads = conveyor_set_threads_local(1)
        precondition(threads == 0, "conveyor_set_threads_local(1): \(ConveyorError(rawValue: threads).name)")
        let ends: WorkerEnds
        do throws(ConveyorError) {
            ends = try transport.openEnds(node: node, replica: replica)
        } catch {
            control.fail(worker: index, item: -1, message: "opening its channels: \(error)")
            return Self.failedStatus
        }
        defer { ends.close() }
        let mine = stride(from: replica, to: plan.items, by: plan.nodes[node].replicas)
        for item in mine {
            guard handle(item, ends) else { return control.failure?.worker == index ? Self.failedStatus : 0 }
        }
        // Its last `buffer` items (or all, if fewer) still hold slots of its own.
        let step = plan.nodes[node].replicas
        let count = plan.items > replica ? (plan.items - replica + step - 1) / step : 0
        let outstanding = stride(from: replica + max(0, count - plan.buffer) * step, to: plan.items, by: step)
        guard awaitSlotsBack(of: outstanding, ends) else { return control.failure?.worker == index ? Self.failedStatus : 0 }
        return 0
    }

    /// A producing worker waits for its last slots (those of `last`, its final `buffer`
    /// items at most) to come back before it leaves: its return channel's receiver must
    /// stay for as long as a reader may send on it, or the reader's send would find it gone
    /// (a dead peer) and fail a run that succeeded.
    private func awaitSlotsBack(of last: StrideTo<Int>, _ ends: WorkerEnds) -> Bool {
        guard let freed = ends.freed, let reader = plan.slots.reader[node] else { return true }
        let slots = transport.pools[node]!, lanes = plan.nodes[reader].replicas
        for item in last {
            guard let word = receive(freed, lane: item % lanes),
                  accept(word, slots.problem(with: word, item: plan.returnsInOrder(node) ? item : nil, replica: replica), item)
            else { return false }
        }
        return true
    }

    /// Handles one item; false when the run must stop (an abort, a failure of its own, an
    /// upstream that ended early).
    private func handle(_ item: Int, _ ends: WorkerEnds) -> Bool {
        let this = plan.nodes[node], stage = this.stage!
        control.setCurrentItem(worker: index, item)
        let t0 = nowNanoseconds()
        var inSlot = -1
        if node > 0 {
            let upstream = plan.nodes[node - 1], inSlots = transport.pools[plan.inputOwner(node)]!
            guard let word = receive(ends.input!, lane: item % upstream.replicas),
                  accept(word, inSlots.problem(with: word, item: item, described: (upstream.outputShape, dtype(node - 1))), item)
            else { return false }
            inSlot = word.slot
        }
        let t1 = nowNanoseconds()
        var outSlot = inSlot  // kernel stages work in the slot they received
        let outSlots = transport.pools[plan.slots.owner[node]]!
        if this.producesSlots {
            if outSlots.ordinal(of: item) < plan.buffer {
                outSlot = outSlots.initialSlot(of: item)
            } else {
                // Wait for one of this replica's slots to come back; in order, it is the
                // slot of the item `buffer` places back, the most recently released.
                let earlier = item - this.replicas * plan.buffer
                let reader = plan.nodes[plan.slots.reader[node]!]
                guard let word = receive(ends.freed!, lane: earlier % reader.replicas),
                      accept(word, outSlots.problem(with: word, item: plan.returnsInOrder(node) ? earlier : nil,
                                                    replica: replica), item)
                else { return false }
                outSlot = word.slot
            }
        }
        let t2 = nowNanoseconds()
        control.setBusy(worker: index, since: t2)
        defer { control.setBusy(worker: index, since: nil) }
        let out = outSlots.pool.slot(outSlot), shape = stage.outputShape
        do {
            switch stage.work {
            case let .source(body):
                try body.run(item, out, shape, transport)
            case let .kernel(program):
                program.run(out, shape.rows * shape.cols)  // in place, slot handed on
            case let .closure(body):
                let inSlots = transport.pools[plan.inputOwner(node)]!
                try body.run(inSlots.pool.slot(inSlot), plan.nodes[node - 1].outputShape, out, shape, transport)
            }
        } catch {
            control.fail(worker: index, item: item, message: "\(error)")
            return false
        }
        // A kernel stage leaves the slot's descriptor as its producer wrote it: same shape,
        // same dtype, same item.
        if this.producesSlots { outSlots.pool.describe(outSlot, MatrixFrame(dtype: stage.outputDType, shape: shape, tag: UInt64(item))) }
        let t3 = nowNanoseconds()
        let next = plan.nodes[node + 1]
        guard send(SlotWord(item: item, slot: outSlot), on: ends.onward[item % next.replicas]) else { return false }
        if this.readsSlots {
            let owner = plan.nodes[plan.inputOwner(node)]
            guard send(SlotWord(item: item, slot: inSlot), on: ends.back[item % owner.replicas]) else { return false }
        }
        control.add(worker: index, items: 1, busy: t3 - t2, inputWait: t1 - t0, outputWait: t2 - t1)
        return true
    }

    /// The dtype node `n` writes.
    private func dtype(_ n: Int) -> DType { plan.nodes[n].stage!.outputDType }

    /// Waits in slices for the next word on `lane`; nil after an abort, an end of stream or a
    /// dead peer (the run is aborted: whoever failed is reported by the supervisor).
    private func receive(_ receiver: ChannelReceiver, lane: Int) -> SlotWord? {
        while true {
            do throws(ConveyorError) {
                if let word = try receiver.receive(lane: lane, timeout: Self.slice) { return SlotWord(word) }
            } catch {
                control.abort()
                return nil
            }
            if control.aborted { return nil }
        }
    }

    /// Records a word that cannot be trusted as this worker's failure; true if it is sound.
    private func accept(_ word: SlotWord, _ problem: String?, _ item: Int) -> Bool {
        guard let problem else { return true }
        control.fail(worker: index, item: item, message: problem)
        return false
    }

    /// Sends a word; a lane never fills (see ``RunTransport``), so any failure — a dead
    /// receiver, corrupt memory, even a full slice — stops the run.
    private func send(_ word: SlotWord, on sender: ChannelSender) -> Bool {
        do throws(ConveyorError) {
            if try sender.send(word.word, timeout: Self.slice) { return true }
        } catch {}
        control.abort()
        return false
    }
}
