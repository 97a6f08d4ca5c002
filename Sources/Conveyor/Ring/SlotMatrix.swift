/// Lends a ring slot to a closure as a `Matrix`, without copying, and makes sure nothing
/// the closure kept can point into the slot after the lease ends.
///
/// The matrix handed out wraps the slot's memory (borrowed storage). When the closure
/// returns: if it kept copies of the matrix (the storage is still referenced), those
/// copies are detached, each getting an owned snapshot of the values; if it replaced the
/// matrix (assignment, or copy-on-write after copying it), the new values are copied into
/// the slot. The common case, using the matrix in place, copies nothing.
enum SlotMatrix {
    static func withMatrix<Element: MatrixElement, R, E: Error>(
        slot: UnsafeMutablePointer<Element>, rows: Int, cols: Int, lender: AnyObject,
        writeBack: Bool, _ body: (inout Matrix<Element>) throws(E) -> R
    ) throws(E) -> R {
        // The matrix must hold the only strong reference, or its first write would copy.
        var matrix = Matrix(rows: rows, cols: cols,
                            storage: MatrixStorage(borrowing: slot, count: rows * cols, lender: lender))
        weak let original = matrix.storage  // weak: does not count for uniqueness
        defer {
            // Ask before binding `original` strongly: that binding would itself make the
            // storage look shared, and every item would be copied.
            let unique = isKnownUniquelyReferenced(&matrix.storage)
            if let kept = original, kept !== matrix.storage || !unique { kept.detach() }
        }
        let result = try body(&matrix)
        if writeBack && matrix.storage.base != slot {
            precondition(matrix.shape == Shape(rows: rows, cols: cols),
                         "a leased \(rows)x\(cols) matrix was replaced by a \(matrix.shape) one")
            slot.update(from: matrix.storage.base, count: rows * cols)
        }
        return result
    }
}
