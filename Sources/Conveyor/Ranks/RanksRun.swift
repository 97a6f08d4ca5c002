#if MPI
/// The outcome of ``Pipeline/runAcrossRanks(_:buffer:fusion:ordered:stallTimeout:link:into:_:)``
/// on one rank.
public struct RanksRun<Result> {
    /// The sink's result on rank 0 (which holds the sink); nil on every other rank.
    public var result: Result?
    /// On rank 0, every rank's statistics, in rank order; on another rank, its own only.
    public var ranks: [RankStats]
}

/// What one rank did in a run across ranks.
public struct RankStats: Sendable {
    /// The rank.
    public var rank: Int
    /// The statistics of each part of the pipeline the rank ran, in pipeline order. A part
    /// that starts with items from another rank has a first stage named "from rank N".
    public var segments: [PipelineStats]
    /// The rank's links to and from other ranks: frames, bytes and time blocked.
    public var links: [LinkStats]
    /// Why the rank failed, or nil.
    public var failure: String?
    /// What kind of failure it was: rank 0 names the rank whose failure explains the rest.
    var failureKind: FailureKind = .own

    /// Kinds of failure, most telling first.
    enum FailureKind: Int, Sendable, Comparable {
        /// The rank's own work failed (a stage, the sink, its setup).
        case own = 0
        /// The rank sent no report: it died or went silent.
        case silent = 1
        /// A link to another rank failed: that rank died or failed first.
        case link = 2
        /// The rank stopped because another of its segments failed.
        case stopped = 3

        static func < (a: FailureKind, b: FailureKind) -> Bool { a.rawValue < b.rawValue }
    }

    /// Bytes this rank sent to other ranks.
    public var bytesSent: Int { links.filter { $0.from == rank }.reduce(0) { $0 + $1.bytes } }
}

extension RankStats {
    /// The report a rank sends rank 0, as lines of tab-separated fields (names and
    /// messages have tabs and newlines replaced by spaces). Doubles print and parse exactly.
    func encoded() -> [UInt8] {
        func clean(_ text: String) -> String {
            String(text.map { $0 == "\t" || $0 == "\n" ? " " : $0 })
        }
        var lines = ["rank\t\(rank)\t\(failureKind.rawValue)\t\(failure.map(clean) ?? "")"]
        for segment in segments {
            lines.append("segment\t\(segment.seconds)\t\(segment.sharedMemoryBytes)\t\(segment.mode.rawValue)")
            for s in segment.stages {
                lines.append("stage\t\(clean(s.name))\t\(s.replicas)\t\(s.items)\t\(s.busySeconds)\t\(s.inputWaitSeconds)"
                    + "\t\(s.outputWaitSeconds)\t\(s.itemsPerSecond)\t\(s.utilization)")
            }
        }
        for link in links {
            lines.append("link\t\(link.from)\t\(link.to)\t\(link.frames)\t\(link.bytes)\t\(link.blockedSeconds)")
        }
        return Array(lines.joined(separator: "\n").utf8)
    }

    /// Parses a report; nil if it is not one (a rank of another build, a broken message).
    init?(decoding bytes: [UInt8]) {
        guard let text = String(validating: bytes, as: UTF8.self) else { return nil }
        var rank: Int?, failure: String?, kind = FailureKind.own, segments: [PipelineStats] = [], links: [LinkStats] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            switch f.first {
            case "rank" where f.count == 4:
                rank = Int(f[1])
                kind = Int(f[2]).flatMap(FailureKind.init(rawValue:)) ?? .own
                failure = f[3].isEmpty ? nil : f[3]
            case "segment" where f.count == 4:
                guard let seconds = Double(f[1]), let bytes = Int(f[2]), let mode = ExecutionMode(rawValue: f[3]) else { return nil }
                segments.append(PipelineStats(stages: [], seconds: seconds, sharedMemoryBytes: bytes, mode: mode))
            case "stage" where f.count == 9 && !segments.isEmpty:
                guard let replicas = Int(f[2]), let items = Int(f[3]), let busy = Double(f[4]), let input = Double(f[5]),
                      let output = Double(f[6]), let rate = Double(f[7]), let utilization = Double(f[8]) else { return nil }
                segments[segments.count - 1].stages.append(.init(
                    name: f[1], replicas: replicas, items: items, busySeconds: busy, inputWaitSeconds: input,
                    outputWaitSeconds: output, itemsPerSecond: rate, utilization: utilization))
            case "link" where f.count == 6:
                guard let from = Int(f[1]), let to = Int(f[2]), let frames = Int(f[3]), let bytes = Int(f[4]),
                      let blocked = Double(f[5]) else { return nil }
                links.append(LinkStats(from: from, to: to, frames: frames, bytes: bytes, blockedSeconds: blocked))
            default:
                return nil
            }
        }
        guard let rank else { return nil }
        self.init(rank: rank, segments: segments, links: links, failure: failure, failureKind: kind)
    }
}
#endif
