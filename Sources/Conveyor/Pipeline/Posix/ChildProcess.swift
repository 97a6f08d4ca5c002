#if canImport(Glibc)
import Glibc
#endif

/// A system call that failed: its name and the `errno` it set, read right at the call.
public struct SystemCallError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The call, e.g. "fork" or "waitid".
    public var call: String
    /// The `errno` value the call set.
    public var errno: Int32

    /// "fork: Resource temporarily unavailable".
    public var description: String { "\(call): \(String(cString: strerror(errno)))" }
}

/// Reaping forked child processes that may have run Conveyor's kernels, without leaving
/// anything behind in `/dev/shm`.
///
/// Why a reap also removes a file: LLVM's OpenMP runtime (libomp, behind the parallel
/// kernels) registers every process that initializes it in a shared-memory file named
/// after the process, `/dev/shm/__KMP_REGISTERED_LIB_<pid>_<uid>`
/// (`__kmp_register_library_startup` in libomp's `kmp_runtime.cpp`), and removes it only
/// in its exit-time teardown (`__kmp_unregister_library`, run by the library's destructor).
/// A forked child initializes libomp again at its first kernel call (libomp's fork
/// handler resets the runtime in the child), so it registers under its own pid; and a
/// child that leaves with `_exit` (as pipeline stage processes do, never to run atexit
/// handlers or Swift code that might take a lock held at fork time) skips that teardown,
/// as does one killed by a signal (a crash, or `SIGKILL` from the stall watchdog). Each
/// such child would leave its file behind for good. libomp 14 has no setting that turns
/// the registration off or moves it (newer versions only fall back to `/tmp` when
/// `/dev/shm` is unusable), and nothing a child does helps once it is killed, so the
/// process that reaps the child removes the file: it waits with `WNOWAIT`, so the child
/// is still a zombie whose pid no other process can have taken, removes the file if it
/// exists, then reaps. Without OpenMP (the trait disabled) there is never a file, and the
/// removal finds none.
///
/// Use ``reap(_:)`` for children you fork yourself whose code may call the kernels; the
/// pipeline reaps its stage processes the same way.
public enum ChildProcess {
    /// Waits for child `pid` of this process to end, removes what its OpenMP runtime left
    /// in `/dev/shm`, and reaps it.
    ///
    /// - Returns: the wait status, as `waitpid` reports it: `status & 0x7f` is the signal
    ///   that killed the child (0 if it exited), `(status >> 8) & 0xff` its exit status.
    /// - Throws: ``SystemCallError`` if `pid` is not a child of this process (or was
    ///   already reaped).
    public static func reap(_ pid: Int32) throws(SystemCallError) -> Int32 {
        guard let ending = try Posix.reap(pid, blocking: true) else {
            throw SystemCallError(call: "waitid", errno: EAGAIN)  // unreachable: a blocking wait ends
        }
        return ending.waitStatus
    }
}

/// Reaping, on the wrappers of System.swift: how a child ended, and the removal of its
/// OpenMP registration (see ``ChildProcess``) while its pid is still reserved.
extension Posix {
    /// How a reaped child ended.
    enum Ending: Equatable {
        /// It called `exit`/`_exit` with this status.
        case exited(Int32)
        /// A signal killed it.
        case signalled(Int32)
        /// Someone else had already reaped it (`ECHILD`): its ending is unknown.
        case unknown

        /// As `waitpid` would have reported it (0 for an unknown ending).
        var waitStatus: Int32 {
            switch self {
            case let .exited(code): return (code & 0xff) << 8
            case let .signalled(signal): return signal & 0x7f
            case .unknown: return 0
            }
        }
    }

    /// Reaps child `pid` if it has ended (with `blocking`, waits until it does): first
    /// waits without reaping, removes the child's OpenMP registration while its pid is
    /// still reserved by the zombie, then reaps it. Returns nil while the child runs.
    /// - Throws: ``SystemCallError`` if the kernel refuses the wait itself (EINVAL); a child
    ///   reaped elsewhere is `.unknown`, not an error.
    static func reap(_ pid: pid_t, blocking: Bool) throws(SystemCallError) -> Ending? {
        do throws(SystemCallError) {
            guard try waitWithoutReaping(pid, blocking: blocking) else { return nil }  // still running
        } catch where error.errno == ECHILD {
            // Reaped elsewhere: its pid is free again, but a new process taking it and
            // registering in this instant is far less likely than the file leaking.
            removeOpenMPRegistration(of: pid)
            return .unknown
        }
        removeOpenMPRegistration(of: pid)
        let status: Int32
        do throws(SystemCallError) {
            status = try waitpid(pid)
        } catch where error.errno == ECHILD {
            return .unknown
        }
        let signal = status & 0x7f
        return signal != 0 ? .signalled(signal) : .exited((status >> 8) & 0xff)
    }

    /// The shared-memory name under which libomp registers process `pid`
    /// (`__kmp_reg_status_name`: pid and uid, for the dynamic library on Linux).
    static func openMPRegistrationName(of pid: pid_t) -> String {
        "/__KMP_REGISTERED_LIB_\(pid)_\(getuid())"
    }

    /// Removes the OpenMP registration of ended child `pid`, if it made one. Returns the
    /// error of a removal that failed for another reason than there being no file; the
    /// callers ignore it, since a file that cannot be removed must not fail a run that
    /// succeeded (and the tests, which compare `/dev/shm` before and after, report it).
    @discardableResult
    static func removeOpenMPRegistration(of pid: pid_t) -> SystemCallError? {
        do throws(SystemCallError) {
            try removeSharedMemory(openMPRegistrationName(of: pid))
            return nil
        } catch {
            return error.errno == ENOENT ? nil : error
        }
    }
}
