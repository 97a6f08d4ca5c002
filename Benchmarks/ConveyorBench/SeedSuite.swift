import BenchBaselines
import Foundation
import CKernels
import Conveyor

#if canImport(Glibc)
import Glibc
#endif

/// The variants of `conveyor-bench seed` for one element type.
struct SeedSuite<T: BenchElement> {
    let samples: Int
    let rows: Int
    let cols: Int
    let buffer: Int
    /// Print each pipeline run's per-stage statistics.
    var showStats = false
    /// The dealings `replicated-skewed` runs with, a row each.
    var dealings: [Dealing] = Dealing.allCases

    var count: Int { rows * cols }
    var sampleBytes: Int { count * MemoryLayout<T>.stride }
    static var seed: UInt64 { 2016 }

    /// Memory passes per sample, in units of one sample's bytes (reads + writes).
    static func passes(_ variant: String) -> Int {
        switch variant {
        case "serial", "pipeline-threads", "pipeline-processes", "pipeline-external", "pipeline-spawned":
            return 8  // fill, h, g, f, sum
        case "copy-queue": return 8 + 16  // ... plus four pipe edges, each copied in and out
        case "replicated", "replicated-skewed": return 0  // nothing is stored: compute only
        default: return 4  // fill, one fused pass, sum
        }
    }

    func run(_ variants: [String]) throws -> (rows: [SeedRow], memcpyGBs: Double) {
        // Every sum runs on one thread, in every variant, so checksums agree to the bit; the
        // serial variants are single-threaded by definition.
        _ = conveyor_set_threads_local(1)
        defer { _ = conveyor_set_threads_local(0) }
        let memcpyGBs = measureMemcpy()
        var rows: [SeedRow] = []
        var serialSeconds: Double?
        for variant in variants {
            for dealing in variant == "replicated-skewed" ? dealings.map(Optional.some) : [nil] {
                let start = monotonicNanoseconds()
                let checksum = try run(variant, dealing: dealing ?? .roundRobin)
                let seconds = Double(monotonicNanoseconds() - start) / 1e9
                if variant == "serial" { serialSeconds = seconds }
                let passes = Self.passes(variant)
                let gbs = passes == 0 ? nil : Double(passes * sampleBytes * samples) / seconds / 1e9
                var row = SeedRow(variant: variant, dealing: dealing?.rawValue, samples: samples, seconds: seconds,
                                  msPerSample: seconds * 1e3 / Double(samples), samplesPerS: Double(samples) / seconds,
                                  gbPerS: gbs, memcpyGbPerS: memcpyGBs,
                                  speedupVsSerial: serialSeconds.map { $0 / seconds }, checksum: checksum)
                if let startup = try startupSeconds(variant) {
                    row.startupMs = startup * 1e3
                    row.msPerSampleStarted = (seconds - startup) * 1e3 / Double(samples)
                }
                rows.append(row)
            }
        }
        return (rows, memcpyGBs)
    }

    /// The question's pipeline of `items` samples: h, g and f as kernel stages.
    func stages(items: Int) -> Pipeline<T> {
        Pipeline(items: items, rows: rows, cols: cols, of: T.self) { i, x in x.fillUniform(seed: Self.seed, stream: UInt64(i)) }
            .stage("h", [.square]).stage("g", [.multiply(3)]).stage("f", [.add(1)])
    }

    /// The same with h, g and f as external C programs (conveyor-kernel-stage, built next
    /// to this executable by scripts/bench), in place as the kernel stages are.
    func externalStages(items: Int) -> Pipeline<T> {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let program = URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("conveyor-kernel-stage").path
        return Pipeline(items: items, rows: rows, cols: cols, of: T.self) { i, x in
            x.fillUniform(seed: Self.seed, stream: UInt64(i))
        }
        .external("h", command: [program, "square"], inPlace: true)
        .external("g", command: [program, "mul", "3"], inPlace: true)
        .external("f", command: [program, "add", "1"], inPlace: true)
    }

    /// In a copy of this executable that a pipeline-spawned run started: serves its stage
    /// and exits (before anything is printed); elsewhere returns at once.
    func serveIfSpawned() { stages(items: samples).serveIfSpawned() }

    /// For the variants that start programs: the wall time of the same run with no items
    /// (every program started, attached, and ended), reported as the start-up.
    private func startupSeconds(_ variant: String) throws -> Double? {
        let pipeline: Pipeline<T>, mode: ExecutionMode
        switch variant {
        case "pipeline-external": (pipeline, mode) = (externalStages(items: 0), .processes)
        case "pipeline-spawned": (pipeline, mode) = (stages(items: 0), .spawnedProcesses)
        default: return nil
        }
        var times = Samples()
        for _ in 0..<3 {
            let start = monotonicNanoseconds()
            _ = try pipeline.run(mode, buffer: buffer, fusion: false, into: 0.0) { $0 += $1.sum() }
            times.append(Double(monotonicNanoseconds() - start) / 1e9)
        }
        return times.median
    }

    private func run(_ variant: String, dealing: Dealing) throws -> Double {
        let cores = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let fused: [ElementwiseOp<T>] = [.square, .multiply(3), .add(1)]
        let stages = stages(items: samples)
        func total(_ mode: ExecutionMode, fusion: Bool, _ pipeline: Pipeline<T>) throws -> Double {
            let run = try pipeline.run(mode, buffer: buffer, fusion: fusion, into: 0.0) { $0 += $1.sum() }
            return report(run, variant)
        }
        switch variant {
        case "serial": return serial(fused: false)
        case "serial-fused": return serial(fused: true)
        case "pipeline-threads": return try total(.threads, fusion: false, stages)
        case "pipeline-processes": return try total(.processes, fusion: false, stages)
        case "pipeline-processes-fused": return try total(.processes, fusion: true, stages)
        case "pipeline-external": return try total(.processes, fusion: false, externalStages(items: samples))
        case "pipeline-spawned": return try total(.spawnedProcesses, fusion: false, stages)
        case "replicated":
            // The question's "parallelize samples, not functions": one process per core,
            // each generating, transforming and summing whole samples in one fused pass
            // over cache-sized blocks (the sample is never stored); only each sample's sum
            // crosses to the sink, which adds them in order, as serial does.
            let replicated = Pipeline(items: samples, rows: 1, cols: 1, of: Double.self, replicas: cores) { i, sum in
                sum[0, 0] = try Matrix<T>.uniformSum(rows: rows, cols: cols, seed: Self.seed, stream: UInt64(i),
                                                     applying: fused)
            }
            let run = try replicated.run(.processes, buffer: buffer, into: 0.0) { $0 += $1[0, 0] }
            return report(run, variant)
        case "replicated-skewed":
            // The same with uneven items: every 8th item does 8 times the work (its sum is
            // computed 8 times over), as when some inputs are larger or harder. Round-robin
            // gives all of them to one replica when the core count divides 8. The ordered
            // merge's reorder window is the slots in flight: while a heavy item computes, the
            // other replicas finish up to 8 light ones each, which must wait in their slots,
            // so both dealings run with at least 16 one-number slots per replica (64 KiB in
            // all). With --buffer 3, dynamic gains only 1.06x: the window, not the dealing,
            // is then the limit (measured).
            let window = max(buffer, 16)
            let skewed = Pipeline(items: samples, rows: 1, cols: 1, of: Double.self, replicas: cores) { i, sum in
                for _ in 0..<(i % 8 == 0 ? 8 : 1) {
                    sum[0, 0] = try Matrix<T>.uniformSum(rows: rows, cols: cols, seed: Self.seed, stream: UInt64(i),
                                                         applying: fused)
                }
            }
            let run = try skewed.run(.processes, buffer: window, dealing: dealing, into: 0.0) { $0 += $1[0, 0] }
            return report(run, "\(variant) (\(dealing.rawValue))")
        case "replicated-materialized":
            // The same, but each sample is materialized in a slot (8 MB written, then read
            // by a replicated sum stage): what replication costs when the matrices matter.
            let replicated = Pipeline(items: samples, rows: rows, cols: cols, of: T.self, replicas: cores) { i, x in
                x.fillUniform(seed: Self.seed, stream: UInt64(i))
                try x.apply(fused)
            }
            .stage("sum", rows: 1, cols: 1, replicas: cores) { x, total in total[0, 0] = T(x.sum()) }
            let run = try replicated.run(.processes, buffer: buffer, into: 0.0) { $0 += Double($1[0, 0]) }
            return report(run, variant)
        case "copy-queue": return try copyQueue()
        default: fatalError("unknown variant \(variant)")
        }
    }

    /// The run's result, after printing its per-stage table when asked (`--stats`).
    private func report(_ run: PipelineRun<Double>, _ variant: String) -> Double {
        if showStats { print("\(variant):\n\(run.stats)\n") }
        return run.result
    }

    private func op(_ code: conveyor_opcode, _ a: Double = 0) -> conveyor_op {
        conveyor_op(code: Int32(code.rawValue), reserved: 0, a: a, b: 0, operand: nil)
    }

    /// One thread; buffers reused across samples, so nothing is allocated per sample.
    private func serial(fused: Bool) -> Double {
        let x = UnsafeMutablePointer<T>.allocate(capacity: count), h = UnsafeMutablePointer<T>.allocate(capacity: count)
        let g = UnsafeMutablePointer<T>.allocate(capacity: count), f = UnsafeMutablePointer<T>.allocate(capacity: count)
        defer { x.deallocate(); h.deallocate(); g.deallocate(); f.deallocate() }
        var checksum = 0.0
        for i in 0..<samples {
            _ = T.fillUniform(x, count, seed: Self.seed, stream: UInt64(i))
            if fused {
                _ = T.program(x, x, count, [op(CONVEYOR_OP_SQUARE), op(CONVEYOR_OP_MUL_SCALAR, 3), op(CONVEYOR_OP_ADD_SCALAR, 1)])
                checksum += T.sum(x, count)
            } else {
                _ = T.program(h, x, count, [op(CONVEYOR_OP_SQUARE)])
                _ = T.program(g, h, count, [op(CONVEYOR_OP_MUL_SCALAR, 3)])
                _ = T.program(f, g, count, [op(CONVEYOR_OP_ADD_SCALAR, 1)])
                checksum += T.sum(f, count)
            }
        }
        return checksum
    }

    /// The question's own design with pickling-style transport: the same stages, one
    /// process each, every matrix copied through a pipe (write copies it into the kernel,
    /// read copies it out), as multiprocessing.Queue does after pickling.
    private func copyQueue() throws -> Double {
        let stageOps = [op(CONVEYOR_OP_SQUARE), op(CONVEYOR_OP_MUL_SCALAR, 3), op(CONVEYOR_OP_ADD_SCALAR, 1)]
        var pipes: [(read: Int32, write: Int32)] = []
        for _ in 0...stageOps.count {
            var fds: [Int32] = [0, 0]
            guard pipe(&fds) == 0 else { throw ValidationErrorText("pipe failed") }
            pipes.append((fds[0], fds[1]))
        }
        let bytes = sampleBytes
        var children: [pid_t] = []
        for p in 0...stageOps.count {  // p = 0: source; 1...3: h, g, f
            fflush(nil)
            let pid = fork()
            if pid == 0 {
                let buffer = UnsafeMutablePointer<T>.allocate(capacity: count)
                for i in 0..<samples {
                    if p == 0 { _ = T.fillUniform(buffer, count, seed: Self.seed, stream: UInt64(i)) }
                    else {
                        guard bench_read_all(pipes[p - 1].read, buffer, UInt64(bytes)) == 0 else { _exit(1) }
                        _ = T.program(buffer, buffer, count, [stageOps[p - 1]])
                    }
                    guard bench_write_all(pipes[p].write, buffer, UInt64(bytes)) == 0 else { _exit(1) }
                }
                _exit(0)
            }
            children.append(pid)
        }
        let buffer = UnsafeMutablePointer<T>.allocate(capacity: count)
        defer { buffer.deallocate() }
        var checksum = 0.0
        for _ in 0..<samples {
            guard bench_read_all(pipes[stageOps.count].read, buffer, UInt64(bytes)) == 0 else { break }
            checksum += T.sum(buffer, count)
        }
        for pipe in pipes { close(pipe.read); close(pipe.write) }
        // Reaped through Conveyor, which also removes the /dev/shm file each child's OpenMP
        // runtime registered (the kernels initialize it; _exit skips its teardown).
        for child in children { _ = try? ChildProcess.reap(child) }
        return checksum
    }

    /// memcpy of one sample's bytes, median of 30: (read + written bytes) per second.
    private func measureMemcpy() -> Double {
        let a = UnsafeMutableRawPointer.allocate(byteCount: sampleBytes, alignment: 64)
        let b = UnsafeMutableRawPointer.allocate(byteCount: sampleBytes, alignment: 64)
        defer { a.deallocate(); b.deallocate() }
        memset(a, 1, sampleBytes); memset(b, 2, sampleBytes)
        var samples = Samples()
        for _ in 0..<30 { samples.append(timeMilliseconds { memcpy(b, a, sampleBytes) }) }
        return Double(2 * sampleBytes) / (samples.median / 1e3) / 1e9
    }
}

struct ValidationErrorText: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
