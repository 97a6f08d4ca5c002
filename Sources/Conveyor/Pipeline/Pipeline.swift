#if canImport(Glibc)
import Glibc
#endif

/// Where a pipeline's stages run.
public enum ExecutionMode: String, Sendable, CaseIterable {
    /// Every stage worker is a thread of this process.
    case threads
    /// Every stage worker is its own process, forked from this one; all rings live in
    /// shared memory. Stages must follow the rules in ``Pipeline``.
    case processes
}

/// A producer-consumer pipeline of matrices: a source, stages, and a sink, joined by rings.
///
/// Each item is generated straight into a shared-memory slot by the source. Kernel stages
/// transform it in that slot and hand the slot on; a closure stage reads it in place and
/// writes its output straight into a slot of its own; the sink reduces items in order, in
/// place, and hands the slot back for reuse. No matrix is copied, serialized or allocated
/// per item: rings carry only item numbers. Because only a few slots cycle, the working
/// set stays in the last-level cache.
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
/// the rings. A stage that throws, crashes or exits is reported by name, with the item.
public struct Pipeline<Element: MatrixElement>: Sendable {
    let items: Int
    let shape: Shape
    let source: Stage<Element>
    let sourceBody: @Sendable (Int, inout Matrix<Element>) throws -> Void
    var stages: [Stage<Element>] = []

    /// A pipeline whose source writes item `index` (0..<items) into a rows × cols slot.
    /// `replicas` copies of the source can run side by side (items dealt round-robin).
    public init(items: Int, rows: Int, cols: Int, of element: Element.Type = Element.self,
                sourceName: String = "source", replicas: Int = 1,
                source: @escaping @Sendable (_ index: Int, _ matrix: inout Matrix<Element>) throws -> Void) {
        self.items = items
        self.shape = Shape(rows: rows, cols: cols)
        self.source = Stage(name: sourceName, work: .kernel([]), replicas: replicas, outputShape: nil)
        self.sourceBody = source
    }

    /// Adds a kernel stage: `program` runs in the C kernels from the input slot to the
    /// output slot. Adjacent kernel stages are fused by default (see ``run(_:buffer:fusion:into:_:)``).
    public func stage(_ name: String, _ program: [ElementwiseOp<Element>], replicas: Int = 1) -> Pipeline {
        var next = self
        next.stages.append(Stage(name: name, work: .kernel(program), replicas: replicas, outputShape: nil))
        return next
    }

    /// Adds a closure stage: `body` reads `input` in place and writes `output` in place (a
    /// slot of rows × cols, by default the input's shape).
    public func stage(_ name: String, rows: Int? = nil, cols: Int? = nil, replicas: Int = 1,
                      _ body: @escaping @Sendable (_ input: Matrix<Element>, _ output: inout Matrix<Element>) throws -> Void)
        -> Pipeline
    {
        var next = self
        let out = rows != nil || cols != nil ? Shape(rows: rows ?? shapeAfterStages.rows, cols: cols ?? shapeAfterStages.cols) : nil
        next.stages.append(Stage(name: name, work: .closure(body), replicas: replicas, outputShape: out))
        return next
    }

    /// The shape items have after the stages added so far.
    var shapeAfterStages: Shape { stages.reduce(shape) { $1.outputShape ?? $0 } }

    /// Runs the pipeline to completion and reduces every item, in order, with `reduce`.
    ///
    /// - Parameters:
    ///   - mode: threads or processes.
    ///   - buffer: slots each producing worker (a source or closure-stage replica) owns:
    ///     at most `buffer` of its items are in flight, and it waits for a slot to come
    ///     back before writing more (backpressure). Small is fast: 2–3 slots keep the
    ///     working set in cache. Shared memory is fixed at start and reported in the stats.
    ///   - fusion: fuse adjacent kernel stages (results are identical either way).
    /// - Throws: ``PipelineError`` naming the stage and item when anything fails; nothing
    ///   (process, thread, shared memory) is left behind.
    public func run<Result>(_ mode: ExecutionMode = .threads, buffer: Int = 3, fusion: Bool = true,
                            into initial: Result,
                            _ reduce: (inout Result, Matrix<Element>) throws -> Void) throws(PipelineError)
        -> PipelineRun<Result>
    {
        var result = initial
        let stats = try PipelineRunner(pipeline: self, mode: mode, buffer: buffer, fusion: fusion)
            .run(cancelled: { false }) { (matrix: Matrix<Element>) in try reduce(&result, matrix) }
        return PipelineRun(result: result, stats: stats)
    }

    /// ``run(_:buffer:fusion:into:_:)`` from async code: the run happens on its own
    /// threads, and cancelling the task stops every stage within a few milliseconds and
    /// throws ``PipelineError/cancelled``.
    public func run<Result: Sendable>(_ mode: ExecutionMode = .threads, buffer: Int = 3, fusion: Bool = true,
                                      into initial: Result,
                                      _ reduce: @escaping @Sendable (inout Result, Matrix<Element>) throws -> Void)
        async throws(PipelineError) -> PipelineRun<Result>
    {
        let flag = CancellationFlag()
        let outcome: Swift.Result<PipelineRun<Result>, PipelineError> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let pipeline = self
                // Detached: nobody joins it; the continuation carries its result back.
                let thread = startThread {
                    var result = initial
                    do throws(PipelineError) {
                        let stats = try PipelineRunner(pipeline: pipeline, mode: mode, buffer: buffer, fusion: fusion)
                            .run(cancelled: { flag.isSet }) { (matrix: Matrix<Element>) in try reduce(&result, matrix) }
                        continuation.resume(returning: .success(PipelineRun(result: result, stats: stats)))
                    } catch {
                        continuation.resume(returning: .failure(error))
                    }
                }
                if let thread { pthread_detach(thread) } else {
                    continuation.resume(returning: .failure(.setupFailed("could not start the pipeline's thread")))
                }
            }
        } onCancel: {
            flag.set()
        }
        return try outcome.get()
    }
}

/// The outcome of a run: the sink's result and the per-stage statistics.
public struct PipelineRun<Result> {
    /// What the reduce produced.
    public var result: Result
    /// Per-stage statistics of the run.
    public var stats: PipelineStats
}

extension PipelineRun: Sendable where Result: Sendable {}
