import BenchBaselines
import CKernels
import Conveyor

#if canImport(Glibc)
import Glibc
#endif

/// The rows of one dtype: buffers, the list of timed cases, and the interleaved loop.
struct KernelSuite<T: BenchElement> {
    let count: Int
    let threads: [Int]

    /// One timed row: what it runs and how many bytes one call moves.
    struct Case {
        var kernel: String
        var impl: String
        var threads: Int
        var bytesMoved: Int
        var run: () -> Void
    }

    func measure(reps: Int, warmup: Int) -> [KernelRow] {
        let x = alignedBuffer(), y = alignedBuffer(), out = alignedBuffer()
        defer { free(x); free(y); free(out) }
        _ = T.fillUniform(x, count, seed: 1, stream: 0)
        _ = T.fillUniform(y, count, seed: 2, stream: 0)
        _ = T.fillUniform(out, count, seed: 3, stream: 0)

        let cases = makeCases(x: x, y: y, out: out)
        var samples = Array(repeating: Samples(), count: cases.count)
        // A B C ... A B C ...: every row sees the same spells of a noisy machine.
        for rep in 0..<(warmup + reps) {
            for (i, c) in cases.enumerated() {
                _ = conveyor_set_threads(Int32(c.threads))
                let ms = timeMilliseconds(c.run)
                if rep >= warmup { samples[i].append(ms) }
            }
        }
        _ = conveyor_set_threads(Int32(threads.max() ?? 1))

        let memcpyMedian = samples[0].median
        return zip(cases, samples).map { c, s in
            KernelRow(kernel: c.kernel, impl: c.impl, dtype: T.dtype.description, threads: c.threads,
                      elements: count, bytesMoved: c.bytesMoved, msMedian: s.median, msMin: s.min,
                      gbPerS: Double(c.bytesMoved) / s.median / 1e6, vsMemcpy: s.median / memcpyMedian)
        }
    }

    private var bytes: Int { count * MemoryLayout<T>.stride }

    private func alignedBuffer() -> UnsafeMutablePointer<T> {
        var raw: UnsafeMutableRawPointer?
        precondition(posix_memalign(&raw, 64, bytes) == 0, "out of memory")
        return raw!.bindMemory(to: T.self, capacity: count)
    }

    private func makeCases(x: UnsafeMutablePointer<T>, y: UnsafeMutablePointer<T>,
                           out: UnsafeMutablePointer<T>) -> [Case] {
        let n = count, b = bytes
        func op(_ code: conveyor_opcode, a: Double = 3, b: Double = 1, operand: UnsafeRawPointer? = nil) -> conveyor_op {
            conveyor_op(code: Int32(code.rawValue), reserved: 0, a: a, b: b, operand: operand)
        }
        let fused = [op(CONVEYOR_OP_SQUARE), op(CONVEYOR_OP_MUL_SCALAR, a: 3), op(CONVEYOR_OP_ADD_SCALAR, a: 1)]
        // (name, one-step program, naive equivalent, inputs read)
        let elementwise: [(String, [conveyor_op], bench_naive_kernel?, Int)] = [
            ("copy", [op(CONVEYOR_OP_COPY)], BENCH_NAIVE_COPY, 1),
            ("add_scalar", [op(CONVEYOR_OP_ADD_SCALAR)], BENCH_NAIVE_ADD_SCALAR, 1),
            ("mul_scalar", [op(CONVEYOR_OP_MUL_SCALAR)], BENCH_NAIVE_MUL_SCALAR, 1),
            ("div_scalar", [op(CONVEYOR_OP_DIV_SCALAR)], BENCH_NAIVE_DIV_SCALAR, 1),
            ("square", [op(CONVEYOR_OP_SQUARE)], BENCH_NAIVE_SQUARE, 1),
            ("affine", [op(CONVEYOR_OP_AFFINE)], BENCH_NAIVE_AFFINE, 1),
            ("max_scalar", [op(CONVEYOR_OP_MAX_SCALAR, a: 0.5)], BENCH_NAIVE_MAX_SCALAR, 1),
            ("add", [op(CONVEYOR_OP_ADD, operand: UnsafeRawPointer(y))], BENCH_NAIVE_ADD, 2),
            ("mul", [op(CONVEYOR_OP_MUL, operand: UnsafeRawPointer(y))], BENCH_NAIVE_MUL, 2),
            ("fused_3x2_plus_1", fused, BENCH_NAIVE_FUSED_3X2_PLUS_1, 1),
        ]

        var cases = [Case(kernel: "memcpy", impl: "libc", threads: 1, bytesMoved: 2 * b) {
            memcpy(out, x, b)
        }]
        for t in threads {
            for (name, program, _, inputs) in elementwise {
                cases.append(Case(kernel: name, impl: "simd", threads: t, bytesMoved: (inputs + 1) * b) {
                    _ = T.program(out, x, n, program)
                })
            }
            cases.append(Case(kernel: "unfused_3x2_plus_1", impl: "simd", threads: t, bytesMoved: 6 * b) {
                _ = T.program(out, x, n, [fused[0]])
                _ = T.program(out, out, n, [fused[1]])
                _ = T.program(out, out, n, [fused[2]])
            })
            cases.append(Case(kernel: "sum", impl: "simd", threads: t, bytesMoved: b) {
                blackHole(T.sum(x, n))
            })
            cases.append(Case(kernel: "fill_uniform", impl: "simd", threads: t, bytesMoved: b) {
                _ = T.fillUniform(out, n, seed: 9, stream: 0)
            })
        }
        for (name, _, naive, inputs) in elementwise {
            guard let naive else { continue }
            cases.append(Case(kernel: name + "_naive", impl: "naive", threads: 1, bytesMoved: (inputs + 1) * b) {
                T.naive(naive, out, x, y, n)
            })
        }
        cases.append(Case(kernel: "sum_naive", impl: "naive", threads: 1, bytesMoved: b) {
            blackHole(T.naiveSum(x, n))
        })
        cases.append(Case(kernel: "fill_uniform_naive", impl: "naive", threads: 1, bytesMoved: b) {
            T.naiveUniform(out, n, seed: 9)
        })
        return cases
    }
}

/// Keeps a result alive so the optimizer cannot drop the call that made it.
@inline(never) func blackHole<V>(_ value: V) { withExtendedLifetime(value) {} }
