/// One step of a ``Pipeline``: what it does to each item, and how many copies run it.
struct Stage<Element: MatrixElement>: Sendable {
    /// The work a stage does on one item.
    enum Work: Sendable {
        /// A fused elementwise program run by the C kernels, input slot to output slot.
        case kernel([ElementwiseOp<Element>])
        /// Any Swift code: read `input` in place, write `output` (a slot) in place.
        case closure(@Sendable (_ input: Matrix<Element>, _ output: inout Matrix<Element>) throws -> Void)
    }

    /// The name used in stats and errors.
    var name: String
    /// What the stage does.
    var work: Work
    /// Copies of the stage running side by side, each on its own rings (items are dealt
    /// round-robin and merged back in order).
    var replicas: Int
    /// Output shape (rows, cols); nil keeps the input's.
    var outputShape: Shape?

    var isKernel: Bool { if case .kernel = work { return true } else { return false } }
}

/// Fuses runs of adjacent kernel stages with the same replica count and no shape change into
/// one stage whose program is their concatenation (named "h+g+f"): each item then crosses
/// no ring between them and memory sees one pass. Results are identical (the fused program
/// applies the same IEEE operations in the same order).
func fuse<Element>(_ stages: [Stage<Element>]) -> [Stage<Element>] {
    var fused: [Stage<Element>] = []
    for stage in stages {
        if case let .kernel(ops) = stage.work, stage.outputShape == nil,
           let last = fused.last, case let .kernel(previous) = last.work, last.replicas == stage.replicas,
           last.outputShape == nil, previous.count + ops.count <= ElementwiseOp<Element>.maxProgramLength {
            fused[fused.count - 1] = Stage(name: last.name + "+" + stage.name, work: .kernel(previous + ops),
                                           replicas: stage.replicas, outputShape: nil)
        } else {
            fused.append(stage)
        }
    }
    return fused
}
