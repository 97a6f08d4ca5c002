import ArgumentParser

/// `conveyor-bench`: Conveyor's benchmarks, one subcommand per layer.
@main
struct ConveyorBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conveyor-bench",
        abstract: "Measure Conveyor's kernels on this machine, against memcpy and naive loops.",
        subcommands: [KernelsCommand.self, RingCommand.self, SeedCommand.self, SoakCommand.self, ThresholdCommand.self]
    )
}
