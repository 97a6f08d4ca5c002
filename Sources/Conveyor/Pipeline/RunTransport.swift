/// The shared memory of one run, made before any worker starts (so forked stage processes
/// inherit it) and fixed until the run ends: a slot ``Pool`` per producing node, and the
/// ``Channel``s that carry slot numbers between workers. Channels carry words, never
/// matrices: the matrices stay in their slots.
///
/// - Input channels: worker (n, k) — replica k of node n ≥ 1, the sink included — has one,
///   with a lane per replica j of node n − 1 (lane = sending replica). Round-robin, item i
///   is handled by replica i % r of every node, so a worker knows the lane of its next item;
///   dealt dynamically, the ``Edge`` says who sends where (``Intake``). Either way every
///   lane is in increasing item order.
/// - Return channels: producing worker (h, j) has one, with a lane per replica k of the node
///   that reads h's slots last (the next closure stage or the sink): "item i is done, its
///   slot is free".
///
/// - Credit channels (dynamic dealing, ``Edge/dealt``): node n's items dealt by the one
///   replica of node n − 1 come with a channel it receives on, a lane per replica k of node
///   n, of capacity 1: replica k sends a credit when it starts and each time it takes an
///   item, and the dealer sends each item to the replica whose credit it receives next.
///   A replica's one credit is consumed before it can send another, so a lane never fills.
///
/// Capacities: at most `buffer` items per replica of a pool's owner are in flight, so a lane
/// sized for all of an edge's items (and a return lane for `buffer`) never fills: the only
/// waits are for an item and for a free slot (see ``Supervisor`` for why they all end).
final class RunTransport: @unchecked Sendable {
    // @unchecked: every property is set once in init; the handles' own rules (one thread per
    // end, ends opened by the worker that uses them) are kept by ``Worker`` and ``Sink``.

    /// pools[n]: the slots node n writes into; nil for nodes that write none.
    let pools: [NodeSlots?]
    /// inputs[n][k]: the input channel of replica k of node n (none for the source).
    private let inputs: [[Channel]]
    /// returns[h][j]: the return channel of replica j of producing node h (none for others).
    private let returns: [[Channel]]
    /// credits[n]: the credit channel of dealt node n (nil for other nodes).
    private let credits: [Channel?]
    /// programs[w]: the jobs and done channels between worker w and its stage program
    /// (memfd, one lane each; nil for workers that run their stage themselves).
    let programs: [(jobs: Channel, done: Channel)?]
    private let plan: RunPlan
    /// Bytes of shared memory held: pools plus channels.
    let bytes: Int

    init(plan: RunPlan) throws(PipelineError) {
        self.plan = plan
        var pools: [NodeSlots?] = []
        for node in plan.nodes {
            guard node.producesSlots, let stage = node.stage else { pools.append(nil); continue }
            let shape = stage.outputShape
            guard let slotBytes = elementByteCount(rows: shape.rows, cols: shape.cols, stride: stage.outputDType.size) else {
                throw .invalidDefinition("stage '\(stage.name)' outputs \(shape): too large")
            }
            do throws(ConveyorError) {
                let pool = try Pool(slotCount: stage.replicas * plan.buffer, slotBytes: slotBytes,
                                    passable: plan.poolIsPassed(pools.count))
                pools.append(NodeSlots(pool: pool, replicas: stage.replicas, buffer: plan.buffer))
            } catch {
                throw .setupFailed("the slots of stage '\(stage.name)' (\(stage.replicas * plan.buffer) of \(slotBytes) bytes): \(error)")
            }
        }
        self.pools = pools
        let spin = RingConfiguration.defaultSpin
        var inputs: [[Channel]] = [[]]
        for n in 1..<plan.nodes.count {
            // An edge carries items of one pool: at most buffer per replica of its owner.
            let capacity = plan.buffer * plan.nodes[plan.inputOwner(n)].replicas
            inputs.append(try Self.channels(plan.nodes[n].replicas, lanes: plan.nodes[n - 1].replicas,
                                            capacity: capacity, spin: spin, "the input of '\(plan.nodes[n].name)'"))
        }
        var returns: [[Channel]] = []
        for (h, reader) in plan.slots.reader.enumerated() {
            guard let reader else { returns.append([]); continue }
            returns.append(try Self.channels(plan.nodes[h].replicas, lanes: plan.nodes[reader].replicas,
                                             capacity: plan.buffer, spin: spin, "the free slots of '\(plan.nodes[h].name)'"))
        }
        var credits: [Channel?] = [nil]
        for n in 1..<plan.nodes.count {
            credits.append(plan.isDealt(n)
                ? try Self.channels(1, lanes: plan.nodes[n].replicas, capacity: 1, spin: spin,
                                    "the credits of '\(plan.nodes[n].name)'")[0]
                : nil)
        }
        var programs: [(jobs: Channel, done: Channel)?] = []
        for (node, _) in plan.workers {
            guard plan.runsProgram(node) else { programs.append(nil); continue }
            // Two words per item (input and output slot), one answer: see StageProcess.
            let what = "the program channels of '\(plan.nodes[node].name)'"
            let jobs = try Self.channels(1, lanes: 1, capacity: 2, spin: spin, passable: true, what)[0]
            let done = try Self.channels(1, lanes: 1, capacity: 1, spin: spin, passable: true, what)[0]
            programs.append((jobs, done))
        }
        self.inputs = inputs
        self.returns = returns
        self.credits = credits
        self.programs = programs
        let programChannels = programs.compactMap { $0 }.flatMap { [$0.jobs, $0.done] }
        let channelBytes = (inputs + returns + [credits.compactMap { $0 }, programChannels]).joined()
            .reduce(0) { $0 + $1.mappedBytes }
        bytes = pools.reduce(channelBytes) { $0 + ($1?.pool.mappedBytes ?? 0) }
    }

    private static func channels(_ count: Int, lanes: Int, capacity: Int, spin: Int, passable: Bool = false,
                                 _ what: String) throws(PipelineError) -> [Channel] {
        var channels: [Channel] = []
        for _ in 0..<count {
            do throws(ConveyorError) {
                channels.append(try Channel(lanes: lanes, capacity: capacity, spin: spin, passable: passable))
            } catch {
                throw .setupFailed("\(what): \(error)")
            }
        }
        return channels
    }

    /// Opens the ends worker (n, k) uses (the sink is node `plan.sink`), for the calling
    /// process: in a forked stage process, the first thing it does, so that its peers see
    /// at once if it dies. Cost: a few `conveyor_channel_open`s, no system call.
    /// - Throws: ``ConveyorError`` `CONVEYOR_E_BUSY` if a live handle already holds one of
    ///   them, `CONVEYOR_E_CORRUPT`, `CONVEYOR_E_NO_MEMORY`.
    func openEnds(node n: Int, replica k: Int) throws(ConveyorError) -> WorkerEnds {
        let node = plan.nodes[n]
        let input = n > 0 ? try inputs[n][k].openReceiver() : nil
        var onward: [ChannelSender] = []
        if n < plan.sink { for q in 0..<plan.nodes[n + 1].replicas { onward.append(try inputs[n + 1][q].openSender(lane: k)) } }
        let freed = node.producesSlots && plan.slots.reader[n] != nil ? try returns[n][k].openReceiver() : nil
        var back: [ChannelSender] = []
        if node.readsSlots {
            let owner = plan.inputOwner(n)
            for j in 0..<plan.nodes[owner].replicas { back.append(try returns[owner][j].openSender(lane: k)) }
        }
        let dealerCredits = plan.isDealt(n + 1) ? try credits[n + 1]!.openReceiver() : nil
        let credit = plan.isDealt(n) ? try credits[n]!.openSender(lane: k) : nil
        return WorkerEnds(input: input, onward: onward, freed: freed, back: back, credits: dealerCredits, credit: credit)
    }
}

/// The channel ends of one worker, opened by it (``RunTransport/openEnds(node:replica:)``)
/// and used by its thread only.
final class WorkerEnds {
    /// This worker's input channel: a word per item, on the lane of the replica that sent it.
    let input: ChannelReceiver?
    /// Lane k (this replica) of the input channel of each replica of the next node.
    let onward: [ChannelSender]
    /// This producing worker's return channel: its slots coming back.
    let freed: ChannelReceiver?
    /// Lane k of the return channel of each replica of the node that owns this one's input.
    let back: [ChannelSender]
    /// A dealer's credit channel: which replica of the next node is ready for an item.
    let credits: ChannelReceiver?
    /// A dealt replica's lane of its dealer's credit channel.
    let credit: ChannelSender?

    init(input: ChannelReceiver?, onward: [ChannelSender], freed: ChannelReceiver?, back: [ChannelSender],
         credits: ChannelReceiver? = nil, credit: ChannelSender? = nil) {
        self.input = input
        self.onward = onward
        self.freed = freed
        self.back = back
        self.credits = credits
        self.credit = credit
    }

    /// Ends every lane this worker sends on: its readers drain them, then see end of stream
    /// (instead of a dead peer, which is what a lane left unclosed reports).
    func close() {
        for sender in onward { sender.close() }
        for sender in back { sender.close() }
        credit?.close()
    }
}

/// A producing node's pool with the rule of who owns which slot: replica j owns slots
/// j·buffer ..< (j+1)·buffer (``OwnSlots`` hands them out). Only `buffer` slots per
/// replica cycle, so with a small buffer the working set stays in the last-level cache
/// (3 × 8 MB here, against a 32 MB L3).
struct NodeSlots: Sendable {
    let pool: Pool
    let replicas: Int
    let buffer: Int

    /// The replica that owns slot `index` (one of this pool's).
    func owner(of index: Int) -> Int { index / buffer }

    /// Whether `index` is one of replica `replica`'s slots.
    func owns(_ index: Int, replica: Int) -> Bool { index >= replica * buffer && index < (replica + 1) * buffer }

    /// Whether `index` is a slot of this pool.
    func contains(_ index: Int) -> Bool { index >= 0 && index < replicas * buffer }

    /// Why a received word cannot be trusted, or nil: it must carry `item` (any item when
    /// nil) and a slot of this pool (of `replica`'s slots, when given); with `described`,
    /// the slot's descriptor must say it holds that item as a `described` matrix. Words and
    /// descriptors come from shared memory another process writes: check before trusting.
    func problem(with word: SlotWord, item: Int?, replica: Int? = nil,
                 described: (shape: Shape, dtype: DType)? = nil) -> String? {
        let slotOK = replica.map { owns(word.slot, replica: $0) } ?? contains(word.slot)
        guard item == nil || word.item == item, slotOK else {
            return "protocol error: expected \(item.map { "item \($0)" } ?? "an item"), received \(word)"
        }
        guard let described else { return nil }
        let expected = MatrixFrame(dtype: described.dtype, shape: described.shape, tag: UInt64(word.item))
        do throws(ConveyorError) {
            let frame = try pool.frame(word.slot)
            return frame == expected ? nil : "protocol error: slot \(word.slot) holds \(frame.map { "\($0)" } ?? "no matrix"), expected \(expected)"
        } catch {
            return "protocol error: slot \(word.slot): \(error)"
        }
    }
}
