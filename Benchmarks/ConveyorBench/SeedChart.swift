import Foundation

/// The seed table as an SVG bar chart: one bar per variant (Conveyor and Python in two
/// colours), milliseconds per sample on a log axis, and the memcpy floor — the time to
/// copy one sample once at this run's memcpy speed — as a dashed line.
struct SeedChart {
    var rows: [SeedRow]
    var memcpyGBs: Double
    var sampleBytes: Int
    var title: String

    private let labelWidth = 230.0, plotWidth = 560.0, barHeight = 20.0, gap = 8.0, top = 56.0

    /// Milliseconds to copy one sample once (read + write at the measured memcpy rate).
    var floorMs: Double { Double(2 * sampleBytes) / (memcpyGBs * 1e9) * 1e3 }

    func svg() -> String {
        let values = rows.map(\.msPerSample) + [floorMs]
        let lo = floor(log10(values.min()!)), hi = ceil(log10(values.max()!))
        let span = max(hi - lo, 1)
        func x(_ ms: Double) -> Double { labelWidth + (log10(ms) - lo) / span * plotWidth }
        let height = top + Double(rows.count) * (barHeight + gap) + 56
        let width = labelWidth + plotWidth + 110
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
            font-family="Helvetica, Arial, sans-serif" font-size="13">
            <rect width="100%" height="100%" fill="white"/>
            <text x="12" y="22" font-size="15" font-weight="bold">ms per sample (log scale; shorter is faster)</text>
            <text x="12" y="42" font-size="11" fill="#555">\(escape(title))</text>

            """
        // Decade grid lines and labels.
        let axisY = top + Double(rows.count) * (barHeight + gap) + 4
        for decade in Int(lo)...Int(hi) {
            let ms = pow(10, Double(decade)), gx = x(ms)
            out += "<line x1=\"\(f(gx))\" y1=\"\(f(top - 6))\" x2=\"\(f(gx))\" y2=\"\(f(axisY))\" stroke=\"#ddd\"/>\n"
            out += "<text x=\"\(f(gx))\" y=\"\(f(axisY + 16))\" text-anchor=\"middle\" fill=\"#555\">\(label(ms)) ms</text>\n"
        }
        for (i, row) in rows.enumerated() {
            let y = top + Double(i) * (barHeight + gap)
            let colour = row.impl == "python" ? "#e0912f" : "#1f7a8c"
            out += "<text x=\"\(f(labelWidth - 8))\" y=\"\(f(y + 15))\" text-anchor=\"end\">\(escape(row.variant))</text>\n"
            out += "<rect x=\"\(f(labelWidth))\" y=\"\(f(y))\" width=\"\(f(max(1, x(row.msPerSample) - labelWidth)))\" "
                + "height=\"\(f(barHeight))\" fill=\"\(colour)\"/>\n"
            out += "<text x=\"\(f(x(row.msPerSample) + 6))\" y=\"\(f(y + 15))\">\(label(row.msPerSample)) ms</text>\n"
        }
        let fx = x(floorMs)
        out += "<line x1=\"\(f(fx))\" y1=\"\(f(top - 10))\" x2=\"\(f(fx))\" y2=\"\(f(axisY))\" stroke=\"#c0392b\" "
            + "stroke-width=\"2\" stroke-dasharray=\"6,4\"/>\n"
        out += "<text x=\"\(f(fx + 4))\" y=\"\(f(axisY + 34))\" fill=\"#c0392b\">memcpy of one sample: \(label(floorMs)) ms</text>\n"
        out += "<rect x=\"12\" y=\"\(f(axisY + 24))\" width=\"12\" height=\"12\" fill=\"#1f7a8c\"/>"
            + "<text x=\"30\" y=\"\(f(axisY + 34))\">Conveyor</text>\n"
        out += "<rect x=\"110\" y=\"\(f(axisY + 24))\" width=\"12\" height=\"12\" fill=\"#e0912f\"/>"
            + "<text x=\"128\" y=\"\(f(axisY + 34))\">Python</text>\n"
        return out + "</svg>\n"
    }

    private func f(_ v: Double) -> String { String(format: "%.1f", v) }

    private func label(_ ms: Double) -> String {
        ms >= 10 ? String(format: "%.0f", ms) : ms >= 1 ? String(format: "%.1f", ms)
            : ms >= 0.01 ? String(format: "%.2f", ms) : String(format: "%.3f", ms)
    }

    private func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }
}
