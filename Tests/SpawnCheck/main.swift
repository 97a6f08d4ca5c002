// conveyor-spawn-check: runs a pipeline whose stage uses Dispatch and a Task in the
// spawnedProcesses mode, and the same pipeline in threads, and prints both results on one
// line: "spawned <sum> threads <sum> start <ms>". The Swift tests run it (a spawned stage
// is a new process of the running executable, so it cannot be the test runner itself).
// Its main reaches serveIfSpawned() first, as spawnedProcesses requires: the spawned
// copies serve their stage there and never get further.
import Conveyor
import Dispatch

#if canImport(Glibc)
import Glibc
#endif

/// What a Task computes for one row: its sum, awaited from a detached task.
func rowSum(_ values: [Double]) async -> Double {
    await Task.detached { values.reduce(0, +) }.value
}

/// Waits for an async computation from synchronous stage code (a stage closure is
/// synchronous); allowed here because this process is a fresh spawned copy.
func blocking<T: Sendable>(_ work: @escaping @Sendable () async -> T) -> T {
    let done = DispatchSemaphore(value: 0)
    nonisolated(unsafe) var result: T?
    Task {
        result = await work()
        done.signal()
    }
    done.wait()
    return result!
}

let items = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 24 : 24
let pipeline = Pipeline(items: items, rows: 8, cols: 16, of: Double.self, sourceName: "fill") { i, x in
    x.fillUniform(seed: 5, stream: UInt64(i))
}
.stage("square", [.square])
.stage("rows", rows: 8, cols: 2) { input, output in
    // Dispatch: one row per concurrent iteration; then a Task per row for its sum.
    let rows = (0..<input.rows).map { r in (0..<input.cols).map { input[r, $0] } }
    let sums = UnsafeMutableBufferPointer<Double>.allocate(capacity: rows.count)
    defer { sums.deallocate() }
    nonisolated(unsafe) let target = sums
    DispatchQueue.concurrentPerform(iterations: rows.count) { r in
        target[r] = blocking { await rowSum(rows[r]) }
    }
    for r in 0..<rows.count { output[r, 0] = sums[r] }
    output[0, 1] = Double(getpid())  // which process ran the stage
}
pipeline.serveIfSpawned()

do {
    let t0 = ContinuousClock.now
    let me = Double(getpid())
    func total(_ x: Matrix<Double>) -> Double { (0..<x.rows).reduce(0) { $0 + x[$1, 0] } }
    let spawned = try pipeline.run(.spawnedProcesses, into: (0.0, Set<Double>())) { acc, x in
        acc.0 += total(x)
        acc.1.insert(x[0, 1])
    }
    let ms = (ContinuousClock.now - t0) / .milliseconds(1)
    let threads = try pipeline.run(.threads, into: (0.0, Set<Double>())) { acc, x in
        acc.0 += total(x)
        acc.1.insert(x[0, 1])
    }
    // Spawned, the stage ran in one other process; in threads, in this one.
    let elsewhere = spawned.result.1.count == 1 && !spawned.result.1.contains(me) && threads.result.1 == [me]
    print("spawned \(spawned.result.0) threads \(threads.result.0) ms \(ms)"
          + (elsewhere ? " stages in other processes" : " stages NOT in other processes"))
    exit(spawned.result.0 == threads.result.0 && elsewhere ? 0 : 1)
} catch {
    print("failed: \(error)")
    exit(1)
}
