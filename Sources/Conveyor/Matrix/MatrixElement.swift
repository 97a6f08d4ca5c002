/// The element types of a ``Matrix``: `Float` and `Double`, the two types the C kernels
/// implement.
///
/// Conveyor conforms exactly these two; conforming another type is unsupported and traps
/// on first use of a kernel.
public protocol MatrixElement: BinaryFloatingPoint, Sendable {
    /// The element's data type tag, as stored in ring frames and reported by tools.
    static var dtype: DType { get }
}

extension Double: MatrixElement {
    /// ``DType/float64``.
    public static var dtype: DType { .float64 }
}

extension Float: MatrixElement {
    /// ``DType/float32``.
    public static var dtype: DType { .float32 }
}
