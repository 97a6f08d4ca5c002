#if canImport(Glibc)
import Glibc
#endif

/// The slots one producing node (the source or a closure stage) writes its items into:
/// `buffer` page-aligned slots per replica, in one anonymous shared mapping made before
/// any fork, so stage processes and the caller address the same memory.
///
/// Kernel stages after the producer transform an item in its slot and hand the slot on;
/// the next node that reads it (a closure stage or the sink) hands it back. Replica j
/// writes its t-th item (item j + t·replicas) into slot j·buffer + t % buffer, so the
/// slot of an item is known everywhere from the item number alone, and a slot is reused
/// only after the item `buffer` places earlier in that replica's sequence came back.
/// Only `buffer` slots per replica cycle, so with a small buffer the working set stays in
/// the last-level cache (3 × 8 MB here, against a 32 MB L3).
final class SlotPool: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let bytes: Int
    let slotStride: Int
    let replicas: Int
    let buffer: Int

    init(replicas: Int, buffer: Int, slotBytes: Int) throws(PipelineError) {
        let page = max(4096, Int(sysconf(Int32(_SC_PAGESIZE))))
        let (stride, strideOverflow) = ((slotBytes + page - 1) / page).multipliedReportingOverflow(by: page)
        let (total, totalOverflow) = stride.multipliedReportingOverflow(by: replicas * buffer)
        guard !strideOverflow, !totalOverflow else { throw .invalidDefinition("slots of \(slotBytes) bytes overflow") }
        guard let memory = mmap(nil, total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0),
              memory != MAP_FAILED else {
            throw .setupFailed("mmap of \(replicas * buffer) slots of \(slotBytes) bytes failed: errno \(errno)")
        }
        base = memory
        bytes = total
        slotStride = stride
        self.replicas = replicas
        self.buffer = buffer
    }

    deinit { munmap(base, bytes) }

    /// Position of `item` in its replica's sequence.
    func ordinal(of item: Int) -> Int { item / replicas }

    /// The slot `item` is written into.
    func slot(of item: Int) -> UnsafeMutableRawPointer {
        base + (item % replicas * buffer + ordinal(of: item) % buffer) * slotStride
    }
}
