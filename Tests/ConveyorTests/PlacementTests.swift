import Conveyor
import Testing

/// Placement on MPI ranks, as a run on one machine sees it (the runs across ranks are
/// tested under mpirun by scripts/test-mpi).
@Suite struct PlacementTests {
    @Test func runRefusesAStagePlacedOnAnotherRank() {
        let pipeline = Pipeline(items: 4, rows: 2, cols: 3, of: Double.self) { i, x in for r in 0..<2 { for c in 0..<3 { x[r, c] = Double(i) } } }
            .stage("h", [.square], on: .rank(1))
        do throws(PipelineError) {
            _ = try pipeline.run(progress: .never, into: 0.0) { (sum: inout Double, x: Matrix<Double>) in sum += x.sum() }
        } catch {
            guard case let .invalidDefinition(message) = error else { Issue.record("wrong error \(error)"); return }
            #expect(message.contains("stage 'h' is placed on rank 1"))
            #expect(message.contains("runAcrossRanks"))
        }
    }

    @Test func stagesPlacedOnRankZeroRunOnThisMachine() throws {
        let run = try Pipeline(items: 4, rows: 2, cols: 3, of: Double.self) { i, x in for r in 0..<2 { for c in 0..<3 { x[r, c] = Double(i) } } }
            .stage("h", [.square], on: .rank(0))
            .stage("g", on: .rank(0)) { x, out in out = x }
            .run(progress: .never, into: 0.0) { (sum: inout Double, x: Matrix<Double>) in sum += x.sum() }
        #expect(run.result == 6 * (0 + 1 + 4 + 9))
        #expect(Placement.rank(3).rank == 3)
        #expect(Placement.rank(3).description == "rank 3")
    }
}
