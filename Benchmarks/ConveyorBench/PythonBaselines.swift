import Foundation

/// Runs the Python ports of the question's variants (`Benchmarks/python/seed_variants.py`)
/// in a python3 subprocess on the same workload, for `conveyor-bench seed --with-python`.
enum PythonBaselines {
    struct Report: Decodable {
        struct Row: Decodable {
            var variant: String
            var samples: Int
            var seconds: Double
            var ms_per_sample: Double
            var checksum: Double
        }
        var python: String
        var numpy: String
        var rows: [Row]
    }

    enum Unavailable: Error, CustomStringConvertible {
        case noScript(String)
        case noNumpy(String)
        case failed(String)
        var description: String {
            switch self {
            case let .noScript(path): return "the Python ports are not at \(path) (run from the repository root or pass --python-script)"
            case let .noNumpy(detail): return "python3 with numpy is not available (\(detail)); install python3-numpy to compare"
            case let .failed(detail): return "the Python ports failed: \(detail)"
            }
        }
    }

    /// Runs every port; their progress lines go to stderr as each finishes.
    static func run(script: String, samples: Int, rows: Int, cols: Int, buffer: Int) throws(Unavailable) -> Report {
        guard FileManager.default.fileExists(atPath: script) else { throw .noScript(script) }
        let probe = python(["-c", "import numpy"], quiet: true)
        guard probe == 0 else { throw .noNumpy(probe == 127 ? "python3 not found" : "import numpy failed") }
        let json = FileManager.default.temporaryDirectory.appendingPathComponent("conveyor-python-\(getpid()).json")
        defer { try? FileManager.default.removeItem(at: json) }
        let status = python([script, "--samples", "\(samples)", "--rows", "\(rows)", "--cols", "\(cols)",
                             "--buffer", "\(buffer)", "--json", json.path, "--progress"])
        guard status == 0 else { throw .failed("exit status \(status); its messages are above") }
        do { return try JSONDecoder().decode(Report.self, from: Data(contentsOf: json)) } catch {
            throw .failed("unreadable output: \(error)")
        }
    }

    private static func python(_ arguments: [String], quiet: Bool = false) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        if quiet { process.standardError = FileHandle.nullDevice }
        process.standardOutput = FileHandle.nullDevice
        do { try process.run() } catch { return 127 }
        process.waitUntilExit()
        return process.terminationStatus
    }
}
