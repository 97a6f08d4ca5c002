import BenchBaselines
import Conveyor

#if canImport(Glibc)
import Glibc
#endif

/// A forked child of the soak and the pipe it reports on. Dropping it kills the child if it
/// still runs, reaps it and closes the pipe, so a round that fails half-way leaves nothing
/// behind.
///
/// Every reap goes through `ChildProcess.reap`, which also removes the /dev/shm file the
/// child's OpenMP runtime registered if it ever initialized one: a child killed with
/// SIGKILL, or leaving with _exit, skips libomp's own teardown.
struct SoakChild: ~Copyable {
    private let pid: pid_t
    private let reports: Int32
    private var reaped = false

    /// Forks (stdio flushed first). The child runs `body`, which may `send` reports before
    /// the one it returns, and leaves with _exit: it runs ring calls and plain Swift only,
    /// never Dispatch and never the parent's code after this call.
    init(_ body: (_ send: (SoakReport) -> Void) -> SoakReport) {
        var fds: [Int32] = [-1, -1]
        precondition(pipe(&fds) == 0, "pipe: \(String(cString: strerror(errno)))")
        let pid = bench_fork()
        precondition(pid >= 0, "fork: \(String(cString: strerror(errno)))")
        if pid == 0 {
            close(fds[0])
            let last = body { $0.write(to: fds[1]) }
            last.write(to: fds[1])
            _exit(last.outcome == .ok ? 0 : 1)
        }
        close(fds[1])  // so that a child that dies reads as end of file
        self.pid = pid_t(pid)
        self.reports = fds[0]
    }

    /// The child's next report; nil if it exited or died without sending one.
    func receive() -> SoakReport? { SoakReport.read(from: reports) }

    /// SIGKILL, then reap (once).
    mutating func kill() {
        guard !reaped else { return }
        Self.killAndReap(pid)
        reaped = true
    }

    /// Kills the child if it still runs, and returns the message of the last report it left
    /// in the pipe: why it failed, when the parent noticed a failure first.
    mutating func lastWords() -> String? {
        kill()
        var message: String?
        while let report = receive() {
            if !report.message.isEmpty { message = "child: " + report.message }
        }
        return message
    }

    /// Waits for the child and reaps it: true if it exited with status 0.
    mutating func exitedCleanly() -> Bool {
        let status = try? ChildProcess.reap(pid)
        reaped = true
        return status == 0  // WIFEXITED && WEXITSTATUS == 0
    }

    private static func killAndReap(_ pid: pid_t) {
        _ = Glibc.kill(pid, SIGKILL)
        _ = try? ChildProcess.reap(pid)
    }

    deinit {
        if !reaped { Self.killAndReap(pid) }
        close(reports)
    }

    /// True when this process has no child, running or zombie. It looks with `WNOWAIT`, so
    /// it reaps nothing: Conveyor's `ChildProcess` has no non-blocking check, and a zombie
    /// reaped here would skip the removal of its OpenMP registration that `reap` does.
    static func noneLeft() -> Bool {
        var info = siginfo_t()
        return waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) < 0 && errno == ECHILD
    }
}

/// What a soak child sends back through its pipe, as a fixed 160-byte record: outcome,
/// count and checksum as three 64-bit words, then from byte 32 the message, NUL-terminated.
struct SoakReport {
    enum Outcome: UInt64 { case ok, holding, attached, failed }
    var outcome: Outcome
    /// Frames it verified and released.
    var count: UInt64 = 0
    var checksum: UInt64 = 0
    /// Why, when `.failed` (at most 127 bytes cross).
    var message = ""

    static let size = 160

    static func failed(_ message: String) -> SoakReport { SoakReport(outcome: .failed, message: message) }

    func write(to fd: Int32) {
        var record = [UInt8](repeating: 0, count: Self.size)
        record.withUnsafeMutableBytes { raw in
            for (i, word) in [outcome.rawValue, count, checksum].enumerated() {
                raw.storeBytes(of: word, toByteOffset: 8 * i, as: UInt64.self)
            }
            for (i, byte) in message.utf8.prefix(Self.size - 33).enumerated() { raw[32 + i] = byte }
        }
        _ = bench_write_all(fd, record, UInt64(Self.size))
    }

    static func read(from fd: Int32) -> SoakReport? {
        var record = [UInt8](repeating: 0, count: size)
        guard bench_read_all(fd, &record, UInt64(size)) == 0 else { return nil }
        return record.withUnsafeBytes { raw in
            let word = { (i: Int) in raw.load(fromByteOffset: 8 * i, as: UInt64.self) }
            let text = record[32...].prefix { $0 != 0 }
            return SoakReport(outcome: Outcome(rawValue: word(0)) ?? .failed, count: word(1), checksum: word(2),
                              message: String(decoding: text, as: UTF8.self))
        }
    }
}
