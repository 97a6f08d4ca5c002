/// Where a worker's next item comes from: the one place that knows, for its node's
/// ``Edge``, which lane to wait on, which item to expect, and when the stream has ended.
/// Used by ``Worker`` and ``Sink`` on their own thread.
///
/// - Source, round-robin: items replica, replica + r, ...; dynamic with r > 1: claimed
///   from the control block's counter, so each replica's items increase.
/// - ``Edge/roundRobin``: item i on lane i % s, exactly the expected sequence.
/// - ``Edge/paired``: lane k (this replica's twin), ``Edge/dealt``: lane 0 after sending a
///   credit: any items, increasing, until the lane ends.
/// - ``Edge/merged``: wait-any over every lane; each lane increases, and an ordered merge
///   hands items on in index order, holding those that came early (at most the slots of
///   the pool they sit in: see ``Dealing/dynamic``); an order-free sink takes them as they
///   come.
///
/// Every word is checked before it is trusted (another process wrote it): its slot, the
/// slot's descriptor, and its item against what the edge allows: an item out of its lane's
/// order, or delivered twice to an ordered merge, is a protocol error. (An order-free sink
/// checks only each lane's order; an item repeated on two lanes shows when its slot comes
/// back twice to its owner, ``OwnSlots``.)
struct Intake {
    enum Step {
        /// The next item and, except for the source, the word of the slot it sits in.
        case item(Int, SlotWord?)
        /// Every item this worker gets has come.
        case end
        /// The run must stop: aborted, or a failure this intake recorded.
        case stop
    }

    private let plan: RunPlan
    private let node: Int
    private let replica: Int
    private let worker: Int
    private let control: ControlBlock
    private let input: ChannelReceiver?
    private let credit: ChannelSender?
    /// The pool the input slots are in and what they hold (nil for the source).
    private let slots: NodeSlots?
    private let described: (shape: Shape, dtype: DType)?
    private let edge: Edge
    private let ordered: Bool
    private let lanes: Int
    /// Items taken so far (round-robin position; a merge's next item in order).
    private var taken = 0
    /// The last item seen on each lane, for the increasing-per-lane check.
    private var lastOnLane: [Int]
    /// An ordered merge's items that came before an earlier one: item → its word.
    private var early: [Int: SlotWord] = [:]
    private var creditSent = false

    /// How long one wait lasts before the intake looks at the abort flag (and the sink
    /// runs its idle check).
    static var slice: Int64 { 10_000_000 }

    init(plan: RunPlan, node: Int, replica: Int, worker: Int, control: ControlBlock, transport: RunTransport,
         ends: WorkerEnds) {
        self.plan = plan
        self.node = node
        self.replica = replica
        self.worker = worker
        self.control = control
        input = ends.input
        credit = ends.credit
        edge = plan.edges[node]
        // Only the sink merges order-free; a stage of one replica always restores order.
        ordered = plan.ordered || node != plan.sink
        if node > 0 {
            let upstream = plan.nodes[node - 1]
            slots = transport.pools[plan.inputOwner(node)]!
            described = (upstream.outputShape, upstream.stage!.outputDType)
            lanes = upstream.replicas
        } else {
            slots = nil
            described = nil
            lanes = 0
        }
        lastOnLane = Array(repeating: -1, count: lanes)
    }

    /// Waits for the next item; `idle` runs after every slice without one and returns
    /// false to stop.
    mutating func next(idle: () -> Bool = { true }) -> Step {
        if node == 0 { return nextSourceItem() }
        switch edge {
        case .roundRobin:
            let item = replica + taken * plan.nodes[node].replicas
            guard item < plan.items else { return .end }
            let lane = item % lanes
            if !ordered {  // the order-free sink of a round-robin run: any lane, each in sequence
                return nextOfAnyLane(idle: idle, rule: .inSequence)
            }
            switch receive(lane: lane, idle: idle) {
            case let .word(word, _):
                guard accept(word, expected: item) else { return .stop }
                taken += 1
                return .item(item, word)
            case .ended, .stopped: return abortAndStop()
            }
        case .paired, .dealt:
            if edge == .dealt, !creditSent { sendCredit() }
            switch receive(lane: edge == .paired ? replica : 0, idle: idle) {
            case let .word(word, _):
                let lane = edge == .paired ? replica : 0
                guard accept(word, expected: nil, increasingOn: lane) else { return .stop }
                if edge == .dealt { sendCredit() }
                taken += 1
                return .item(word.item, word)
            case .ended: return .end
            case .stopped: return abortAndStop()
            }
        case .merged:
            guard ordered else { return nextOfAnyLane(idle: idle, rule: .increasing) }
            guard taken < plan.items else { return .end }
            while early[taken] == nil {
                guard case let .word(word, lane) = receiveAny(idle: idle) else { return abortAndStop() }
                guard accept(word, expected: nil, increasingOn: lane) else { return .stop }
                guard word.item >= taken, early[word.item] == nil else {
                    return fail(taken, "protocol error: \(word) came twice")
                }
                early[word.item] = word
            }
            let word = early.removeValue(forKey: taken)!
            taken += 1
            return .item(word.item, word)
        }
    }

    /// What an order-free sink allows on each lane: round-robin, exactly lane j's sequence
    /// (j, j + s, ...); dynamic, any increasing items.
    private enum LaneRule { case inSequence, increasing }

    /// An order-free sink's next word, from any lane.
    private mutating func nextOfAnyLane(idle: () -> Bool, rule: LaneRule) -> Step {
        guard taken < plan.items else { return .end }
        guard case let .word(word, lane) = receiveAny(idle: idle) else { return abortAndStop() }
        let last = lastOnLane[lane]
        let allowed = switch rule {
        case .inSequence: word.item == (last < 0 ? lane : last + lanes)
        case .increasing: word.item > last && word.item < plan.items
        }
        guard allowed else {
            return fail(word.item, "protocol error: \(word) out of order on lane \(lane) (its last was item \(lastOnLane[lane]))")
        }
        guard accept(word, expected: nil) else { return .stop }
        lastOnLane[lane] = word.item
        taken += 1
        return .item(word.item, word)
    }

    private mutating func nextSourceItem() -> Step {
        let item = plan.sourceClaims ? control.claimItem() : replica + taken * plan.nodes[0].replicas
        guard item < plan.items else { return .end }
        if control.aborted { return .stop }
        taken += 1
        return .item(item, nil)
    }

    /// Tells the dealer this replica can take one more item. A credit that cannot be sent
    /// means the dealer has ended (or died): the input lane reports which, so it is ignored.
    private mutating func sendCredit() {
        creditSent = true
        _ = try? credit?.send(0, timeout: 0)
    }

    /// Checks a word's slot and descriptor, its item against `expected` (any when nil), and
    /// with `increasingOn`, that it comes after the lane's last; records the failure if not.
    private mutating func accept(_ word: SlotWord, expected: Int?, increasingOn lane: Int? = nil) -> Bool {
        if let lane {
            guard word.item > lastOnLane[lane], word.item < plan.items else {
                _ = fail(word.item, "protocol error: \(word) on lane \(lane) after item \(lastOnLane[lane]) of \(plan.items)")
                return false
            }
            lastOnLane[lane] = word.item
        }
        if let problem = slots!.problem(with: word, item: expected, described: described) {
            _ = fail(expected ?? word.item, problem)
            return false
        }
        return true
    }

    private func fail(_ item: Int, _ message: String) -> Step {
        control.fail(worker: worker, item: item, message: message)
        return .stop
    }

    private func abortAndStop() -> Step {
        control.abort()
        return .stop
    }

    private enum Received {
        case word(SlotWord, lane: Int = 0)
        /// The lane (every lane, for wait-any) ended cleanly.
        case ended
        /// Aborted, told to stop, a dead peer or corrupt memory.
        case stopped
    }

    private func receive(lane: Int, idle: () -> Bool) -> Received {
        while true {
            do throws(ConveyorError) {
                if let word = try input!.receive(lane: lane, timeout: Self.slice) { return .word(SlotWord(word), lane: lane) }
            } catch {
                return error == .endOfStream ? .ended : .stopped
            }
            guard idle(), !control.aborted else { return .stopped }
        }
    }

    private func receiveAny(idle: () -> Bool) -> Received {
        while true {
            do throws(ConveyorError) {
                if let (lane, word) = try input!.receiveAny(timeout: Self.slice) { return .word(SlotWord(word), lane: lane) }
            } catch {
                return error == .endOfStream ? .ended : .stopped
            }
            guard idle(), !control.aborted else { return .stopped }
        }
    }
}
