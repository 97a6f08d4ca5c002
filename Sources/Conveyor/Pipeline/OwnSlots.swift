/// A producing worker's own slots (replica j's `buffer` slots of its node's pool): which
/// are out, and waiting for one to come back.
///
/// Its first `buffer` items take them in turn; every later item takes a slot that came
/// back on its return channel. Round-robin and in order, that is the slot of the item
/// `buffer` places back on a known lane (the one most recently released, still in cache);
/// otherwise whichever comes first. A slot that comes back must be one of its own that is
/// out: anything else (a slot returned twice, another replica's) is a protocol error.
struct OwnSlots {
    private let plan: RunPlan
    private let node: Int
    private let replica: Int
    private let worker: Int
    private let control: ControlBlock
    private let slots: NodeSlots
    private let freed: ChannelReceiver?
    /// Replicas of the node that reads these slots and hands them back.
    private let readerReplicas: Int
    /// Which of this replica's slots are out (index - replica·buffer).
    private var out: [Bool]
    /// Items written so far; the first `buffer` took fresh slots.
    private var written = 0
    /// Round-robin: the items this worker wrote, in order, for the in-order return check.
    private var inFlight: [Int] = []

    init(plan: RunPlan, node: Int, replica: Int, worker: Int, control: ControlBlock, transport: RunTransport,
         ends: WorkerEnds) {
        self.plan = plan
        self.node = node
        self.replica = replica
        self.worker = worker
        self.control = control
        slots = transport.pools[node]!
        freed = ends.freed
        readerReplicas = plan.slots.reader[node].map { plan.nodes[$0].replicas } ?? 1
        out = Array(repeating: false, count: plan.buffer)
    }

    /// The slot `item` is to be written into; nil when the run must stop (aborted, or a
    /// returned word that cannot be trusted, recorded as this worker's failure).
    mutating func take(for item: Int) -> Int? {
        let slot: Int
        if written < plan.buffer {
            slot = replica * plan.buffer + written
        } else {
            guard let back = awaitOne(while: item) else { return nil }
            slot = back
        }
        out[slot - replica * plan.buffer] = true
        written += 1
        inFlight.append(item)
        return slot
    }

    /// Before the worker leaves: waits for every slot still out to come back, so that its
    /// return channel's receiver outlives every reader that may still send on it (a reader
    /// finding it gone would see a dead peer and fail a run that succeeded).
    mutating func awaitAllBack() -> Bool {
        while out.contains(true) {
            guard awaitOne(while: inFlight.first ?? -1) != nil else { return false }
        }
        return true
    }

    /// Receives one returned slot and marks it free; nil when the run must stop.
    private mutating func awaitOne(while item: Int) -> Int? {
        guard let freed else { return nil }  // a producing node always has a reader
        let inOrder = plan.returnsInOrder(node)
        let earlier = inFlight.first!
        while true {
            let received: (lane: Int, word: UInt64)?
            do throws(ConveyorError) {
                if plan.dealing == .roundRobin {
                    // Round-robin, the reader of item `earlier` is replica earlier % r.
                    received = try freed.receive(lane: earlier % readerReplicas, timeout: Intake.slice).map { (0, $0) }
                } else {
                    received = try freed.receiveAny(timeout: Intake.slice)
                }
            } catch {
                control.abort()
                return nil
            }
            guard let received else {
                if control.aborted { return nil }
                continue
            }
            let word = SlotWord(received.word)
            if let problem = slots.problem(with: word, item: inOrder ? earlier : nil, replica: replica) {
                control.fail(worker: worker, item: item, message: problem)
                return nil
            }
            let own = word.slot - replica * plan.buffer
            guard out[own] else {
                control.fail(worker: worker, item: item, message: "protocol error: \(word) came back but was not out")
                return nil
            }
            out[own] = false
            if let i = inFlight.firstIndex(of: word.item) { inFlight.remove(at: i) }
            return word.slot
        }
    }
}
