internal import CKernels

/// One step of a fused elementwise program, applied to the running value `v` of every
/// element.
///
/// A program (`[ElementwiseOp]`) runs in one pass over memory: Conveyor walks the matrix in
/// L1-sized blocks and applies every step to a block before writing it, so
/// `[.square, .multiply(3), .add(1)]` costs what one step costs and gives the same bits as
/// three separate operations. The corresponding C type is `conveyor_op`.
public enum ElementwiseOp<Element: MatrixElement>: Sendable {
    /// v + a
    case add(Element)
    /// v - a
    case subtract(Element)
    /// a - v
    case scalarMinus(Element)
    /// v * a
    case multiply(Element)
    /// v / a
    case divide(Element)
    /// a / v
    case scalarOver(Element)
    /// v * v
    case square
    /// scale * v + offset, rounded twice (no fused multiply-add), like the two steps.
    case affine(scale: Element, offset: Element)
    /// min(v, a); a NaN in v propagates.
    case minimum(Element)
    /// max(v, a); a NaN in v propagates.
    case maximum(Element)
    /// v + m[i]; `m` must have the program's shape.
    case addMatrix(Matrix<Element>)
    /// v - m[i]
    case subtractMatrix(Matrix<Element>)
    /// v * m[i]
    case multiplyMatrix(Matrix<Element>)
    /// v / m[i]
    case divideMatrix(Matrix<Element>)
    /// min(v, m[i])
    case minimumMatrix(Matrix<Element>)
    /// max(v, m[i])
    case maximumMatrix(Matrix<Element>)

    /// The most steps one program may have: the C core's `CONVEYOR_PROGRAM_MAX_OPS` (16).
    public static var maxProgramLength: Int { Int(CONVEYOR_PROGRAM_MAX_OPS) }

    /// The one program-length rule: throws ``MatrixError/programTooLong(steps:limit:)``
    /// when a program of `steps` steps is longer than ``maxProgramLength``. `Matrix.apply`,
    /// `uniformSum` and the pipeline's kernel stages (also when fusing two) all ask here.
    static func checkLength(_ steps: Int) throws(MatrixError) {
        guard steps <= maxProgramLength else { throw .programTooLong(steps: steps, limit: maxProgramLength) }
    }

    /// Checks that `program` can run on `shape` matrices: at most ``maxProgramLength``
    /// steps, and every matrix operand of that shape. Shared by `Matrix.apply` and the
    /// pipeline's kernel stages.
    static func validate(_ program: [ElementwiseOp], on shape: Shape) throws(MatrixError) {
        try checkLength(program.count)
        for case let operand? in program.lazy.map(\.operand) where operand.shape != shape {
            throw .shapeMismatch(expected: shape, actual: operand.shape)
        }
    }

    /// The matrix operand of the step, if it has one.
    var operand: Matrix<Element>? {
        switch self {
        case let .addMatrix(m), let .subtractMatrix(m), let .multiplyMatrix(m),
             let .divideMatrix(m), let .minimumMatrix(m), let .maximumMatrix(m):
            return m
        default:
            return nil
        }
    }
}
