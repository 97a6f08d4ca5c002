import ArgumentParser
import BenchBaselines
import CKernels
import Conveyor
import Foundation

/// `conveyor-bench kernels`: every kernel on a rows × cols matrix of f64 and f32, beside
/// memcpy of the same output bytes and the naive scalar loop, all interleaved in one run.
struct KernelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "Time each kernel (SIMD, naive, memcpy, numpy) on a 500x2000 matrix.")

    @Option(help: "Rows of the matrix.") var rows = 500
    @Option(help: "Columns of the matrix.") var cols = 2000
    @Option(help: "Timed repetitions per row (median and min are reported).") var reps = 40
    @Option(help: "Untimed warm-up repetitions.") var warmup = 5
    @Option(help: "Comma-separated thread counts for the SIMD rows (default: 1 and all cores).")
    var threads: String?
    @Option(help: "Data types: f64, f32 or both (comma-separated).") var dtypes = "f64,f32"
    @Flag(help: "Skip the numpy comparison rows.") var noNumpy = false
    @Option(help: "Write the rows as a JSON array to this path.") var json: String?

    func validate() throws {
        guard rows > 0, cols > 0 else { throw ValidationError("--rows and --cols must be positive") }
        guard reps > 0, warmup >= 0 else { throw ValidationError("--reps must be > 0, --warmup >= 0") }
        _ = try threadCounts()
        _ = try dtypeList()
    }

    func threadCounts() throws -> [Int] {
        guard let threads else { return Array(Set([1, Kernels.threads])).sorted() }
        let counts = threads.split(separator: ",").compactMap { Int($0) }
        guard !counts.isEmpty, counts.allSatisfy({ $0 >= 1 && $0 <= 256 }) else {
            throw ValidationError("--threads must list counts in 1...256, e.g. 1,2")
        }
        if counts.contains(where: { $0 > 1 }) && !Kernels.hasOpenMP {
            throw ValidationError("this build has no OpenMP: only --threads 1 is possible")
        }
        return counts
    }

    func dtypeList() throws -> [DType] {
        try dtypes.split(separator: ",").map {
            switch $0 {
            case "f64": return .float64
            case "f32": return .float32
            default: throw ValidationError("unknown dtype '\($0)': use f64 or f32")
            }
        }
    }

    func run() throws {
        let counts = try threadCounts()
        print("conveyor-bench kernels: \(rows)x\(cols), \(reps) reps after \(warmup) warm-up, interleaved")
        print("machine: \(machineDescription())\n")
        var table: [KernelRow] = []
        for dtype in try dtypeList() {
            table += dtype == .float64
                ? KernelSuite<Double>(count: rows * cols, threads: counts).measure(reps: reps, warmup: warmup)
                : KernelSuite<Float>(count: rows * cols, threads: counts).measure(reps: reps, warmup: warmup)
            if !noNumpy { table += numpyUniformRow(dtype: dtype, table: table) }
        }
        printTable(table)
        if let json {
            try writeJSON(table, to: json)
            print("\nwrote \(table.count) rows to \(json)")
        }
    }

    /// numpy's `default_rng(i).random(out=buf)` on the same shape, timed inside Python.
    private func numpyUniformRow(dtype: DType, table: [KernelRow]) -> [KernelRow] {
        guard let timing = NumpyTiming.uniform(count: rows * cols, dtype: dtype, reps: reps) else {
            print("note: python3 with numpy not found; numpy rows skipped")
            return []
        }
        let bytes = rows * cols * dtype.size
        let memcpy = table.first { $0.kernel == "memcpy" && $0.dtype == dtype.description }?.msMedian ?? .nan
        return [KernelRow(kernel: "fill_uniform_numpy", impl: "numpy", dtype: dtype.description, threads: 1,
                          elements: rows * cols, bytesMoved: bytes, msMedian: timing.median, msMin: timing.min,
                          gbPerS: Double(bytes) / timing.median / 1e6, vsMemcpy: timing.median / memcpy)]
    }
}
