import Conveyor
import Testing

/// The Swift `Matrix` API: construction, access, copy-on-write, operators, errors.
@Suite struct MatrixTests {
    @Test func constructionAndShape() throws {
        let z = try Matrix<Double>.zeros(rows: 3, cols: 4)
        #expect(z.rows == 3 && z.cols == 4 && z.count == 12 && z.shape == Shape(rows: 3, cols: 4))
        #expect(z.elements == [Double](repeating: 0, count: 12))
        let f = try Matrix<Float>(rows: 2, cols: 2, repeating: 1.5)
        #expect(f.elements == [1.5, 1.5, 1.5, 1.5])
        let e = try Matrix<Double>(rows: 2, cols: 3, elements: [1, 2, 3, 4, 5, 6])
        #expect(e[0, 0] == 1 && e[0, 2] == 3 && e[1, 0] == 4 && e[1, 2] == 6)
        let empty = try Matrix<Double>.zeros(rows: 0, cols: 5)
        #expect(empty.count == 0 && empty.sum() == 0 && empty.squared().count == 0)
    }

    @Test func invalidShapesThrow() {
        #expect(throws: MatrixError.invalidShape(rows: -1, cols: 3)) { try Matrix<Double>.zeros(rows: -1, cols: 3) }
        #expect(throws: MatrixError.invalidShape(rows: 3, cols: -2)) { try Matrix<Float>.zeros(rows: 3, cols: -2) }
        #expect(throws: MatrixError.invalidShape(rows: Int.max, cols: 2)) { try Matrix<Double>.zeros(rows: Int.max, cols: 2) }
        #expect(throws: MatrixError.invalidShape(rows: 1 << 31, cols: 1 << 31)) {
            try Matrix<Double>.uniform(rows: 1 << 31, cols: 1 << 31, seed: 1)
        }
        #expect(throws: MatrixError.countMismatch(expected: 6, actual: 5)) {
            try Matrix<Double>(rows: 2, cols: 3, elements: [1, 2, 3, 4, 5])
        }
    }

    @Test func impossibleAllocationThrowsInsteadOfCrashing() {
        // 2^58 bytes: a valid shape no machine can back.
        #expect(throws: MatrixError.allocationFailed(bytes: 1 << 58)) {
            try Matrix<Double>.zeros(rows: 1 << 30, cols: 1 << 25)
        }
    }

    @Test func storageIsCacheLineAligned() throws {
        for rows in [1, 3, 500] {
            let m = try Matrix<Float>.zeros(rows: rows, cols: 7)
            m.withUnsafeBufferPointer { #expect(Int(bitPattern: $0.baseAddress) % 64 == 0) }
        }
    }

    @Test func copyOnWriteKeepsValueSemantics() throws {
        let a = try Matrix<Double>(rows: 2, cols: 2, elements: [1, 2, 3, 4])
        var b = a
        b[0, 0] = 10
        #expect(a[0, 0] == 1 && b[0, 0] == 10)
        var c = a
        c += 1
        #expect(a.elements == [1, 2, 3, 4] && c.elements == [2, 3, 4, 5])
        var d = a
        d.withUnsafeMutableBufferPointer { $0[3] = -1 }
        #expect(a[1, 1] == 4 && d[1, 1] == -1)
        var e = a
        try e.apply([.square])
        #expect(a.elements == [1, 2, 3, 4] && e.elements == [1, 4, 9, 16])
    }

    @Test func scalarOperatorsMatchElementwiseArithmetic() throws {
        let values: [Double] = [-2, -0.5, 0, 0.25, 3]
        let m = try Matrix<Double>(rows: 1, cols: 5, elements: values)
        #expect((m + 1).elements == values.map { $0 + 1 })
        #expect((1 + m).elements == values.map { 1 + $0 })
        #expect((m - 2).elements == values.map { $0 - 2 })
        #expect((2 - m).elements == values.map { 2 - $0 })
        #expect((m * 3).elements == values.map { $0 * 3 })
        #expect((3 * m).elements == values.map { 3 * $0 })
        #expect((m / 4).elements == values.map { $0 / 4 })
        #expect((-m).elements == values.map { 0 - $0 })
        #expect(m.squared().elements == values.map { $0 * $0 })
        #expect(m.affine(scale: 0.1, offset: 0.7).elements == values.map { 0.1 * $0 + 0.7 })
        #expect(m.minimum(0).elements == values.map { Swift.min($0, 0) })
        #expect(m.maximum(0).elements == values.map { Swift.max($0, 0) })
        let nonzero = try Matrix<Double>(rows: 1, cols: 2, elements: [2, -4])
        #expect((1 / nonzero).elements == [0.5, -0.25])
    }

    @Test func mutatingFormsMatchTheirPureTwins() throws {
        let x = try Matrix<Float>.uniform(rows: 37, cols: 41, seed: 5)
        var y = x
        y += 1; y -= 0.5; y *= 3; y /= 2
        #expect(y == ((x + 1 - 0.5) * 3) / 2)
        var s = x
        s.square()
        #expect(s == x.squared())
        var a = x
        a.formAffine(scale: 2, offset: -1)
        #expect(a == x.affine(scale: 2, offset: -1))
    }

    @Test func matrixOperatorsRequireEqualShapes() throws {
        let a = try Matrix<Double>.uniform(rows: 3, cols: 4, seed: 1)
        let b = try Matrix<Double>.uniform(rows: 3, cols: 4, seed: 2)
        let wrong = try Matrix<Double>.zeros(rows: 4, cols: 3)
        let mismatch = MatrixError.shapeMismatch(expected: a.shape, actual: wrong.shape)
        #expect(throws: mismatch) { try a + wrong }
        #expect(throws: mismatch) { try a - wrong }
        #expect(throws: mismatch) { try a * wrong }
        #expect(throws: mismatch) { try a / wrong }
        #expect(throws: mismatch) { try a.minimum(wrong) }
        #expect(throws: mismatch) { try a.maximum(wrong) }
        #expect(throws: mismatch) { try a.applying([.square, .addMatrix(wrong)]) }
        var c = a
        #expect(throws: mismatch) { try c += wrong }
        #expect(throws: mismatch) { try c.apply([.multiplyMatrix(wrong)]) }
        #expect(c == a, "a rejected in-place operation changed its matrix")

        let ea = a.elements, eb = b.elements
        #expect(try (a + b).elements == zip(ea, eb).map(+))
        #expect(try (a - b).elements == zip(ea, eb).map(-))
        #expect(try (a * b).elements == zip(ea, eb).map(*))
        #expect(try (a / b).elements == zip(ea, eb).map(/))
        #expect(try a.minimum(b).elements == zip(ea, eb).map { Swift.min($0, $1) })
        var d = a
        try d *= b
        #expect(try d == a * b)
    }

    @Test func fusedProgramEqualsOperatorChain() throws {
        let x = try Matrix<Double>.uniform(rows: 500, cols: 2000, seed: 2016)
        let chained = x.squared() * 3 + 1
        let fused = try x.applying([.square, .multiply(3), .add(1)])
        #expect(fused == chained)
        var inPlace = x
        try inPlace.apply([.square, .multiply(3), .add(1)])
        #expect(inPlace == chained)
        // The same matrix as its own operand, in place: read before written.
        var twice = x
        try twice.apply([.addMatrix(twice)])
        #expect(try twice == x + x)
        let tooLong = [ElementwiseOp<Double>](repeating: .add(1), count: 17)
        #expect(throws: MatrixError.programTooLong(steps: 17, limit: 16)) { try x.applying(tooLong) }
    }

    @Test func uniformMatchesTheCGeneratorAndSumsAccurately() throws {
        let m = try Matrix<Double>.uniform(rows: 100, cols: 100, seed: 9, stream: 2)
        #expect(m[0, 0] == UniformTests.reference(Double.self, seed: 9, stream: 2, index: 0))
        #expect(m[99, 99] == UniformTests.reference(Double.self, seed: 9, stream: 2, index: 9999))
        #expect(m.sum() == SumTests.exactSum(m.elements) || abs(m.sum() - SumTests.exactSum(m.elements)) <= m.sum().ulp)
        var refilled = try Matrix<Double>.zeros(rows: 100, cols: 100)
        refilled.fillUniform(seed: 9, stream: 2)
        #expect(refilled == m)
        #expect(try Matrix<Double>.uniform(rows: 100, cols: 100, seed: 9, stream: 3) != m)
    }

    @Test func equalityFollowsIEEE() throws {
        let a = try Matrix<Double>(rows: 1, cols: 2, elements: [0.0, 1])
        let b = try Matrix<Double>(rows: 1, cols: 2, elements: [-0.0, 1])
        #expect(a == b)
        let n = try Matrix<Double>(rows: 1, cols: 1, elements: [.nan])
        #expect(n != n)
        #expect(try Matrix<Double>.zeros(rows: 1, cols: 2) != Matrix<Double>.zeros(rows: 2, cols: 1))
    }

    @Test func descriptionIsAbbreviated() throws {
        let big = try Matrix<Double>(rows: 500, cols: 2000, repeating: 0.5)
        let text = big.description
        #expect(text.hasPrefix("Matrix<Double> 500x2000"))
        #expect(text.count < 400, "description has \(text.count) characters")
        #expect(text.contains("..."))
        let small = try Matrix<Float>(rows: 2, cols: 2, elements: [1, 2, 3, 4])
        #expect(small.description == "Matrix<Float> 2x2\n[[1.0, 2.0]\n [3.0, 4.0]]")
        #expect(try Matrix<Double>.zeros(rows: 0, cols: 3).description == "Matrix<Double> 0x3 []")
    }

    @Test func spansReadAndWriteInPlace() throws {
        var m = try Matrix<Double>(rows: 2, cols: 2, elements: [1, 2, 3, 4])
        let total = m.withSpan { span in
            var s = 0.0
            for i in span.indices { s += span[i] }
            return s
        }
        #expect(total == 10)
        m.withMutableSpan { span in span[1] = 20 }
        #expect(m[0, 1] == 20)
    }

    @Test func matricesCrossTasks() async throws {
        let m = try Matrix<Double>.uniform(rows: 50, cols: 50, seed: 1)
        let sums = try await withThrowingTaskGroup(of: Double.self) { group in
            for k in 1...4 { group.addTask { (m * Double(k)).sum() } }
            return try await group.reduce(0, +)
        }
        #expect(abs(sums - 10 * m.sum()) <= 1e-9 * sums)
    }

    @Test func errorsDescribeThemselves() {
        #expect(MatrixError.shapeMismatch(expected: Shape(rows: 1, cols: 2), actual: Shape(rows: 2, cols: 1))
            .description.contains("expected 1x2, got 2x1"))
        #expect(ConveyorError.overlap.description == "CONVEYOR_E_OVERLAP: an output partially overlaps an input")
        #expect(ConveyorError(rawValue: 999).name == "CONVEYOR_E_UNKNOWN")
    }
}
