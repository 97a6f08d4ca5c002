import CKernels
import Conveyor

/// The C entry points of one element type, so each test is written once for f64 and f32.
protocol TestElement: MatrixElement {
    static func program(_ out: UnsafeMutablePointer<Self>?, _ x: UnsafePointer<Self>?, _ n: Int,
                        _ ops: [conveyor_op]) -> Int32
    static func sum(_ x: UnsafePointer<Self>?, _ n: Int, _ result: inout Double) -> Int32
    static func fill(_ out: UnsafeMutablePointer<Self>?, _ n: Int, seed: UInt64, stream: UInt64,
                     first: UInt64) -> Int32
    /// The named single-op kernel for `code` (section 4 of conveyor.h).
    static func named(_ code: conveyor_opcode, _ out: UnsafeMutablePointer<Self>?,
                      _ x: UnsafePointer<Self>?, _ y: UnsafePointer<Self>?, a: Self, b: Self,
                      _ n: Int) -> Int32
    /// Reference uniform value: the formula documented in conveyor.h §7, in Swift.
    static func uniformReference(bits: UInt64) -> Self
}

extension Double: TestElement {
    static func program(_ out: UnsafeMutablePointer<Double>?, _ x: UnsafePointer<Double>?, _ n: Int,
                        _ ops: [conveyor_op]) -> Int32 {
        conveyor_f64_program(out, x, n, ops, ops.count)
    }
    static func sum(_ x: UnsafePointer<Double>?, _ n: Int, _ result: inout Double) -> Int32 {
        conveyor_f64_sum(x, n, &result)
    }
    static func fill(_ out: UnsafeMutablePointer<Double>?, _ n: Int, seed: UInt64, stream: UInt64,
                     first: UInt64) -> Int32 {
        conveyor_f64_fill_uniform(out, n, seed, stream, first)
    }
    static func named(_ code: conveyor_opcode, _ out: UnsafeMutablePointer<Double>?,
                      _ x: UnsafePointer<Double>?, _ y: UnsafePointer<Double>?, a: Double, b: Double,
                      _ n: Int) -> Int32 {
        switch code {
        case CONVEYOR_OP_COPY: conveyor_f64_copy(out, x, n)
        case CONVEYOR_OP_ADD_SCALAR: conveyor_f64_add_scalar(out, x, a, n)
        case CONVEYOR_OP_SUB_SCALAR: conveyor_f64_sub_scalar(out, x, a, n)
        case CONVEYOR_OP_MUL_SCALAR: conveyor_f64_mul_scalar(out, x, a, n)
        case CONVEYOR_OP_DIV_SCALAR: conveyor_f64_div_scalar(out, x, a, n)
        case CONVEYOR_OP_SQUARE: conveyor_f64_square(out, x, n)
        case CONVEYOR_OP_AFFINE: conveyor_f64_affine(out, x, a, b, n)
        case CONVEYOR_OP_MIN_SCALAR: conveyor_f64_min_scalar(out, x, a, n)
        case CONVEYOR_OP_MAX_SCALAR: conveyor_f64_max_scalar(out, x, a, n)
        case CONVEYOR_OP_ADD: conveyor_f64_add(out, x, y, n)
        case CONVEYOR_OP_SUB: conveyor_f64_sub(out, x, y, n)
        case CONVEYOR_OP_MUL: conveyor_f64_mul(out, x, y, n)
        case CONVEYOR_OP_DIV: conveyor_f64_div(out, x, y, n)
        case CONVEYOR_OP_MIN: conveyor_f64_min(out, x, y, n)
        case CONVEYOR_OP_MAX: conveyor_f64_max(out, x, y, n)
        default: -1
        }
    }
    static func uniformReference(bits: UInt64) -> Double {
        Double(bitPattern: 0x3FF0_0000_0000_0000 | (bits >> 12)) - 1
    }
}

extension Float: TestElement {
    static func program(_ out: UnsafeMutablePointer<Float>?, _ x: UnsafePointer<Float>?, _ n: Int,
                        _ ops: [conveyor_op]) -> Int32 {
        conveyor_f32_program(out, x, n, ops, ops.count)
    }
    static func sum(_ x: UnsafePointer<Float>?, _ n: Int, _ result: inout Double) -> Int32 {
        conveyor_f32_sum(x, n, &result)
    }
    static func fill(_ out: UnsafeMutablePointer<Float>?, _ n: Int, seed: UInt64, stream: UInt64,
                     first: UInt64) -> Int32 {
        conveyor_f32_fill_uniform(out, n, seed, stream, first)
    }
    static func named(_ code: conveyor_opcode, _ out: UnsafeMutablePointer<Float>?,
                      _ x: UnsafePointer<Float>?, _ y: UnsafePointer<Float>?, a: Float, b: Float,
                      _ n: Int) -> Int32 {
        switch code {
        case CONVEYOR_OP_COPY: conveyor_f32_copy(out, x, n)
        case CONVEYOR_OP_ADD_SCALAR: conveyor_f32_add_scalar(out, x, a, n)
        case CONVEYOR_OP_SUB_SCALAR: conveyor_f32_sub_scalar(out, x, a, n)
        case CONVEYOR_OP_MUL_SCALAR: conveyor_f32_mul_scalar(out, x, a, n)
        case CONVEYOR_OP_DIV_SCALAR: conveyor_f32_div_scalar(out, x, a, n)
        case CONVEYOR_OP_SQUARE: conveyor_f32_square(out, x, n)
        case CONVEYOR_OP_AFFINE: conveyor_f32_affine(out, x, a, b, n)
        case CONVEYOR_OP_MIN_SCALAR: conveyor_f32_min_scalar(out, x, a, n)
        case CONVEYOR_OP_MAX_SCALAR: conveyor_f32_max_scalar(out, x, a, n)
        case CONVEYOR_OP_ADD: conveyor_f32_add(out, x, y, n)
        case CONVEYOR_OP_SUB: conveyor_f32_sub(out, x, y, n)
        case CONVEYOR_OP_MUL: conveyor_f32_mul(out, x, y, n)
        case CONVEYOR_OP_DIV: conveyor_f32_div(out, x, y, n)
        case CONVEYOR_OP_MIN: conveyor_f32_min(out, x, y, n)
        case CONVEYOR_OP_MAX: conveyor_f32_max(out, x, y, n)
        default: -1
        }
    }
    static func uniformReference(bits: UInt64) -> Float {
        Float(bitPattern: 0x3F80_0000 | UInt32(truncatingIfNeeded: bits >> 41)) - 1
    }
}

/// Every opcode the kernels implement, with its scalar reference: the same IEEE
/// operations in the same order, so kernel and reference must agree bit for bit.
struct OpCase<T: TestElement> {
    var name: String
    var code: conveyor_opcode
    var a: T = 0
    var b: T = 0
    var binary: Bool = false
    var reference: (_ v: T, _ y: T, _ a: T, _ b: T) -> T

    static var all: [OpCase] {
        [
            OpCase(name: "copy", code: CONVEYOR_OP_COPY) { v, _, _, _ in v },
            OpCase(name: "add_scalar", code: CONVEYOR_OP_ADD_SCALAR, a: 0.75) { v, _, a, _ in v + a },
            OpCase(name: "sub_scalar", code: CONVEYOR_OP_SUB_SCALAR, a: 0.3) { v, _, a, _ in v - a },
            OpCase(name: "rsub_scalar", code: CONVEYOR_OP_RSUB_SCALAR, a: 2.5) { v, _, a, _ in a - v },
            OpCase(name: "mul_scalar", code: CONVEYOR_OP_MUL_SCALAR, a: 3) { v, _, a, _ in v * a },
            OpCase(name: "div_scalar", code: CONVEYOR_OP_DIV_SCALAR, a: 7) { v, _, a, _ in v / a },
            OpCase(name: "rdiv_scalar", code: CONVEYOR_OP_RDIV_SCALAR, a: 1.5) { v, _, a, _ in a / v },
            OpCase(name: "square", code: CONVEYOR_OP_SQUARE) { v, _, _, _ in v * v },
            OpCase(name: "affine", code: CONVEYOR_OP_AFFINE, a: 0.1, b: 0.7) { v, _, a, b in
                let product = a * v  // two roundings, as documented: no FMA
                return product + b
            },
            OpCase(name: "min_scalar", code: CONVEYOR_OP_MIN_SCALAR, a: 0.5) { v, _, a, _ in a < v ? a : v },
            OpCase(name: "max_scalar", code: CONVEYOR_OP_MAX_SCALAR, a: 0.5) { v, _, a, _ in a > v ? a : v },
            // -0 as the scalar: the vector path must return it bit for bit, not +0.
            OpCase(name: "max_scalar(-0)", code: CONVEYOR_OP_MAX_SCALAR, a: -0.0) { v, _, a, _ in a > v ? a : v },
            OpCase(name: "min_scalar(-0)", code: CONVEYOR_OP_MIN_SCALAR, a: -0.0) { v, _, a, _ in a < v ? a : v },
            OpCase(name: "add", code: CONVEYOR_OP_ADD, binary: true) { v, y, _, _ in v + y },
            OpCase(name: "sub", code: CONVEYOR_OP_SUB, binary: true) { v, y, _, _ in v - y },
            OpCase(name: "mul", code: CONVEYOR_OP_MUL, binary: true) { v, y, _, _ in v * y },
            OpCase(name: "div", code: CONVEYOR_OP_DIV, binary: true) { v, y, _, _ in v / y },
            OpCase(name: "min", code: CONVEYOR_OP_MIN, binary: true) { v, y, _, _ in y < v ? y : v },
            OpCase(name: "max", code: CONVEYOR_OP_MAX, binary: true) { v, y, _, _ in y > v ? y : v },
        ]
    }

    func op(operand: UnsafeRawPointer? = nil) -> conveyor_op {
        conveyor_op(code: Int32(code.rawValue), reserved: 0, a: Double(a), b: Double(b),
                    operand: binary ? operand : nil)
    }
}

/// The lengths every kernel is checked at: empty, single, around vector widths and strip
/// sizes, and a large odd length that spans parallel chunks.
let testLengths = [0, 1, 7, 8, 9, 63, 64, 65, 1_000_003]

/// Bitwise equality of float buffers (distinguishes -0 from 0, equates equal NaNs).
func sameBits<T: TestElement>(_ a: UnsafeBufferPointer<T>, _ b: UnsafeBufferPointer<T>) -> Int? {
    precondition(a.count == b.count)
    for i in 0..<a.count {
        if a[i].isNaN && b[i].isNaN { continue }
        if a[i] != b[i] || a[i].sign != b[i].sign { return i }
    }
    return nil
}

/// A buffer of `count` elements starting one element past a 64-byte boundary, so every
/// kernel also sees an unaligned start; released by `body`'s end.
func withUnalignedBuffer<T: TestElement, R>(_ count: Int, _ body: (UnsafeMutableBufferPointer<T>) throws -> R) rethrows -> R {
    let raw = UnsafeMutableRawPointer.allocate(byteCount: (count + 16) * MemoryLayout<T>.stride, alignment: 64)
    defer { raw.deallocate() }
    let base = raw.bindMemory(to: T.self, capacity: count + 16) + 1
    return try body(UnsafeMutableBufferPointer(start: base, count: count))
}
