#if canImport(Glibc)
import Glibc
#endif

/// Starting stage programs, and the pipe they report on: the rest of the thin layer of
/// System.swift (same rules: one call per wrapper, errno read at once, typed errors).
extension Posix {
    /// Starts `path` with `arguments` (argv[0] included) and `environment` ("KEY=value"),
    /// with `fds` made available in the child at the given numbers (source → target), every
    /// descriptor of Conveyor's closed by its close-on-exec flag (one the host program opened
    /// without that flag is inherited, as by any posix_spawn), no signal blocked and the
    /// usual signals at their default actions. The corresponding C
    /// function is `posix_spawn`, with file actions. Cost: measured here ≈ 6.5 ms for a
    /// Swift executable, most of it the new program's loading. Fails with the errno of
    /// `posix_spawn` (ENOENT: no such program, EACCES, ENOEXEC: not an executable, ENOMEM)
    /// or of `fcntl` (EMFILE).
    ///
    /// Why the sources are first duplicated above every target: file actions run in order,
    /// so `dup2(a, 4)` then `dup2(b, 5)` would be wrong if b were 4; copies above the
    /// highest target cannot be overwritten. The copies are close-on-exec and closed here.
    @inline(never)
    static func spawn(_ path: String, arguments: [String], environment: [String],
                      fds: [(source: Int32, target: Int32)]) throws(SystemCallError) -> pid_t {
        let floor = (fds.map(\.target).max() ?? 2) + 1
        var copies: [Int32] = []
        defer { for copy in copies { Glibc.close(copy) } }
        for (source, _) in fds { copies.append(try syscall("fcntl") { fcntl(source, F_DUPFD_CLOEXEC, floor) }) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (copy, (_, target)) in zip(copies, fds) {
            // dup2 onto a new number clears close-on-exec on it: the child keeps it.
            let status = posix_spawn_file_actions_adddup2(&actions, copy, target)
            if status != 0 { throw SystemCallError(call: "posix_spawn_file_actions_adddup2", errno: status) }
        }
        // The program starts with no signal blocked and the usual signals at their default
        // actions, whatever this process (or the thread spawning) blocks or ignores.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), defaults = sigset_t()
        sigemptyset(&none)
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGPIPE, SIGHUP, SIGQUIT, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer { for p in argv + envp { free(p) } }
        let status = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        if status != 0 { throw SystemCallError(call: "posix_spawn \(path)", errno: status) }
        return pid
    }

    /// A one-way byte channel whose ends are both close-on-exec from the start (a Unix
    /// socket pair made with SOCK_CLOEXEC: Glibc's Swift module does not export pipe2, and
    /// setting the flag after `pipe` would race a posix_spawn on another thread); the read
    /// end is also non-blocking, so reading what a program reported never waits. Fails with
    /// EMFILE or ENFILE.
    @inline(never)
    static func reportPipe() throws(SystemCallError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        _ = try syscall("socketpair") { socketpair(AF_UNIX, type, 0, &fds) }
        _ = try syscall("fcntl") { fcntl(fds[0], F_SETFL, O_NONBLOCK) }
        return (fds[0], fds[1])
    }

    /// What can be read from the non-blocking `fd` now, at most `limit` bytes; empty when
    /// nothing is there (EAGAIN) or the writer has closed it.
    @inline(never)
    static func readAvailable(_ fd: Int32, limit: Int = 4096) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: limit)
        var count = 0
        while count < limit {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + count, limit - count) }
            if n > 0 { count += n; continue }
            if n < 0, errno == EINTR { continue }
            break  // 0: end of file; -1 with EAGAIN: nothing more now
        }
        return Array(bytes.prefix(count))
    }

    /// Closes a descriptor of ours (`close`); EINTR still closes it on Linux, so it is
    /// never retried.
    @inline(never)
    static func close(_ fd: Int32) { _ = Glibc.close(fd) }

    /// The path of this process's own executable, for starting another copy of it
    /// (`/proc/self/exe`, which names the file even after a rename).
    static var ownExecutable: String { "/proc/self/exe" }

    /// This process's environment, "KEY=value" each.
    static var environment: [String] {
        var result: [String] = []
        var p = Glibc.environ
        while let entry = p.pointee {
            result.append(String(cString: entry))
            p += 1
        }
        return result
    }

    /// "Segmentation fault" for SIGSEGV (`strsignal`).
    static func signalDescription(_ signal: Int32) -> String { String(cString: strsignal(signal)) }

    /// This process's id (`getpid`; cannot fail).
    static var processID: pid_t { getpid() }
}
