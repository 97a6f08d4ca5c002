import Atomics

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The buffer behind a ``Matrix``: owned, 64-byte-aligned memory, or memory borrowed from
/// a ring slot for the duration of a lease.
///
/// Immutable after initialization except through `Matrix`'s copy-on-write paths, which
/// write only when the storage is uniquely referenced, and through ``detach()``, which a
/// lease calls while it holds the only other reference path; that is why the class may be
/// `@unchecked Sendable`: no two threads can ever reach a buffer that one of them writes.
final class MatrixStorage<Element: MatrixElement>: @unchecked Sendable {
    /// How many times borrowed storage was detached (copied) in this process: tests use it
    /// to prove that a lease which nothing escaped copied nothing.
    static var detachCount: Int { detaches.load(ordering: .relaxed) }
    private static var detaches: ManagedAtomic<Int> { MatrixStorageCounters.detaches }

    /// Alignment of every owned buffer: one cache line, and one AVX-512 vector.
    static var alignment: Int { 64 }

    private(set) var base: UnsafeMutablePointer<Element>
    let count: Int
    /// Borrowed storage keeps the owner of its memory (a ring mapping) alive; nil if owned.
    private var lender: AnyObject?

    /// Allocates `count` uninitialized elements. Floating-point elements are trivial, so
    /// "uninitialized" only means "any bit pattern" until a kernel fills them.
    init(uninitializedCount count: Int) throws(MatrixError) {
        self.base = try Self.allocate(count)
        self.count = count
        self.lender = nil
    }

    /// Wraps `count` elements at `base` that `lender` keeps valid; nothing is copied.
    init(borrowing base: UnsafeMutablePointer<Element>, count: Int, lender: AnyObject) {
        self.base = base
        self.count = count
        self.lender = lender
    }

    var isBorrowed: Bool { lender != nil }

    private static func allocate(_ count: Int) throws(MatrixError) -> UnsafeMutablePointer<Element> {
        guard let bytes = elementByteCount(rows: count, cols: 1, stride: MemoryLayout<Element>.stride) else {
            throw .invalidShape(rows: count, cols: 1)
        }
        var raw: UnsafeMutableRawPointer?
        // posix_memalign rejects size 0 on some libcs' terms; allocate one line instead.
        guard posix_memalign(&raw, Self.alignment, max(bytes, Self.alignment)) == 0, let raw else {
            throw .allocationFailed(bytes: bytes)
        }
        return raw.bindMemory(to: Element.self, capacity: max(count, 1))
    }

    /// A new, owned storage holding a copy of this one's elements.
    func copy() -> MatrixStorage {
        // The size was valid for self, so it is valid again; only memory can fail.
        guard let clone = try? MatrixStorage(uninitializedCount: count) else {
            fatalError("Conveyor: out of memory copying a \(count)-element matrix for copy-on-write")
        }
        clone.base.update(from: base, count: count)
        return clone
    }

    /// Turns borrowed storage into owned storage holding a snapshot of the elements. A
    /// lease calls this when it ends while matrices made from it still exist, so those
    /// copies keep their values instead of pointing into a slot that is about to be reused.
    func detach() {
        guard lender != nil else { return }
        guard let owned = try? Self.allocate(count) else {
            fatalError("Conveyor: out of memory detaching a \(count)-element matrix from its ring slot")
        }
        owned.update(from: base, count: count)
        base = owned
        lender = nil
        Self.detaches.wrappingIncrement(ordering: .relaxed)
    }

    deinit {
        if lender == nil { free(base) }
    }
}

/// Process-wide counters of MatrixStorage (a generic class cannot hold static stored
/// properties).
enum MatrixStorageCounters {
    static let detaches = ManagedAtomic<Int>(0)
}
