#if canImport(Glibc)
import Glibc
#endif

/// The slots one producing node (the source or a closure stage) writes its items into:
/// `buffer` page-aligned slots per replica, in one anonymous shared mapping made before
/// any fork, so stage processes and the caller address the same memory.
///
/// Kernel stages after the producer transform an item in its slot and hand the slot on;
/// the next node that reads it (a closure stage or the sink) hands it back. Replica j owns
/// slots j·buffer ..< (j+1)·buffer: its first `buffer` items take them in turn, and every
/// later item takes the slot of an item that came back. Frames name the slot, so readers
/// never compute it; in order, item t reuses the slot of item t − buffer (the one most
/// recently released, still in cache).
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

    /// The slot index a fresh item takes: replica `item % replicas`'s slot `ordinal`, for
    /// the first `buffer` items of each replica.
    func initialSlot(of item: Int) -> Int { item % replicas * buffer + ordinal(of: item) }

    /// Whether `index` is one of replica `replica`'s slots (frames come from shared memory:
    /// check before trusting).
    func owns(_ index: Int, replica: Int) -> Bool { index >= replica * buffer && index < (replica + 1) * buffer }

    /// Whether `index` is a slot of this pool.
    func contains(_ index: Int) -> Bool { index >= 0 && index < replicas * buffer }

    /// The memory of slot `index`.
    func slot(_ index: Int) -> UnsafeMutableRawPointer { base + index * slotStride }
}
