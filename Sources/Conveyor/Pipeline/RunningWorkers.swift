#if canImport(Glibc)
import Glibc  // SIGKILL
#endif

/// The workers of a run while it runs: starting them (a thread or a forked process each),
/// the stall watchdog, and reaping. Used by the ``Supervisor`` on the calling thread only.
struct RunningWorkers {
    /// A stage process: its pid, its worker index in the control block, and its node.
    private struct Child {
        var pid: pid_t
        var worker: Int
        var node: Int
    }

    private let plan: RunPlan
    private let control: ControlBlock
    private var threads: [(worker: Int, thread: Posix.Thread)] = []
    private var children: [Child] = []

    /// Starts every worker of `plan`. On a failure to start one, aborts the run (the ones
    /// started stop within a wait slice) and returns the error; ``finish()`` still ends them.
    static func start(_ plan: RunPlan, _ transport: RunTransport, _ control: ControlBlock,
                      monitor: PipelineMonitor?) -> (RunningWorkers, PipelineError?) {
        var running = RunningWorkers(plan: plan, control: control)
        for (w, worker) in plan.workers.enumerated() {
            let body = Worker(plan: plan, transport: transport, control: control, node: worker.node,
                              replica: worker.replica, index: w)
            let name = plan.nodes[worker.node].name
            let inProcess = plan.nodes[worker.node].stage?.inRunnerProcess ?? false
            switch inProcess ? .threads : plan.mode {
            case .threads, .spawnedProcesses:  // spawned: the thread drives its stage's program
                do throws(SystemCallError) {
                    running.threads.append((w, try Posix.Thread.start { _ = body.run() }))
                } catch {
                    control.abort()
                    return (running, .setupFailed("could not start a thread for stage '\(name)': \(error)"))
                }
            case .processes:
                switch Posix.fork() {
                case .success(0):
                    // The child opens (claims) its channel ends first thing in `run`, and
                    // leaves without running atexit handlers or deinitializers that might
                    // take a lock some parent thread held at fork time.
                    Posix.exitImmediately(body.run())
                case let .success(pid):
                    running.children.append(Child(pid: pid, worker: w, node: worker.node))
                    monitor?.recordStageProcess(pid)
                case let .failure(error):
                    control.abort()
                    return (running, .setupFailed("could not start a process for stage '\(name)': \(error)"))
                }
            }
        }
        return (running, nil)
    }

    private init(plan: RunPlan, control: ControlBlock) {
        self.plan = plan
        self.control = control
    }

    /// The watchdog: if a worker has computed on one item for longer than `stallTimeout`,
    /// stops it and returns the error naming it. A process is killed (and reaped by
    /// ``finish()``); a thread cannot be, so it is detached and finishes on its own, holding
    /// the run's memory until it does.
    mutating func stopStalled() -> PipelineError? {
        guard let limit = plan.stallTimeout else { return nil }
        let now = nowNanoseconds()
        for w in plan.workers.indices {
            guard let since = control.busySince(worker: w), now > since, now - since > limit else { continue }
            // A worker that drives a program waits for it: kill the program, and the
            // worker, seeing it gone, reaps it and stops.
            if let program = control.programID(worker: w) {
                Posix.kill(program, SIGKILL)
                return .stageStalled(stage: plan.nodes[plan.workers[w].node].name, item: control.currentItem(worker: w),
                                     seconds: Double(now - since) / 1e9)
            }
            if let child = children.first(where: { $0.worker == w }) { Posix.kill(child.pid, SIGKILL) }
            if let i = threads.firstIndex(where: { $0.worker == w }) { threads.remove(at: i).thread.detach() }
            return .stageStalled(stage: plan.nodes[plan.workers[w].node].name, item: control.currentItem(worker: w),
                                 seconds: Double(now - since) / 1e9)
        }
        return nil
    }

    /// Reaps the stage processes that have ended, without waiting; returns the first
    /// abnormal ending as an error.
    mutating func reapEnded() -> PipelineError? { reap(blocking: false) }

    /// Ends the run's workers: joins the threads and reaps every process (each sees the
    /// abort flag within a wait slice; one still alive after 2 s is killed). Returns the
    /// first abnormal ending of a process.
    mutating func finish() -> PipelineError? {
        for (_, thread) in threads { thread.join() }
        threads = []
        return reap(blocking: true)
    }

    /// Reaps stage processes that ended (``Posix/reap(_:blocking:)``, which also removes
    /// what each one's OpenMP runtime left in /dev/shm); with `blocking`, all of them.
    private mutating func reap(blocking: Bool) -> PipelineError? {
        var failure: PipelineError?
        let deadline = nowNanoseconds() + 2_000_000_000
        while !children.isEmpty {
            var remaining: [Child] = []
            for child in children {
                let ending: Posix.Ending
                do throws(SystemCallError) {
                    guard let ended = try Posix.reap(child.pid, blocking: false) else { remaining.append(child); continue }
                    ending = ended
                } catch {
                    // waitid refused the call itself (EINVAL: not with these flags); a child
                    // reaped elsewhere comes back as .unknown instead. Nothing to wait for.
                    if failure == nil { failure = .setupFailed("reaping stage '\(plan.nodes[child.node].name)': \(error)") }
                    continue
                }
                let name = plan.nodes[child.node].name
                switch ending {
                case let .signalled(signal) where failure == nil:
                    failure = .stageCrashed(stage: name, item: control.currentItem(worker: child.worker), signal: signal)
                case let .exited(code) where code != 0 && code != Worker.failedStatus && failure == nil && control.failure == nil:
                    failure = .stageExited(stage: name, status: code)
                default:
                    break
                }
            }
            children = remaining
            if !blocking || children.isEmpty { break }
            if nowNanoseconds() > deadline { children.forEach { Posix.kill($0.pid, SIGKILL) } }
            // Healthy workers leave within a wait slice of the abort: poll at 1 ms rather
            // than block in waitid on one child while another may need the SIGKILL.
            Posix.sleep(nanoseconds: 1_000_000)
        }
        return failure
    }
}
