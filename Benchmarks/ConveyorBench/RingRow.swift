/// One line of the `ring` table and one object of its JSON array (decoded, too, from the
/// objects Benchmarks/python/ring_python.py prints for the ring-python rows).
struct RingRow: Codable {
    /// ring | ring-push | ring-python | pipe | floor-atomic | floor-futex | ring-idle |
    /// channel | wait-any
    var transport: String
    /// threads | processes
    var scope: String
    /// spin (waiters never sleep) | block (waiters may sleep in the kernel)
    var mode: String
    /// Pause iterations before sleeping (ring transports); UInt32.max means never sleep.
    var spinBudget: Int
    var payloadBytes: Int
    /// One-way hand-off latency: round trip / 2, median and 99th percentile.
    var p50Us: Double
    var p99Us: Double
    var roundTrips: Int
    /// Streaming throughput: one side sends as fast as it can, the other receives.
    var framesPerS: Double
    var frames: Int
    /// Futex sleeps (waits) and wake calls during the streaming phase, both sides.
    var futexWaits: Int
    var futexWakes: Int
    /// For ring-idle: CPU used by a consumer blocked for 1 s, in percent of a core.
    var idleCpuPercent: Double?
    /// For channel and wait-any: the channel's lanes (the wait-any receiver looks at all).
    var lanes: Int?

    enum CodingKeys: String, CodingKey {
        case transport, scope, mode, frames
        case spinBudget = "spin_budget", payloadBytes = "payload_bytes", p50Us = "p50_us", p99Us = "p99_us"
        case roundTrips = "round_trips", framesPerS = "frames_per_s", futexWaits = "futex_waits"
        case futexWakes = "futex_wakes", idleCpuPercent = "idle_cpu_percent", lanes
    }
}

func printRingTable(_ rows: [RingRow]) {
    let header = ["transport", "scope", "mode", "spin", "payload", "p50 us", "p99 us", "frames/s", "futex/frame"]
    let cells = rows.map { r -> [String] in
        let syscalls = r.frames > 0 ? Double(r.futexWaits + r.futexWakes) / Double(r.frames) : 0
        return [r.lanes.map { r.transport + " \($0)" } ?? r.transport, r.scope, r.mode, r.spinBudget == Int(UInt32.max) ? "inf" : "\(r.spinBudget)",
                byteText(r.payloadBytes), format(r.p50Us, 2), format(r.p99Us, 2),
                r.frames > 0 ? format(r.framesPerS, 0) : "-",
                r.frames > 0 ? format(syscalls, 4) : (r.idleCpuPercent.map { "cpu " + format($0, 3) + "%" } ?? "-")]
    }
    printAligned(header: header, leftAligned: 3, cells)
}

func byteText(_ bytes: Int) -> String {
    if bytes >= 1 << 20 { return "\(bytes >> 20) MiB" }
    if bytes >= 1 << 10 { return "\(bytes >> 10) KiB" }
    return "\(bytes) B"
}

/// Percentile (0...100) of unsorted samples, nearest rank.
func percentile(_ samples: [Double], _ p: Double) -> Double {
    guard !samples.isEmpty else { return 0 }
    let sorted = samples.sorted()
    let rank = Int((p / 100 * Double(sorted.count - 1)).rounded())
    return sorted[min(max(rank, 0), sorted.count - 1)]
}
