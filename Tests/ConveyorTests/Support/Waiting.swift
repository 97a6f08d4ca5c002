@testable import Conveyor

#if canImport(Glibc)
import Glibc
#endif

/// How these tests wait: for the event itself (a token in a pipe, a counter that only
/// grows, a stream's element, a process's exit), never for a time that is supposed to be
/// long enough. The one duration is this guard, which only turns a hang into a failure: no
/// correct run comes near it, even on two loaded cores under ThreadSanitizer, where one
/// test can keep the cooperative pool's two threads blocked for tens of seconds.
enum NoHang {
    static let limit: Duration = .seconds(300)

    /// The guard in nanoseconds, for the C ring calls.
    static var nanoseconds: Int64 { 300_000_000_000 }

    /// Waits until `condition` holds, re-checking it every millisecond. Only for conditions
    /// that stay true once true (a counter that only grows), so the first check that sees
    /// it settles it; false if the guard ran out first. It suspends between checks, so a
    /// test waiting for a task never holds the cooperative thread that task needs.
    static func until(_ condition: () -> Bool) async -> Bool {
        let clock = ContinuousClock(), deadline = clock.now + limit
        while !condition() {
            if clock.now > deadline { return false }
            try? await Task.sleep(for: .milliseconds(1))
        }
        return true
    }
}

/// A counting semaphore over a pipe: ``signal(_:)`` puts tokens in, ``wait()`` takes one.
///
/// Unlike a Swift semaphore it also works between a test and the stage processes of a
/// pipeline: they are forked children, which inherit the pipe. Both ends are non-blocking
/// (a waiter sleeps in `poll`), so several processes may wait on one semaphore and exactly
/// one of them gets each token. Safe to use in a forked child: only `read`, `write` and
/// `poll`.
final class PipeSemaphore: Sendable {
    private let readEnd: Int32
    private let writeEnd: Int32

    init() {
        guard let ends = nonBlockingPipe() else { preconditionFailure("pipe: errno \(errno)") }
        (readEnd, writeEnd) = ends
    }

    deinit {
        close(readEnd)
        close(writeEnd)
    }

    /// Releases `count` waits.
    func signal(_ count: Int = 1) {
        let tokens = [UInt8](repeating: 1, count: count)
        var written = 0
        while written < count {
            let n = tokens.withUnsafeBytes { write(writeEnd, $0.baseAddress! + written, count - written) }
            if n > 0 { written += n } else { precondition(errno == EINTR || errno == EAGAIN, "write: errno \(errno)") }
        }
    }

    /// Takes one token, sleeping until one comes; false if none came within ``NoHang``.
    func wait() -> Bool {
        let clock = ContinuousClock(), deadline = clock.now + NoHang.limit
        while true {
            var token: UInt8 = 0
            if read(readEnd, &token, 1) == 1 { return true }
            guard errno == EAGAIN || errno == EINTR else { return false }
            let left = clock.now.duration(to: deadline)
            if left <= .zero { return false }
            var ready = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
            _ = poll(&ready, 1, Int32(min(left.components.seconds * 1000 + 1, 60_000)))
        }
    }
}

/// A pipe whose two ends do not block (`pipe2` is not visible from Swift).
func nonBlockingPipe() -> (read: Int32, write: Int32)? {
    var fds: [Int32] = [-1, -1]
    guard pipe(&fds) == 0 else { return nil }
    for fd in fds where fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0 {
        close(fds[0]); close(fds[1])
        return nil
    }
    return (fds[0], fds[1])
}

/// Thrown by a stage whose ``PipeSemaphore`` wait ran out of ``NoHang``: the run then
/// fails with it, and so does the test.
struct NeverReleased: Error, CustomStringConvertible {
    var description: String { "the test never released this item (no-hang guard)" }
}

/// What a process left in `/dev/shm`, and open descriptors, checked without counting what
/// other tests running at the same time create.
enum Leftovers {
    /// The names in a directory (without "." and "..").
    static func entries(of path: String) -> Set<String> {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var names: Set<String> = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != ".", name != ".." { names.insert(name) }
        }
        return names
    }

    static func sharedMemory() -> Set<String> { entries(of: "/dev/shm") }

    /// The process a `/dev/shm` name belongs to, for the names made per process: libomp's
    /// registration `__KMP_REGISTERED_LIB_<pid>_<uid>`, the tests' own rings
    /// `conveyor-test-<pid>-…` and the Python suite's `cvpy-<pid>-…`; nil for any other name.
    static func owner(of name: String) -> Int32? {
        for prefix in ["__KMP_REGISTERED_LIB_", "conveyor-test-", "cvpy-"] where name.hasPrefix(prefix) {
            return Int32(name.dropFirst(prefix.count).prefix { $0.isNumber })
        }
        return nil
    }

    /// The entries new since `before` that a run whose processes were `children` may have
    /// left: every new name, except those that belong by name to another process (this
    /// test process's own libomp registration, another test's stage processes or rings,
    /// which come and go while tests run in parallel).
    static func sharedMemory(since before: Set<String>, children: [Int32]) -> [String] {
        let mine = Set(children)
        return sharedMemory().subtracting(before).filter { name in owner(of: name).map(mine.contains) ?? true }.sorted()
    }

    /// Child processes of this process among `pids` that have not been reaped.
    static func unreaped(_ pids: [Int32]) -> [Int32] {
        pids.filter { pid in
            var status: Int32 = 0
            return !(waitpid(pid, &status, WNOHANG) == -1 && errno == ECHILD)
        }
    }
}

/// Runs `body` in a forked copy of the test process and returns the problems it reported
/// (empty: none). In the copy `body` is the only thread, so process-wide checks (the open
/// descriptors, the child processes) see what `body` did and nothing that tests running in
/// parallel do meanwhile. `body` follows the rules of a pipeline stage process (no
/// Dispatch, no Swift concurrency, no `#expect`: report problems as strings).
func inForkedCopy(_ body: () -> [String]) -> [String] {
    guard let (readEnd, writeEnd) = nonBlockingPipe() else { return ["pipe: errno \(errno)"] }
    defer { close(readEnd) }
    let pid: pid_t
    switch Posix.fork() {
    case let .failure(error): close(writeEnd); return ["\(error)"]
    case .success(0):
        close(readEnd)
        let report = Array(body().joined(separator: "\n").utf8) + [0]
        var written = 0
        while written < report.count {
            let n = report.withUnsafeBytes { write(writeEnd, $0.baseAddress! + written, report.count - written) }
            if n > 0 { written += n } else if errno != EINTR && errno != EAGAIN { _exit(2) } else {
                var ready = pollfd(fd: writeEnd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&ready, 1, 1_000)
            }
        }
        _exit(0)
    case let .success(child): pid = child
    }
    close(writeEnd)
    // The report ends with a 0 byte. Other processes forked meanwhile may hold copies of
    // the write end, so the end of the report is that byte, not end of file; a child that
    // dies before writing it is noticed by reaping it between waits.
    var report: [UInt8] = []
    var ended: Posix.Ending?
    let clock = ContinuousClock(), deadline = clock.now + NoHang.limit
    while report.last != 0 {
        var chunk = [UInt8](repeating: 0, count: 4096)
        let n = chunk.withUnsafeMutableBytes { read(readEnd, $0.baseAddress!, $0.count) }
        if n > 0 { report += chunk.prefix(n); continue }
        if ended != nil { break }  // it ended, and everything it wrote has been read
        ended = try? Posix.reap(pid, blocking: false)
        if ended != nil { continue }  // one more read for what it wrote before it ended
        if clock.now > deadline {
            Posix.kill(pid, SIGKILL)
            _ = try? Posix.reap(pid, blocking: true)
            return ["the forked copy did not finish within the no-hang guard"]
        }
        var ready = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
        _ = poll(&ready, 1, 100)  // a report or, every 100 ms, a look at whether it died
    }
    if ended == nil { ended = try? Posix.reap(pid, blocking: true) }
    guard report.last == 0 else { return ["the forked copy ended (\(String(describing: ended))) without a report"] }
    let text = String(decoding: report.dropLast(), as: UTF8.self)
    var problems = text.isEmpty ? [] : text.split(separator: "\n").map(String.init)
    if ended != .exited(0) { problems.append("the forked copy ended with \(String(describing: ended))") }
    return problems
}
