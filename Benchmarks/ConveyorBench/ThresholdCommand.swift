import ArgumentParser
import CKernels
import Conveyor

#if canImport(Glibc)
import Glibc
#endif

/// `conveyor-bench threshold`: the output size from which a parallel region pays, found
/// by timing a kernel with 1 thread and with all threads across sizes (interleaved).
/// The default CONVEYOR_DEFAULT_PARALLEL_THRESHOLD comes from this measurement.
struct ThresholdCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "threshold",
        abstract: "Find the array size from which running a kernel on all threads pays.")

    @Option(help: "Timed repetitions per size.") var reps = 200

    func run() throws {
        guard Kernels.hasOpenMP, Kernels.threads > 1 else {
            print("threshold: needs OpenMP and more than one core; nothing to measure")
            return
        }
        let all = Kernels.threads
        print("machine: \(machineDescription())")
        print("kernel: fused 3x^2+1 (f64), 1 vs \(all) threads, median of \(reps) interleaved reps")
        print("   KiB     1 thr us   \(all) thr us   speedup")
        let saved = conveyor_get_parallel_threshold()
        _ = conveyor_set_parallel_threshold(0)
        defer { _ = conveyor_set_parallel_threshold(saved) }
        let ops = [conveyor_op(code: Int32(CONVEYOR_OP_SQUARE.rawValue), reserved: 0, a: 0, b: 0, operand: nil),
                   conveyor_op(code: Int32(CONVEYOR_OP_MUL_SCALAR.rawValue), reserved: 0, a: 3, b: 0, operand: nil),
                   conveyor_op(code: Int32(CONVEYOR_OP_ADD_SCALAR.rawValue), reserved: 0, a: 1, b: 0, operand: nil)]
        for kib in [16, 32, 64, 128, 256, 512, 1024, 2048, 8192] {
            let n = kib * 1024 / 8
            let x = UnsafeMutablePointer<Double>.allocate(capacity: n)
            let out = UnsafeMutablePointer<Double>.allocate(capacity: n)
            defer { x.deallocate(); out.deallocate() }
            _ = conveyor_f64_fill_uniform(x, n, 1, 0, 0)
            var one = Samples(), many = Samples()
            for rep in 0..<(reps + 10) {
                for threads in [1, all] {
                    _ = conveyor_set_threads(Int32(threads))
                    let ms = timeMilliseconds { _ = conveyor_f64_program(out, x, n, ops, ops.count) }
                    if rep >= 10 { threads == 1 ? one.append(ms) : many.append(ms) }
                }
            }
            print(String(format: "%6d   %10.1f   %10.1f   %7.2f", kib, one.median * 1e3, many.median * 1e3,
                         one.median / many.median))
        }
        _ = conveyor_set_threads(Int32(all))
    }
}
