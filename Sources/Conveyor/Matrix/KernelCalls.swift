internal import CKernels

/// The single place where Swift calls the typed C kernels: it turns a generic element
/// pointer into the `double` or `float` pointer of the matching C function.
///
/// Every caller has already validated shapes, so a nonzero status here would be a bug in
/// Conveyor itself; it traps with the C message rather than returning wrong data.
enum KernelCalls {
    static func program<E: MatrixElement>(
        _ out: UnsafeMutablePointer<E>, _ x: UnsafePointer<E>, _ count: Int,
        _ ops: [ElementwiseOp<E>]
    ) {
        withExtendedLifetime(ops) { program(out, x, count, steps: ops.map(cStep)) }
    }

    /// Runs steps made once by ``steps(_:)``; the caller keeps their operand matrices alive.
    static func program<E: MatrixElement>(
        _ out: UnsafeMutablePointer<E>, _ x: UnsafePointer<E>, _ count: Int, steps: [conveyor_op]
    ) {
        let status: Int32 = steps.withUnsafeBufferPointer { steps in
            switch E.dtype {
            case .float64:
                conveyor_f64_program(rebound(out), rebound(x), count, steps.baseAddress, steps.count)
            case .float32:
                conveyor_f32_program(rebound(out), rebound(x), count, steps.baseAddress, steps.count)
            }
        }
        trapOnFailure(status, "program")
    }

    /// The C form of a program: what ``program(_:_:_:steps:)`` runs. The steps point into
    /// the operand matrices' storage, which must outlive them.
    static func steps<E: MatrixElement>(_ ops: [ElementwiseOp<E>]) -> [conveyor_op] { ops.map(cStep) }

    static func sum<E: MatrixElement>(_ x: UnsafePointer<E>, _ count: Int) -> Double {
        var result = 0.0
        let status = switch E.dtype {
        case .float64: conveyor_f64_sum(rebound(x), count, &result)
        case .float32: conveyor_f32_sum(rebound(x), count, &result)
        }
        trapOnFailure(status, "sum")
        return result
    }

    static func fillUniform<E: MatrixElement>(
        _ out: UnsafeMutablePointer<E>, _ count: Int, seed: UInt64, stream: UInt64, first: UInt64
    ) {
        let status = switch E.dtype {
        case .float64: conveyor_f64_fill_uniform(rebound(out), count, seed, stream, first)
        case .float32: conveyor_f32_fill_uniform(rebound(out), count, seed, stream, first)
        }
        trapOnFailure(status, "fill_uniform")
    }

    /// Scalar steps only: the caller has checked that no step has an operand.
    static func uniformProgramSum<E: MatrixElement>(
        _ count: Int, seed: UInt64, stream: UInt64, _ ops: [ElementwiseOp<E>]
    ) -> Double {
        let steps = ops.map(cStep)
        var result = 0.0
        let status: Int32 = steps.withUnsafeBufferPointer { steps in
            switch E.dtype {
            case .float64:
                conveyor_f64_uniform_program_sum(count, seed, stream, 0, steps.baseAddress, steps.count, &result)
            case .float32:
                conveyor_f32_uniform_program_sum(count, seed, stream, 0, steps.baseAddress, steps.count, &result)
            }
        }
        trapOnFailure(status, "uniform_program_sum")
        return result
    }

    private static func cStep<E: MatrixElement>(_ op: ElementwiseOp<E>) -> conveyor_op {
        func step(_ code: conveyor_opcode, _ a: E = 0, _ b: E = 0) -> conveyor_op {
            conveyor_op(code: Int32(code.rawValue), reserved: 0, a: Double(a), b: Double(b),
                        operand: nil)
        }
        func step(_ code: conveyor_opcode, _ m: Matrix<E>) -> conveyor_op {
            var op = step(code)
            op.operand = UnsafeRawPointer(m.storage.base)
            return op
        }
        switch op {
        case let .add(a): return step(CONVEYOR_OP_ADD_SCALAR, a)
        case let .subtract(a): return step(CONVEYOR_OP_SUB_SCALAR, a)
        case let .scalarMinus(a): return step(CONVEYOR_OP_RSUB_SCALAR, a)
        case let .multiply(a): return step(CONVEYOR_OP_MUL_SCALAR, a)
        case let .divide(a): return step(CONVEYOR_OP_DIV_SCALAR, a)
        case let .scalarOver(a): return step(CONVEYOR_OP_RDIV_SCALAR, a)
        case .square: return step(CONVEYOR_OP_SQUARE)
        case let .affine(scale, offset): return step(CONVEYOR_OP_AFFINE, scale, offset)
        case let .minimum(a): return step(CONVEYOR_OP_MIN_SCALAR, a)
        case let .maximum(a): return step(CONVEYOR_OP_MAX_SCALAR, a)
        case let .addMatrix(m): return step(CONVEYOR_OP_ADD, m)
        case let .subtractMatrix(m): return step(CONVEYOR_OP_SUB, m)
        case let .multiplyMatrix(m): return step(CONVEYOR_OP_MUL, m)
        case let .divideMatrix(m): return step(CONVEYOR_OP_DIV, m)
        case let .minimumMatrix(m): return step(CONVEYOR_OP_MIN, m)
        case let .maximumMatrix(m): return step(CONVEYOR_OP_MAX, m)
        }
    }

    private static func rebound<E, T>(_ p: UnsafeMutablePointer<E>) -> UnsafeMutablePointer<T> {
        precondition(MemoryLayout<E>.stride == MemoryLayout<T>.stride,
                     "Conveyor: \(E.self) is not a supported MatrixElement")
        return UnsafeMutableRawPointer(p).assumingMemoryBound(to: T.self)
    }

    private static func rebound<E, T>(_ p: UnsafePointer<E>) -> UnsafePointer<T> {
        precondition(MemoryLayout<E>.stride == MemoryLayout<T>.stride,
                     "Conveyor: \(E.self) is not a supported MatrixElement")
        return UnsafeRawPointer(p).assumingMemoryBound(to: T.self)
    }

    private static func trapOnFailure(_ status: Int32, _ kernel: String) {
        guard status != 0 else { return }
        preconditionFailure("Conveyor bug: conveyor \(kernel) rejected validated input: "
                            + "\(ConveyorError(rawValue: status))")
    }
}
