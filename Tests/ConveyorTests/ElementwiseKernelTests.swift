import CKernels
import Testing

/// Every elementwise op, through the program API and the named C functions, against a
/// scalar Swift reference: bit-identical at every test length, out of place and in place,
/// from an unaligned start.
@Suite struct ElementwiseKernelTests {
    @Test(arguments: testLengths) func everyOpMatchesReferenceF64(n: Int) { checkEveryOp(Double.self, n) }
    @Test(arguments: testLengths) func everyOpMatchesReferenceF32(n: Int) { checkEveryOp(Float.self, n) }

    private func checkEveryOp<T: TestElement>(_: T.Type, _ n: Int) {
        withUnalignedBuffer(n) { (x: UnsafeMutableBufferPointer<T>) in
            withUnalignedBuffer(n) { (y: UnsafeMutableBufferPointer<T>) in
                withUnalignedBuffer(n) { (out: UnsafeMutableBufferPointer<T>) in
                    // Values in (-1, 1) and y kept away from 0, with a negative zero and
                    // equal pairs so min/max ties are exercised.
                    _ = T.fill(x.baseAddress, n, seed: 11, stream: 0, first: 0)
                    _ = T.fill(y.baseAddress, n, seed: 12, stream: 0, first: 0)
                    for i in 0..<n {
                        x[i] = x[i] * 2 - 1
                        y[i] = y[i] + T(0.25)
                        if i % 17 == 3 { y[i] = x[i] }
                    }
                    if n > 5 { x[5] = -0.0 }
                    for op in OpCase<T>.all {
                        let expected = (0..<n).map { op.reference(x[$0], y[$0], op.a, op.b) }
                        expected.withUnsafeBufferPointer { expected in
                            check(op, n, x: x, y: y, out: out, expected: expected)
                        }
                    }
                }
            }
        }
    }

    private func check<T: TestElement>(_ op: OpCase<T>, _ n: Int, x: UnsafeMutableBufferPointer<T>,
                                       y: UnsafeMutableBufferPointer<T>, out: UnsafeMutableBufferPointer<T>,
                                       expected: UnsafeBufferPointer<T>) {
        let label = "\(op.name) \(T.self) n=\(n)"
        // Out of place, through the program API.
        out.initialize(repeating: 42)
        #expect(T.program(out.baseAddress, x.baseAddress, n, [op.op(operand: y.baseAddress)]) == 0, "\(label)")
        #expect(sameBits(UnsafeBufferPointer(out), expected) == nil, "program \(label)")

        // Out of place, through the named function (reversed scalar ops have none).
        if op.code != CONVEYOR_OP_RSUB_SCALAR && op.code != CONVEYOR_OP_RDIV_SCALAR {
            out.initialize(repeating: 42)
            #expect(T.named(op.code, out.baseAddress, x.baseAddress, y.baseAddress, a: op.a, b: op.b, n) == 0)
            #expect(sameBits(UnsafeBufferPointer(out), expected) == nil, "named \(label)")
        }

        // In place: out is x.
        let saved = Array(x)
        #expect(T.program(x.baseAddress, x.baseAddress, n, [op.op(operand: y.baseAddress)]) == 0)
        #expect(sameBits(UnsafeBufferPointer(x), expected) == nil, "in place \(label)")
        _ = x.update(from: saved)

        // In place on the operand: out is y (read before written).
        if op.binary {
            let savedY = Array(y)
            #expect(T.program(y.baseAddress, x.baseAddress, n, [op.op(operand: y.baseAddress)]) == 0)
            #expect(sameBits(UnsafeBufferPointer(y), expected) == nil, "out == operand \(label)")
            _ = y.update(from: savedY)
        }
    }

    @Test(arguments: testLengths) func fusedProgramEqualsSeparatePasses(n: Int) {
        fused(Double.self, n)
        fused(Float.self, n)
    }

    /// The question's f(g(h(x))) = 3x²+1, plus a binary step, in one program: identical
    /// bits to running the steps as separate kernels.
    private func fused<T: TestElement>(_: T.Type, _ n: Int) {
        withUnalignedBuffer(n) { (x: UnsafeMutableBufferPointer<T>) in
            withUnalignedBuffer(n) { (y: UnsafeMutableBufferPointer<T>) in
                _ = T.fill(x.baseAddress, n, seed: 5, stream: 1, first: 0)
                _ = T.fill(y.baseAddress, n, seed: 6, stream: 1, first: 0)
                let steps = [
                    conveyor_op(code: Int32(CONVEYOR_OP_SQUARE.rawValue), reserved: 0, a: 0, b: 0, operand: nil),
                    conveyor_op(code: Int32(CONVEYOR_OP_MUL_SCALAR.rawValue), reserved: 0, a: 3, b: 0, operand: nil),
                    conveyor_op(code: Int32(CONVEYOR_OP_ADD_SCALAR.rawValue), reserved: 0, a: 1, b: 0, operand: nil),
                    conveyor_op(code: Int32(CONVEYOR_OP_MIN.rawValue), reserved: 0, a: 0, b: 0,
                                operand: UnsafeRawPointer(y.baseAddress)),
                    conveyor_op(code: Int32(CONVEYOR_OP_AFFINE.rawValue), reserved: 0, a: -2, b: 0.5, operand: nil),
                ]
                var fused = [T](repeating: 0, count: n)
                var separate = [T](repeating: 0, count: n)
                fused.withUnsafeMutableBufferPointer { out in
                    #expect(T.program(out.baseAddress, x.baseAddress, n, steps) == 0)
                }
                separate.withUnsafeMutableBufferPointer { out in
                    #expect(T.program(out.baseAddress, x.baseAddress, n, [steps[0]]) == 0)
                    for step in steps.dropFirst() {
                        #expect(T.program(out.baseAddress, out.baseAddress, n, [step]) == 0)
                    }
                }
                #expect(fused == separate, "fused vs separate \(T.self) n=\(n)")
                if n > 0 {
                    let v = x[n - 1] * x[n - 1] * 3 + 1
                    let m = y[n - 1] < v ? y[n - 1] : v
                    let product = T(-2) * m
                    #expect(fused[n - 1] == product + T(0.5))
                }
            }
        }
    }

    @Test func emptyProgramIsACopy() {
        let x: [Double] = [1, -2, .infinity, 4]
        var out = [Double](repeating: 0, count: 4)
        out.withUnsafeMutableBufferPointer { #expect(Double.program($0.baseAddress, x, 4, []) == 0) }
        #expect(out == x)
    }

    @Test func nanInDataPropagatesThroughMinMaxWhileNanScalarIsIgnored() {
        let x: [Double] = [.nan, 1, 2]
        var out = [Double](repeating: 0, count: 3)
        out.withUnsafeMutableBufferPointer { #expect(conveyor_f64_min_scalar($0.baseAddress, x, 1.5, 3) == 0) }
        #expect(out[0].isNaN && out[1] == 1 && out[2] == 1.5)
        out.withUnsafeMutableBufferPointer { #expect(conveyor_f64_max_scalar($0.baseAddress, x, .nan, 3) == 0) }
        #expect(out[0].isNaN && out[1] == 1 && out[2] == 2)
    }

    @Test func divisionByZeroFollowsIEEE() {
        let x: [Double] = [1, -1, 0]
        var out = [Double](repeating: 0, count: 3)
        out.withUnsafeMutableBufferPointer { #expect(conveyor_f64_div_scalar($0.baseAddress, x, 0, 3) == 0) }
        #expect(out[0] == .infinity && out[1] == -.infinity && out[2].isNaN)
    }
}
