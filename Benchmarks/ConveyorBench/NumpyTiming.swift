import Conveyor
import Foundation

/// Times numpy's generator in a python3 subprocess on the same array size, for the
/// "how much faster than numpy" rows. Returns nil when python3 or numpy is missing.
enum NumpyTiming {
    struct Result: Decodable {
        var median: Double
        var min: Double
    }

    static func uniform(count: Int, dtype: DType, reps: Int) -> Result? {
        let script = """
            import json, statistics, sys, time
            import numpy as np
            n, reps, dtype = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
            buf = np.empty(n, dtype=dtype)
            times = []
            for i in range(reps + 5):
                t0 = time.perf_counter()
                np.random.default_rng(i).random(out=buf, dtype=dtype)
                t1 = time.perf_counter()
                if i >= 5: times.append((t1 - t0) * 1e3)
            print(json.dumps({"median": statistics.median(times), "min": min(times)}))
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, "\(count)", "\(reps)", dtype.description]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        return try? JSONDecoder().decode(Result.self, from: data)
    }
}
