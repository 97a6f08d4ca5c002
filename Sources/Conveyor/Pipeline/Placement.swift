/// Where a stage runs in a pipeline that spans the ranks of an MPI job: `.stage("g", ...,
/// on: .rank(1))`.
///
/// The same executable is started on every rank (`mpirun -n K`), and
/// `Pipeline.runAcrossRanks` (trait MPI)
/// runs on each the stages placed there; every edge between stages on different ranks
/// crosses a link (conveyor_mpi.h) in MPI messages: the sending side sends each item from
/// its slot, the receiving side receives it straight into a slot of its own. The source and the sink are on rank 0; a stage that names no rank
/// runs where the stage before it does. All replicas of a stage share its rank: to spread
/// replicas over hosts, declare a stage per host.
public enum Placement: Sendable, Hashable, CustomStringConvertible {
    /// Rank `n` of `MPI_COMM_WORLD` (0 is the rank that holds the source and the sink).
    case rank(Int)

    /// The rank number.
    public var rank: Int {
        switch self {
        case let .rank(n): n
        }
    }

    public var description: String { "rank \(rank)" }
}
