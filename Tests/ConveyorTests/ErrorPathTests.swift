import CKernels
import Conveyor
import Testing

/// Every error status of the C API, and the guarantee that a rejected call writes nothing.
@Suite struct ErrorPathTests {
    /// The C code of a named status: the calls below return C codes, matched by name.
    static func code(_ status: ConveyorError) -> Int32 { status.rawValue }

    private var square: conveyor_op {
        conveyor_op(code: Int32(CONVEYOR_OP_SQUARE.rawValue), reserved: 0, a: 0, b: 0, operand: nil)
    }

    @Test func nullPointersWithElements() {
        var out = [Double](repeating: 7, count: 4)
        let x: [Double] = [1, 2, 3, 4]
        var r = 0.0
        out.withUnsafeMutableBufferPointer { out in
            #expect(conveyor_f64_program(nil, x, 4, [square], 1) == Self.code(.nullPointer))
            #expect(conveyor_f64_program(out.baseAddress, nil, 4, [square], 1) == Self.code(.nullPointer))
            #expect(conveyor_f64_program(out.baseAddress, x, 4, nil, 1) == Self.code(.nullPointer))
            #expect(conveyor_f64_add(out.baseAddress, x, nil, 4) == Self.code(.nullPointer))
            #expect(conveyor_f32_mul(nil, nil, nil, 4) == Self.code(.nullPointer))
            #expect(conveyor_f64_fill_uniform(nil, 4, 1, 0, 0) == Self.code(.nullPointer))
            #expect(conveyor_f64_sum(nil, 4, &r) == Self.code(.nullPointer))
            #expect(conveyor_f64_sum(x, 4, nil) == Self.code(.nullPointer))
            #expect(conveyor_f32_sum(nil, 1, &r) == Self.code(.nullPointer))
        }
        #expect(out == [7, 7, 7, 7], "a rejected call wrote its output")
    }

    @Test func nullPointersAreFineForEmptyArrays() {
        var r = 5.0
        #expect(conveyor_f64_program(nil, nil, 0, [square], 1) == 0)
        #expect(conveyor_f64_add(nil, nil, nil, 0) == 0)
        #expect(conveyor_f32_fill_uniform(nil, 0, 1, 0, 0) == 0)
        #expect(conveyor_f64_sum(nil, 0, &r) == 0 && r == 0)
    }

    @Test func misalignedPointers() {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 64)
        defer { raw.deallocate() }
        let odd = (raw + 1).assumingMemoryBound(to: Double.self)
        let oddFloat = (raw + 2).assumingMemoryBound(to: Float.self)
        let good = (raw + 64).assumingMemoryBound(to: Double.self)
        var r = 0.0
        #expect(conveyor_f64_copy(good, odd, 4) == Self.code(.misaligned))
        #expect(conveyor_f64_copy(odd, good, 4) == Self.code(.misaligned))
        #expect(conveyor_f64_sum(odd, 4, &r) == Self.code(.misaligned))
        #expect(conveyor_f32_fill_uniform(oddFloat, 4, 1, 0, 0) == Self.code(.misaligned))
    }

    @Test func partialOverlapIsRejectedExactAliasIsNot() {
        var buffer = [Double](repeating: 1, count: 16)
        buffer.withUnsafeMutableBufferPointer { b in
            let p = b.baseAddress!
            #expect(conveyor_f64_add_scalar(p + 1, p, 1, 8) == Self.code(.overlap))
            #expect(conveyor_f64_add_scalar(p, p + 7, 1, 8) == Self.code(.overlap))
            #expect(conveyor_f64_add(p + 8, p, p + 4, 8) == Self.code(.overlap))
            #expect(conveyor_f64_add_scalar(p, p + 8, 1, 8) == 0)  // disjoint halves
            #expect(conveyor_f64_add_scalar(p, p, 1, 8) == 0)  // in place
        }
        #expect(Array(buffer[0..<8]) == [Double](repeating: 3, count: 8))
        #expect(Array(buffer[8..<16]) == [Double](repeating: 1, count: 8))
    }

    @Test func byteSizeOverflow() {
        let p = UnsafeMutablePointer<Double>.allocate(capacity: 1)
        defer { p.deallocate() }
        var r = 0.0
        let huge = Int.max / 4  // times 8 bytes exceeds PTRDIFF_MAX
        #expect(conveyor_f64_copy(p, p, huge) == Self.code(.overflow))
        #expect(conveyor_f64_sum(p, huge, &r) == Self.code(.overflow))
        #expect(conveyor_f64_fill_uniform(p, huge, 1, 0, 0) == Self.code(.overflow))
        #expect(conveyor_f32_fill_uniform(UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self), Int.max / 3, 1, 0, 0)
                == Self.code(.overflow))
    }

    @Test func invalidPrograms() {
        let x: [Double] = [1, 2]
        var out = [Double](repeating: 9, count: 2)
        out.withUnsafeMutableBufferPointer { out in
            let o = out.baseAddress
            func op(_ code: Int32, reserved: UInt32 = 0) -> conveyor_op {
                conveyor_op(code: code, reserved: reserved, a: 1, b: 0, operand: nil)
            }
            #expect(conveyor_f64_program(o, x, 2, [op(-1)], 1) == Self.code(.invalidArgument))
            #expect(conveyor_f64_program(o, x, 2, [op(17)], 1) == Self.code(.invalidArgument))
            #expect(conveyor_f64_program(o, x, 2, [op(1, reserved: 1)], 1) == Self.code(.invalidArgument))
            let tooLong = [conveyor_op](repeating: op(1), count: Int(CONVEYOR_PROGRAM_MAX_OPS) + 1)
            #expect(conveyor_f64_program(o, x, 2, tooLong, tooLong.count) == Self.code(.invalidArgument))
            // A valid first step does not run when a later step is invalid.
            #expect(conveyor_f64_program(o, x, 2, [op(1), op(99)], 2) == Self.code(.invalidArgument))
            // A binary step without its operand.
            #expect(conveyor_f64_program(o, x, 2, [op(1), op(Int32(CONVEYOR_OP_MUL.rawValue))], 2)
                    == Self.code(.nullPointer))
            let maxed = [conveyor_op](repeating: op(1), count: Int(CONVEYOR_PROGRAM_MAX_OPS))
            #expect(conveyor_f64_program(nil, nil, 0, maxed, maxed.count) == 0)
        }
        #expect(out == [9, 9])
    }

    @Test func everyStatusHasANameAndAMessage() {
        let codes: [conveyor_status] = [CONVEYOR_OK, CONVEYOR_E_NULL_POINTER, CONVEYOR_E_INVALID_ARGUMENT,
                                        CONVEYOR_E_OVERFLOW, CONVEYOR_E_MISALIGNED, CONVEYOR_E_OVERLAP,
                                        CONVEYOR_E_UNSUPPORTED, CONVEYOR_E_NO_MEMORY, CONVEYOR_E_TIMEOUT,
                                        CONVEYOR_E_END_OF_STREAM, CONVEYOR_E_CLOSED, CONVEYOR_E_PEER_DEAD,
                                        CONVEYOR_E_BAD_STATE, CONVEYOR_E_WRONG_ROLE, CONVEYOR_E_NOT_A_RING,
                                        CONVEYOR_E_VERSION, CONVEYOR_E_TRUNCATED, CONVEYOR_E_CORRUPT,
                                        CONVEYOR_E_EXISTS, CONVEYOR_E_BUSY, CONVEYOR_E_SYSTEM,
                                        CONVEYOR_E_TOO_LARGE, CONVEYOR_E_NOT_SEALED]
        #expect(codes.map(\.rawValue) == Array(0...22), "every code, in order, without gaps")
        var messages: Set<String> = []
        for status in codes {
            let name = String(cString: conveyor_status_name(Int32(status.rawValue)))
            let message = String(cString: conveyor_status_message(Int32(status.rawValue)))
            #expect(name.hasPrefix("CONVEYOR_") && name != "CONVEYOR_E_UNKNOWN")
            #expect(!message.isEmpty)
            messages.insert(message)
        }
        #expect(messages.count == codes.count)
        for unknown: Int32 in [-1, 23, 1000, .max, .min] {
            #expect(String(cString: conveyor_status_name(unknown)) == "CONVEYOR_E_UNKNOWN")
            #expect(String(cString: conveyor_status_message(unknown)) == "unknown conveyor status code")
        }
    }

    @Test func versionMacrosMatchTheLibrary() {
        #expect(conveyor_version_number() == CONVEYOR_VERSION_MAJOR * 10000 + CONVEYOR_VERSION_MINOR * 100 + CONVEYOR_VERSION_PATCH)
        #expect(String(cString: conveyor_version_string()) == CONVEYOR_VERSION_STRING)
    }
}
