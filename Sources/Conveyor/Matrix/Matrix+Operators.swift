// Elementwise arithmetic. Every operator is one kernel pass; `*` and `/` are elementwise
// (numpy's `*`), not matrix products. Operators on two matrices throw
// `MatrixError.shapeMismatch` unless the shapes are equal: nothing is broadcast.

extension Matrix {
    private func checkSameShape(_ other: Matrix) throws(MatrixError) {
        guard other.shape == shape else { throw .shapeMismatch(expected: shape, actual: other.shape) }
    }

    /// Elementwise sum. - Throws: ``MatrixError/shapeMismatch(expected:actual:)``.
    public static func + (lhs: Matrix, rhs: Matrix) throws(MatrixError) -> Matrix {
        try lhs.checkSameShape(rhs)
        return lhs.applying(unchecked: .addMatrix(rhs))
    }

    /// Elementwise difference. - Throws: ``MatrixError/shapeMismatch(expected:actual:)``.
    public static func - (lhs: Matrix, rhs: Matrix) throws(MatrixError) -> Matrix {
        try lhs.checkSameShape(rhs)
        return lhs.applying(unchecked: .subtractMatrix(rhs))
    }

    /// Elementwise (Hadamard) product. - Throws: ``MatrixError/shapeMismatch(expected:actual:)``.
    public static func * (lhs: Matrix, rhs: Matrix) throws(MatrixError) -> Matrix {
        try lhs.checkSameShape(rhs)
        return lhs.applying(unchecked: .multiplyMatrix(rhs))
    }

    /// Elementwise quotient. - Throws: ``MatrixError/shapeMismatch(expected:actual:)``.
    public static func / (lhs: Matrix, rhs: Matrix) throws(MatrixError) -> Matrix {
        try lhs.checkSameShape(rhs)
        return lhs.applying(unchecked: .divideMatrix(rhs))
    }

    /// In-place elementwise sum. - Throws: ``MatrixError/shapeMismatch(expected:actual:)``.
    public static func += (lhs: inout Matrix, rhs: Matrix) throws(MatrixError) {
        try lhs.checkSameShape(rhs)
        lhs.apply(unchecked: .addMatrix(rhs))
    }

    /// In-place elementwise difference. - Throws: ``MatrixError/shapeMismatch(expected:actual:)``.
    public static func -= (lhs: inout Matrix, rhs: Matrix) throws(MatrixError) {
        try lhs.checkSameShape(rhs)
        lhs.apply(unchecked: .subtractMatrix(rhs))
    }

    /// In-place elementwise product. - Throws: ``MatrixError/shapeMismatch(expected:actual:)``.
    public static func *= (lhs: inout Matrix, rhs: Matrix) throws(MatrixError) {
        try lhs.checkSameShape(rhs)
        lhs.apply(unchecked: .multiplyMatrix(rhs))
    }

    /// In-place elementwise quotient. - Throws: ``MatrixError/shapeMismatch(expected:actual:)``.
    public static func /= (lhs: inout Matrix, rhs: Matrix) throws(MatrixError) {
        try lhs.checkSameShape(rhs)
        lhs.apply(unchecked: .divideMatrix(rhs))
    }

    /// Elementwise minimum. - Throws: ``MatrixError/shapeMismatch(expected:actual:)``.
    public func minimum(_ other: Matrix) throws(MatrixError) -> Matrix {
        try checkSameShape(other)
        return applying(unchecked: .minimumMatrix(other))
    }

    /// Elementwise maximum. - Throws: ``MatrixError/shapeMismatch(expected:actual:)``.
    public func maximum(_ other: Matrix) throws(MatrixError) -> Matrix {
        try checkSameShape(other)
        return applying(unchecked: .maximumMatrix(other))
    }
}

extension Matrix {
    /// x + a for every element. Cost: one allocation and one pass.
    public static func + (lhs: Matrix, rhs: Element) -> Matrix { lhs.applying(unchecked: .add(rhs)) }
    /// a + x for every element.
    public static func + (lhs: Element, rhs: Matrix) -> Matrix { rhs.applying(unchecked: .add(lhs)) }
    /// x - a for every element.
    public static func - (lhs: Matrix, rhs: Element) -> Matrix { lhs.applying(unchecked: .subtract(rhs)) }
    /// a - x for every element.
    public static func - (lhs: Element, rhs: Matrix) -> Matrix { rhs.applying(unchecked: .scalarMinus(lhs)) }
    /// x * a for every element.
    public static func * (lhs: Matrix, rhs: Element) -> Matrix { lhs.applying(unchecked: .multiply(rhs)) }
    /// a * x for every element.
    public static func * (lhs: Element, rhs: Matrix) -> Matrix { rhs.applying(unchecked: .multiply(lhs)) }
    /// x / a for every element (a true division).
    public static func / (lhs: Matrix, rhs: Element) -> Matrix { lhs.applying(unchecked: .divide(rhs)) }
    /// a / x for every element.
    public static func / (lhs: Element, rhs: Matrix) -> Matrix { rhs.applying(unchecked: .scalarOver(lhs)) }
    /// -x for every element.
    public static prefix func - (operand: Matrix) -> Matrix { operand.applying(unchecked: .scalarMinus(0)) }

    /// x += a in place. Cost: one pass, no allocation unless the buffer is shared.
    public static func += (lhs: inout Matrix, rhs: Element) { lhs.apply(unchecked: .add(rhs)) }
    /// x -= a in place.
    public static func -= (lhs: inout Matrix, rhs: Element) { lhs.apply(unchecked: .subtract(rhs)) }
    /// x *= a in place.
    public static func *= (lhs: inout Matrix, rhs: Element) { lhs.apply(unchecked: .multiply(rhs)) }
    /// x /= a in place.
    public static func /= (lhs: inout Matrix, rhs: Element) { lhs.apply(unchecked: .divide(rhs)) }

    /// x * x for every element. Cost: one allocation and one pass.
    public func squared() -> Matrix { applying(unchecked: .square) }
    /// Squares every element in place.
    public mutating func square() { apply(unchecked: .square) }

    /// scale * x + offset for every element, rounded twice (no fused multiply-add).
    public func affine(scale: Element, offset: Element) -> Matrix {
        applying(unchecked: .affine(scale: scale, offset: offset))
    }
    /// Replaces every x by scale * x + offset in place.
    public mutating func formAffine(scale: Element, offset: Element) {
        apply(unchecked: .affine(scale: scale, offset: offset))
    }

    /// min(x, a) for every element; a NaN element stays NaN.
    public func minimum(_ a: Element) -> Matrix { applying(unchecked: .minimum(a)) }
    /// max(x, a) for every element; a NaN element stays NaN.
    public func maximum(_ a: Element) -> Matrix { applying(unchecked: .maximum(a)) }
}
