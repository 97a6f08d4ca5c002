#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The owned, 64-byte-aligned buffer behind a ``Matrix``.
///
/// Immutable after initialization except through `Matrix`'s copy-on-write paths, which
/// write only when the storage is uniquely referenced; that is why the class may be
/// `@unchecked Sendable`: no two threads can ever reach a buffer that one of them writes.
final class MatrixStorage<Element: MatrixElement>: @unchecked Sendable {
    /// Alignment of every buffer: one cache line, and one AVX-512 vector.
    static var alignment: Int { 64 }

    let base: UnsafeMutablePointer<Element>
    let count: Int

    /// Allocates `count` uninitialized elements. Floating-point elements are trivial, so
    /// "uninitialized" only means "any bit pattern" until a kernel fills them.
    init(uninitializedCount count: Int) throws(MatrixError) {
        let (bytes, overflow) = count.multipliedReportingOverflow(by: MemoryLayout<Element>.stride)
        guard count >= 0, !overflow else { throw .invalidShape(rows: count, cols: 1) }
        var raw: UnsafeMutableRawPointer?
        // posix_memalign rejects size 0 on some libcs' terms; allocate one line instead.
        guard posix_memalign(&raw, Self.alignment, max(bytes, Self.alignment)) == 0, let raw else {
            throw .allocationFailed(bytes: bytes)
        }
        self.base = raw.bindMemory(to: Element.self, capacity: max(count, 1))
        self.count = count
    }

    /// A new storage holding a copy of this one's elements.
    func copy() -> MatrixStorage {
        // The size was valid for self, so it is valid again; only memory can fail.
        guard let clone = try? MatrixStorage(uninitializedCount: count) else {
            fatalError("Conveyor: out of memory copying a \(count)-element matrix for copy-on-write")
        }
        clone.base.update(from: base, count: count)
        return clone
    }

    deinit { free(base) }
}
