import Atomics

/// The pipeline's shared control block: an abort flag, the first failure, and per-worker
/// counters, in one anonymous shared mapping made before any fork so that stage processes
/// and the parent see the same words.
///
/// Layout (64-bit words): [0] abort, [1] failed worker + 1 (published after the message),
/// [2] failed item, [3] failure claim (the first failing worker wins it), [4] the next item
/// a source replica claims under dynamic dealing; then 8 words per
/// worker: items, busy ns, input-wait ns, output-wait ns, current item + 1, busy since
/// (monotonic ns, 0 while not computing), the pid of the program it drives (0: none);
/// then the failure message.
final class ControlBlock: @unchecked Sendable {
    private let base: UnsafeMutableRawPointer
    private let bytes: Int
    private let workers: Int
    private static let messageBytes = 1024
    private static let headerWords = 5
    private var messageBase: UnsafeMutableRawPointer { base + (Self.headerWords + 8 * workers) * 8 }

    init(workers: Int) throws(PipelineError) {
        self.workers = workers
        bytes = (Self.headerWords + 8 * workers) * 8 + Self.messageBytes
        do throws(SystemCallError) {
            base = try Posix.mapShared(bytes: bytes)
        } catch {
            throw .setupFailed("the control block: \(error)")
        }
    }

    deinit { Posix.unmap(base, bytes: bytes) }

    private func word(_ index: Int) -> UnsafeAtomic<UInt64> {
        UnsafeAtomic(at: base.assumingMemoryBound(to: UInt64.AtomicRepresentation.self) + index)
    }

    private func counter(_ worker: Int, _ field: Int) -> UnsafeAtomic<UInt64> {
        word(Self.headerWords + 8 * worker + field)
    }

    var aborted: Bool { word(0).load(ordering: .acquiring) != 0 }
    func abort() { word(0).store(1, ordering: .releasing) }

    /// Claims the next item number for a source replica (dynamic dealing): each number goes
    /// to exactly one caller, in increasing order per caller. Relaxed: the item's data is
    /// published by the channel that carries its slot, not by this counter.
    func claimItem() -> Int { Int(word(4).loadThenWrappingIncrement(ordering: .relaxed)) }

    /// Records the first failure (later ones are ignored) and aborts the run.
    func fail(worker: Int, item: Int, message: String) {
        // Claim first, so that two failing workers never mix their messages; publish the
        // worker (release) only after the message and item are written.
        if word(3).compareExchange(expected: 0, desired: 1, ordering: .relaxed).exchanged {
            let utf8 = Array(message.utf8.prefix(Self.messageBytes - 1)) + [0]
            utf8.withUnsafeBytes { messageBase.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            word(2).store(UInt64(bitPattern: Int64(item)), ordering: .relaxed)
            word(1).store(UInt64(worker + 1), ordering: .releasing)
        }
        abort()
    }

    /// The first failure: worker, item and message.
    var failure: (worker: Int, item: Int, message: String)? {
        let failed = word(1).load(ordering: .acquiring)
        guard failed != 0 else { return nil }
        let message = String(cString: messageBase.assumingMemoryBound(to: CChar.self))
        return (Int(failed) - 1, Int(Int64(bitPattern: word(2).load(ordering: .relaxed))), message)
    }

    func add(worker: Int, items: Int = 0, busy: UInt64 = 0, inputWait: UInt64 = 0, outputWait: UInt64 = 0) {
        if items != 0 { counter(worker, 0).wrappingIncrement(by: UInt64(items), ordering: .relaxed) }
        if busy != 0 { counter(worker, 1).wrappingIncrement(by: busy, ordering: .relaxed) }
        if inputWait != 0 { counter(worker, 2).wrappingIncrement(by: inputWait, ordering: .relaxed) }
        if outputWait != 0 { counter(worker, 3).wrappingIncrement(by: outputWait, ordering: .relaxed) }
    }

    /// Marks the worker as computing since `time` (nanoseconds) or, with nil, as not computing:
    /// what the stall watchdog reads.
    func setBusy(worker: Int, since time: UInt64?) { counter(worker, 5).store(time ?? 0, ordering: .relaxed) }
    func busySince(worker: Int) -> UInt64? {
        let time = counter(worker, 5).load(ordering: .relaxed)
        return time == 0 ? nil : time
    }

    /// Records the program a worker drives (nil: none), for the stall watchdog to kill.
    /// The worker clears it before it reaps the program, so that a pid the kernel may hand
    /// out again is not left here; a watchdog that read it just before is racing a reap
    /// of microseconds, after a stall of `stallTimeout`.
    func setProgram(worker: Int, _ pid: Int32?) { counter(worker, 6).store(UInt64(pid ?? 0), ordering: .relaxed) }
    func programID(worker: Int) -> Int32? {
        let pid = Int32(truncatingIfNeeded: counter(worker, 6).load(ordering: .relaxed))
        return pid == 0 ? nil : pid
    }

    func setCurrentItem(worker: Int, _ item: Int) { counter(worker, 4).store(UInt64(item + 1), ordering: .relaxed) }
    func currentItem(worker: Int) -> Int { Int(counter(worker, 4).load(ordering: .relaxed)) - 1 }

    func counters(worker: Int) -> (items: UInt64, busy: UInt64, inputWait: UInt64, outputWait: UInt64) {
        (counter(worker, 0).load(ordering: .relaxed), counter(worker, 1).load(ordering: .relaxed),
         counter(worker, 2).load(ordering: .relaxed), counter(worker, 3).load(ordering: .relaxed))
    }
}
