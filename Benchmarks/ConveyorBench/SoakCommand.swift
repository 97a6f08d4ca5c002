import ArgumentParser
import BenchBaselines
import Foundation  // JSONEncoder, String.padding

#if canImport(Glibc)
import Glibc
#endif

/// `conveyor-bench soak`: a bounded soak of the ring across processes, to show that nothing
/// grows over a long run.
///
/// What it does: rounds, one after another, for `--seconds` (and at least one round of
/// every kind). Each round creates a ring of 2...64 slots of 4 KiB, backed in turn by
/// anonymous memory inherited over fork, a memfd the child attaches by descriptor, or a
/// named object the child attaches by name; forks a child; streams 20,000...50,000 small
/// float64 frames (1...8 × 16...64, 128 B...4 KiB) whose words are a function of the frame
/// number; and destroys the ring. Kinds of round:
/// - plain: the child consumes, verifies every frame and its order, and reports count and
///   checksum through a pipe; the parent compares them with what it produced.
/// - consumer killed (memfd, named): the first consumer stops holding frame k and is
///   killed with SIGKILL mid-stream; a second attaches to the same ring and must receive
///   frame k first (the held frame, again), then the rest; the two reports add up.
/// - producer killed: the child produces, the parent consumes and kills it with SIGKILL
///   mid-stream; the parent must receive every frame committed, in order, then `peerDied`.
/// At the start, about every 10 s (between rounds) and at the end, it prints the parent's
/// RSS, open descriptors and the number of /dev/shm entries (everyone's, not only ours).
///
/// What it costs: both cores for `--seconds` (the frame rate is the point); at most one
/// ring of 64 × 4 KiB plus one /dev/shm entry, during named rounds, at a time.
///
/// How it fails: a failed check prints its round and why, and the run goes on; at the end
/// the verdict is `soak: flat` only if RSS grew by less than 1 MiB since the first cycle of
/// rounds (warm-up: later kinds of round touch code and metadata the first did not), the
/// descriptor count and the /dev/shm entries are back where they started, no child is
/// left, and every check passed; otherwise the verdict names what grew or failed and the
/// exit status is 1. Children are killed and reaped and rings destroyed even when a round
/// fails; every ring wait in a child or the parent times out after 10 s, and so does a
/// child holding a frame, so a defect shows as a failure, not a hang.
struct SoakCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Bounded soak of the ring across processes: kills, takeovers, nothing may grow.")

    @Option(help: "How long to run, in seconds (at least one round of each kind runs).")
    var seconds = 60
    @Option(help: "Fail unless at least this many frames crossed (10000000 for a 300 s run).")
    var minFrames = 0
    @Option(help: "Write the numbers as a JSON object to this path.") var json: String?

    /// RSS the parent may gain after warm-up before the run counts as growing.
    static let rssBoundKiB = 1024

    func run() throws {
        guard seconds >= 0 else { throw ValidationError("--seconds must be >= 0") }
        print("conveyor-bench soak: \(seconds) s of rounds across processes; machine: \(machineDescription())")
        var rounds = SoakRounds()
        let start = SoakSnapshot.take()
        let clock = Stopwatch()
        rounds.printLine("start", start, clock.seconds)
        var warm = start
        var nextLine = 10.0
        var round = 0
        while round < SoakPlan.cycle.count || clock.seconds < Double(seconds) {
            if clock.seconds >= nextLine {
                rounds.printLine("", SoakSnapshot.take(), clock.seconds)
                nextLine += 10
            }
            rounds.run(SoakPlan(round: round))
            round += 1
            if round == SoakPlan.cycle.count { warm = SoakSnapshot.take() }
        }
        let elapsed = clock.seconds
        var end = SoakSnapshot.take()
        // Other processes' entries in /dev/shm come and go (this machine is shared); a leak
        // stays. Look again for up to 2 s before calling a difference growth.
        for _ in 0..<10 where end.shm != start.shm {
            usleep(200_000)
            end.shm = SoakSnapshot.take().shm
        }
        rounds.printLine("end", end, elapsed)

        let problems = Self.problems(start: start, warm: warm, end: end, rounds: rounds, minFrames: minFrames)
        let verdict = problems.isEmpty ? "flat" : problems.joined(separator: "; ")
        let rate = Double(rounds.frames) / elapsed
        print("frames \(rounds.frames) in \(format(elapsed, 1)) s (\(format(rate, 0)) frames/s), "
              + "\(round) rounds, \(rounds.kills) kills, \(rounds.takeovers) takeovers; rss \(start.rssKiB) KiB at start, "
              + "\(warm.rssKiB) after warm-up, \(end.rssKiB) at end")
        print("soak: \(verdict)")

        if let json {
            let summary = Summary(
                seconds: elapsed, frames: rounds.frames, framesPerSecond: rate,
                rssStartKib: start.rssKiB, rssWarmKib: warm.rssKiB, rssEndKib: end.rssKiB,
                fdsStart: start.fds, fdsEnd: end.fds, shmStart: start.shm.count, shmEnd: end.shm.count,
                rounds: round, kills: rounds.kills, takeovers: rounds.takeovers, verdict: verdict)
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(summary).write(to: URL(fileURLWithPath: json))
            print("wrote \(json)")
        }
        if !problems.isEmpty { throw ExitCode.failure }
    }

    /// What keeps the verdict from being `flat`, one phrase each: growth since `start`
    /// (RSS since `warm`), children left, failed checks, too few frames.
    private static func problems(start: SoakSnapshot, warm: SoakSnapshot, end: SoakSnapshot,
                                 rounds: SoakRounds, minFrames: Int) -> [String] {
        var problems: [String] = []
        let grown = end.rssKiB - warm.rssKiB
        if grown >= rssBoundKiB {
            problems.append("rss +\(grown) KiB since warm-up (\(warm.rssKiB) -> \(end.rssKiB), bound \(rssBoundKiB))")
        }
        if end.fds != start.fds { problems.append("fds \(start.fds) -> \(end.fds)") }
        if end.shm != start.shm {
            let added = end.shm.subtracting(start.shm).sorted(), gone = start.shm.subtracting(end.shm).sorted()
            problems.append("/dev/shm \(start.shm.count) -> \(end.shm.count)"
                + (added.isEmpty ? "" : " new: \(added.joined(separator: " "))")
                + (gone.isEmpty ? "" : " gone: \(gone.joined(separator: " "))"))
        }
        if !SoakChild.noneLeft() { problems.append("children left unreaped") }
        if !rounds.failures.isEmpty { problems.append("\(rounds.failures.count) failed checks") }
        if rounds.frames < UInt64(minFrames) { problems.append("\(rounds.frames) frames, fewer than \(minFrames)") }
        return problems
    }
}

/// The numbers `--json` writes (snake_case keys: frames_per_second, rss_start_kib...).
private struct Summary: Encodable {
    var seconds: Double, frames: UInt64, framesPerSecond: Double
    var rssStartKib: Int, rssWarmKib: Int, rssEndKib: Int
    var fdsStart: Int, fdsEnd: Int, shmStart: Int, shmEnd: Int
    var rounds: Int, kills: Int, takeovers: Int, verdict: String
}

/// Seconds since the start of the run.
private struct Stopwatch {
    private let start = bench_now_ns()
    var seconds: Double { Double(bench_now_ns() - start) / 1e9 }
}

private extension SoakRounds {
    /// One progress line: elapsed, frames, rate, and the numbers that must stay flat.
    func printLine(_ label: String, _ s: SoakSnapshot, _ t: Double) {
        let rate = t > 0 ? Double(frames) / t : 0
        print("\(label.padding(toLength: 5, withPad: " ", startingAt: 0)) \(format(t, 1).leftPadded(6)) s  "
              + "frames \(String(frames).leftPadded(10))  \(format(rate, 0).leftPadded(9)) frames/s  "
              + "rss \(s.rssKiB) KiB  fds \(s.fds)  /dev/shm \(s.shm.count)  kills \(kills)  takeovers \(takeovers)")
        fflush(nil)  // progress shows even when stdout is a pipe
    }
}

private extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}
