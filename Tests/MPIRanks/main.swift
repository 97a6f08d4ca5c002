// conveyor-mpi-ranks: the Swift side of the MPI tests (scripts/test-mpi), run under
// mpirun -n 4 from an executable built with the MPI trait. The question's pipeline with
// h, g, f placed on ranks 1, 2 and 3:
//   seed [threads|processes]  the checksum equals a run on one machine, bit for bit
//   fail                      g throws at item 5: rank 0 reports rank 2 and its message
//   kill                      rank 2 dies (SIGKILL) in g at item 5: rank 0 reports rank 2
//   reduce                    rank 0's reduce throws at item 5: rank 0 reports itself, and
//                             no rank waits forever on a link the sink stopped reading
// Rank 0 prints one line starting "conveyor-mpi-ranks:" that the script checks.
#if canImport(Glibc)
import Glibc
#endif
#if MPI
import Conveyor

let arguments = CommandLine.arguments.dropFirst()
let scenario = arguments.first ?? "seed"
let mode: ExecutionMode = arguments.contains("processes") ? .processes : .threads
let items = 40, rows = 250, cols = 400

struct Planned: Error, CustomStringConvertible {
    var description: String { "\(scenario == "reduce" ? "the reduce" : "g") refuses item 5 (planned)" }
}

/// The seed pipeline. In "fail" and "kill", the source marks item 5 (x[0,0] = 7, where
/// uniform values are below 1), and g, seeing 49 after h, fails or dies there.
func seed(placed: Bool) -> Pipeline<Double> {
    let marked = scenario == "fail" || scenario == "kill"
    return Pipeline(items: items, rows: rows, cols: cols, of: Double.self) { i, x in
        x.fillUniform(seed: 2016, stream: UInt64(i))
        if marked && i == 5 { x[0, 0] = 7 }
    }
    .stage("h", [.square], on: placed ? .rank(1) : nil)
    .stage("g", on: placed ? .rank(2) : nil) { x, out in
        if x[0, 0] > 1 {
            if scenario == "kill" { raise(SIGKILL) }
            throw Planned()
        }
        for i in 0..<x.rows { for j in 0..<x.cols { out[i, j] = 3 * x[i, j] } }
    }
    .stage("f", [.add(1)], on: placed ? .rank(3) : nil)
}

let options = LinkOptions(liveness: .seconds(2), heartbeat: .milliseconds(50))
let start = ContinuousClock.now
do throws(PipelineError) {
    try MPIJob.start()
    guard MPIJob.size == 4 else {
        print("conveyor-mpi-ranks: run me with mpirun -n 4")
        MPIJob.abort(2)
    }
    var seen = 0
    let run = try seed(placed: true).runAcrossRanks(mode, link: options, into: 0.0) { sum, x in
        if scenario == "reduce" && seen == 5 { throw Planned() }
        seen += 1
        sum += x.sum()
    }
    if MPIJob.rank == 0, let sum = run.result {
        let local = try seed(placed: false).run(mode, progress: .never, into: 0.0) { sum, x in sum += x.sum() }.result
        guard local == sum, scenario == "seed" else {
            print("conveyor-mpi-ranks: FAILED: \(scenario): checksum \(sum) across ranks, \(local) on one machine")
            MPIJob.abort(1)
        }
        let moved = run.ranks.map { "rank \($0.rank) sent \($0.bytesSent) B" }.joined(separator: ", ")
        print("conveyor-mpi-ranks: seed \(mode) checksum \(sum) as on one machine; \(moved)")
    }
    MPIJob.finish()
} catch {
    if MPIJob.rank == 0 {
        print("conveyor-mpi-ranks: \(scenario) failed after \(ContinuousClock.now - start) as: \(error)")
    }
    // After a failure rank 0 ends the job (MPI_Finalize could wait for a dead rank); the
    // other ranks wait in MPI_Finalize for that, so that none leaves first and makes mpirun
    // end the job before rank 0 has printed.
    if MPIJob.rank == 0 { MPIJob.abort(0) }
    MPIJob.finish()
    exit(0)
}
#else
print("conveyor-mpi-ranks: built without the MPI trait (swift build --traits MPI)")
exit(2)
#endif
