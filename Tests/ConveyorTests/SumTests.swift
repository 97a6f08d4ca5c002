import CKernels
import Conveyor
import Testing

/// Accuracy of the compensated sum on ill-conditioned input, against an exact reference.
@Suite struct SumTests {
    /// Shewchuk's exact summation (Python's math.fsum algorithm): the partials are
    /// non-overlapping and sum exactly to the true sum; adding them from the smallest up
    /// rounds the result within an ulp of it.
    static func exactSum(_ values: [Double]) -> Double {
        var partials: [Double] = []
        for value in values {
            var x = value
            var kept = 0
            for var y in partials {
                if abs(x) < abs(y) { swap(&x, &y) }
                let hi = x + y
                let lo = y - (hi - x)
                if lo != 0 { partials[kept] = lo; kept += 1 }
                x = hi
            }
            partials.removeSubrange(kept...)
            partials.append(x)
        }
        return partials.reduce(0, +)
    }

    /// The documented error bound of a compensated sum (Ogita, Rump & Oishi 2005):
    /// about one rounding of the result plus (n * 2^-53)^2 * sum|x|.
    static func bound(count: Int, exact: Double, absSum: Double) -> Double {
        let nu = Double(count) * 0x1p-53
        return 2 * exact.ulp + nu * nu * absSum
    }

    static func conveyorSum<T: TestElement>(_ values: [T]) -> Double {
        var result = Double.nan
        let status = values.withUnsafeBufferPointer { T.sum($0.baseAddress, $0.count, &result) }
        #expect(status == 0)
        return result
    }

    /// Terms spread over 2^±40 in magnitude, each also present negated at the far end of
    /// the array (so they cancel across lanes and thread chunks), plus small residue:
    /// the exact sum is ~1e-12 of sum|x|, which a plain loop gets wrong in every digit.
    static func illConditioned<T: TestElement>(_: T.Type, count: Int, seed: UInt64) -> [T] {
        var u = [Double](repeating: 0, count: count)
        u.withUnsafeMutableBufferPointer { _ = Double.fill($0.baseAddress, count, seed: seed, stream: 9, first: 0) }
        var values = [T](repeating: 0, count: count)
        for i in 0..<(count / 2) {
            let magnitude = T(Double(sign: .plus, exponent: Int(u[i] * 80) - 40, significand: 1 + u[count - 1 - i]))
            values[i] = magnitude
            values[count - 1 - i] = -magnitude
        }
        for i in stride(from: 0, to: count, by: 97) { values[i] += T(u[i]) * T(1e-3) }
        return values
    }

    @Test(arguments: [3, 64, 1_001, 1_000_003])
    func illConditionedSumsAreAccurateF64(count: Int) {
        let values = Self.illConditioned(Double.self, count: count, seed: UInt64(count))
        let exact = Self.exactSum(values)
        let absSum = values.reduce(0) { $0 + abs($1) }
        let got = Self.conveyorSum(values)
        let bound = Self.bound(count: count, exact: exact, absSum: absSum)
        #expect(abs(got - exact) <= bound, "n=\(count): got \(got), exact \(exact), bound \(bound)")
        if count > 1_000 {
            // The test has teeth: a plain loop misses by far more than the bound.
            let naive = values.reduce(0, +)
            #expect(abs(naive - exact) > 100 * bound, "naive \(naive) vs exact \(exact)")
        }
    }

    @Test(arguments: [3, 1_001, 1_000_003])
    func illConditionedSumsAreAccurateF32(count: Int) {
        let values = Self.illConditioned(Float.self, count: count, seed: UInt64(count) + 1)
        let exact = Self.exactSum(values.map { Double($0) })
        let absSum = values.reduce(0.0) { $0 + Double(abs($1)) }
        let got = Self.conveyorSum(values)
        #expect(abs(got - exact) <= Self.bound(count: count, exact: exact, absSum: absSum),
                "n=\(count): got \(got), exact \(exact)")
    }

    @Test func classicCancellation() {
        #expect(Self.conveyorSum([1e16, 1.0, -1e16]) == 1)
        #expect(Self.conveyorSum([1.0, 1e100, 1.0, -1e100]) == 2)
        var long = [Double](repeating: 0.1, count: 10_000)
        long[0] = 1e20
        long.append(-1e20)
        // 1e20 + 0.1 loses all of 0.1 in a plain sum; compensated, it is kept to a few ulps.
        #expect(abs(Self.conveyorSum(long) - Self.exactSum(long)) <= 4 * Self.exactSum(long).ulp)
        #expect(long.reduce(0, +) == 0)
    }

    @Test func emptyAndTinyArrays() {
        #expect(Self.conveyorSum([Double]()) == 0)
        #expect(Self.conveyorSum([Float]()) == 0)
        #expect(Self.conveyorSum([2.5]) == 2.5)
        #expect(Self.conveyorSum([Float(0.1)]) == Double(Float(0.1)))
    }

    @Test func specialValuesPropagate() {
        #expect(Self.conveyorSum([1, .infinity, 2]) == .infinity)
        #expect(Self.conveyorSum([1, .nan, 2]).isNaN)
        #expect(Self.conveyorSum([Double](repeating: 1, count: 100) + [-.infinity]) == -.infinity)
        #expect(Self.conveyorSum([Double.infinity, -.infinity]).isNaN)
        #expect(Self.conveyorSum([Double](repeating: .greatestFiniteMagnitude, count: 40)) == .infinity)
    }

    /// The fused generate-transform-sum gives the bits of uniform, applying, then sum, for
    /// lengths around the block and lane sizes, both dtypes and both thread counts.
    @Test(arguments: [0, 1, 31, 32, 4095, 4097, 100_003, 1_000_000])
    func uniformSumEqualsTheMaterializedSum(count: Int) throws {
        let program64: [ElementwiseOp<Double>] = [.square, .multiply(3), .add(1)]
        let program32: [ElementwiseOp<Float>] = [.square, .multiply(3), .add(1)]
        for threads in [1, 2] {
            _ = conveyor_set_threads_local(Int32(threads))
            defer { _ = conveyor_set_threads_local(0) }
            let x64 = try Matrix<Double>.uniform(rows: 1, cols: count, seed: 7, stream: 3).applying(program64)
            #expect(try Matrix<Double>.uniformSum(rows: 1, cols: count, seed: 7, stream: 3, applying: program64)
                    == x64.sum(), "f64 n \(count) threads \(threads)")
            let x32 = try Matrix<Float>.uniform(rows: 1, cols: count, seed: 7, stream: 3).applying(program32)
            #expect(try Matrix<Float>.uniformSum(rows: 1, cols: count, seed: 7, stream: 3, applying: program32)
                    == x32.sum(), "f32 n \(count) threads \(threads)")
        }
    }

    /// Every scalar op (selects, divisions, affine included) and a counter offset, through
    /// the C entry point: the register-fused f64 path and the block path of f32 must give
    /// the bits of fill, program, sum.
    @Test(arguments: [33, 1_000, 70_001])
    func uniformProgramSumRunsEveryScalarOpLikeTheKernels(count: Int) {
        let codes: [(conveyor_opcode, Double, Double)] = [
            (CONVEYOR_OP_MUL_SCALAR, 2, 0), (CONVEYOR_OP_SUB_SCALAR, 0.5, 0), (CONVEYOR_OP_MAX_SCALAR, -0.25, 0),
            (CONVEYOR_OP_SQUARE, 0, 0), (CONVEYOR_OP_RSUB_SCALAR, 1, 0), (CONVEYOR_OP_MIN_SCALAR, 0.75, 0),
            (CONVEYOR_OP_DIV_SCALAR, 3, 0), (CONVEYOR_OP_RDIV_SCALAR, 1, 0), (CONVEYOR_OP_AFFINE, -2, 0.5),
            (CONVEYOR_OP_ADD_SCALAR, 1, 0), (CONVEYOR_OP_COPY, 0, 0),
        ]
        let ops = codes.map { conveyor_op(code: Int32($0.0.rawValue), reserved: 0, a: $0.1, b: $0.2, operand: nil) }
        let first: UInt64 = 1_234_567
        for threads in [1, 2] {
            _ = conveyor_set_threads_local(Int32(threads))
            defer { _ = conveyor_set_threads_local(0) }
            var x64 = [Double](repeating: 0, count: count), x32 = [Float](repeating: 0, count: count)
            var want64 = 0.0, want32 = 0.0, got64 = 0.0, got32 = 0.0
            #expect(conveyor_f64_fill_uniform(&x64, count, 9, 4, first) == 0)
            #expect(conveyor_f64_program(&x64, x64, count, ops, ops.count) == 0)
            #expect(conveyor_f64_sum(x64, count, &want64) == 0)
            #expect(conveyor_f64_uniform_program_sum(count, 9, 4, first, ops, ops.count, &got64) == 0)
            #expect(got64.bitPattern == want64.bitPattern, "f64 n \(count) threads \(threads)")
            #expect(conveyor_f32_fill_uniform(&x32, count, 9, 4, first) == 0)
            #expect(conveyor_f32_program(&x32, x32, count, ops, ops.count) == 0)
            #expect(conveyor_f32_sum(x32, count, &want32) == 0)
            #expect(conveyor_f32_uniform_program_sum(count, 9, 4, first, ops, ops.count, &got32) == 0)
            #expect(got32.bitPattern == want32.bitPattern, "f32 n \(count) threads \(threads)")
        }
    }

    @Test func uniformSumRejectsWhatItCannotRun() throws {
        let other = try Matrix<Double>(rows: 2, cols: 2, repeating: 1)
        #expect(throws: MatrixError.operandNotAllowed(step: 1)) {
            try Matrix<Double>.uniformSum(rows: 2, cols: 2, seed: 1, applying: [.square, .addMatrix(other)])
        }
        #expect(throws: MatrixError.invalidShape(rows: -1, cols: 2)) {
            try Matrix<Double>.uniformSum(rows: -1, cols: 2, seed: 1, applying: [])
        }
        #expect(throws: MatrixError.programTooLong(steps: 17, limit: 16)) {
            try Matrix<Double>.uniformSum(rows: 2, cols: 2, seed: 1, applying: Array(repeating: .square, count: 17))
        }
        // The C entry point checks the same things itself.
        var result = 0.0
        var op = conveyor_op(code: Int32(CONVEYOR_OP_ADD.rawValue), reserved: 0, a: 0, b: 0, operand: nil)
        let invalid = Int32(CONVEYOR_E_INVALID_ARGUMENT.rawValue), null = Int32(CONVEYOR_E_NULL_POINTER.rawValue)
        let overflow = Int32(CONVEYOR_E_OVERFLOW.rawValue)
        let withOperand: Int32 = conveyor_f64_uniform_program_sum(4, 1, 0, 0, &op, 1, &result)
        let noOps: Int32 = conveyor_f64_uniform_program_sum(4, 1, 0, 0, nil, 1, &result)
        let noResult: Int32 = conveyor_f64_uniform_program_sum(4, 1, 0, 0, nil, 0, nil)
        let tooMany: Int32 = conveyor_f64_uniform_program_sum(Int.max, 1, 0, 0, nil, 0, &result)
        #expect(withOperand == invalid)
        #expect(noOps == null)
        #expect(noResult == null)
        #expect(tooMany == overflow)
    }
}
