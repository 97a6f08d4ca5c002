/// Why a ``Matrix`` operation refused its input.
///
/// Thrown (typed) by every matrix API that can meet bad input: Conveyor never broadcasts
/// silently, truncates, or crashes on a shape it cannot use.
public enum MatrixError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A dimension is negative, or rows × cols × element size overflows `Int`.
    case invalidShape(rows: Int, cols: Int)
    /// Two operands of an elementwise operation have different shapes.
    case shapeMismatch(expected: Shape, actual: Shape)
    /// An array of elements does not have rows × cols of them.
    case countMismatch(expected: Int, actual: Int)
    /// The aligned allocation of this many bytes failed.
    case allocationFailed(bytes: Int)
    /// A fused program has more steps than the kernels accept.
    case programTooLong(steps: Int, limit: Int)
    /// A program step reads a matrix operand where there is no matrix to match it against
    /// (``Matrix/uniformSum(rows:cols:seed:stream:applying:)``).
    case operandNotAllowed(step: Int)

    /// A human-readable explanation naming the offending values.
    public var description: String {
        switch self {
        case let .invalidShape(rows, cols):
            return "invalid matrix shape \(rows)x\(cols): dimensions must be >= 0 and the byte size must fit in Int"
        case let .shapeMismatch(expected, actual):
            return "shape mismatch: expected \(expected), got \(actual) (Conveyor never broadcasts)"
        case let .countMismatch(expected, actual):
            return "element count mismatch: the shape needs \(expected) elements, got \(actual)"
        case let .allocationFailed(bytes):
            return "could not allocate \(bytes) bytes of 64-byte-aligned memory"
        case let .programTooLong(steps, limit):
            return "a fused program has \(steps) steps; the limit is \(limit)"
        case let .operandNotAllowed(step):
            return "program step \(step) reads a matrix operand; only scalar steps can run on generated values"
        }
    }
}

/// The shape of a matrix: rows × cols.
public struct Shape: Hashable, Sendable, CustomStringConvertible {
    /// Number of rows (≥ 0).
    public var rows: Int
    /// Number of columns (≥ 0).
    public var cols: Int

    /// A shape; not validated until used to make a matrix.
    public init(rows: Int, cols: Int) {
        self.rows = rows
        self.cols = cols
    }

    /// `"500x2000"`.
    public var description: String { "\(rows)x\(cols)" }
}
