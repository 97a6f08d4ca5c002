#if canImport(Glibc)
import Glibc  // SIGKILL
#endif

/// A stage program that one worker started and drives (conveyor.h section 10): the
/// worker keeps its place in the pipeline (its channels, its slots, the checks) and hands
/// the program each item's input and output slot numbers on `jobs`; the program computes
/// in place and answers on `done`. So an external program, or a spawned copy of this
/// executable, joins the pipeline through the same C pieces as every other stage.
///
/// Failure is never a hang: every wait is sliced, and between slices the worker looks at
/// the abort flag and at whether the program still runs (a non-blocking reap). A program
/// that ends early is reported with how it ended and the line it wrote on its report pipe.
/// Nothing is left: the worker reaps its program in every case (killing it first when the
/// run stops), and the program dies with the thread that started it, the worker's (PR_SET_PDEATHSIG, set by
/// `conveyor_stage_serve`).
final class StageProcess {
    /// The program's process id.
    let pid: pid_t
    private let what: String
    private let jobs: ChannelSender
    private let done: ChannelReceiver
    private let report: Int32
    private let control: ControlBlock
    private let worker: Int
    private var reaped = false

    /// Starts the program at `path` with `arguments` (argv[0] first), the contract in
    /// CONVEYOR_STAGE and the pools and channels at the contract's descriptor numbers, and
    /// records its pid as worker `worker`'s program in the control block (for the stall
    /// watchdog).
    /// - Throws: a message: the spawn's error, or the channels' (``ConveyorError``).
    init(path: String, arguments: [String], environment: [String], contract: StageContract, inPool: Pool?,
         outPool: Pool, jobs jobsChannel: Channel, done doneChannel: Channel, control: ControlBlock,
         worker: Int) throws(StageProcessError) {
        what = "program '\((arguments.first ?? path).split(separator: "/").last.map(String.init) ?? path)'"
        self.control = control
        self.worker = worker
        do throws(ConveyorError) {
            jobs = try jobsChannel.openSender(lane: 0)
            done = try doneChannel.openReceiver()
        } catch {
            throw StageProcessError(message: "its channels: \(error)")
        }
        let pipe: (read: Int32, write: Int32)
        do throws(SystemCallError) {
            pipe = try Posix.reportPipe()
        } catch {
            throw StageProcessError(message: "its report pipe: \(error)")
        }
        report = pipe.read
        defer { Posix.close(pipe.write) }  // the program holds the only write end
        var fds: [(source: Int32, target: Int32)] = [
            (jobsChannel.fd, StageContract.Target.jobs), (doneChannel.fd, StageContract.Target.done),
            (pipe.write, StageContract.Target.report),
        ]
        if let inPool { fds.append((inPool.fd, StageContract.Target.inPool)) }
        if !contract.inPlace { fds.append((outPool.fd, StageContract.Target.outPool)) }
        let env = environment.filter { !$0.hasPrefix("\(StageContract.variable)=") }
            + ["\(StageContract.variable)=\(contract.line)"]
        do throws(SystemCallError) {
            pid = try Posix.spawn(path, arguments: arguments, environment: env, fds: fds)
        } catch {
            Posix.close(pipe.read)
            throw StageProcessError(message: "starting \(what): \(error)")
        }
        control.setProgram(worker: worker, pid)
    }

    deinit {
        if !reaped { stop() }
        Posix.close(report)
    }

    /// Has the program compute `item` from `input` (a slot word, or nil for a source) into
    /// `output`. Returns nil when done, else why the run must stop: a message for a failure
    /// of the program, or an empty string when the run was aborted by someone else.
    func compute(item: Int, input: SlotWord?, output: SlotWord) -> String? {
        let inWord = input?.word ?? (UInt64(item) << UInt64(SlotWord.slotBits) | UInt64(SlotWord.noSlot))
        do throws(ConveyorError) {
            // Two words per item; the lane holds two and is empty between items.
            guard try jobs.send(inWord, timeout: Intake.slice), try jobs.send(output.word, timeout: Intake.slice) else {
                return ended(before: item)
            }
        } catch {
            return ended(before: item)
        }
        while true {
            do throws(ConveyorError) {
                if let word = try done.receive(lane: 0, timeout: Intake.slice) {
                    return word == output.word ? nil : "protocol error: \(what) answered \(SlotWord(word)) for \(output)"
                }
            } catch {
                return ended(before: item)  // it died or closed `done`: see how it ended
            }
            if control.aborted {
                stop()
                return ""
            }
            if let ending = reapIfEnded() { return message(ending, before: item) }
        }
    }

    /// End of stream: closes `jobs` and waits for the program to exit 0, which it must do
    /// within ``exitLimit`` of the close: one that lingers (on a thread of its own that
    /// never ends, say) is killed and reported. The limit is generous because a program
    /// that got no item may still be starting up on a loaded machine. Returns nil, or what
    /// went wrong.
    func finish() -> String? {
        jobs.close()
        let deadline = nowNanoseconds() + Self.exitLimit
        while true {
            if let ending = reapIfEnded() {
                return ending == .exited(0) ? nil : message(ending, before: nil)
            }
            if control.aborted {
                stop()
                return ""
            }
            if nowNanoseconds() > deadline {
                stop()
                return "\(what) did not exit within \(Self.exitLimit / 1_000_000_000) s of the end of the stream and was killed"
            }
            Posix.sleep(nanoseconds: 1_000_000)  // a poll for the exit: no event to wait on
        }
    }

    /// How long a program may take to exit after the end of the stream: 10 s.
    static var exitLimit: UInt64 { 10_000_000_000 }

    /// Kills and reaps the program (the run stops, or this handle goes).
    func stop() {
        guard !reaped else { return }
        Posix.kill(pid, SIGKILL)
        _ = reap(blocking: true)
    }

    /// The program's ending, if it has ended (reaped, its OpenMP registration removed).
    private func reapIfEnded() -> Posix.Ending? { reaped ? .unknown : reap(blocking: false) }

    /// Reaps the program once it has ended, after clearing its pid from the control block
    /// while the zombie still holds it (so the watchdog never kills a reused pid).
    private func reap(blocking: Bool) -> Posix.Ending? {
        guard (try? Posix.waitWithoutReaping(pid, blocking: blocking)) ?? true else { return nil }
        control.setProgram(worker: worker, nil)
        reaped = true
        return (try? Posix.reap(pid, blocking: true)) ?? .unknown
    }

    /// The program stopped answering (a dead or closed channel): wait for its ending, which
    /// follows within moments; one that lingers for 2 s is killed.
    private func ended(before item: Int) -> String {
        let deadline = nowNanoseconds() + 2_000_000_000
        while true {
            if let ending = reapIfEnded() { return message(ending, before: item) }
            if nowNanoseconds() > deadline { stop(); return "\(what) stopped answering and was killed" }
            Posix.sleep(nanoseconds: 1_000_000)
        }
    }

    /// How the program ended, with the line it reported (if any).
    private func message(_ ending: Posix.Ending, before item: Int?) -> String {
        let bytes = Posix.readAvailable(report)
        let reported = String(decoding: bytes.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        let how: String
        switch ending {
        case let .signalled(signal): how = "\(what) was killed by signal \(signal) (\(Posix.signalDescription(signal)))"
        case .exited(2): how = "\(what) refused its contract (status 2)"
        case let .exited(code): how = "\(what) exited with status \(code)"
        case .unknown: how = "\(what) ended"
        }
        let when = item.map { " before it finished item \($0)" } ?? ""
        return reported.isEmpty ? how + when : "\(how): \(reported)"
    }
}

/// Why a stage program could not be started.
struct StageProcessError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
