import Synchronization

/// Where a pipeline's stages run.
public enum ExecutionMode: String, Sendable, CaseIterable {
    /// Every stage worker is a thread of this process.
    case threads
    /// Every stage worker is its own process, forked from this one; all slots and
    /// channels live in shared memory. Stages must follow the rules in ``Pipeline``.
    /// Starting a stage costs a fork (≈ 0.45 ms measured here).
    case processes
    /// Every stage replica runs in a new process of this program's own executable, started
    /// with posix_spawn, which finds its stage by name: its code runs in a fresh process,
    /// free to start threads and use Dispatch or Swift concurrency. Cost: a posix_spawn and
    /// the executable's start-up per replica (≈ 6.5 ms measured here, against ≈ 0.45 ms for
    /// a fork), then per item two channel words each way more than ``processes``.
    ///
    /// The copy runs `main` again from the start, so the program must reach this pipeline's
    /// ``Pipeline/serveIfSpawned()`` (or its `run`, which calls it first) before it does
    /// anything it must not do twice, as with Python's "spawn" start method; stage names
    /// must be unique. A copy that serves nothing is reported by stage and item.
    case spawnedProcesses
}

/// A producer-consumer pipeline of matrices: a source, stages, and a sink, joined by channels.
///
/// Each item is generated straight into a shared-memory slot by the source. Kernel stages
/// transform it in that slot and hand the slot on; a closure stage reads it in place and
/// writes its output straight into a slot of its own; the sink reduces items in order, in
/// place, and hands the slot back for reuse. No matrix is copied, serialized or allocated
/// per item: channels carry only item and slot numbers. Because only a few slots cycle, the
/// working set stays in the last-level cache.
///
/// Every stage declares the shape and element type it writes (a closure stage may change
/// both, see ``stage(_:rows:cols:as:replicas:on:_:)``), so all shared memory is sized and
/// mapped before the run starts, and reported in ``PipelineStats/sharedMemoryBytes``.
///
/// ```swift
/// let seed = Pipeline(items: 1000, rows: 500, cols: 2000, of: Double.self) { i, x in
///         x.fillUniform(seed: 2016, stream: UInt64(i)) }
///     .stage("h", [.square])
///     .stage("g", [.multiply(3)])
///     .stage("f", [.add(1)])
/// let run = try seed.run(.processes, into: 0.0) { total, x in total += x.sum() }
/// print(run.result, run.stats)
/// ```
///
/// Each stage worker runs the C kernels on one thread (a thread-local setting: the
/// process-wide ``Kernels/threads`` is left alone); parallelism comes from the stages and
/// their replicas.
///
/// Rules for stages in ``ExecutionMode/processes`` (each worker is a forked child): a
/// stage may compute on its input and captured constants and use Conveyor's kernels; it
/// must not rely on state shared with other stages or with the caller (each process has
/// its own copy), start threads, or use Dispatch or Swift concurrency (a forked child
/// inherits no running threads, and locks held by them at fork time would never be
/// released). Side effects a stage makes stay in its process; results travel only through
/// the slots and channels. A stage that throws, crashes or exits is reported by name, with
/// the item; one that deadlocks (the usual way these rules break) is killed once it has spent
/// `stallTimeout` on one item, and reported as ``PipelineError/stageStalled(stage:item:seconds:)``.
public struct Pipeline<Element: MatrixElement>: Sendable {
    let items: Int
    let source: Stage
    var stages: [Stage] = []

    /// A pipeline whose source writes item `index` (0..<items) into a rows × cols slot.
    /// `replicas` copies of the source can run side by side (items dealt round-robin).
    public init(items: Int, rows: Int, cols: Int, of element: Element.Type = Element.self,
                sourceName: String = "source", replicas: Int = 1,
                source: @escaping @Sendable (_ index: Int, _ matrix: inout Matrix<Element>) throws -> Void) {
        self.items = items
        self.source = Stage(name: sourceName, work: .source(SourceBody(source)), replicas: replicas,
                            outputShape: Shape(rows: rows, cols: cols), outputDType: Element.dtype)
    }

    init(items: Int, source: Stage, stages: [Stage]) {
        self.items = items
        self.source = source
        self.stages = stages
    }

    /// The shape of the items this pipeline's last stage writes.
    public var outputShape: Shape { stages.last?.outputShape ?? source.outputShape }

    /// Adds a kernel stage: `program` runs in the C kernels on the item in its slot, which
    /// is then handed on. Adjacent kernel stages are fused by default (see `fusion` in
    /// ``run(_:buffer:fusion:ordered:dealing:monitor:stallTimeout:progress:into:_:)-40a6e``). An operand matrix in
    /// `program` must have the items' shape, and a program has at most 16 steps; `run` reports a
    /// violation as ``PipelineError/invalidDefinition(_:)``.
    ///
    /// `on` places the stage (all its replicas) on a rank of an MPI job, for
    /// `runAcrossRanks` (trait MPI); a stage that names none runs where the one
    /// before it does (the source on rank 0).
    /// ``run(_:buffer:fusion:ordered:dealing:monitor:stallTimeout:progress:into:_:)-40a6e`` refuses a stage placed
    /// on a rank other than 0.
    public func stage(_ name: String, _ program: [ElementwiseOp<Element>], replicas: Int = 1,
                      on placement: Placement? = nil) -> Pipeline {
        var next = self
        next.stages.append(Stage(name: name, work: .kernel(KernelProgram(program)), replicas: replicas,
                                 outputShape: outputShape, outputDType: Element.dtype, placement: placement))
        return next
    }

    /// Adds a closure stage: `body` reads `input` in place and writes `output` in place (a
    /// slot of rows × cols, by default the input's shape).
    ///
    /// Cost per item: the body's own work; the matrices are views of shared slots. Replacing
    /// `output` by a matrix of the same shape copies it into the slot; another shape fails
    /// the stage with a message. `on` places the stage on a rank, as for kernel stages.
    public func stage(_ name: String, rows: Int? = nil, cols: Int? = nil, replicas: Int = 1, on placement: Placement? = nil,
                      _ body: @escaping @Sendable (_ input: Matrix<Element>, _ output: inout Matrix<Element>) throws -> Void)
        -> Pipeline
    {
        stage(name, rows: rows, cols: cols, as: Element.self, replicas: replicas, on: placement, body)
    }

    /// Adds a closure stage whose output has another element type, declared up front so
    /// that its slots are sized before the run: `body` reads `input` (of `Element`) in
    /// place and writes `output`, a rows × cols slot of `Output` (by default the input's
    /// shape). The pipeline continues with `Output` items.
    ///
    /// ```swift
    /// .stage("to-f32", as: Float.self) { input, output in
    ///     for i in 0..<input.rows { for j in 0..<input.cols { output[i, j] = Float(input[i, j]) } } }
    /// ```
    public func stage<Output: MatrixElement>(
        _ name: String, rows: Int? = nil, cols: Int? = nil, as output: Output.Type, replicas: Int = 1,
        on placement: Placement? = nil,
        _ body: @escaping @Sendable (_ input: Matrix<Element>, _ output: inout Matrix<Output>) throws -> Void
    ) -> Pipeline<Output> {
        let shape = Shape(rows: rows ?? outputShape.rows, cols: cols ?? outputShape.cols)
        let stage = Stage(name: name, work: .closure(ClosureBody(body)), replicas: replicas,
                          outputShape: shape, outputDType: Output.dtype, placement: placement)
        return Pipeline<Output>(items: items, source: source, stages: stages + [stage])
    }

    /// Adds an external stage: a program that reads each input in place and writes its
    /// output in place into a rows × cols slot of `Output` (by default the input's shape
    /// and element type), serving items through `conveyor_stage_serve` (C), `serve_stage`
    /// (Python) or ``StageServer`` (Swift). Each replica gets its own process, started
    /// with posix_spawn when the run starts (`command[0]` is the program's path); it is
    /// told the declared shapes and dtypes and refuses, with a message, those it cannot
    /// serve.
    ///
    /// With `inPlace`, the program writes its output over its input, in the slot it
    /// received, which is then handed on as a kernel stage's is: the stage has no slots of
    /// its own (less shared memory, a smaller working set); the output must then have the
    /// input's shape and element type, and the program must accept in-place work (`run`
    /// reports otherwise).
    ///
    /// Cost per item: the program's own work plus two channel words each way (well under a
    /// microsecond); the matrices stay in their slots. A program that fails, crashes, exits
    /// early, refuses its contract or stalls is reported by name and item, and killed and
    /// reaped when the run stops.
    public func external<Output: MatrixElement>(
        _ name: String, command: [String], rows: Int? = nil, cols: Int? = nil, as output: Output.Type,
        replicas: Int = 1, inPlace: Bool = false, on placement: Placement? = nil
    ) -> Pipeline<Output> {
        let shape = Shape(rows: rows ?? outputShape.rows, cols: cols ?? outputShape.cols)
        let stage = Stage(name: name, work: .external(ExternalCommand(command: command, inPlace: inPlace)),
                          replicas: replicas, outputShape: shape, outputDType: Output.dtype, placement: placement)
        return Pipeline<Output>(items: items, source: source, stages: stages + [stage])
    }

    /// An external stage whose output has the input's element type: see
    /// ``external(_:command:rows:cols:as:replicas:inPlace:on:)``.
    public func external(_ name: String, command: [String], rows: Int? = nil, cols: Int? = nil,
                         replicas: Int = 1, inPlace: Bool = false, on placement: Placement? = nil) -> Pipeline {
        external(name, command: command, rows: rows, cols: cols, as: Element.self, replicas: replicas, inPlace: inPlace,
                 on: placement)
    }

    /// Runs the pipeline to completion and reduces every item, in order, with `reduce`.
    ///
    /// - Parameters:
    ///   - mode: threads, forked processes, or spawned processes (see ``ExecutionMode``).
    ///   - buffer: slots each producing worker (a source or closure-stage replica) owns:
    ///     at most `buffer` of its items are in flight, and it waits for a slot to come
    ///     back before writing more (backpressure). Small is fast: 2–3 slots keep the
    ///     working set in cache. Shared memory is fixed at start and reported in the stats.
    ///   - fusion: fuse adjacent kernel stages (results are identical either way).
    ///   - ordered: `true` (the default) reduces items in index order. `false` reduces them
    ///     as they arrive from the last stage's replicas (an order-free merge), so an item
    ///     that is slow in one replica does not hold back the items other replicas finished;
    ///     use it when `reduce` does not depend on the order. Each replica of a stage still
    ///     sees its items in increasing order.
    ///   - dealing: how replicas get their items: ``Dealing/roundRobin`` (item i to replica
    ///     i % r, the default) or ``Dealing/dynamic`` (to whichever replica is ready next:
    ///     faster when items take uneven time). Results are the same either way.
    ///   - monitor: lets other threads read the run's statistics while it runs.
    ///   - stallTimeout: the longest a stage may compute on one item. A stage busy for
    ///     longer (a deadlock, an endless loop) stops the run with
    ///     ``PipelineError/stageStalled(stage:item:seconds:)`` instead of hanging it; nil
    ///     waits forever. Waiting for input or for a slot never counts.
    ///   - progress: whether a progress line goes to stderr; by default only when stderr is
    ///     a terminal (see ``ProgressDisplay``).
    ///   - initial: the result before the first item (`into: 0.0` for a sum).
    ///   - reduce: folds each item into the result, in index order (or as items arrive
    ///     when `ordered` is `false`), on the calling thread. The matrix is a read-only view
    ///     of the item's slot, valid only during the call: compute from it, do not keep it
    ///     (a copy kept past the call is detached from the slot). A throw stops the run
    ///     with ``PipelineError/sinkFailed(item:message:)``.
    /// - Throws: ``PipelineError`` naming the stage and item when anything fails; nothing
    ///   (process, thread, shared memory) is left behind.
    public func run<Result>(_ mode: ExecutionMode = .threads, buffer: Int = 3, fusion: Bool = true,
                            ordered: Bool = true, dealing: Dealing = .roundRobin, monitor: PipelineMonitor? = nil,
                            stallTimeout: Duration? = .seconds(60), progress: ProgressDisplay = .automatic,
                            into initial: Result,
                            _ reduce: (inout Result, Matrix<Element>) throws -> Void) throws(PipelineError)
        -> PipelineRun<Result>
    {
        if mode == .spawnedProcesses { serveIfSpawned(); SpawnedStage.refuseIfSpawned() }
        var result = initial
        let plan = try RunPlan(pipeline: self, mode: mode, buffer: buffer, fusion: fusion, ordered: ordered,
                               dealing: dealing, stallTimeout: stallTimeout, progress: progress)
        let stats = try Supervisor<Element>(plan: plan)
            .run(cancelled: { false }, monitor: monitor) { (matrix: Matrix<Element>) in try reduce(&result, matrix) }
        return PipelineRun(result: result, stats: stats)
    }

    /// ``run(_:buffer:fusion:ordered:dealing:monitor:stallTimeout:progress:into:_:)-40a6e`` from async
    /// code. The run happens on a thread of its own (`BlockingThreads`; its stages have
    /// theirs), never on one of Swift's cooperative threads: the awaiting task is suspended, not blocked, and resumes
    /// when the run ends. Cancelling the task stops every stage within a wait slice (10 ms)
    /// and throws ``PipelineError/cancelled``.
    public func run<Result: Sendable>(_ mode: ExecutionMode = .threads, buffer: Int = 3, fusion: Bool = true,
                                      ordered: Bool = true, dealing: Dealing = .roundRobin, monitor: PipelineMonitor? = nil,
                                      stallTimeout: Duration? = .seconds(60), progress: ProgressDisplay = .automatic,
                                      into initial: Result,
                                      _ reduce: @escaping @Sendable (inout Result, Matrix<Element>) throws -> Void)
        async throws(PipelineError) -> PipelineRun<Result>
    {
        if mode == .spawnedProcesses { serveIfSpawned(); SpawnedStage.refuseIfSpawned() }
        let plan = try RunPlan(pipeline: self, mode: mode, buffer: buffer, fusion: fusion, ordered: ordered,
                               dealing: dealing, stallTimeout: stallTimeout, progress: progress)
        let flag = CancellationFlag()
        let outcome: Swift.Result<PipelineRun<Result>, PipelineError> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                // The run blocks for as long as it lasts: on a dedicated thread of
                // BlockingThreads (as the async ring waits do), never on the pool's.
                let status = BlockingThreads.run {
                    var result = initial
                    do throws(PipelineError) {
                        let stats = try Supervisor<Element>(plan: plan).run(cancelled: { flag.isSet }, monitor: monitor) {
                            (matrix: Matrix<Element>) in try reduce(&result, matrix)
                        }
                        continuation.resume(returning: .success(PipelineRun(result: result, stats: stats)))
                    } catch {
                        continuation.resume(returning: .failure(error))
                    }
                }
                if status != 0 {
                    let error = SystemCallError(call: "pthread_create", errno: status)
                    continuation.resume(returning: .failure(.setupFailed("could not start the pipeline's thread: \(error)")))
                }
            }
        } onCancel: {
            flag.set()
        }
        return try outcome.get()
    }
}

/// Set once from a task's cancellation handler, read by the sink of the run it cancels.
final class CancellationFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func set() { flag.store(true, ordering: .releasing) }
    var isSet: Bool { flag.load(ordering: .acquiring) }
}

/// The outcome of a run: the sink's result and the per-stage statistics.
public struct PipelineRun<Result> {
    /// What the reduce produced.
    public var result: Result
    /// Per-stage statistics of the run.
    public var stats: PipelineStats
}

extension PipelineRun: Sendable where Result: Sendable {}
