import ArgumentParser

/// `conveyor-bench`: Conveyor's benchmarks, one subcommand per layer.
@main
struct ConveyorBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conveyor-bench",
        abstract: "Measure Conveyor's kernels on this machine, against memcpy and naive loops.",
        subcommands: subcommands
    )

    /// `mpi` exists only in a build with the MPI trait (`scripts/bench mpi` makes one).
    private static var subcommands: [any ParsableCommand.Type] {
        var all: [any ParsableCommand.Type] = [KernelsCommand.self, RingCommand.self, SeedCommand.self, SoakCommand.self,
                                               ThresholdCommand.self]
        #if MPI
        all.append(MPICommand.self)
        #endif
        return all
    }
}
