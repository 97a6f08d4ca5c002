internal import CKernels

/// One node of a run: a ``Stage`` of the definition (after fusion), or the sink that ends
/// every run. Everything a node is comes from its stage; the sink has none.
struct PlannedStage: Sendable {
    /// The stage this node runs; nil for the sink, which reduces the last stage's items.
    let stage: Stage?

    /// The name used in stats and errors.
    var name: String { stage?.name ?? "sink" }
    /// Workers running this node.
    var replicas: Int { stage?.replicas ?? 1 }
    /// The shape this node writes; the sink writes nothing (asking is a bug).
    var outputShape: Shape { stage!.outputShape }

    /// Writes new items into slots of its own pool (the source, closure stages).
    var producesSlots: Bool {
        switch stage?.work {
        case .source?, .closure?: return true
        case let .external(program)?: return !program.inPlace
        case .kernel?, nil: return false
        }
    }

    /// Reads its input slot and hands it back to its owner (closure stages, the sink).
    var readsSlots: Bool {
        switch stage?.work {
        case .closure?, nil: return true
        case let .external(program)?: return !program.inPlace
        case .source?, .kernel?: return false
        }
    }
}

/// Everything a run is decided by, checked before any memory is mapped: its nodes (source
/// first, sink last), who owns and returns each slot, and the run's options.
struct RunPlan: Sendable {
    let nodes: [PlannedStage]
    let slots: SlotPlan
    let items: Int
    let mode: ExecutionMode
    /// Slots each replica of a producing node owns.
    let buffer: Int
    let ordered: Bool
    /// How replicas get their items.
    let dealing: Dealing
    /// edges[n]: how node n ≥ 1 receives from node n − 1 (edges[0], the source's, is unused).
    let edges: [Edge]
    /// Nanoseconds a worker may compute on one item before the run stops it; nil: no limit.
    let stallTimeout: UInt64?
    let progress: ProgressDisplay
    /// Every worker but the sink, node by node: its index here is its index in the
    /// ``ControlBlock``; the sink's is `workers.count`.
    let workers: [(node: Int, replica: Int)]

    /// The sink's node index (the last node).
    var sink: Int { nodes.count - 1 }
    /// The sink's worker index in the control block.
    var sinkWorker: Int { workers.count }

    /// Item numbers travel in 40 bits of a channel word (see ``SlotWord``).
    static var maxItems: Int { SlotWord.maxItem + 1 }

    /// - Throws: ``PipelineError/invalidDefinition(_:)`` naming what cannot run.
    init<Element>(pipeline: Pipeline<Element>, mode: ExecutionMode, buffer: Int, fusion: Bool, ordered: Bool,
                  dealing: Dealing = .roundRobin, stallTimeout: Duration?, progress: ProgressDisplay) throws(PipelineError) {
        let stages = [pipeline.source] + (fusion ? fuse(pipeline.stages) : pipeline.stages)
        nodes = stages.map { PlannedStage(stage: $0) } + [PlannedStage(stage: nil)]
        guard pipeline.items >= 0, pipeline.items < Self.maxItems else {
            throw .invalidDefinition("items must be in 0..<\(Self.maxItems), got \(pipeline.items)")
        }
        for (n, stage) in stages.enumerated() {
            if let placement = stage.placement, placement.rank != 0 {
                throw .invalidDefinition("stage '\(stage.name)' is placed on rank \(placement.rank), but run() runs every "
                    + "stage on this machine: start the executable under mpirun and call runAcrossRanks (trait MPI)")
            }
            if case let .external(program) = stage.work, program.inPlace,
               stage.outputShape != stages[n - 1].outputShape || stage.outputDType != stages[n - 1].outputDType {
                throw .invalidDefinition("external stage '\(stage.name)' works in place, so it must output what it "
                    + "reads (\(stages[n - 1].outputDType) \(stages[n - 1].outputShape)), not \(stage.outputDType) \(stage.outputShape)")
            }
            guard stage.replicas >= 1, stage.replicas <= Int(CONVEYOR_CHANNEL_MAX_LANES) else {
                throw .invalidDefinition("stage '\(stage.name)' has \(stage.replicas) replicas; use 1...\(CONVEYOR_CHANNEL_MAX_LANES)")
            }
            guard stage.outputShape.rows >= 1, stage.outputShape.cols >= 1 else {
                throw .invalidDefinition("stage '\(stage.name)' outputs \(stage.outputShape)")
            }
            if case let .kernel(program) = stage.work, let problem = program.problem(stage.outputShape) {
                throw .invalidDefinition("stage '\(stage.name)': \(problem)")
            }
            if case let .external(program) = stage.work, program.command.first?.isEmpty ?? true {
                throw .invalidDefinition("external stage '\(stage.name)' has no program to run")
            }
        }
        if mode == .spawnedProcesses {
            // A spawned copy of the executable finds its stage by name.
            var seen = Set<String>()
            for stage in stages where !seen.insert(stage.name).inserted {
                throw .invalidDefinition("two stages are named '\(stage.name)': spawnedProcesses finds a stage by its name")
            }
        }
        // A lane holds every item its edge can have in flight (buffer per replica of the
        // slots' owner), and a pool buffer slots per replica: both within the C limits.
        let maxReplicas = stages.map(\.replicas).max()!
        let limit = min(Int(CONVEYOR_CHANNEL_MAX_CAPACITY), Int(CONVEYOR_POOL_MAX_SLOTS))
        guard buffer >= 1, buffer * maxReplicas <= limit else {
            throw .invalidDefinition("buffer must be in 1...\(limit / maxReplicas), got \(buffer)")
        }
        if let stallTimeout {
            guard stallTimeout > .zero else { throw .invalidDefinition("stallTimeout must be positive, got \(stallTimeout)") }
            self.stallTimeout = UInt64(stallTimeout.saturatingNanoseconds)
        } else {
            self.stallTimeout = nil
        }
        var edges: [Edge] = [.roundRobin]
        for n in 1..<nodes.count {
            edges.append(try Edge.between(upstream: nodes[n - 1].replicas, replicas: nodes[n].replicas, dealing: dealing,
                                          names: (nodes[n - 1].name, nodes[n].name)))
        }
        self.edges = edges
        self.dealing = dealing
        slots = SlotPlan(producesSlots: nodes.map(\.producesSlots))
        items = pipeline.items
        self.mode = mode
        self.buffer = buffer
        self.ordered = ordered
        self.progress = progress
        var workers: [(node: Int, replica: Int)] = []
        for n in 0..<(nodes.count - 1) { for k in 0..<nodes[n].replicas { workers.append((n, k)) } }
        self.workers = workers
    }

    /// The node whose pool holds node `n`'s input slots (node `n - 1`'s output); n ≥ 1.
    func inputOwner(_ n: Int) -> Int { slots.owner[n - 1] }

    /// Whether the slots node `n` owns come back in item order, on known lanes: with
    /// round-robin dealing, unless the sink reads them and the merge is order-free.
    func returnsInOrder(_ n: Int) -> Bool { dealing == .roundRobin && (ordered || slots.reader[n] != sink) }

    /// Whether the source's replicas claim their items from the shared counter (dynamic
    /// dealing with more than one source replica) instead of taking every r-th.
    var sourceClaims: Bool { dealing == .dynamic && nodes[0].replicas > 1 }

    /// Whether node n's workers hand their items to a program of their own (an external
    /// stage, or every stage in ``ExecutionMode/spawnedProcesses``); never the sink.
    func runsProgram(_ n: Int) -> Bool {
        guard let stage = nodes[n].stage else { return false }
        if case .external = stage.work { return true }
        return mode == .spawnedProcesses
    }

    /// Whether node n's pool must be passable to another program: a program writes or reads
    /// its slots.
    func poolIsPassed(_ n: Int) -> Bool {
        (0..<sink).contains { m in runsProgram(m) && (slots.owner[m] == n || (m > 0 && inputOwner(m) == n)) }
    }

    /// Whether node n − 1's one replica deals node n's items by credit.
    func isDealt(_ n: Int) -> Bool { n < nodes.count && edges[n] == .dealt }
}
