import Foundation

/// One line of the `kernels` table and one object of its JSON array.
struct KernelRow: Encodable {
    var kernel: String
    /// "simd" (Conveyor's kernel), "naive" (scalar C loop), "libc" (memcpy) or "numpy".
    var impl: String
    var dtype: String
    var threads: Int
    var elements: Int
    /// Bytes read plus bytes written by one call.
    var bytesMoved: Int
    var msMedian: Double
    var msMin: Double
    var gbPerS: Double
    /// ms_median / median of memcpy of the same output bytes, measured in the same run.
    var vsMemcpy: Double

    enum CodingKeys: String, CodingKey {
        case kernel, impl, dtype, threads, elements
        case bytesMoved = "bytes_moved", msMedian = "ms_median", msMin = "ms_min"
        case gbPerS = "gb_per_s", vsMemcpy = "vs_memcpy"
    }
}

/// Prints the kernel rows as an aligned text table.
func printTable(_ rows: [KernelRow]) {
    printAligned(header: ["kernel", "impl", "dtype", "thr", "median ms", "min ms", "GB/s", "vs memcpy"],
                 leftAligned: 3, rows.map { r in
        [r.kernel, r.impl, r.dtype, "\(r.threads)", format(r.msMedian, 3), format(r.msMin, 3),
         format(r.gbPerS, 1), format(r.vsMemcpy, 2)]
    })
}

/// Prints a table: a header, a rule, then the cells; the first `leftAligned` columns are
/// left-aligned (names), the others right-aligned (numbers).
func printAligned(header: [String], leftAligned: Int, _ cells: [[String]]) {
    let widths = header.indices.map { c in ([header] + cells).map { $0[c].count }.max()! }
    func line(_ row: [String]) -> String {
        row.enumerated().map { c, text in
            let padding = String(repeating: " ", count: widths[c] - text.count)
            return c < leftAligned ? text + padding : padding + text
        }.joined(separator: "  ")
    }
    print(line(header))
    print(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  "))
    cells.forEach { print(line($0)) }
}

func format(_ value: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", value) }

/// Writes `rows` as a pretty-printed JSON array.
func writeJSON<Row: Encodable>(_ rows: [Row], to path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try encoder.encode(rows).write(to: URL(fileURLWithPath: path))
}
