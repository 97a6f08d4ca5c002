/// Whether a run shows its progress line on stderr ("conveyor: 412/1000 items, 1203.4
/// items/s", rewritten in place twice a second once the run has lasted a second).
public enum ProgressDisplay: Sendable, Equatable {
    /// Only when stderr is a terminal (checked once per run with `isatty(2)`): an
    /// interactive run shows it, a log file or a pipe never receives it.
    case automatic
    /// Always, wherever stderr goes.
    case always
    /// Never.
    case never

    /// Whether this run shows the line.
    var isShown: Bool {
        switch self {
        case .automatic: return Posix.isTerminal(2)
        case .always: return true
        case .never: return false
        }
    }
}

/// The progress line itself, updated by the sink after each item. Cost when shown: a clock
/// read per item and a `write(2)` twice a second; when not shown, one branch per item.
final class ProgressLine {
    private let total: Int
    private let start = nowNanoseconds()
    private var lastPrint: UInt64 = 0
    private var printed = false
    private let enabled: Bool

    init(total: Int, display: ProgressDisplay) {
        self.total = total
        enabled = display.isShown
    }

    func update(_ done: Int) {
        guard enabled else { return }
        let now = nowNanoseconds()
        guard now - start > 1_000_000_000, now - lastPrint > 500_000_000 else { return }
        lastPrint = now
        printed = true
        let rate = Double(done) / (Double(now - start) / 1e9)
        write("\rconveyor: \(done)/\(total) items, \((rate * 10).rounded() / 10) items/s   ")
    }

    func finish() {
        if printed { write("\n") }
    }

    private func write(_ text: String) {
        // fd 2 directly: no FILE* state shared with the caller's own output. A line that
        // cannot be written (stderr closed, a full pipe) must not fail the run it reports on.
        try? Posix.write(2, Array(text.utf8))
    }
}
