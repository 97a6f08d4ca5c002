internal import CKernels

/// A status code returned by the C core, as a typed Swift error.
///
/// Mirrors `enum conveyor_status` in `conveyor.h` one to one: the raw value is the C code,
/// ``name`` and ``message`` come from `conveyor_status_name` and `conveyor_status_message`.
/// Swift APIs that check their arguments before calling C throw ``MatrixError`` instead;
/// this type surfaces what only the core can detect, such as a serial build refusing
/// more than one thread.
public struct ConveyorError: Error, RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The C status code (never `CONVEYOR_OK`).
    public let rawValue: Int32

    /// Wraps a C status code. Cost: none.
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// A required pointer was NULL. The corresponding C code is `CONVEYOR_E_NULL_POINTER`.
    public static let nullPointer = ConveyorError(rawValue: Int32(CONVEYOR_E_NULL_POINTER.rawValue))
    /// An argument is outside its documented range (`CONVEYOR_E_INVALID_ARGUMENT`).
    public static let invalidArgument = ConveyorError(rawValue: Int32(CONVEYOR_E_INVALID_ARGUMENT.rawValue))
    /// A byte size overflows (`CONVEYOR_E_OVERFLOW`).
    public static let overflow = ConveyorError(rawValue: Int32(CONVEYOR_E_OVERFLOW.rawValue))
    /// A pointer is not aligned to its element type (`CONVEYOR_E_MISALIGNED`).
    public static let misaligned = ConveyorError(rawValue: Int32(CONVEYOR_E_MISALIGNED.rawValue))
    /// An output partially overlaps an input (`CONVEYOR_E_OVERLAP`).
    public static let overlap = ConveyorError(rawValue: Int32(CONVEYOR_E_OVERLAP.rawValue))
    /// The feature is not built in, e.g. threads without OpenMP (`CONVEYOR_E_UNSUPPORTED`).
    public static let unsupported = ConveyorError(rawValue: Int32(CONVEYOR_E_UNSUPPORTED.rawValue))
    /// An allocation failed (`CONVEYOR_E_NO_MEMORY`).
    public static let noMemory = ConveyorError(rawValue: Int32(CONVEYOR_E_NO_MEMORY.rawValue))

    /// The C symbol of the code, e.g. `"CONVEYOR_E_OVERLAP"`.
    public var name: String { String(cString: conveyor_status_name(rawValue)) }

    /// The C core's one-line explanation of the code.
    public var message: String { String(cString: conveyor_status_message(rawValue)) }

    /// `"CONVEYOR_E_OVERLAP: an output partially overlaps an input"`.
    public var description: String { "\(name): \(message)" }

    /// Throws the error a C status stands for; returns on `CONVEYOR_OK`.
    static func check(_ status: Int32) throws(ConveyorError) {
        if status != 0 { throw ConveyorError(rawValue: status) }
    }
}
