import BenchBaselines
import Conveyor

#if canImport(Glibc)
import Glibc
#endif

/// Where the other side of a measurement runs.
enum Scope: String, CaseIterable {
    case threads, processes
}

private final class ThreadBody {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

/// Runs `other` on another thread or in a forked child process while `main` runs here,
/// and waits for both. A forked child runs only `other` (C loops) and leaves with _exit,
/// never returning into Swift code that might take a lock held at fork time.
func runConcurrently(_ scope: Scope, other: @escaping () -> Int32, main: () -> Void) -> Bool {
    switch scope {
    case .threads:
        var thread = pthread_t()
        var status: Int32 = 0
        let body = ThreadBody { status = other() }
        let context = Unmanaged.passRetained(body).toOpaque()
        guard pthread_create(&thread, nil, { context in
            Unmanaged<ThreadBody>.fromOpaque(context!).takeRetainedValue().body()
            return nil
        }, context) == 0 else { return false }
        main()
        pthread_join(thread, nil)
        return status == 0
    case .processes:
        let pid = bench_fork()
        if pid == 0 { bench_exit_child(other() == 0 ? 0 : 1) }
        main()
        // Reaped through Conveyor, which also removes the /dev/shm file the child's OpenMP
        // runtime registered if it initialized one (_exit skips libomp's teardown).
        return (try? ChildProcess.reap(pid_t(pid))) == 0
    }
}
