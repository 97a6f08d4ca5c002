/// Per-stage statistics of a pipeline run: where the time went, and which stage limits
/// throughput.
public struct PipelineStats: Sendable, CustomStringConvertible {
    /// One stage (all its replicas together).
    public struct StageStats: Sendable {
        /// The stage's name ("source", "h+g+f", "sink"...).
        public var name: String
        /// Workers running it.
        public var replicas: Int
        /// Items it finished.
        public var items: Int
        /// Seconds spent computing, summed over replicas.
        public var busySeconds: Double
        /// Seconds blocked waiting for input, summed over replicas.
        public var inputWaitSeconds: Double
        /// Seconds blocked waiting for a free output slot, summed over replicas.
        public var outputWaitSeconds: Double
        /// Items per second over the whole run.
        public var itemsPerSecond: Double
        /// Busy time per replica over the run's wall time (1 = always computing).
        public var utilization: Double
    }

    /// Stages in pipeline order, source first, sink last.
    public var stages: [StageStats]
    /// Wall time of the run in seconds.
    public var seconds: Double
    /// Shared memory held by the slots and channels, fixed when the run started.
    public var sharedMemoryBytes: Int
    /// Execution mode of the run.
    public var mode: ExecutionMode

    /// The stage with the highest utilization: the one to speed up or replicate.
    public var bottleneck: String? { stages.max { $0.utilization < $1.utilization }?.name }

    /// A table with one line per stage and the bottleneck named.
    public var description: String {
        var lines = ["stage          repl   items   busy s  in-wait s  out-wait s   items/s  util"]
        for s in stages {
            func pad(_ text: String, _ width: Int) -> String {
                text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
            }
            func fixed(_ value: Double, _ digits: Int) -> String {
                let scale = [1.0, 10, 100, 1000][digits]
                let rounded = (value * scale).rounded() / scale
                var text = "\(rounded)"
                if let dot = text.firstIndex(of: ".") {
                    let decimals = text.distance(from: dot, to: text.endIndex) - 1
                    text += String(repeating: "0", count: max(0, digits - decimals))
                }
                return text
            }
            let name = s.name.count > 14 ? String(s.name.prefix(13)) + "…"
                : s.name + String(repeating: " ", count: 14 - s.name.count)
            lines.append(name + pad("\(s.replicas)", 5) + pad("\(s.items)", 8) + pad(fixed(s.busySeconds, 3), 9)
                         + pad(fixed(s.inputWaitSeconds, 3), 11) + pad(fixed(s.outputWaitSeconds, 3), 12)
                         + pad(fixed(s.itemsPerSecond, 1), 10) + pad(fixed(s.utilization, 2), 6))
        }
        lines.append("\(mode.rawValue), \(seconds) s, shared memory \(sharedMemoryBytes >> 20) MiB; bottleneck: \(bottleneck ?? "-")")
        return lines.joined(separator: "\n")
    }
}
