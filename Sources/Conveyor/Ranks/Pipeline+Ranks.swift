#if MPI
import Synchronization

extension Pipeline {
    /// Runs the pipeline across the ranks of an MPI job: call it on every rank of the same
    /// executable started with `mpirun -n K`; each rank runs the stages placed on it
    /// (``Placement``, `.stage("g", ..., on: .rank(1))`), in threads or forked processes
    /// as ``run(_:buffer:fusion:ordered:dealing:monitor:stallTimeout:progress:into:_:)-40a6e``
    /// does, and every edge between ranks crosses a link (conveyor_mpi.h): the sending
    /// side's sink sends each item from its slot, the receiving side's source receives it
    /// straight into a slot of its own (the network's copy is the only one). Rank 0 holds
    /// the source and the sink, reduces every item in order with `reduce`, and gathers the
    /// other ranks' statistics.
    ///
    /// Cost per item and link: the item's bytes over MPI (≈ 1 ms per 8 MB over shared
    /// memory, ≈ 7 ms at 10 Gbit/s), plus a 96-byte descriptor. Ranks without stages only
    /// report. Call ``MPIJob/finish()`` once after the last run, before exiting.
    ///
    /// - Parameters:
    ///   - mode: `.threads` or `.processes` on each rank; the workers that drive a link
    ///     always run as threads of the rank's own process (a forked child must not use
    ///     MPI). `.spawnedProcesses` is refused.
    ///   - buffer: slots each producing worker owns, as for `run`, in every rank's
    ///     segments.
    ///   - fusion: fuse adjacent kernel stages, as for `run`, within each rank's segments.
    ///   - ordered: as for `run`, in every rank's segments.
    ///   - stallTimeout: as for `run`; it also bounds a wait for an item from another
    ///     rank (that wait is the receiving stage's work).
    ///   - options: the `link:` argument: chunk size, liveness bound and heartbeat of the
    ///     links (``LinkOptions``).
    ///   - initial: the result before the first item. Only rank 0 reduces: the other
    ///     ranks return a ``RanksRun`` whose `result` is `nil`.
    ///   - reduce: the sink's fold, as for `run`, called on rank 0 for every item.
    /// - Throws: ``PipelineError``: on rank 0, ``PipelineError/rankFailed(rank:message:)``
    ///   with the rank that failed first (a stage's own failure before the link failures
    ///   it caused) and its message, or rank 0's own failure; on another rank, its own.
    ///   A dead or silent rank is reported within `link.liveness + link.heartbeat`. After
    ///   a failure end the job with ``MPIJob/abort(_:)``: MPI_Finalize would wait for a
    ///   dead rank.
    public func runAcrossRanks<Result>(_ mode: ExecutionMode = .threads, buffer: Int = 3, fusion: Bool = true,
                                       ordered: Bool = true, stallTimeout: Duration? = .seconds(60),
                                       link options: LinkOptions = LinkOptions(),
                                       into initial: Result,
                                       _ reduce: (inout Result, Matrix<Element>) throws -> Void) throws(PipelineError)
        -> RanksRun<Result>
    {
        try MPIJob.start()
        guard mode != .spawnedProcesses else {
            throw .invalidDefinition("runAcrossRanks runs each rank's stages in threads or forked processes, not spawned ones")
        }
        let rank = MPIJob.rank, size = MPIJob.size
        let plan = try RankPlan(source: source, stages: stages, ranks: size)
        let settings = RankRunSettings(mode: mode, buffer: buffer, fusion: fusion, ordered: ordered,
                                       stallTimeout: stallTimeout, options: options, items: items)
        var runner = RankRunner(plan: plan, rank: rank, size: size, settings: settings)
        var result = initial
        let own = runner.runSegments { (matrix: Matrix<Element>) throws in try reduce(&result, matrix) }
        let all = runner.exchangeReports(own)
        if rank == 0 {
            if let (failed, message) = RankRunner.firstFailure(all) { throw .rankFailed(rank: failed, message: message) }
            return RanksRun(result: result, ranks: all)
        }
        if let failure = own.failure { throw .rankFailed(rank: rank, message: failure) }
        return RanksRun(result: nil, ranks: [own])
    }
}

/// The options of one run across ranks, as every segment of it uses them.
struct RankRunSettings: Sendable {
    let mode: ExecutionMode, buffer: Int, fusion: Bool, ordered: Bool, stallTimeout: Duration?
    let options: LinkOptions, items: Int
}

/// One rank's part of a run across ranks: opens its links, runs its segments (all but the
/// one with the sink on threads of their own), stops them all when one fails, and
/// exchanges the reports with rank 0.
struct RankRunner {
    let plan: RankPlan
    let rank: Int, size: Int
    let settings: RankRunSettings
    /// Set when a segment of this rank failed: the others stop within a wait slice.
    private let stop = CancellationFlag()
    /// Link k's two ends where this rank has them, and the report links.
    private var incoming: [Int: MPILink] = [:], outgoing: [Int: MPILink] = [:]
    private var reports: [Int: MPILink] = [:]
    /// Which links failed: a segment failure caused by one is reported as secondary.
    private let linkTrouble = LinkTrouble()

    /// How long a bridge source waits in one slice before it asks whether to stop.
    static let slice: Int64 = 100_000_000

    init(plan: RankPlan, rank: Int, size: Int, settings: RankRunSettings) {
        self.plan = plan
        self.rank = rank
        self.size = size
        self.settings = settings
    }

    /// Runs this rank's segments; `reduce` is the sink's (rank 0's last segment).
    mutating func runSegments<Element: MatrixElement>(_ reduce: (Matrix<Element>) throws -> Void) -> RankStats {
        var failure: String?, failureKind = RankStats.FailureKind.own
        do throws(PipelineError) {
            try openLinks()
        } catch {
            failure = "\(error)"
        }
        var stats: [Int: PipelineStats] = [:]
        if failure == nil {
            let results = Mutex<[Int: Swift.Result<PipelineStats, PipelineError>]>([:])
            let mine = plan.segments(on: rank)
            var threads: [Posix.Thread] = []
            for k in mine where !plan.segments[k].holdsSink {
                let job = SegmentJob(runner: self, index: k)
                do throws(SystemCallError) {
                    threads.append(try Posix.Thread.start {
                        let outcome = job.run()
                        if case .failure = outcome { job.runner.stop.set() }
                        results.withLock { $0[k] = outcome }
                    })
                } catch {
                    stop.set()
                    results.withLock { $0[k] = .failure(.setupFailed("could not start a thread for segment \(k): \(error)")) }
                }
            }
            if let k = mine.first(where: { plan.segments[$0].holdsSink }) {
                let outcome = SegmentJob(runner: self, index: k).runSink(reduce)
                if case .failure = outcome { stop.set() }
                results.withLock { $0[k] = outcome }
            }
            for thread in threads { thread.join() }
            // The rank's own failure explains the link failures and the stops it caused.
            var failures: [(error: PipelineError, kind: RankStats.FailureKind)] = []
            for (k, outcome) in results.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
                switch outcome {
                case let .success(s): stats[k] = s
                case let .failure(error):
                    let kind: RankStats.FailureKind = error == .cancelled || linkTrouble.stopped.contains(k) ? .stopped
                        : linkTrouble.segments.contains(k) ? .link : .own
                    failures.append((error, kind))
                }
            }
            if let chosen = failures.min(by: { $0.kind < $1.kind }) {
                failure = "\(chosen.error)"
                failureKind = chosen.kind
            }
        }
        var links: [LinkStats] = []
        for (_, link) in outgoing.sorted(by: { $0.key < $1.key }) { links.append(link.stats(from: rank, to: link.peer)) }
        for (_, link) in incoming.sorted(by: { $0.key < $1.key }) { links.append(link.stats(from: link.peer, to: rank)) }
        // The data links go now (a BYE each), before the reports: a failed rank's peers
        // learn at once that it left.
        incoming = [:]
        outgoing = [:]
        return RankStats(rank: rank, segments: plan.segments(on: rank).compactMap { stats[$0] }, links: links,
                         failure: failure, failureKind: failureKind)
    }

    /// Opens every link this rank has an end of: link k for each segment boundary, and the
    /// report links (rank 0 receives one from every other rank).
    private mutating func openLinks() throws(PipelineError) {
        let comm = try RunCommunicator()
        // The report links first: a rank whose data links fail to open still reports why.
        if rank == 0 {
            for r in 1..<max(size, 1) {
                reports[r] = try MPILink(sending: false, peer: r, channel: plan.reportChannel(r), on: comm,
                                         options: settings.options)
            }
        } else {
            reports[0] = try MPILink(sending: true, peer: 0, channel: plan.reportChannel(rank), on: comm,
                                     options: settings.options)
        }
        for k in plan.segments.indices.dropLast() {
            let from = plan.segments[k].rank, to = plan.segments[k + 1].rank
            if from == rank { outgoing[k] = try MPILink(sending: true, peer: to, channel: k, on: comm, options: settings.options) }
            if to == rank { incoming[k] = try MPILink(sending: false, peer: from, channel: k, on: comm, options: settings.options) }
        }
    }

    /// Rank 0: its own report and every other rank's, in rank order (a rank that could not
    /// report is listed with the reason). Another rank: sends its report, returns it.
    mutating func exchangeReports(_ own: RankStats) -> [RankStats] {
        defer { reports = [:] }
        if rank != 0 {
            _ = try? reports[0]?.sendMessage(own.encoded())
            return [own]
        }
        var all = [own]
        for r in 1..<max(size, 1) {
            guard let link = reports[r] else {
                all.append(RankStats(rank: r, segments: [], links: [], failure: "its report link did not open", failureKind: .silent))
                continue
            }
            do throws(MPILink.Failure) {
                let bytes = try link.receiveMessage(limit: 1 << 20)
                all.append(RankStats(decoding: bytes) ?? RankStats(rank: r, segments: [], links: [],
                                                                    failure: "its report could not be read", failureKind: .silent))
            } catch {
                all.append(RankStats(rank: r, segments: [], links: [], failure: "it did not report: \(error)", failureKind: .silent))
            }
        }
        return all
    }

    /// The failure rank 0 reports: of the ranks that failed, the lowest with the most
    /// telling kind (its own work, then silence, then a link, then a stop).
    static func firstFailure(_ ranks: [RankStats]) -> (Int, String)? {
        let failed = ranks.filter { $0.failure != nil }
        let first = failed.min { ($0.failureKind, $0.rank) < ($1.failureKind, $1.rank) }
        return first.map { ($0.rank, $0.failure!) }
    }

    /// One segment of this rank, run as a pipeline of one machine.
    struct SegmentJob: Sendable {
        let runner: RankRunner
        let index: Int

        var segment: RankPlan.Segment { runner.plan.segments[index] }

        /// A segment that ends with link `index`: its sink sends every item.
        func run() -> Swift.Result<PipelineStats, PipelineError> {
            guard let link = runner.outgoing[index] else { return .failure(.setupFailed("segment \(index) has no link out")) }
            let (shape, dtype) = segment.output
            let trouble = runner.linkTrouble, k = index
            func send<E: MatrixElement>(_: E.Type) -> Swift.Result<PipelineStats, PipelineError> {
                var item = 0
                let stop = runner.stop
                let outcome = runLocal(E.self) { (matrix: Matrix<E>) throws in
                    do throws(MPILink.Failure) {
                        try matrix.withUnsafeBufferPointer { (p) throws(MPILink.Failure) in
                            try link.send(UnsafeRawPointer(p.baseAddress!), shape: shape, dtype: dtype, item: item,
                                          slice: RankRunner.slice, stop: { stop.isSet })
                        }
                    } catch {
                        trouble.mark(k, stopped: stop.isSet)
                        throw error
                    }
                    item += 1
                }
                guard case .success = outcome else { return outcome }
                do throws(MPILink.Failure) {
                    try link.close()
                } catch {
                    trouble.mark(k)
                    return .failure(.rankFailed(rank: link.peer, message: "\(error)"))
                }
                return outcome
            }
            switch dtype {
            case .float32: return send(Float.self)
            case .float64: return send(Double.self)
            }
        }

        /// The segment that ends with the pipeline's sink.
        func runSink<E: MatrixElement>(_ reduce: (Matrix<E>) throws -> Void) -> Swift.Result<PipelineStats, PipelineError> {
            runLocal(E.self, reduce)
        }

        /// Runs the segment as a local pipeline: its source is the real one (segment 0) or
        /// a bridge that receives link `index - 1` into its slots; then its stages.
        private func runLocal<E: MatrixElement>(_: E.Type, _ reduce: (Matrix<E>) throws -> Void)
            -> Swift.Result<PipelineStats, PipelineError>
        {
            let settings = runner.settings
            var stages = segment.stages
            let source: Stage
            let incoming = index > 0 ? runner.incoming[index - 1] : nil
            if index == 0 {
                source = stages.removeFirst()
            } else {
                guard let link = incoming, let (shape, dtype) = segment.input else {
                    return .failure(.setupFailed("segment \(index) has no link in"))
                }
                let stop = runner.stop, trouble = runner.linkTrouble, k = index
                let body = SourceBody(raw: { index, slot, shape, _ in
                    do throws(MPILink.Failure) {
                        guard try link.receive(into: slot, capacity: shape.rows * shape.cols * dtype.size, shape: shape, dtype: dtype,
                                               item: index, slice: RankRunner.slice, stop: { stop.isSet }) else {
                            throw MPILink.Failure(status: 9, message: "rank \(link.peer) ended the stream before item \(index)")
                        }
                    } catch {
                        trouble.mark(k, stopped: stop.isSet)
                        throw error
                    }
                })
                source = Stage(name: "from rank \(link.peer)", work: .source(body), replicas: 1, outputShape: shape,
                               outputDType: dtype, inRunnerProcess: true)
            }
            let stop = runner.stop
            do throws(PipelineError) {
                let pipeline = Pipeline<E>(items: settings.items, source: source, stages: stages)
                let plan = try RunPlan(pipeline: pipeline, mode: settings.mode, buffer: settings.buffer,
                                       fusion: settings.fusion, ordered: settings.ordered, stallTimeout: settings.stallTimeout,
                                       progress: .never)
                let stats = try Supervisor<E>(plan: plan).run(cancelled: { stop.isSet }, monitor: nil, reduce)
                if let incoming {
                    do throws(MPILink.Failure) {
                        try incoming.expectEnd(slice: RankRunner.slice, stop: { stop.isSet })
                    } catch {
                        runner.linkTrouble.mark(index)
                        return .failure(.rankFailed(rank: incoming.peer, message: "\(error)"))
                    }
                }
                return .success(stats)
            } catch {
                return .failure(error)
            }
        }
    }
}

/// Which segments of a rank failed because a link did (a peer's failure, not their own),
/// and which stopped because another segment of the rank failed first.
final class LinkTrouble: Sendable {
    private let marked = Mutex<(links: Set<Int>, stopped: Set<Int>)>(([], []))
    /// Segment `segment`'s link failed; `stopped`: because the rank stopped it.
    func mark(_ segment: Int, stopped: Bool = false) {
        marked.withLock { _ = stopped ? $0.stopped.insert(segment) : $0.links.insert(segment) }
    }
    var segments: Set<Int> { marked.withLock { $0.links } }
    var stopped: Set<Int> { marked.withLock { $0.stopped } }
}
#endif
