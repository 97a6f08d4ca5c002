/// A pipeline cut where it crosses ranks: the runs of consecutive stages on one rank
/// (segments), in pipeline order, and the links between them.
///
/// The source is on rank 0 and a stage without a placement runs where the stage before it
/// does. Segment k ends where the next stage is on another rank; link k carries its items
/// to segment k + 1. If the last stage is not on rank 0, a last segment on rank 0 holds
/// only the sink. Every rank computes the same plan from the same definition (they run the
/// same executable), so link numbers agree without a word exchanged.
struct RankPlan: Sendable {
    struct Segment: Sendable {
        /// The rank it runs on.
        let rank: Int
        /// Its stages, placements removed (each segment is a pipeline of one machine). The
        /// first segment's first stage is the pipeline's source.
        let stages: [Stage]
        /// The shape and dtype of the items it receives (from link `index - 1`); nil for
        /// the first segment, which holds the source.
        let input: (shape: Shape, dtype: DType)?
        /// Whether it ends with the pipeline's sink (the last segment), else with link `index`.
        let holdsSink: Bool
        /// The shape and dtype of what it hands on: its last stage's output, or its input's.
        var output: (shape: Shape, dtype: DType) {
            stages.last.map { ($0.outputShape, $0.outputDType) } ?? input!
        }
    }

    let segments: [Segment]

    /// - Throws: ``PipelineError/invalidDefinition(_:)`` for a rank outside 0..<ranks.
    init(source: Stage, stages: [Stage], ranks: Int) throws(PipelineError) {
        var runs: [(rank: Int, stages: [Stage])] = [(0, [source])]
        for var stage in stages {
            let rank = stage.placement?.rank ?? runs[runs.count - 1].rank
            guard rank >= 0, rank < ranks else {
                throw .invalidDefinition("stage '\(stage.name)' is placed on rank \(rank), but the job has \(ranks) ranks")
            }
            stage.placement = nil
            if rank == runs[runs.count - 1].rank { runs[runs.count - 1].stages.append(stage) } else { runs.append((rank, [stage])) }
        }
        if runs[runs.count - 1].rank != 0 { runs.append((0, [])) }
        var segments: [Segment] = []
        for (k, run) in runs.enumerated() {
            segments.append(Segment(rank: run.rank, stages: run.stages, input: k == 0 ? nil : segments[k - 1].output,
                                    holdsSink: k == runs.count - 1))
        }
        self.segments = segments
    }

    /// The indices of the segments rank `rank` runs.
    func segments(on rank: Int) -> [Int] { segments.indices.filter { segments[$0].rank == rank } }

    /// The channel on which rank `rank` reports to rank 0 at the end (after every link's).
    func reportChannel(_ rank: Int) -> Int { segments.count + rank }
}
