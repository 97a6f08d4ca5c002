import CKernels
import Testing

/// The counter-based generator: the documented formula, chunk independence, and the
/// statistics of its output.
@Suite struct UniformTests {
    /// SplitMix64's finalizer, as conveyor.h §7 documents it.
    static func mix64(_ z0: UInt64) -> UInt64 {
        var z = (z0 ^ (z0 >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    static func reference<T: TestElement>(_: T.Type, seed: UInt64, stream: UInt64, index: UInt64) -> T {
        let key = mix64(mix64(seed) ^ (stream &* 0xD1B5_4A32_D192_ED03))
        return T.uniformReference(bits: mix64(key &+ (index &+ 1) &* 0x9E37_79B9_7F4A_7C15))
    }

    @Test(arguments: testLengths) func matchesTheDocumentedFormula(n: Int) {
        formula(Double.self, n)
        formula(Float.self, n)
    }

    private func formula<T: TestElement>(_: T.Type, _ n: Int) {
        withUnalignedBuffer(n) { (out: UnsafeMutableBufferPointer<T>) in
            #expect(T.fill(out.baseAddress, n, seed: 2016, stream: 7, first: 1000) == 0)
            let stride = max(1, n / 1000)  // spot-check large arrays
            for i in Swift.stride(from: 0, to: n, by: stride) {
                #expect(out[i] == Self.reference(T.self, seed: 2016, stream: 7, index: UInt64(1000 + i)))
            }
        }
    }

    @Test func anyChunkingGivesTheSameValues() {
        chunking(Double.self)
        chunking(Float.self)
    }

    private func chunking<T: TestElement>(_: T.Type) {
        let n = 100_003
        var whole = [T](repeating: 0, count: n)
        whole.withUnsafeMutableBufferPointer { _ = T.fill($0.baseAddress, n, seed: 3, stream: 4, first: 0) }
        for chunk in [1, 7, 64, 4096, 33_333] {
            var pieces = [T](repeating: -1, count: n)
            pieces.withUnsafeMutableBufferPointer { buffer in
                for start in stride(from: 0, to: n, by: chunk) {
                    let len = min(chunk, n - start)
                    _ = T.fill(buffer.baseAddress! + start, len, seed: 3, stream: 4, first: UInt64(start))
                }
            }
            #expect(pieces == whole, "chunk \(chunk) \(T.self)")
        }
    }

    @Test func valuesLieInTheHalfOpenUnitInterval() {
        var d = [Double](repeating: -1, count: 200_000)
        var f = [Float](repeating: -1, count: 200_000)
        d.withUnsafeMutableBufferPointer { _ = Double.fill($0.baseAddress, $0.count, seed: 1, stream: 0, first: 0) }
        f.withUnsafeMutableBufferPointer { _ = Float.fill($0.baseAddress, $0.count, seed: 1, stream: 0, first: 0) }
        #expect(d.allSatisfy { $0 >= 0 && $0 < 1 })
        #expect(f.allSatisfy { $0 >= 0 && $0 < 1 })
    }

    @Test func seedsAndStreamsGiveDifferentSequences() {
        func first8(seed: UInt64, stream: UInt64) -> [Double] {
            var v = [Double](repeating: 0, count: 8)
            v.withUnsafeMutableBufferPointer { _ = Double.fill($0.baseAddress, 8, seed: seed, stream: stream, first: 0) }
            return v
        }
        let base = first8(seed: 1, stream: 0)
        #expect(base == first8(seed: 1, stream: 0))
        #expect(base != first8(seed: 2, stream: 0))
        #expect(base != first8(seed: 1, stream: 1))
        #expect(Set(base).count == 8)
    }

    /// For a fixed seed these statistics are fixed numbers, so the bounds (each about a
    /// 1-in-10^5 event for a true uniform) can never flake; they catch a broken mixer.
    @Test func distributionOfOneMillionValues() {
        statistics(Double.self)
        statistics(Float.self)
    }

    private func statistics<T: TestElement>(_: T.Type) {
        let n = 1_000_000
        var v = [T](repeating: 0, count: n)
        v.withUnsafeMutableBufferPointer { _ = T.fill($0.baseAddress, n, seed: 42, stream: 0, first: 0) }
        let values = v.map { Double($0) }
        let mean = values.reduce(0, +) / Double(n)
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n - 1)
        // mean: sd = sqrt(1/12/n) ≈ 2.9e-4; variance: sd ≈ sqrt(1/180/n) ≈ 7.5e-5.
        #expect(abs(mean - 0.5) < 5 * 2.9e-4, "mean \(mean) \(T.self)")
        #expect(abs(variance - 1.0 / 12) < 5 * 7.5e-5, "variance \(variance) \(T.self)")

        // Chi-square over 100 equal bins: 99 degrees of freedom, mean 99, sd 14.
        var bins = [Int](repeating: 0, count: 100)
        for x in values { bins[min(99, Int(x * 100))] += 1 }
        let expected = Double(n) / 100
        let chi2 = bins.reduce(0.0) { $0 + (Double($1) - expected) * (Double($1) - expected) / expected }
        #expect(chi2 < 99 + 5 * 14, "chi-square \(chi2) \(T.self)")

        // Kolmogorov-Smirnov: sqrt(n) * D < 1.95 (p = 0.001).
        let sorted = values.sorted()
        var d = 0.0
        for (i, x) in sorted.enumerated() {
            d = max(d, abs(Double(i + 1) / Double(n) - x), abs(x - Double(i) / Double(n)))
        }
        #expect(d * Double(n).squareRoot() < 1.95, "KS \(d) \(T.self)")

        // Serial correlation of neighbours, which a weak counter hash would show.
        var lag = 0.0
        for i in 1..<n { lag += (values[i] - 0.5) * (values[i - 1] - 0.5) }
        let correlation = lag / Double(n - 1) / (1.0 / 12)
        #expect(abs(correlation) < 5 / Double(n).squareRoot(), "lag-1 correlation \(correlation)")
    }
}
