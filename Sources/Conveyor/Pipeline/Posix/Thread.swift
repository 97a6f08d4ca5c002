#if canImport(Glibc)
import Glibc
#endif

extension Posix {
    /// An OS thread of the pipeline (a stage worker, or the thread an async run happens on),
    /// over `pthread_create`/`pthread_join`/`pthread_detach`. Each thread must be joined or
    /// detached exactly once; nothing checks it, which is why only the supervisor and the
    /// async `run` hold these.
    ///
    /// Why OS threads and not tasks: a stage blocks in futex waits and computes for
    /// milliseconds at a time, and must never occupy one of Swift's cooperative threads.
    struct Thread: @unchecked Sendable {
        // @unchecked: a pthread_t is an integer handle, joined or detached by one owner.
        private let handle: pthread_t

        /// Starts `body` on a new thread. Cost: one `clone` (about 20 µs) and the default
        /// stack (8 MiB of address space, committed as used).
        /// - Throws: ``SystemCallError`` with the error `pthread_create` returned (EAGAIN:
        ///   out of threads or memory).
        @inline(never)
        static func start(_ body: @escaping @Sendable () -> Void) throws(SystemCallError) -> Thread {
            var thread = pthread_t()
            let context = Unmanaged.passRetained(Start(body)).toOpaque()
            let status = pthread_create(&thread, nil, { context in
                Unmanaged<Start>.fromOpaque(context!).takeRetainedValue().body()
                return nil
            }, context)
            guard status == 0 else {
                Unmanaged<Start>.fromOpaque(context).release()
                throw SystemCallError(call: "pthread_create", errno: status)  // pthreads return the error
            }
            return Thread(handle: thread)
        }

        /// Waits for the thread to end (`pthread_join`). Its only failures (ESRCH, EINVAL,
        /// EDEADLK) mean a thread already joined or detached, or this very thread: a bug.
        @inline(never)
        func join() {
            let status = pthread_join(handle, nil)
            precondition(status == 0, "pthread_join: \(String(cString: strerror(status))) (a bug in Conveyor)")
        }

        /// Lets the thread end on its own, never to be joined (`pthread_detach`). Fails only
        /// for a thread already joined or detached: a bug.
        @inline(never)
        func detach() {
            let status = pthread_detach(handle)
            precondition(status == 0, "pthread_detach: \(String(cString: strerror(status))) (a bug in Conveyor)")
        }

        /// The closure a new thread runs, passed through pthread's `void *` argument.
        private final class Start {
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
    }
}
