internal import CKernels

#if canImport(Glibc)
import Glibc
#endif

/// Why a ring operation did not complete.
///
/// End of stream is not an error: ``Consumer/receive(timeout:)`` returns `nil` for it.
public enum RingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Nothing became ready before the timeout.
    case timedOut
    /// The ring is closed: the producer may not loan any more.
    case closed
    /// The process on the other side died (or left) without closing the ring.
    case peerDied
    /// The task waiting on the ring was cancelled.
    case cancelled
    /// A frame of this many bytes does not fit in a slot of `capacity` bytes.
    case frameTooLarge(bytes: Int, capacity: Int)
    /// A frame holds another element type than the one asked for.
    case dtypeMismatch(expected: DType, actual: DType?)
    /// A frame is not two-dimensional, so it cannot be read as a matrix.
    case notAMatrix(rank: Int)
    /// A configuration value is out of range (the message names it).
    case invalidConfiguration(String)
    /// A status of the C core without a more specific case, with errno for system errors
    /// (e.g. `CONVEYOR_E_EXISTS`, `CONVEYOR_E_BUSY`, `CONVEYOR_E_NOT_A_RING`).
    case core(ConveyorError, errno: Int32)

    /// The error a C status stands for; `nil` for `CONVEYOR_OK`.
    init?(status: Int32) {
        switch status {
        case 0: return nil
        case Int32(CONVEYOR_E_TIMEOUT.rawValue): self = .timedOut
        case Int32(CONVEYOR_E_CLOSED.rawValue): self = .closed
        case Int32(CONVEYOR_E_PEER_DEAD.rawValue): self = .peerDied
        case Int32(CONVEYOR_E_SYSTEM.rawValue): self = .core(ConveyorError(rawValue: status), errno: errno)
        default: self = .core(ConveyorError(rawValue: status), errno: 0)
        }
    }

    /// Throws the error a C status stands for; returns on `CONVEYOR_OK`.
    static func check(_ status: Int32) throws(RingError) {
        if let error = RingError(status: status) { throw error }
    }

    /// A sentence naming what went wrong.
    public var description: String {
        switch self {
        case .timedOut: return "ring: timed out"
        case .closed: return "ring: closed by the producer"
        case .peerDied: return "ring: the process on the other side died without closing the ring"
        case .cancelled: return "ring: the waiting task was cancelled"
        case let .frameTooLarge(bytes, capacity):
            return "ring: a \(bytes)-byte frame does not fit in a \(capacity)-byte slot"
        case let .dtypeMismatch(expected, actual):
            return "ring: the frame holds \(actual.map(\.description) ?? "raw bytes"), not \(expected)"
        case let .notAMatrix(rank): return "ring: the frame has rank \(rank), not 2"
        case let .invalidConfiguration(message): return "ring: invalid configuration: \(message)"
        case let .core(error, code):
            return "ring: \(error)" + (code != 0 ? " (errno \(code): \(String(cString: strerror(code))))" : "")
        }
    }
}
