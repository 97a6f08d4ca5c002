internal import CKernels

#if canImport(Glibc)
import Glibc  // exit
#endif

/// The program side of a pipeline stage, in Swift: a process started by a pipeline (of
/// any language: Swift's ``Pipeline``, Python's `conveyor.Pipeline`) serves its items
/// through `conveyor_stage_serve` (conveyor.h section 10), reading each input in place in
/// the upstream slot and writing its output in place in a slot of the pipeline's.
///
/// ```swift
/// // g-stage: the g of the question, as a program.
/// exit(StageServer.serve(input: Double.self, output: Double.self) { x, out in
///     out = try x.applying([.multiply(3)]) })   // same shape: copied into the slot
/// ```
public enum StageServer {
    /// Serves the stage this process was started for until the pipeline ends the stream:
    /// `body` reads `input` (a view of the upstream slot: rows × cols of `Input`, as the
    /// pipeline declares) and writes `output` in place (the declared shape, of `Output`).
    ///
    /// Returns the exit status to leave with: 0 at end of stream, 1 after a failure (a
    /// throwing `body`, a protocol error, a dead pipeline), 2 when the pipeline's contract
    /// cannot be served (no or a malformed CONVEYOR_STAGE, other element types, a shape
    /// that is not two-dimensional); the reason is written to the pipeline's report pipe,
    /// which the pipeline shows with the stage's name and the item. Cost per item: `body`
    /// plus two channel receives and a send; nothing is copied.
    public static func serve<Input: MatrixElement, Output: MatrixElement>(
        input: Input.Type, output: Output.Type,
        _ body: @escaping @Sendable (_ input: Matrix<Input>, _ output: inout Matrix<Output>) throws -> Void
    ) -> Int32 {
        var contract = conveyor_stage_contract()
        contract.input = side(Input.dtype, shape: nil)
        contract.output = side(Output.dtype, shape: nil)
        return run(.closure(ClosureBody(body)), contract)
    }

    /// The contract side for `dtype`, two-dimensional, of `shape` (any extents when nil).
    static func side(_ dtype: DType, shape: Shape?) -> conveyor_stage_side {
        var side = conveyor_stage_side()
        side.dtype = dtype.conveyorDType
        side.rank = 2
        side.shape.0 = UInt64(shape?.rows ?? 0)
        side.shape.1 = UInt64(shape?.cols ?? 0)
        return side
    }

    /// Serves `work` under `contract` on this thread, its kernels on one core (as in a
    /// forked stage process); returns `conveyor_stage_main`'s exit status.
    static func run(_ work: Stage.Work, _ contract: conveyor_stage_contract) -> Int32 {
        _ = conveyor_set_threads_local(1)
        let served = Unmanaged.passRetained(ServedWork(work))
        defer { served.release() }
        var contract = contract
        return conveyor_stage_main(&contract, serveItem, served.toOpaque())
    }
}

/// What a serving process runs per item, kept alive across the C loop. It is also the
/// lender of the slot views (`SlotMatrix`), which live no longer than one call.
private final class ServedWork {
    let work: Stage.Work
    init(_ work: Stage.Work) { self.work = work }
}

/// The C callback: runs the work on one item's slots; a thrown error becomes the failure
/// message, which `conveyor_stage_serve` reports with the item.
private let serveItem: conveyor_stage_fn = { context, item, message, size in
    let served = Unmanaged<ServedWork>.fromOpaque(context!).takeUnretainedValue()
    let item = item!.pointee
    let out = Shape(frame: item.output_info.pointee)
    do {
        switch served.work {
        case let .source(body):
            try body.run(Int(item.item), item.output, out, served)
        case let .kernel(program):
            program.run(item.output, out.rows * out.cols)  // in place: output is the input slot
        case let .closure(body):
            try body.run(UnsafeMutableRawPointer(mutating: item.input!), Shape(frame: item.input_info.pointee),
                         item.output, out, served)
        case .external:
            throw StageProcessError(message: "an external stage cannot be served by this process")
        }
        return 0
    } catch {
        let text = Array("\(error)".utf8.prefix(max(0, size - 1)))
        text.withUnsafeBufferPointer { bytes in
            UnsafeMutableRawPointer(message!).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        }
        message![text.count] = 0
        return 1
    }
}

extension Shape {
    /// The rows × cols of a two-dimensional frame (the contract requires rank 2).
    init(frame: conveyor_frame_info) {
        self.init(rows: Int(frame.shape.0), cols: Int(frame.shape.1))
    }
}

extension Pipeline {
    /// In a process that a ``ExecutionMode/spawnedProcesses`` run of this pipeline started
    /// for one of its stages, serves that stage (found by the pipeline's identity and the
    /// node's index in CONVEYOR_SPAWNED) and exits; anywhere else, returns at once (cost:
    /// one `getenv`).
    ///
    /// Call it early in `main`, before anything the program must not do twice: the spawned
    /// copy runs `main` again up to here. `run(.spawnedProcesses, ...)` calls it first, so a
    /// program whose `main` goes straight to the run needs no call of its own. A copy whose
    /// pipeline has no stage of that name returns here (another pipeline of the program may
    /// serve it); one that reaches a spawned `run` without having served is stopped there
    /// and reported by the parent's run, with the stage and the item.
    public func serveIfSpawned() {
        guard let spawned = getenv(SpawnedStage.variable).map({ String(cString: $0) }) else { return }
        // The nodes as a run plans them, fused or not: the identity says which, and which node.
        for nodes in [[source] + stages, [source] + fuse(stages)] {
            guard let n = SpawnedStage.node(in: spawned, of: nodes) else { continue }
            let stage = nodes[n]
            var contract = conveyor_stage_contract()
            if n > 0 { contract.input = StageServer.side(nodes[n - 1].outputDType, shape: nodes[n - 1].outputShape) }
            contract.output = StageServer.side(stage.outputDType, shape: stage.outputShape)
            contract.allow_source = n == 0 ? 1 : 0
            if case .kernel = stage.work { contract.allow_in_place = 1 }
            exit(StageServer.run(stage.work, contract))
        }
    }
}

/// Which stage a spawned copy of the executable is for: CONVEYOR_SPAWNED holds the
/// pipeline's identity (a hash of its planned nodes: names, kinds, shapes, dtypes and
/// replicas; not the item count, which a stage does not depend on) and the node's index. A copy serves only a pipeline whose plan
/// has that identity, so two stages that share a name (in two pipelines, or a fused and an
/// unfused name) are never confused.
enum SpawnedStage {
    static var variable: String { "CONVEYOR_SPAWNED" }

    /// "<identity> <node>" for node `n` of the planned `nodes`.
    static func value(nodes: [Stage], node n: Int) -> String { "\(identity(nodes)) \(n)" }

    /// The node index `value` names, if it names one of `nodes`.
    static func node(in value: String, of nodes: [Stage]) -> Int? {
        let parts = value.split(separator: " ")
        guard parts.count == 2, parts[0] == identity(nodes), let n = Int(parts[1]),
              nodes.indices.contains(n) else { return nil }
        return n
    }

    /// FNV-1a of the nodes' description, in hex.
    static func identity(_ nodes: [Stage]) -> String {
        var text = "conveyor-pipeline"
        for stage in nodes {
            let kind = switch stage.work {
            case .source: "source"
            case .kernel: "kernel"
            case .closure: "closure"
            case .external: "external"
            }
            text += "|\(stage.name)/\(kind)/\(stage.outputDType.rawValue)/\(stage.outputShape.rows)x\(stage.outputShape.cols)/\(stage.replicas)"
        }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return String(hash, radix: 16)
    }

    /// In a spawned copy whose pipeline was not served before a spawned run began: says so
    /// on the report fd the contract names (the pipeline shows it) and exits 2, instead of
    /// running a pipeline of its own.
    static func refuseIfSpawned() {
        guard getenv(variable) != nil else { return }
        let message = "this spawned copy reached a spawnedProcesses run before serving its stage: call "
            + "serveIfSpawned() on every pipeline the program runs spawned, early in main\n"
        try? Posix.write(StageContract.Target.report, Array(message.utf8))
        exit(2)
    }
}
