internal import CKernels

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

extension DType {
    /// The one mapping between ``DType`` and C's `enum conveyor_dtype` (the `dtype` field
    /// of a frame): ``float32`` is `CONVEYOR_DTYPE_F32`, ``float64`` `CONVEYOR_DTYPE_F64`.
    /// Cost: none.
    var conveyorDType: UInt32 {
        switch self {
        case .float32: UInt32(CONVEYOR_DTYPE_F32.rawValue)
        case .float64: UInt32(CONVEYOR_DTYPE_F64.rawValue)
        }
    }

    /// The element type of a frame's C `dtype` field; nil for `CONVEYOR_DTYPE_BYTES` and
    /// for any code Swift has no element type for.
    init?(conveyorDType code: UInt32) {
        switch code {
        case UInt32(CONVEYOR_DTYPE_F32.rawValue): self = .float32
        case UInt32(CONVEYOR_DTYPE_F64.rawValue): self = .float64
        default: return nil
        }
    }
}
