extension Matrix {
    /// Calls `body` with a read-only pointer to all elements in row-major order.
    ///
    /// The pointer is valid only during the call. Cost: none beyond the call.
    /// Rethrows whatever `body` throws.
    public func withUnsafeBufferPointer<R, E: Error>(
        _ body: (UnsafeBufferPointer<Element>) throws(E) -> R
    ) throws(E) -> R {
        try body(UnsafeBufferPointer(start: storage.base, count: count))
    }

    /// Calls `body` with a mutable pointer to all elements in row-major order.
    ///
    /// Cost: if the buffer is shared with another matrix it is copied first (copy-on-write),
    /// otherwise none. The pointer is valid only during the call.
    public mutating func withUnsafeMutableBufferPointer<R, E: Error>(
        _ body: (UnsafeMutableBufferPointer<Element>) throws(E) -> R
    ) throws(E) -> R {
        makeUnique()
        return try body(UnsafeMutableBufferPointer(start: storage.base, count: count))
    }

    /// Calls `body` with a bounds-checked, read-only `Span` over the elements.
    ///
    /// A span cannot escape the closure, which is what makes this safe. Cost: none.
    public func withSpan<R, E: Error>(_ body: (Span<Element>) throws(E) -> R) throws(E) -> R {
        try withUnsafeBufferPointer { (buffer) throws(E) -> R in try body(buffer.span) }
    }

    /// Calls `body` with a bounds-checked `MutableSpan` over the elements.
    ///
    /// Cost: as ``withUnsafeMutableBufferPointer(_:)``.
    public mutating func withMutableSpan<R, E: Error>(
        _ body: (inout MutableSpan<Element>) throws(E) -> R
    ) throws(E) -> R {
        try withUnsafeMutableBufferPointer { (buffer) throws(E) -> R in
            var span = buffer.mutableSpan
            return try body(&span)
        }
    }
}
