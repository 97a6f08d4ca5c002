import Foundation

/// The Python interpreter the benchmark's Python rows run in: the one given, else the
/// virtualenv scripts/bench and scripts/test-python install the `conveyor` package into
/// (`.build-python/venv/bin/python`, relative to the working directory: run from the
/// repository root) if it exists, else `python3` from PATH.
enum PythonInterpreter {
    static let venv = ".build-python/venv/bin/python"

    static func resolve(_ given: String? = nil) -> String {
        if let given { return given }
        return FileManager.default.isExecutableFile(atPath: venv) ? venv : "python3"
    }

    /// Runs `python arguments`, waits, and returns its exit status (127 if it could not
    /// start). stdout goes to `stdout` if given, else is discarded; stderr is inherited
    /// unless `quiet`. A name without a slash is looked up in PATH (through /usr/bin/env).
    static func run(_ python: String, _ arguments: [String], quiet: Bool = false, stdout: FileHandle? = nil) -> Int32 {
        let process = Process()
        if python.contains("/") {
            process.executableURL = URL(fileURLWithPath: python)
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [python] + arguments
        }
        if quiet { process.standardError = FileHandle.nullDevice }
        process.standardOutput = stdout ?? FileHandle.nullDevice
        do { try process.run() } catch { return 127 }
        process.waitUntilExit()
        return process.terminationStatus
    }
}

/// Runs the Python ports of the question's variants (`Benchmarks/python/seed_variants.py`)
/// in a Python subprocess on the same workload, for `conveyor-bench seed --with-python`.
/// The interpreter is PythonInterpreter.resolve(): the virtualenv's when it exists, so the
/// `conveyor-ring` port can import the `conveyor` package (without it that port is skipped
/// with a note on stderr and the others run).
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
            case let .noNumpy(detail): return "Python with numpy is not available (\(detail)); install python3-numpy to compare"
            case let .failed(detail): return "the Python ports failed: \(detail)"
            }
        }
    }

    /// Runs every port; their progress lines go to stderr as each finishes.
    static func run(script: String, samples: Int, rows: Int, cols: Int, buffer: Int,
                    python: String = PythonInterpreter.resolve()) throws(Unavailable) -> Report {
        guard FileManager.default.fileExists(atPath: script) else { throw .noScript(script) }
        let probe = PythonInterpreter.run(python, ["-c", "import numpy"], quiet: true)
        guard probe == 0 else { throw .noNumpy(probe == 127 ? "\(python) not found" : "import numpy failed in \(python)") }
        let json = FileManager.default.temporaryDirectory.appendingPathComponent("conveyor-python-\(getpid()).json")
        defer { try? FileManager.default.removeItem(at: json) }
        let status = PythonInterpreter.run(python, [script, "--samples", "\(samples)", "--rows", "\(rows)",
                                                    "--cols", "\(cols)", "--buffer", "\(buffer)",
                                                    "--json", json.path, "--progress"])
        guard status == 0 else { throw .failed("\(python) exit status \(status); its messages are above") }
        do { return try JSONDecoder().decode(Report.self, from: Data(contentsOf: json)) } catch {
            throw .failed("unreadable output: \(error)")
        }
    }
}
