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
    @Option(help: "Write the rows as a JSON array to this path.") var json: String?
    @Flag(help: "Print each pipeline variant's per-stage statistics (busy, waits, bottleneck).")
    var stats = false

    static let allVariants = ["serial", "serial-fused", "pipeline-threads", "pipeline-processes",
                              "pipeline-processes-fused", "replicated", "replicated-materialized", "copy-queue"]

    func validate() throws {
        guard samples > 0, rows > 0, cols > 0, buffer > 0 else {
            throw ValidationError("--samples, --rows, --cols and --buffer must be positive")
        }
        guard dtype == "f64" || dtype == "f32" else { throw ValidationError("--dtype must be f64 or f32") }
        for v in chosen where !Self.allVariants.contains(v) {
            throw ValidationError("unknown variant '\(v)'; choose from \(Self.allVariants.joined(separator: ", "))")
        }
    }

    var chosen: [String] { variants.map { $0.split(separator: ",").map(String.init) } ?? Self.allVariants }

    func run() throws {
        print("conveyor-bench seed: \(samples) samples of \(rows)x\(cols) \(dtype), buffer \(buffer)")
        print("machine: \(machineDescription())\n")
        let rowsOut = dtype == "f64"
            ? try SeedSuite<Double>(samples: samples, rows: rows, cols: cols, buffer: buffer, showStats: stats).run(chosen)
            : try SeedSuite<Float>(samples: samples, rows: rows, cols: cols, buffer: buffer, showStats: stats).run(chosen)
        printSeedTable(rowsOut.rows, memcpyGBs: rowsOut.memcpyGBs)
        if let json {
            try writeJSON(rowsOut.rows, to: json)
            print("\nwrote \(rowsOut.rows.count) rows to \(json)")
        }
    }
}

/// One variant's result: a table line and a JSON object.
struct SeedRow: Encodable {
    var variant: String
    var samples: Int
    var seconds: Double
    var msPerSample: Double
    var samplesPerS: Double
    /// Bytes the variant's memory passes read and write per sample (see `bytesPerSample`).
    var gbPerS: Double
    /// This run's memcpy bandwidth (read + write bytes per second), for the roofline.
    var memcpyGbPerS: Double
    var speedupVsSerial: Double
    var checksum: Double

    enum CodingKeys: String, CodingKey {
        case variant, samples, seconds, checksum
        case msPerSample = "ms_per_sample", samplesPerS = "samples_per_s", gbPerS = "gb_per_s"
        case memcpyGbPerS = "memcpy_gb_per_s", speedupVsSerial = "speedup_vs_serial"
    }
}

func printSeedTable(_ rows: [SeedRow], memcpyGBs: Double) {
    let header = ["variant", "seconds", "ms/sample", "samples/s", "GB/s", "of memcpy", "vs serial", "checksum"]
    let cells = rows.map { r in
        [r.variant, format(r.seconds, 3), format(r.msPerSample, 3), format(r.samplesPerS, 1), format(r.gbPerS, 1),
         format(r.gbPerS / memcpyGBs, 2), format(r.speedupVsSerial, 2) + "x", String(format: "%.6f", r.checksum)]
    }
    printAligned(header: header, leftAligned: 1, cells)
    print("\nmemcpy on this machine, same run: \(format(memcpyGBs, 1)) GB/s (bytes read + written per second, 8 MB copies)")
}
