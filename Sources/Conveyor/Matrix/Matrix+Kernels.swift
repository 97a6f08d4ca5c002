extension Matrix {
    /// A rows × cols matrix of uniform values in [0, 1) from the counter-based generator.
    ///
    /// Element i (row-major) is a pure function of (`seed`, `stream`, i): the values are the
    /// same whatever the thread count, on every machine, and equal to those of the C
    /// function `conveyor_f64_fill_uniform` (or `_f32_`). Use distinct streams for
    /// independent samples of one seed. Cost: one allocation and one write pass, parallel
    /// for large matrices.
    /// - Throws: the errors of ``init(rows:cols:repeating:)``.
    public static func uniform(rows: Int, cols: Int, seed: UInt64, stream: UInt64 = 0)
        throws(MatrixError) -> Matrix
    {
        var m = try Matrix(uninitializedRows: rows, cols: cols)
        m.fillUniform(seed: seed, stream: stream)
        return m
    }

    /// Overwrites every element with uniform values of (`seed`, `stream`), as
    /// ``uniform(rows:cols:seed:stream:)`` would make them, without allocating.
    public mutating func fillUniform(seed: UInt64, stream: UInt64 = 0) {
        makeUnique()
        KernelCalls.fillUniform(storage.base, count, seed: seed, stream: stream, first: 0)
    }

    /// The sum that `try Matrix.uniform(rows:cols:seed:stream:).applying(program).sum()`
    /// returns, to the bit, computed without making the matrix.
    ///
    /// Generation, the program and the sum run fused: for `Double`, 32 values at a time in
    /// registers; for `Float`, over blocks of 4096 values that stay in L1/L2. Compute only,
    /// no allocation and no memory traffic (0.5 ms per million `Double`s on one core here). This
    /// is the fastest form of "sum f(g(h(x)))" when nothing else needs the sample. Parallel
    /// for large shapes, on ``Kernels/threads`` threads (the bits depend on that count, as
    /// for ``sum()``). The C function is `conveyor_f64_uniform_program_sum` (or `_f32_`).
    /// - Throws: ``MatrixError/invalidShape(rows:cols:)``,
    ///   ``MatrixError/programTooLong(steps:limit:)``, and
    ///   ``MatrixError/operandNotAllowed(step:)`` for a step that reads a matrix.
    public static func uniformSum(rows: Int, cols: Int, seed: UInt64, stream: UInt64 = 0,
                                  applying program: [ElementwiseOp<Element>]) throws(MatrixError) -> Double {
        guard elementByteCount(rows: rows, cols: cols, stride: MemoryLayout<Element>.stride) != nil else {
            throw .invalidShape(rows: rows, cols: cols)
        }
        try ElementwiseOp<Element>.checkLength(program.count)
        if let step = program.firstIndex(where: { $0.operand != nil }) { throw .operandNotAllowed(step: step) }
        return KernelCalls.uniformProgramSum(rows * cols, seed: seed, stream: stream, program)
    }

    /// The sum of all elements, accumulated in `Double` with compensated arithmetic.
    ///
    /// Accurate to about one rounding of the exact sum even when terms cancel, and
    /// deterministic for a given thread count. Cost: one read pass. The corresponding C
    /// function is `conveyor_f64_sum` (or `_f32_`).
    public func sum() -> Double {
        withUnsafeBufferPointer { KernelCalls.sum($0.baseAddress!, count) }
    }

    /// A new matrix: `program` applied to every element in one fused pass.
    ///
    /// Cost: one allocation, one read of self and of each matrix operand, one write.
    /// - Throws: ``MatrixError/shapeMismatch(expected:actual:)`` if a matrix operand's shape
    ///   differs from self's; ``MatrixError/programTooLong(steps:limit:)``.
    public func applying(_ program: [ElementwiseOp<Element>]) throws(MatrixError) -> Matrix {
        try validate(program)
        let result = try Matrix(uninitializedRows: rows, cols: cols)
        KernelCalls.program(result.storage.base, storage.base, count, program)
        return result
    }

    /// Applies `program` to every element in place, in one fused pass.
    ///
    /// Cost: one read and one write pass; no allocation unless the buffer is shared.
    /// - Throws: as ``applying(_:)``, before anything is written.
    public mutating func apply(_ program: [ElementwiseOp<Element>]) throws(MatrixError) {
        try validate(program)
        makeUnique()
        KernelCalls.program(storage.base, storage.base, count, program)
    }

    private func validate(_ program: [ElementwiseOp<Element>]) throws(MatrixError) {
        try ElementwiseOp.validate(program, on: shape)
    }

    /// self with `op` applied; for operators whose operands are already checked.
    func applying(unchecked op: ElementwiseOp<Element>) -> Matrix {
        guard let result = try? Matrix(uninitializedRows: rows, cols: cols) else {
            fatalError("Conveyor: out of memory allocating a \(rows)x\(cols) result")
        }
        KernelCalls.program(result.storage.base, storage.base, count, [op])
        return result
    }

    mutating func apply(unchecked op: ElementwiseOp<Element>) {
        makeUnique()
        KernelCalls.program(storage.base, storage.base, count, [op])
    }
}
