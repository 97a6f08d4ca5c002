import Conveyor

/// What frame n of the soak holds: a rows × cols float64 matrix whose 64-bit words are a
/// Weyl sequence started at a hash of n, so every word says which frame and which position
/// it belongs to, and a stale, torn or misplaced payload fails the comparison. Words are
/// compared as bits, never as doubles (some are NaN patterns).
enum SoakPayload {
    /// The largest frame: 8 × 64 float64, 4 KiB.
    static let slotBytes = 8 * 64 * MemoryLayout<Double>.stride

    /// SplitMix64's finalizer: the hash behind each frame's shape and words, and each
    /// round's numbers.
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// 1...8 rows × 16...64 columns: 128 B to 4 KiB.
    static func shape(_ n: UInt64) -> (rows: Int, cols: Int) {
        let h = mix(n)
        return (1 + Int(h % 8), 16 + Int((h >> 8) % 49))
    }

    private static let step: UInt64 = 0xD1B5_4A32_D192_ED03

    /// The first word of frame n.
    private static func firstWord(_ n: UInt64) -> UInt64 { mix(n ^ 0x5EED) }

    /// A frame's share of the checksum: order-free across frames, so two consumers' sums add.
    private static func fold(_ w: UInt64) -> UInt64 { w ^ (w >> 29) }

    /// Writes frame n into a slot; returns its checksum.
    static func write(_ n: UInt64, into slot: UnsafeMutableBufferPointer<Double>) -> UInt64 {
        let raw = UnsafeMutableRawPointer(slot.baseAddress!)
        var word = firstWord(n), sum: UInt64 = 0
        for i in 0..<slot.count {
            raw.storeBytes(of: word, toByteOffset: i * 8, as: UInt64.self)
            sum &+= fold(word)
            word &+= step
        }
        return sum
    }

    /// The checksum of a received frame if it is exactly frame `frame.tag`, else nil.
    static func verify(_ frame: borrowing ReadLease) -> UInt64? {
        let (rows, cols) = shape(frame.tag)
        guard frame.dtype == .float64, frame.shape.count == 2, frame.shape[0] == rows, frame.shape[1] == cols,
              frame.byteCount == rows * cols * 8 else { return nil }
        let first = firstWord(frame.tag)
        return frame.withUnsafeBytes { bytes -> UInt64? in
            var word = first, sum: UInt64 = 0
            for i in 0..<rows * cols {
                guard bytes.load(fromByteOffset: i * 8, as: UInt64.self) == word else { return nil }
                sum &+= fold(word)
                word &+= step
            }
            return sum
        }
    }
}
