/// Why a pipeline run stopped before its sink saw every item.
public enum PipelineError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A stage (or the source) threw while processing `item`.
    case stageFailed(stage: String, item: Int, message: String)
    /// A stage process was killed by `signal` (processes mode) while processing `item`
    /// (-1 if it had not started one).
    case stageCrashed(stage: String, item: Int, signal: Int32)
    /// A stage computed on `item` for longer than the run's `stallTimeout` (`seconds`) and
    /// was stopped: in processes mode its process is killed; in threads mode its thread is
    /// left to finish on its own (a thread cannot be stopped), holding the run's memory
    /// until it does. A forked stage that uses threads, Dispatch or Swift concurrency can
    /// deadlock like this (see ``Pipeline``'s rules).
    case stageStalled(stage: String, item: Int, seconds: Double)
    /// A stage process exited with a nonzero `status` without reporting an error.
    case stageExited(stage: String, status: Int32)
    /// The sink's reduce threw at `item`.
    case sinkFailed(item: Int, message: String)
    /// The run was cancelled (task cancellation).
    case cancelled
    /// The definition cannot run: the message names what is wrong.
    case invalidDefinition(String)
    /// Setting up the shared slots and channels, threads or processes failed.
    case setupFailed(String)
    /// A rank of a run across ranks failed, or its link to another rank did (a dead or
    /// silent rank, a broken connection): the rank that failed first, as far as rank 0
    /// can tell, and what it reported.
    case rankFailed(rank: Int, message: String)

    /// A sentence naming the stage and the item.
    public var description: String {
        switch self {
        case let .stageFailed(stage, item, message): return "pipeline: stage '\(stage)' failed at item \(item): \(message)"
        case let .stageCrashed(stage, item, signal):
            return "pipeline: stage '\(stage)' was killed by signal \(signal)" + (item >= 0 ? " at item \(item)" : "")
        case let .stageStalled(stage, item, seconds):
            return "pipeline: stage '\(stage)' made no progress on item \(item) for \(seconds) s (stallTimeout) and was stopped"
        case let .stageExited(stage, status): return "pipeline: stage '\(stage)' exited with status \(status)"
        case let .sinkFailed(item, message): return "pipeline: the sink failed at item \(item): \(message)"
        case .cancelled: return "pipeline: cancelled"
        case let .invalidDefinition(message): return "pipeline: invalid definition: \(message)"
        case let .setupFailed(message): return "pipeline: setup failed: \(message)"
        case let .rankFailed(rank, message): return "pipeline: rank \(rank) failed: \(message)"
        }
    }
}
