internal import CKernels

/// One worker: replica `replica` of node `node` (never the sink), on its own thread or in
/// its own process. Round-robin, it handles items replica, replica + r, replica + 2r...;
/// dealt dynamically, whichever items come to it (see ``Dealing``).
///
/// Per item: take the next item and its input slot's number (``Intake``); for a producing
/// node, take a free slot of its own (``OwnSlots``); compute; describe the output slot;
/// send its number on to the next node's replica the edge names (for a dealt edge, the one
/// whose credit comes first); a closure stage also sends its input slot's number back to
/// that slot's owner.
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
    static var slice: Int64 { Intake.slice }

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
        var intake = Intake(plan: plan, node: node, replica: replica, worker: index, control: control,
                            transport: transport, ends: ends)
        var own = plan.nodes[node].producesSlots
            ? OwnSlots(plan: plan, node: node, replica: replica, worker: index, control: control, transport: transport,
                       ends: ends)
            : nil
        var program: StageProcess?
        if plan.runsProgram(node) {
            guard let started = startProgram() else { return Self.failedStatus }
            program = started
        }
        while true {
            let t0 = nowNanoseconds()
            switch intake.next() {
            case .end:
                if let problem = program?.finish() { return fail(problem, item: -1) }
                // Its last items (at most `buffer`) still hold slots of its own.
                guard own?.awaitAllBack() ?? true else { return status }
                return 0
            case .stop:
                return status
            case let .item(item, word):
                guard handle(item, in: word, waitingSince: t0, &own, program, ends) else { return status }
            }
        }
    }

    /// Records `problem` as this worker's failure at `item` (an empty one means someone
    /// else's abort) and returns the exit status.
    private func fail(_ problem: String, item: Int) -> Int32 {
        if !problem.isEmpty { control.fail(worker: index, item: item, message: problem) }
        return status
    }

    /// Starts the program this worker hands its items to: the external stage's command, or
    /// in spawned mode a copy of this executable, with this node's contract. Nil (failure
    /// recorded) if it cannot start.
    private func startProgram() -> StageProcess? {
        let stage = plan.nodes[node].stage!
        let path: String, arguments: [String]
        var environment = Posix.environment.filter { !$0.hasPrefix("\(SpawnedStage.variable)=") }
        if case let .external(external) = stage.work {
            (path, arguments) = (external.command[0], external.command)
        } else {
            (path, arguments) = (Posix.ownExecutable, CommandLine.arguments)
            let value = SpawnedStage.value(nodes: plan.nodes.dropLast().map { $0.stage! }, node: node)
            environment.append("\(SpawnedStage.variable)=\(value)")
        }
        let inPlace = !plan.nodes[node].producesSlots  // a kernel stage, an in-place program
        let input = node > 0 ? (dtype(node - 1), plan.nodes[node - 1].outputShape) : nil
        let contract = StageContract(input: input, output: (stage.outputDType, stage.outputShape), inPlace: inPlace,
                                     parent: Posix.processID, replica: replica, name: stage.name)
        let channels = transport.programs[index]!
        do throws(StageProcessError) {
            return try StageProcess(path: path, arguments: arguments, environment: environment, contract: contract,
                                    inPool: node > 0 ? transport.pools[plan.inputOwner(node)]!.pool : nil,
                                    outPool: transport.pools[plan.slots.owner[node]]!.pool, jobs: channels.jobs,
                                    done: channels.done, control: control, worker: index)
        } catch {
            control.fail(worker: index, item: -1, message: "\(error)")
            return nil
        }
    }

    /// The dtype node `n` writes.
    private func dtype(_ n: Int) -> DType { plan.nodes[n].stage!.outputDType }

    /// The exit status of a worker that stopped: failed if the failure recorded is its own.
    private var status: Int32 { control.failure?.worker == index ? Self.failedStatus : 0 }

    /// Handles one item; false when the run must stop (an abort, a failure of its own).
    private func handle(_ item: Int, in word: SlotWord?, waitingSince t0: UInt64, _ own: inout OwnSlots?,
                        _ program: StageProcess?, _ ends: WorkerEnds) -> Bool {
        let this = plan.nodes[node], stage = this.stage!
        control.setCurrentItem(worker: index, item)
        let t1 = nowNanoseconds()
        let inSlot = word?.slot ?? -1
        var outSlot = inSlot  // kernel stages work in the slot they received
        let outSlots = transport.pools[plan.slots.owner[node]]!
        if own != nil {
            guard let slot = own!.take(for: item) else { return false }
            outSlot = slot
        }
        let t2 = nowNanoseconds()
        control.setBusy(worker: index, since: t2)
        let out = outSlots.pool.slot(outSlot), shape = stage.outputShape
        if let program {
            if let problem = program.compute(item: item, input: word, output: SlotWord(item: item, slot: outSlot)) {
                control.setBusy(worker: index, since: nil)
                _ = fail(problem, item: item)
                return false
            }
        } else {
            do {
                try compute(item, stage.work, inSlot: inSlot, out: out, shape)
            } catch {
                control.setBusy(worker: index, since: nil)
                control.fail(worker: index, item: item, message: "\(error)")
                return false
            }
        }
        control.setBusy(worker: index, since: nil)
        // A kernel stage leaves the slot's descriptor as its producer wrote it: same shape,
        // same dtype, same item. (A program describes its output too; this is the
        // pipeline's own word on it.)
        if this.producesSlots { outSlots.pool.describe(outSlot, MatrixFrame(dtype: stage.outputDType, shape: shape, tag: UInt64(item))) }
        let t3 = nowNanoseconds()
        guard let target = nextReplica(for: item, ends),
              send(SlotWord(item: item, slot: outSlot), on: ends.onward[target]) else { return false }
        if this.readsSlots {
            let inSlots = transport.pools[plan.inputOwner(node)]!
            guard send(SlotWord(item: item, slot: inSlot), on: ends.back[inSlots.owner(of: inSlot)]) else { return false }
        }
        let t4 = nowNanoseconds()
        control.add(worker: index, items: 1, busy: t3 - t2, inputWait: t1 - t0, outputWait: (t2 - t1) + (t4 - t3))
        return true
    }

    /// Runs the stage's own work on one item, in this process: the source fills `out`, a
    /// kernel program transforms it in place, a closure reads slot `inSlot` and writes `out`.
    private func compute(_ item: Int, _ work: Stage.Work, inSlot: Int, out: UnsafeMutableRawPointer,
                         _ shape: Shape) throws {
        switch work {
        case let .source(body):
            try body.run(item, out, shape, transport)
        case let .kernel(program):
            program.run(out, shape.rows * shape.cols)  // in place, slot handed on
        case let .closure(body):
            let inSlots = transport.pools[plan.inputOwner(node)]!
            try body.run(inSlots.pool.slot(inSlot), plan.nodes[node - 1].outputShape, out, shape, transport)
        case .external:
            preconditionFailure("an external stage's items go to its program")
        }
    }

    /// The replica of the next node that takes `item`: by the edge's rule, or for a dealt
    /// edge the one whose credit comes first (waiting for it in slices); nil to stop.
    private func nextReplica(for item: Int, _ ends: WorkerEnds) -> Int? {
        let next = node + 1
        switch plan.edges[next] {
        case .roundRobin: return item % plan.nodes[next].replicas
        case .paired: return replica
        case .merged: return 0
        case .dealt:
            while true {
                do throws(ConveyorError) {
                    if let (lane, _) = try ends.credits!.receiveAny(timeout: Self.slice) { return lane }
                } catch {
                    control.abort()  // every replica it deals to has ended or died: the run is over
                    return nil
                }
                if control.aborted { return nil }
            }
        }
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
