internal import CKernels

/// One step of a ``Pipeline``: what it does to each item, how many copies run it, and the
/// shape and dtype of what it writes (declared up front, so slots are sized before the run).
///
/// The work is stored with its element types erased: a closure stage may turn `Double`
/// items into `Float` ones, so one pipeline holds stages of several dtypes. The typed
/// code lives in the closures made when the stage was declared.
struct Stage: Sendable {
    /// The work a stage does on one item.
    enum Work: Sendable {
        /// Writes item `index` into an empty slot.
        case source(SourceBody)
        /// A fused elementwise program run by the C kernels in the item's slot.
        case kernel(KernelProgram)
        /// Any Swift code: reads the input slot in place, writes an output slot in place.
        case closure(ClosureBody)
        /// Another program (C, Python, Swift...), started by the worker, which reads the
        /// input slot and writes an output slot in place (conveyor.h section 10).
        case external(ExternalCommand)
    }

    /// The name used in stats and errors.
    var name: String
    /// What the stage does.
    var work: Work
    /// Copies of the stage running side by side (items are dealt round-robin).
    var replicas: Int
    /// Shape of the matrices the stage outputs.
    var outputShape: Shape
    /// Element type of the matrices the stage outputs.
    var outputDType: DType
    /// The rank of an MPI job the stage runs on, when it names one (``Placement``).
    var placement: Placement? = nil
    /// The stage's workers are threads of the running process in every mode: a bridge
    /// that drives an MPI link, which a forked child must not touch.
    var inRunnerProcess = false
}

/// The program an external stage runs: its path first, then its arguments. Each replica
/// gets its own process, started with posix_spawn when the run starts. In place, the
/// program writes its output into its input slot, which is handed on (as a kernel stage
/// does): no pool of its own, no copy.
struct ExternalCommand: Sendable {
    let command: [String]
    let inPlace: Bool
}

/// A source with its element type erased: fills the slot at `slot` (a `shape` matrix) with
/// item `index`.
struct SourceBody: Sendable {
    let run: @Sendable (_ index: Int, _ slot: UnsafeMutableRawPointer, _ shape: Shape, _ lender: AnyObject) throws -> Void

    /// A source that writes the raw bytes of the slot itself (a bridge receiving into it).
    init(raw: @escaping @Sendable (_ index: Int, _ slot: UnsafeMutableRawPointer, _ shape: Shape, _ lender: AnyObject) throws -> Void) {
        run = raw
    }

    init<Element: MatrixElement>(_ body: @escaping @Sendable (Int, inout Matrix<Element>) throws -> Void) {
        run = { index, slot, shape, lender in
            try SlotMatrix.withMatrix(slot: slot.assumingMemoryBound(to: Element.self), rows: shape.rows,
                                      cols: shape.cols, lender: lender, writeBack: true) { (m: inout Matrix<Element>) in
                try body(index, &m)
                try SlotReplaced.check(m.shape, slot: shape)
            }
        }
    }
}

/// A closure stage with its element types erased: reads the `Input` matrix at `input` in
/// place and writes the `Output` matrix at `output` in place.
struct ClosureBody: Sendable {
    let run: @Sendable (_ input: UnsafeMutableRawPointer, _ inShape: Shape, _ output: UnsafeMutableRawPointer,
                        _ outShape: Shape, _ lender: AnyObject) throws -> Void

    init<Input: MatrixElement, Output: MatrixElement>(
        _ body: @escaping @Sendable (Matrix<Input>, inout Matrix<Output>) throws -> Void
    ) {
        run = { input, inShape, output, outShape, lender in
            try SlotMatrix.withMatrix(slot: input.assumingMemoryBound(to: Input.self), rows: inShape.rows,
                                      cols: inShape.cols, lender: lender, writeBack: false) { (x: inout Matrix<Input>) in
                let view = x
                try SlotMatrix.withMatrix(slot: output.assumingMemoryBound(to: Output.self), rows: outShape.rows,
                                          cols: outShape.cols, lender: lender, writeBack: true) { (m: inout Matrix<Output>) in
                    try body(view, &m)
                    try SlotReplaced.check(m.shape, slot: outShape)
                }
            }
        }
    }
}

/// A stage replaced its output matrix by one of another shape: the slot cannot hold it.
/// Thrown (and reported as the stage's failure) rather than trapping in `SlotMatrix`.
struct SlotReplaced: Error, CustomStringConvertible {
    let slot: Shape, replacement: Shape

    static func check(_ shape: Shape, slot: Shape) throws(SlotReplaced) {
        if shape != slot { throw SlotReplaced(slot: slot, replacement: shape) }
    }

    var description: String {
        "the stage replaced its \(slot) output slot with a \(replacement) matrix; write into it in place"
    }
}

/// A kernel stage's program with its element type erased. The C steps are made once, when
/// the stage is declared, so running it allocates nothing per item.
struct KernelProgram: Sendable {
    /// Runs the program in place over `count` elements at `slot`.
    let run: @Sendable (_ slot: UnsafeMutableRawPointer, _ count: Int) -> Void
    /// Why the program cannot run on `shape` items (too many steps, an operand of another
    /// shape), or nil.
    let problem: @Sendable (_ shape: Shape) -> String?
    private let typedOps: any Sendable
    private let append: @Sendable (_ next: KernelProgram) -> KernelProgram?

    init<Element: MatrixElement>(_ ops: [ElementwiseOp<Element>]) {
        // The steps point into the operand matrices' storage; `ops` keeps it alive, and a
        // caller's later write to its matrix copies on write, leaving this storage as is.
        let steps = UncheckedSteps(steps: KernelCalls.steps(ops))
        typedOps = ops
        run = { slot, count in
            withExtendedLifetime(ops) {
                let p = slot.assumingMemoryBound(to: Element.self)
                KernelCalls.program(p, p, count, steps: steps.steps)
            }
        }
        problem = { shape in
            do throws(MatrixError) {
                try ElementwiseOp.validate(ops, on: shape)
                return nil
            } catch {
                return "\(error)"
            }
        }
        append = { next in
            guard let more = next.typedOps as? [ElementwiseOp<Element>],
                  (try? ElementwiseOp<Element>.checkLength(ops.count + more.count)) != nil else { return nil }
            return KernelProgram(ops + more)
        }
    }

    /// This program followed by `next` as one program, or nil when they cannot be fused
    /// (different element types, or too many steps).
    func appending(_ next: KernelProgram) -> KernelProgram? { append(next) }
}

/// C steps hold raw pointers to operand storage that never changes while a run uses it.
private struct UncheckedSteps: @unchecked Sendable {
    let steps: [conveyor_op]
}

/// Fuses runs of adjacent kernel stages with the same replica count into one stage whose
/// program is their concatenation (named "h+g+f"): each item then crosses no channel between
/// them and memory sees one pass. Results are identical (the fused program applies the
/// same IEEE operations in the same order).
func fuse(_ stages: [Stage]) -> [Stage] {
    var fused: [Stage] = []
    for stage in stages {
        if case let .kernel(program) = stage.work, let last = fused.last, case let .kernel(previous) = last.work,
           last.replicas == stage.replicas, let joined = previous.appending(program) {
            fused[fused.count - 1].name += "+" + stage.name
            fused[fused.count - 1].work = .kernel(joined)
        } else {
            fused.append(stage)
        }
    }
    return fused
}
