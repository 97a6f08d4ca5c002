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

/// A numeric data type tag. The raw values are stable: they travel between processes.
public enum DType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// 32-bit IEEE 754 float (`Float`, C `float`, numpy `float32`).
    case float32 = 1
    /// 64-bit IEEE 754 float (`Double`, C `double`, numpy `float64`).
    case float64 = 2

    /// Bytes per element: 4 or 8.
    public var size: Int { self == .float32 ? 4 : 8 }

    /// numpy's name for it: `"float32"` or `"float64"`.
    public var description: String { self == .float32 ? "float32" : "float64" }
}
