internal import CKernels

#if canImport(Glibc)
import Glibc
#endif

/// Why a ring operation did not complete.
///
/// End of stream is not an error: ``Consumer/receive(timeout:)-19tsq`` returns `nil` for it.
/// The C statuses a ring caller handles in the normal course of a stream have cases of
/// their own (``timedOut``, ``closed``, ``peerDied``); every other C status arrives as
/// ``core(_:errno:)`` with its named ``ConveyorError`` (`.core(.busy, errno: 0)`), and
/// ``conveyorError`` gives the C status behind any ring error, so a caller that only cares
/// about the code can write `catch ConveyorError.busy` or `error.conveyorError == .busy`.
public enum RingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Nothing became ready before the timeout: no free slot for a loan, no frame for a
    /// receive (`CONVEYOR_E_TIMEOUT`, ``ConveyorError/timeout``). Nothing changed; retry
    /// freely.
    case timedOut
    /// The ring is closed: the producer may not loan any more (`CONVEYOR_E_CLOSED`,
    /// ``ConveyorError/closed``).
    case closed
    /// The process on the other side died (or let go of its end) without closing the ring
    /// (`CONVEYOR_E_PEER_DEAD`, ``ConveyorError/peerDead``). A consumer gets it only after
    /// every frame the producer committed; a new peer may attach and take over.
    case peerDied
    /// The task waiting on the ring was cancelled; nothing was loaned or received. Swift
    /// only: no C status.
    case cancelled
    /// A frame of this many bytes does not fit in a slot of `capacity` bytes (checked in
    /// Swift before loaning; `bytes` is `Int.max` when the size overflows).
    case frameTooLarge(bytes: Int, capacity: Int)
    /// A frame holds another element type than the one asked for. Swift only.
    case dtypeMismatch(expected: DType, actual: DType?)
    /// A frame is not two-dimensional, so it cannot be read as a matrix. Swift only.
    case notAMatrix(rank: Int)
    /// A configuration value is out of range (the message names it); checked in Swift
    /// before the C core is called.
    case invalidConfiguration(String)
    /// Any other status of the C core, named (``ConveyorError/exists``,
    /// ``ConveyorError/busy``, ``ConveyorError/notSealed``...), with the errno of the
    /// failed system call for ``ConveyorError/system`` (0 otherwise).
    case core(ConveyorError, errno: Int32)

    /// The C status behind this error: ``ConveyorError/timeout``, ``ConveyorError/closed``
    /// and ``ConveyorError/peerDead`` for the first three cases, ``ConveyorError/tooLarge``
    /// for ``frameTooLarge(bytes:capacity:)``, ``ConveyorError/invalidArgument`` for
    /// ``invalidConfiguration(_:)``, the wrapped one for ``core(_:errno:)``; `nil` for the
    /// errors that only Swift raises (``cancelled``, ``dtypeMismatch(expected:actual:)``,
    /// ``notAMatrix(rank:)``). Cost: none.
    public var conveyorError: ConveyorError? {
        switch self {
        case .timedOut: return .timeout
        case .closed: return .closed
        case .peerDied: return .peerDead
        case .frameTooLarge: return .tooLarge
        case .invalidConfiguration: return .invalidArgument
        case let .core(error, _): return error
        case .cancelled, .dtypeMismatch, .notAMatrix: return nil
        }
    }

    /// The error a C status stands for; `nil` for `CONVEYOR_OK`. `code` is the errno the
    /// call left, kept for `CONVEYOR_E_SYSTEM`: read it on the thread that made the call
    /// (the default does, at the call site).
    init?(status: Int32, errno code: Int32 = errno) {
        switch status {
        case 0: return nil
        case Int32(CONVEYOR_E_TIMEOUT.rawValue): self = .timedOut
        case Int32(CONVEYOR_E_CLOSED.rawValue): self = .closed
        case Int32(CONVEYOR_E_PEER_DEAD.rawValue): self = .peerDied
        case Int32(CONVEYOR_E_SYSTEM.rawValue): self = .core(.system, errno: code)
        default: self = .core(ConveyorError(rawValue: status), errno: 0)
        }
    }

    /// Throws the error a C status stands for; returns on `CONVEYOR_OK`. The errno default
    /// is read at the call site, right after the C call.
    static func check(_ status: Int32, errno code: Int32 = errno) throws(RingError) {
        if let error = RingError(status: status, errno: code) { throw error }
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
