import Synchronization

/// Reads a pipeline run's statistics while it runs, from any thread.
///
/// Pass one to `run(…, monitor:)`, then ask ``stats`` whenever you like, for example from
/// a task that prints a table every few seconds. The counters live in the run's shared
/// control block, which stage processes update too, so the snapshot covers every worker
/// in either mode.
///
/// ```swift
/// let monitor = PipelineMonitor()
/// async let run = pipeline.run(.processes, monitor: monitor, into: 0.0) { $0 += $1.sum() }
/// try await Task.sleep(for: .seconds(1))
/// print(monitor.stats ?? "not started")
/// ```
///
/// Cost: a snapshot reads a few relaxed atomic counters per worker and takes a lock; the
/// run itself never waits for a reader. A monitor serves one run at a time.
public final class PipelineMonitor: Sendable {
    private enum State {
        case idle
        case running(@Sendable () -> PipelineStats)
        case finished(PipelineStats)
    }

    private let state = Mutex<State>(.idle)
    private let processes = Mutex<[Int32]>([])

    /// A monitor not yet attached to a run.
    public init() {}

    /// The statistics so far: nil before the run starts, live counters while it runs
    /// (each counter is exact, the set is not one atomic snapshot), and the final
    /// statistics once it has ended (also after a failure).
    public var stats: PipelineStats? {
        let current = state.withLock { state -> State in state }
        switch current {
        case .idle: return nil
        case let .running(snapshot): return snapshot()
        case let .finished(stats): return stats
        }
    }

    /// The stage processes of the current (or last) run, in the order they were forked;
    /// empty in threads mode. For tests that check what those processes left behind.
    var stageProcessIDs: [Int32] { processes.withLock { $0 } }

    func attach(_ snapshot: @escaping @Sendable () -> PipelineStats) {
        processes.withLock { $0 = [] }
        state.withLock { $0 = .running(snapshot) }
    }

    func recordStageProcess(_ pid: Int32) { processes.withLock { $0.append(pid) } }

    func finish(_ stats: PipelineStats) { state.withLock { $0 = .finished(stats) } }
}
