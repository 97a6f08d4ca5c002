import CKernels
@testable import Conveyor
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// ``ConveyorError`` names every C status, and the names cannot drift from the C table.
@Suite struct ConveyorErrorTests {
    /// Every named status, keyed by the Swift name it has: written out by hand, so a
    /// status added to `conveyor.h` without a static here, or a static with the wrong
    /// code, fails below.
    static let named: [(swiftName: String, error: ConveyorError)] = [
        ("nullPointer", .nullPointer), ("invalidArgument", .invalidArgument), ("overflow", .overflow),
        ("misaligned", .misaligned), ("overlap", .overlap), ("unsupported", .unsupported),
        ("noMemory", .noMemory), ("timeout", .timeout), ("endOfStream", .endOfStream),
        ("closed", .closed), ("peerDead", .peerDead), ("badState", .badState), ("wrongRole", .wrongRole),
        ("notARing", .notARing), ("version", .version), ("truncated", .truncated), ("corrupt", .corrupt),
        ("exists", .exists), ("busy", .busy), ("system", .system), ("tooLarge", .tooLarge),
        ("notSealed", .notSealed),
    ]

    /// `CONVEYOR_E_NOT_A_RING` → `notARing`: the Swift name a C name must have.
    static func swiftName(ofC name: String) -> String {
        let words = name.dropFirst("CONVEYOR_E_".count).split(separator: "_").map { $0.lowercased() }
        return words.first! + words.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
    }

    @Test func everyCStatusHasANamedStaticWithItsName() {
        #expect(Self.named.map(\.error.rawValue) == Array(1...22), "one static per code 1...22, in order")
        for (swiftName, error) in Self.named {
            let cName = String(cString: conveyor_status_name(error.rawValue))
            #expect(error.name == cName)
            #expect(Self.swiftName(ofC: cName) == swiftName, "\(cName) is named .\(swiftName)")
            #expect(error.description == "\(cName): \(String(cString: conveyor_status_message(error.rawValue)))")
        }
        // No code past the list: the C table ends where the statics do.
        #expect(String(cString: conveyor_status_name(Int32(Self.named.count + 1))) == "CONVEYOR_E_UNKNOWN")
        #expect(ConveyorError(rawValue: 999).name == "CONVEYOR_E_UNKNOWN")
    }

    @Test func ringErrorsGiveTheirCStatusBack() {
        #expect(RingError.timedOut.conveyorError == .timeout)
        #expect(RingError.closed.conveyorError == .closed)
        #expect(RingError.peerDied.conveyorError == .peerDead)
        #expect(RingError.core(.busy, errno: 0).conveyorError == .busy)
        #expect(RingError.frameTooLarge(bytes: 9, capacity: 8).conveyorError == .tooLarge)
        #expect(RingError.invalidConfiguration("x").conveyorError == .invalidArgument)
        #expect(RingError.cancelled.conveyorError == nil)
        #expect(RingError.notAMatrix(rank: 1).conveyorError == nil)
        // Every status maps to a ring error that gives it back.
        for (_, error) in Self.named where error != .endOfStream {
            #expect(RingError(status: error.rawValue, errno: 0)?.conveyorError == error)
        }
        #expect(RingError(status: ConveyorError.system.rawValue, errno: ENOENT) == .core(.system, errno: ENOENT))
        #expect(RingError(status: 0) == nil)
    }

    @Test func catchMatchesAStatusInEitherErrorType() {
        func kind(_ error: any Error) -> String {
            switch error {
            case ConveyorError.busy: return "busy"
            case ConveyorError.invalidArgument: return "invalid"
            default: return "other"
            }
        }
        #expect(kind(RingError.core(.busy, errno: 0)) == "busy")
        #expect(kind(ConveyorError.busy) == "busy")
        #expect(kind(ConveyorError.invalidArgument) == "invalid")
        #expect(kind(RingError.timedOut) == "other")
        #expect(kind(MatrixError.invalidShape(rows: -1, cols: 1)) == "other")
        do {
            try Kernels.setThreads(0)
            Issue.record("setThreads(0) succeeded")
        } catch ConveyorError.invalidArgument {
            // the typed error, caught by its static
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}
