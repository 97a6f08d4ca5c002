import Foundation

/// The `ring-python` rows of `conveyor-bench ring`: the ring's latency and throughput
/// between two Python processes through the `conveyor` package, measured by
/// `Benchmarks/python/ring_python.py` (one JSON object per measurement on its stdout, with
/// RingRow's keys) in a subprocess of the interpreter given by `--python`.
enum PythonRing {
    /// The payloads these rows are measured for: the smallest and the 8 MiB frame.
    static let payloads: Set<Int> = [64, 8_388_608]

    /// Why the rows cannot be measured with `python` and `script`, or nil if they can.
    /// Cost: one interpreter start that imports numpy and conveyor.
    static func unavailable(python: String, script: String) -> String? {
        guard FileManager.default.fileExists(atPath: script) else {
            return "\(script) not found (run from the repository root or pass --python-ring-script)"
        }
        switch PythonInterpreter.run(python, ["-c", "import numpy, conveyor"], quiet: true) {
        case 0: return nil
        case 127: return "\(python) not found"
        default: return "\(python) cannot import numpy and conveyor (scripts/bench installs the package into "
            + "\(PythonInterpreter.venv.dropLast("/bin/python".count)); or pass --python)"
        }
    }

    /// Measures one payload in every mode (spin, block with spin 0, block with the default
    /// spin), in that order, with `roundTrips` timed round trips each; `pin` runs the two
    /// processes on two different CPUs. Throws with the script's exit status when it fails
    /// (its messages went to stderr).
    static func rows(python: String, script: String, payload: Int, roundTrips: Int, defaultSpin: Int,
                     pin: Bool) throws -> [RingRow] {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("conveyor-ring-python-\(getpid()).jsonl")
        defer { try? FileManager.default.removeItem(at: path) }
        guard FileManager.default.createFile(atPath: path.path, contents: nil),
              let output = FileHandle(forWritingAtPath: path.path) else {
            throw ValidationErrorText("cannot create \(path.path)")
        }
        let status = PythonInterpreter.run(python, [script, "--payload", "\(payload)",
                                                    "--modes", "spin:\(UInt32.max),block:0,block:\(defaultSpin)",
                                                    "--round-trips", "\(roundTrips)"] + (pin ? ["--pin"] : []),
                                           stdout: output)
        try? output.close()
        let data = (try? Data(contentsOf: path)) ?? Data()
        guard status == 0 else { throw ValidationErrorText("\(script) failed with exit status \(status)") }
        let decoder = JSONDecoder()
        return try String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { line in
            let bytes = Data(line.utf8)
            guard (try? JSONSerialization.jsonObject(with: bytes) as? [String: Any])?["transport"] != nil else { return nil }
            return try decoder.decode(RingRow.self, from: bytes)
        }
    }

    /// The issue's target for each ring-python row: its p50 at most the C ring's p50 in
    /// the same scope, mode, spin and payload plus 5 us, both from this run.
    static func targetLines(_ rows: [RingRow]) -> [String] {
        rows.filter { $0.transport == "ring-python" }.compactMap { py in
            guard let c = rows.first(where: { $0.transport == "ring" && $0.scope == py.scope && $0.mode == py.mode
                && $0.spinBudget == py.spinBudget && $0.payloadBytes == py.payloadBytes }) else { return nil }
            let spin = py.spinBudget == Int(UInt32.max) ? "inf" : "\(py.spinBudget)"
            let over = py.p50Us - c.p50Us
            return "ring-python vs ring p50 (\(py.scope), \(py.mode), spin \(spin), \(byteText(py.payloadBytes))): "
                + "\(format(py.p50Us, 2)) vs \(format(c.p50Us, 2)) us = \(over >= 0 ? "+" : "")\(format(over, 2)) us "
                + "(target <= +5)"
        }
    }
}
