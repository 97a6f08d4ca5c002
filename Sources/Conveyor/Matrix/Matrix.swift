/// A dense rows × cols matrix of `Float` or `Double`, row-major and contiguous, in
/// 64-byte-aligned memory it owns.
///
/// `Matrix` is a value type with copy-on-write: copies share one buffer until one of them
/// is mutated. Arithmetic runs on Conveyor's SIMD and OpenMP kernels (see ``Kernels``),
/// returning new matrices, with `mutating` in-place forms that allocate nothing.
/// Operations on two matrices require equal shapes and throw ``MatrixError`` otherwise:
/// there is no broadcasting.
///
/// ```swift
/// let x = try Matrix<Double>.uniform(rows: 500, cols: 2000, seed: 7)
/// let y = x.squared() * 3 + 1      // three passes
/// let z = try x.applying([.square, .multiply(3), .add(1)])   // one fused pass, same bits
/// print(z.sum())
/// ```
public struct Matrix<Element: MatrixElement>: Sendable {
    /// Number of rows.
    public let rows: Int
    /// Number of columns.
    public let cols: Int
    var storage: MatrixStorage<Element>

    /// rows × cols.
    public var count: Int { rows * cols }

    /// The shape, for comparisons and messages.
    public var shape: Shape { Shape(rows: rows, cols: cols) }

    /// A matrix whose elements are not yet written; every public initializer fills them.
    init(uninitializedRows rows: Int, cols: Int) throws(MatrixError) {
        guard elementByteCount(rows: rows, cols: cols, stride: MemoryLayout<Element>.stride) != nil else {
            throw .invalidShape(rows: rows, cols: cols)
        }
        self.rows = rows
        self.cols = cols
        self.storage = try MatrixStorage(uninitializedCount: rows * cols)
    }

    /// A matrix over existing storage (owned, or borrowed from a ring slot).
    init(rows: Int, cols: Int, storage: MatrixStorage<Element>) {
        precondition(rows >= 0 && cols >= 0 && rows * cols == storage.count)
        self.rows = rows
        self.cols = cols
        self.storage = storage
    }

    /// A rows × cols matrix with every element equal to `value`.
    ///
    /// Cost: one allocation and one write pass.
    /// - Throws: ``MatrixError/invalidShape(rows:cols:)`` for a negative dimension or a
    ///   byte size that overflows; ``MatrixError/allocationFailed(bytes:)``.
    public init(rows: Int, cols: Int, repeating value: Element) throws(MatrixError) {
        try self.init(uninitializedRows: rows, cols: cols)
        storage.base.initialize(repeating: value, count: count)
    }

    /// A rows × cols matrix of zeros. Cost and errors as ``init(rows:cols:repeating:)``.
    public static func zeros(rows: Int, cols: Int) throws(MatrixError) -> Matrix {
        try Matrix(rows: rows, cols: cols, repeating: 0)
    }

    /// A rows × cols matrix holding `elements` in row-major order.
    ///
    /// Cost: one allocation and one copy.
    /// - Throws: ``MatrixError/countMismatch(expected:actual:)`` unless
    ///   `elements.count == rows * cols`; the errors of ``init(rows:cols:repeating:)``.
    public init(rows: Int, cols: Int, elements: [Element]) throws(MatrixError) {
        try self.init(uninitializedRows: rows, cols: cols)
        guard elements.count == count else {
            throw .countMismatch(expected: count, actual: elements.count)
        }
        elements.withUnsafeBufferPointer { source in
            if let from = source.baseAddress { storage.base.update(from: from, count: count) }
        }
    }

    /// The elements in row-major order, copied into an array.
    public var elements: [Element] {
        withUnsafeBufferPointer { Array($0) }
    }

    /// Makes the buffer unique before a write, copying it if another matrix shares it.
    mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
    }

    /// The element at (`row`, `col`).
    ///
    /// Cost: one load or store (a store may first copy a shared buffer, copy-on-write).
    /// An index outside the matrix is a programmer error and traps with a message naming
    /// the index and the shape, as `Array` does.
    public subscript(row: Int, col: Int) -> Element {
        get {
            storage.base[checkedOffset(row, col)]
        }
        set {
            let offset = checkedOffset(row, col)
            makeUnique()
            storage.base[offset] = newValue
        }
    }

    private func checkedOffset(_ row: Int, _ col: Int) -> Int {
        precondition(row >= 0 && row < rows && col >= 0 && col < cols,
                     "Matrix index (\(row), \(col)) is out of range for shape \(rows)x\(cols)")
        return row * cols + col
    }
}

extension Matrix: Equatable {
    /// Equal shapes and elementwise `==` (so a NaN anywhere makes matrices unequal, and
    /// `0.0 == -0.0`). Cost: one pass over both, stopping at the first difference.
    public static func == (lhs: Matrix, rhs: Matrix) -> Bool {
        guard lhs.shape == rhs.shape else { return false }
        if lhs.storage === rhs.storage { return !lhs.elementsContainNaN }
        let a = lhs.storage.base, b = rhs.storage.base
        for i in 0..<lhs.count where a[i] != b[i] { return false }
        return true
    }

    private var elementsContainNaN: Bool {
        withUnsafeBufferPointer { $0.contains { $0.isNaN } }
    }
}

extension Matrix: CustomStringConvertible {
    /// A short summary: type, shape, and at most the first and last 3 elements of at most
    /// the first and last 3 rows, like numpy's abbreviated print. Never prints a million
    /// numbers.
    public var description: String {
        let head = "Matrix<\(Element.self)> \(rows)x\(cols)"
        guard count > 0 else { return head + " []" }
        func rowText(_ r: Int) -> String {
            let columns = Self.abbreviated(cols).map { $0.map { "\(self[r, $0])" } ?? "..." }
            return "[" + columns.joined(separator: ", ") + "]"
        }
        let lines = Self.abbreviated(rows).map { $0.map(rowText) ?? " ..." }
        return head + "\n[" + lines.joined(separator: "\n ") + "]"
    }

    /// Indices 0..<n, or the first 3, nil (an ellipsis), and the last 3 when n > 6.
    private static func abbreviated(_ n: Int) -> [Int?] {
        n <= 6 ? Array(0..<n) : [0, 1, 2, nil, n - 3, n - 2, n - 1]
    }
}
