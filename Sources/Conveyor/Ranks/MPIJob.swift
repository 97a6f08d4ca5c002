#if MPI
internal import ConveyorMPI

/// The MPI job this process is one rank of (trait `MPI`): start-up, identity, the way out.
///
/// Start the executable with `mpirun -n K`; ``Pipeline/runAcrossRanks(_:buffer:fusion:ordered:stallTimeout:link:into:_:)``
/// calls ``start()`` itself. Call ``finish()`` once before the process exits after a
/// successful run, and nothing MPI after it.
public enum MPIJob {
    /// Initializes MPI with `MPI_THREAD_MULTIPLE` (each link has a heartbeat thread), unless
    /// it is already; errors come back as statuses from then on, never as an abort. Then
    /// opens MPI's connections between every pair of ranks (one all-to-all), so it is
    /// collective: every rank calls it. Cost: MPI's start-up, milliseconds, the first
    /// time; the all-to-all every time.
    /// - Throws: ``PipelineError/setupFailed(_:)`` when MPI cannot start or offers less than
    ///   `MPI_THREAD_MULTIPLE`.
    public static func start() throws(PipelineError) {
        let status = conveyor_mpi_init(nil, nil)
        guard status == 0 else {
            throw .setupFailed("MPI: \(String(cString: conveyor_mpi_status_message(status))) (conveyor_mpi_init)")
        }
    }

    /// This process's rank in `MPI_COMM_WORLD`, or -1 before ``start()``. Cost: one MPI call.
    public static var rank: Int { Int(conveyor_mpi_world_rank()) }

    /// The number of ranks in the job, or -1 before ``start()``. Cost: one MPI call.
    public static var size: Int { Int(conveyor_mpi_world_size()) }

    /// Finalizes MPI after a run that succeeded on every rank (MPI_Finalize waits for all of
    /// them); a no-op if MPI was never started. After a failed run use ``abort(_:)``.
    public static func finish() { _ = conveyor_mpi_finalize() }

    /// Ends the whole job (MPI_Abort): the way out after a failure, when a rank may be dead
    /// and MPI_Finalize would wait for it forever. Does not return.
    public static func abort(_ code: Int32 = 1) -> Never {
        conveyor_mpi_abort(code)
        fatalError("MPI_Abort returned")
    }
}
#endif
