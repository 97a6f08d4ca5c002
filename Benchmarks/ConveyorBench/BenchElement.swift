import BenchBaselines
import CKernels
import Conveyor

/// The C entry points the benchmark times, per element type, so one generic routine can
/// build the rows of both dtypes.
protocol BenchElement: MatrixElement {
    static func program(_ out: UnsafeMutablePointer<Self>, _ x: UnsafePointer<Self>, _ n: Int,
                        _ ops: [conveyor_op]) -> Int32
    static func sum(_ x: UnsafePointer<Self>, _ n: Int) -> Double
    static func fillUniform(_ out: UnsafeMutablePointer<Self>, _ n: Int, seed: UInt64, stream: UInt64) -> Int32
    static func naive(_ kernel: bench_naive_kernel, _ out: UnsafeMutablePointer<Self>,
                      _ x: UnsafePointer<Self>, _ y: UnsafePointer<Self>, _ n: Int)
    static func naiveSum(_ x: UnsafePointer<Self>, _ n: Int) -> Double
    static func naiveUniform(_ out: UnsafeMutablePointer<Self>, _ n: Int, seed: UInt64)
}

extension Double: BenchElement {
    static func program(_ out: UnsafeMutablePointer<Double>, _ x: UnsafePointer<Double>, _ n: Int,
                        _ ops: [conveyor_op]) -> Int32 {
        conveyor_f64_program(out, x, n, ops, ops.count)
    }
    static func sum(_ x: UnsafePointer<Double>, _ n: Int) -> Double {
        var s = 0.0
        _ = conveyor_f64_sum(x, n, &s)
        return s
    }
    static func fillUniform(_ out: UnsafeMutablePointer<Double>, _ n: Int, seed: UInt64, stream: UInt64 = 0) -> Int32 {
        conveyor_f64_fill_uniform(out, n, seed, stream, 0)
    }
    static func naive(_ kernel: bench_naive_kernel, _ out: UnsafeMutablePointer<Double>,
                      _ x: UnsafePointer<Double>, _ y: UnsafePointer<Double>, _ n: Int) {
        bench_naive_f64(kernel, out, x, y, 3, 1, n)
    }
    static func naiveSum(_ x: UnsafePointer<Double>, _ n: Int) -> Double { bench_naive_sum_f64(x, n) }
    static func naiveUniform(_ out: UnsafeMutablePointer<Double>, _ n: Int, seed: UInt64) {
        bench_naive_uniform_f64(out, n, seed, 0)
    }
}

extension Float: BenchElement {
    static func program(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int,
                        _ ops: [conveyor_op]) -> Int32 {
        conveyor_f32_program(out, x, n, ops, ops.count)
    }
    static func sum(_ x: UnsafePointer<Float>, _ n: Int) -> Double {
        var s = 0.0
        _ = conveyor_f32_sum(x, n, &s)
        return s
    }
    static func fillUniform(_ out: UnsafeMutablePointer<Float>, _ n: Int, seed: UInt64, stream: UInt64 = 0) -> Int32 {
        conveyor_f32_fill_uniform(out, n, seed, stream, 0)
    }
    static func naive(_ kernel: bench_naive_kernel, _ out: UnsafeMutablePointer<Float>,
                      _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ n: Int) {
        bench_naive_f32(kernel, out, x, y, 3, 1, n)
    }
    static func naiveSum(_ x: UnsafePointer<Float>, _ n: Int) -> Double { bench_naive_sum_f32(x, n) }
    static func naiveUniform(_ out: UnsafeMutablePointer<Float>, _ n: Int, seed: UInt64) {
        bench_naive_uniform_f32(out, n, seed, 0)
    }
}
