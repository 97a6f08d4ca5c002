#if canImport(Glibc)
import Glibc
#endif

// The pipeline's system calls, in one thin layer (the model is swift-nio's
// NIOPosix/System.swift). Why: `errno` is thread-local, but any Swift code between a C call
// and the read of `errno` (ARC traffic, an allocation, a print) may overwrite it. Each
// wrapper makes its one call and reads `errno` at once, in a function that is never inlined
// into a caller that could do more in between, and hands it back as a typed
// ``SystemCallError``. An `errno` that can only mean a bad pointer or descriptor of ours
// (EFAULT, EBADF) is a bug in this package, not a condition to report: it traps, naming the
// call. No other file in Pipeline/ calls fork, wait*, kill, mmap, pthread_*, isatty, write
// or sleeps.

/// errno values that only a bug of this package can cause: a bad pointer or descriptor.
func isProgrammerError(_ code: Int32) -> Bool { code == EFAULT || code == EBADF }

/// Runs `body` (a call that returns -1 and sets `errno` on failure), retrying on EINTR, and
/// turns a failure into a ``SystemCallError`` read right after the call. With
/// `trappingBadDescriptors` (the default), EFAULT and EBADF trap as bugs of ours.
@inline(__always)
func syscall<T: FixedWidthInteger>(_ name: String, trappingBadDescriptors: Bool = true,
                                           _ body: () -> T) throws(SystemCallError) -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let error = errno
        if error == EINTR { continue }
        precondition(!trappingBadDescriptors || !isProgrammerError(error), "\(name): \(String(cString: strerror(error))) (a bug in Conveyor)")
        throw SystemCallError(call: name, errno: error)
    }
}

/// The process, memory and I/O system calls of the pipeline (threads: ``Posix/Thread``;
/// reaping: ``Posix/reap(_:blocking:)``).
enum Posix {
    /// Forks, after flushing stdio (so a child's `_exit` does not drop, nor its exit
    /// repeat, buffered output). Returns 0 in the child, the child's pid in the parent.
    /// The corresponding C function is `fork`. Fails with EAGAIN or ENOMEM. A `Result`
    /// rather than `throws`: the two returns of one call go different ways, which a
    /// `switch` shows best.
    @inline(never)
    static func fork() -> Result<pid_t, SystemCallError> {
        fflush(nil)
        return Result { () throws(SystemCallError) in try syscall("fork") { Glibc.fork() } }
    }

    /// Ends the calling process at once with `status` (`_exit`): no atexit handlers, no
    /// stdio flush, no Swift deinitializers — what a forked child must do, since any of
    /// them might take a lock that a thread of the parent held at fork time.
    @inline(never)
    static func exitImmediately(_ status: Int32) -> Never { _exit(status) }

    /// Sends `signal` to `pid` (`kill`). A process that has already ended (`ESRCH`) is not an
    /// error: it is reaped all the same. Returns the error of any other failure (EPERM: not
    /// our process); the pipeline only signals its own children.
    @inline(never)
    @discardableResult
    static func kill(_ pid: pid_t, _ signal: Int32) -> SystemCallError? {
        do throws(SystemCallError) {
            _ = try syscall("kill") { Glibc.kill(pid, signal) }
            return nil
        } catch {
            return error.errno == ESRCH ? nil : error
        }
    }

    /// Waits for child `pid` to end without reaping it (`waitid` with `WEXITED | WNOWAIT`,
    /// and `WNOHANG` unless `blocking`). Returns false while the child runs (only without
    /// `blocking`). Fails with ECHILD when `pid` is no child of ours (or was reaped).
    @inline(never)
    static func waitWithoutReaping(_ pid: pid_t, blocking: Bool) throws(SystemCallError) -> Bool {
        var info = siginfo_t()  // si_pid stays 0 if no child has ended (WNOHANG)
        _ = try syscall("waitid") { waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT | (blocking ? 0 : WNOHANG)) }
        return info._sifields._sigchld.si_pid != 0
    }

    /// Reaps child `pid`, waiting until it has ended (`waitpid`); returns its wait status.
    /// Fails with ECHILD when `pid` is no child of ours (or was reaped).
    @inline(never)
    static func waitpid(_ pid: pid_t) throws(SystemCallError) -> Int32 {
        var status: Int32 = 0
        _ = try syscall("waitpid") { Glibc.waitpid(pid, &status, 0) }
        return status
    }

    /// Maps `bytes` of zeroed memory shared with every process forked afterwards
    /// (`mmap` with `MAP_SHARED | MAP_ANONYMOUS`). Fails with ENOMEM (or EINVAL for 0 bytes).
    @inline(never)
    static func mapShared(bytes: Int) throws(SystemCallError) -> UnsafeMutableRawPointer {
        let memory = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)
        guard let memory, memory != MAP_FAILED else { throw SystemCallError(call: "mmap", errno: errno) }
        return memory
    }

    /// Unmaps memory from ``mapShared(bytes:)`` (`munmap`). Its only failure, EINVAL, means
    /// a pointer or size that no mapping of ours has: a bug, so it traps.
    @inline(never)
    static func unmap(_ memory: UnsafeMutableRawPointer, bytes: Int) {
        if munmap(memory, bytes) != 0 {
            let error = errno
            preconditionFailure("munmap: \(String(cString: strerror(error))) (a bug in Conveyor)")
        }
    }

    /// Whether `fd` is a terminal (`isatty`); false for anything else, a closed fd included.
    @inline(never)
    static func isTerminal(_ fd: Int32) -> Bool { isatty(fd) == 1 }

    /// Writes all of `bytes` to `fd` (`write`, repeated after a short write or EINTR), with
    /// no FILE* buffer in between. Fails with the error of the first write that fails
    /// (EPIPE, EIO, EAGAIN on a non-blocking fd, EBADF: the fd is not open — the caller's
    /// descriptors, such as a closed stderr, are not ours to trap on).
    @inline(never)
    static func write(_ fd: Int32, _ bytes: [UInt8]) throws(SystemCallError) {
        var offset = 0
        while offset < bytes.count {
            // Array.withUnsafeBytes is not typed-throws: bring the result out, throw outside.
            let outcome = bytes.withUnsafeBytes { buffer in
                Result { () throws(SystemCallError) in
                    try syscall("write", trappingBadDescriptors: false) {
                        Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                    }
                }
            }
            offset += try outcome.get()
        }
    }

    /// Sleeps for `nanoseconds` (`nanosleep`, resumed after a signal for the time left).
    /// Cannot fail for a valid duration; a negative one returns at once.
    @inline(never)
    static func sleep(nanoseconds: Int64) {
        guard nanoseconds > 0 else { return }
        var request = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 {
            let error = errno
            precondition(error == EINTR, "nanosleep: \(String(cString: strerror(error))) (a bug in Conveyor)")
            request = remaining
        }
    }

    /// Removes the POSIX shared-memory object `name` (`shm_unlink`). Fails with ENOENT when
    /// there is none, EACCES when it is not ours to remove.
    @inline(never)
    static func removeSharedMemory(_ name: String) throws(SystemCallError) {
        _ = try syscall("shm_unlink") { shm_unlink(name) }
    }
}
