#if canImport(Glibc)
import Glibc
#endif

/// "conveyor: 412/1000 items, 1203.4 items/s" on stderr, rewritten in place twice a second,
/// only when stderr is a terminal and the run has lasted more than a second.
final class ProgressLine {
    private let total: Int
    private let start = nowNanoseconds()
    private var lastPrint: UInt64 = 0
    private var printed = false
    private let enabled = isatty(2) != 0

    init(total: Int) { self.total = total }

    func update(_ done: Int) {
        guard enabled else { return }
        let now = nowNanoseconds()
        guard now - start > 1_000_000_000, now - lastPrint > 500_000_000 else { return }
        lastPrint = now
        printed = true
        let rate = Double(done) / (Double(now - start) / 1e9)
        let line = "\rconveyor: \(done)/\(total) items, \((rate * 10).rounded() / 10) items/s   "
        write(line)
    }

    func finish() {
        if printed { write("\n") }
    }

    private func write(_ text: String) {
        var bytes = Array(text.utf8)
        _ = Glibc.write(2, &bytes, bytes.count)  // fd 2: no shared FILE* state
    }
}
