import ArgumentParser
import CKernels
import Conveyor

#if canImport(Glibc)
import Glibc
#endif

/// `conveyor-bench seed`: the question's workload — samples of uniform rows × cols
/// matrices through h(x) = x², g(x) = 3x, f(x) = x + 1, summed — in every variant, with
/// checksums, beside this machine's memcpy bandwidth measured in the same run.
struct SeedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seed",
        abstract: "The question's h -> g -> f pipeline: serial, pipelines, replicated, copy-queue.")

    @Option(help: "Samples (matrices) per variant.") var samples = 1000
    @Option(help: "Rows of each sample.") var rows = 500
    @Option(help: "Columns of each sample.") var cols = 2000
    @Option(help: "Slots in flight on each pipeline edge.") var buffer = 3
    @Option(help: "Element type: f64 or f32.") var dtype = "f64"
    @Option(help: "Comma-separated variants (default: all).") var variants: String?
    @Option(help: "Dealings replicated-skewed runs with, a row each: round-robin, dynamic or both, comma-separated.")
    var dealing = "round-robin,dynamic"
    @Option(help: "Write the rows as a JSON array to this path.") var json: String?
    @Flag(help: "Print each pipeline variant's per-stage statistics (busy, waits, bottleneck).")
    var stats = false
    @Flag(help: "Also run the Python ports of the question's variants (python3 + numpy) in the same run.")
    var withPython = false
    @Option(help: "The Python ports' script.") var pythonScript = "Benchmarks/python/seed_variants.py"
    @Option(help: "Write an SVG bar chart of the table (ms per sample, log axis) to this path.") var chart: String?

    static let allVariants = ["serial", "serial-fused", "pipeline-threads", "pipeline-processes",
                              "pipeline-processes-fused", "pipeline-external", "pipeline-spawned", "replicated",
                              "replicated-skewed", "replicated-materialized", "copy-queue"]

    func validate() throws {
        guard samples > 0, rows > 0, cols > 0, buffer > 0 else {
            throw ValidationError("--samples, --rows, --cols and --buffer must be positive")
        }
        guard dtype == "f64" || dtype == "f32" else { throw ValidationError("--dtype must be f64 or f32") }
        for d in dealing.split(separator: ",") where Dealing(rawValue: String(d)) == nil {
            throw ValidationError("unknown dealing '\(d)'; choose from \(Dealing.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        for v in chosen where !Self.allVariants.contains(v) {
            throw ValidationError("unknown variant '\(v)'; choose from \(Self.allVariants.joined(separator: ", "))")
        }
    }

    var chosen: [String] { variants.map { $0.split(separator: ",").map(String.init) } ?? Self.allVariants }
    var dealings: [Dealing] { dealing.split(separator: ",").compactMap { Dealing(rawValue: String($0)) } }

    func run() throws {
        // A copy this run spawned for a pipeline-spawned stage serves it here and exits.
        if dtype == "f64" {
            SeedSuite<Double>(samples: samples, rows: rows, cols: cols, buffer: buffer).serveIfSpawned()
        } else {
            SeedSuite<Float>(samples: samples, rows: rows, cols: cols, buffer: buffer).serveIfSpawned()
        }
        print("conveyor-bench seed: \(samples) samples of \(rows)x\(cols) \(dtype), buffer \(buffer)")
        let machine = machineDescription()
        print("machine: \(machine)\n")
        var (table, memcpyGBs) = dtype == "f64"
            ? try SeedSuite<Double>(samples: samples, rows: rows, cols: cols, buffer: buffer, showStats: stats,
                                    dealings: dealings).run(chosen)
            : try SeedSuite<Float>(samples: samples, rows: rows, cols: cols, buffer: buffer, showStats: stats,
                                   dealings: dealings).run(chosen)
        var note: String?
        if withPython {
            if dtype != "f64" {
                note = "the Python ports run float64 only; rerun with --dtype f64 to compare"
            } else {
                do throws(PythonBaselines.Unavailable) {
                    let report = try PythonBaselines.run(script: pythonScript, samples: samples, rows: rows, cols: cols,
                                                         buffer: buffer)
                    table = withRatios(table + pythonRows(report, table: table, memcpyGBs: memcpyGBs))
                    note = "Python \(report.python), numpy \(report.numpy). Python checksums agree among themselves; "
                        + "they differ from Conveyor's because numpy's generator and sum are not Conveyor's."
                } catch {
                    note = "no Python comparison: \(error)"
                }
            }
        }
        print("")
        printSeedTable(table, memcpyGBs: memcpyGBs)
        if let note { print(note) }
        printTargets(table)
        if let json {
            try writeJSON(table, to: json)
            print("\nwrote \(table.count) rows to \(json)")
        }
        if let chart {
            let title = "\(samples) samples of \(rows)x\(cols) \(dtype) through h, g, f; \(machine)"
            try SeedChart(rows: table, memcpyGBs: memcpyGBs, sampleBytes: rows * cols * (dtype == "f64" ? 8 : 4),
                          title: title).svg().write(toFile: chart, atomically: true, encoding: .utf8)
            print("wrote the chart to \(chart)")
        }
    }

    /// The Python ports' rows, named python-<variant>. The ports over Conveyor's rings and
    /// pipeline (python-conveyor-*) are impl "python+conveyor" and the iceoryx2 peer is
    /// "python+iceoryx2": not among the question's answers, so not candidates for
    /// "fastest Python".
    private func pythonRows(_ report: PythonBaselines.Report, table: [SeedRow], memcpyGBs: Double) -> [SeedRow] {
        let serial = table.first { $0.variant == "serial" }?.seconds
        return report.rows.map { r in
            let impl = r.variant.hasPrefix("conveyor") ? "python+conveyor"
                : r.variant == "iceoryx2" ? "python+iceoryx2" : "python"
            return SeedRow(variant: "python-" + r.variant, impl: impl, samples: r.samples, seconds: r.seconds,
                    msPerSample: r.ms_per_sample, samplesPerS: Double(r.samples) / r.seconds, gbPerS: nil,
                    memcpyGbPerS: memcpyGBs, speedupVsSerial: serial.map { $0 / r.seconds }, checksum: r.checksum)
        }
    }

    /// Every row's ratio to the question's multiprocessing.Queue pipeline and to the
    /// fastest Python port (time of theirs / time of the row).
    private func withRatios(_ table: [SeedRow]) -> [SeedRow] {
        let mpQueue = table.first { $0.variant == "python-mp-queue" }?.seconds
        let fastest = table.filter { $0.impl == "python" }.map(\.seconds).min()
        return table.map { row in
            var row = row
            row.vsMpQueue = mpQueue.map { $0 / row.seconds }
            row.vsFastestPython = fastest.map { $0 / row.seconds }
            return row
        }
    }

    /// The issue's targets, as ratios from this run.
    private func printTargets(_ table: [SeedRow]) {
        func seconds(_ variant: String) -> Double? { table.first { $0.variant == variant }?.seconds }
        var lines: [String] = []
        if let p = seconds("pipeline-processes"), let t = seconds("pipeline-threads") {
            lines.append("pipeline-processes / pipeline-threads time: \(format(p / t, 2)) (target <= 1.15)")
        }
        let skewed = { (d: Dealing) in table.first { $0.variant == "replicated-skewed" && $0.dealing == d.rawValue }?.seconds }
        if let r = skewed(.roundRobin), let d = skewed(.dynamic) {
            lines.append("replicated-skewed dynamic vs round-robin: \(format(r / d, 2))x faster (target >= 1.3)")
        }
        let started = { (v: String) in table.first { $0.variant == v }?.msPerSampleStarted }
        if let p = seconds("pipeline-processes") {
            if let e = started("pipeline-external"), let row = table.first(where: { $0.variant == "pipeline-external" }) {
                lines.append("pipeline-external / pipeline-processes time once started: \(format(e * Double(row.samples) / 1e3 / p, 2)) "
                             + "(target <= 1.1; start-up \(format(row.startupMs ?? 0, 1)) ms)")
            }
            if let s = started("pipeline-spawned"), let row = table.first(where: { $0.variant == "pipeline-spawned" }) {
                lines.append("pipeline-spawned / pipeline-processes time once started: \(format(s * Double(row.samples) / 1e3 / p, 2)) "
                             + "(target <= 1.1; start-up \(format(row.startupMs ?? 0, 1)) ms)")
            }
        }
        if let p = seconds("pipeline-processes"), let s = seconds("serial") {
            lines.append("pipeline-processes vs serial: \(format(s / p, 2))x faster (target >= 1.3)")
        }
        if let p = seconds("pipeline-processes"), let q = seconds("python-mp-queue") {
            lines.append("pipeline-processes vs python-mp-queue: \(format(q / p, 1))x faster (target >= 40)")
        }
        if let r = seconds("python-conveyor-ring"), let q = seconds("python-mp-queue") {
            lines.append("python-conveyor-ring vs python-mp-queue: \(format(q / r, 1))x faster (target >= 15)")
        }
        if let d = seconds("python-conveyor-dropin"), let q = seconds("python-mp-queue") {
            lines.append("python-conveyor-dropin vs python-mp-queue: \(format(q / d, 1))x faster (target >= 8)")
        }
        if let p = seconds("python-conveyor-pipeline") {
            if let q = seconds("python-mp-queue") {
                lines.append("python-conveyor-pipeline vs python-mp-queue: \(format(q / p, 1))x faster (target >= 15)")
            }
            if let i = seconds("python-iceoryx2") {
                lines.append("python-conveyor-pipeline vs python-iceoryx2: \(format(i / p, 2))x faster (target >= 1.3)")
            }
        }
        if let k = seconds("python-conveyor-kernels") {
            if let q = seconds("python-mp-queue") {
                lines.append("python-conveyor-kernels vs python-mp-queue: \(format(q / k, 1))x faster (target >= 40)")
            }
            if let f = seconds("pipeline-processes-fused") {
                lines.append("python-conveyor-kernels / pipeline-processes-fused time: \(format(k / f, 2)) (target <= 1.3)")
            }
        }
        let conveyor = table.filter { $0.impl == "conveyor" }.min { $0.seconds < $1.seconds }
        let python = table.filter { $0.impl == "python" }.min { $0.seconds < $1.seconds }
        if let c = conveyor, let p = python {
            lines.append("fastest Conveyor (\(c.variant)) vs fastest Python (\(p.variant)): "
                         + "\(format(p.seconds / c.seconds, 1))x faster (target >= 12)")
        }
        if !lines.isEmpty { print("\n" + lines.joined(separator: "\n")) }
    }
}

/// One variant's result: a table line and a JSON object.
struct SeedRow: Encodable {
    var variant: String
    /// How replicas got their items (`replicated-skewed` only): "round-robin" or "dynamic".
    var dealing: String? = nil
    /// "conveyor" or "python".
    var impl = "conveyor"
    var samples: Int
    var seconds: Double
    var msPerSample: Double
    var samplesPerS: Double
    /// Bytes the variant's memory passes read and write per second (Conveyor rows only).
    var gbPerS: Double?
    /// This run's memcpy bandwidth (read + write bytes per second), for the roofline.
    var memcpyGbPerS: Double
    /// Time of `serial` / this row's; nil when `serial` was not among the variants run.
    var speedupVsSerial: Double?
    /// For rows that start programs (pipeline-external, pipeline-spawned): the wall time of
    /// the same run with no items, in ms, and this row's time per sample without it.
    var startupMs: Double?
    var msPerSampleStarted: Double?
    /// Time of the question's multiprocessing.Queue pipeline / this row's (with --with-python).
    var vsMpQueue: Double?
    /// Time of the fastest Python variant / this row's (with --with-python).
    var vsFastestPython: Double?
    var checksum: Double

    enum CodingKeys: String, CodingKey {
        case variant, dealing, impl, samples, seconds, checksum
        case msPerSample = "ms_per_sample", samplesPerS = "samples_per_s", gbPerS = "gb_per_s"
        case memcpyGbPerS = "memcpy_gb_per_s", speedupVsSerial = "speedup_vs_serial"
        case vsMpQueue = "vs_mp_queue", vsFastestPython = "vs_fastest_python"
        case startupMs = "startup_ms", msPerSampleStarted = "ms_per_sample_started"
    }
}

func printSeedTable(_ rows: [SeedRow], memcpyGBs: Double) {
    let python = rows.contains { $0.impl == "python" }
    var header = ["variant", "seconds", "ms/sample", "samples/s", "GB/s", "of memcpy", "vs serial"]
    if python { header += ["vs mp-queue", "vs best py"] }
    header.append("checksum")
    let cells = rows.map { r in
        let name: String = r.dealing.map { "\(r.variant) (\($0))" } ?? r.variant
        var line = [name, format(r.seconds, 3), format(r.msPerSample, 3), format(r.samplesPerS, 1),
                    r.gbPerS.map { format($0, 1) } ?? "-", r.gbPerS.map { format($0 / memcpyGBs, 2) } ?? "-",
                    r.speedupVsSerial.map { format($0, 2) + "x" } ?? "-"]
        if python { line += [r.vsMpQueue.map { format($0, 1) + "x" } ?? "-", r.vsFastestPython.map { format($0, 1) + "x" } ?? "-"] }
        line.append(String(format: "%.6f", r.checksum))
        return line
    }
    printAligned(header: header, leftAligned: 1, cells)
    print("\nmemcpy on this machine, same run: \(format(memcpyGBs, 1)) GB/s (bytes read + written per second, 8 MB copies)")
}
