/// How the replicas of a stage get their items.
public enum Dealing: String, Sendable, CaseIterable {
    /// Item i goes to replica i % r of every stage, decided before the run: no exchange
    /// between replicas, and every channel lane carries a known sequence. One slow item
    /// holds back its replica's whole share while the others idle.
    case roundRobin = "round-robin"
    /// Each item goes to whichever replica is ready next, exactly once. Replicas of the
    /// source claim item numbers from a shared counter; a stage's replicas fed by one
    /// replica upstream ask it for work (a credit each, sent when they take an item, so
    /// each has at most one item queued behind the one it computes); replicas fed by as
    /// many replicas upstream stay paired with them (replica k after replica k); a stage of
    /// one replica after several merges their items back into index order, as the sink
    /// does when the run is `ordered`. The reorder window of such a merge is the slots of
    /// the pool its items sit in (`buffer` × the owner's replicas): a merge holds at most
    /// that many items waiting for an earlier one, and never more, because each replica
    /// takes its items in increasing order (so the earliest missing item's producer never
    /// waits for a slot held by a later item).
    ///
    /// Definitions the rule cannot deal (a stage of r > 1 replicas after one of s > 1, s ≠
    /// r) are refused with ``PipelineError/invalidDefinition(_:)``: put a one-replica stage
    /// between them, or give them the same count.
    case dynamic
}

/// How node n receives its items from node n − 1 (see ``Dealing``).
enum Edge: Sendable, Equatable {
    /// Item i from replica i % s upstream to replica i % r here, on a known lane.
    case roundRobin
    /// Replica k from replica k upstream (s = r), in whatever items it took.
    case paired
    /// The one upstream replica deals each item to whichever replica here sent a credit.
    case dealt
    /// One replica here merges the s > 1 upstream lanes: in index order (a reorder window)
    /// unless it is an order-free sink.
    case merged

    /// The edge into a node of `replicas` after one of `upstream` replicas.
    /// - Throws: ``PipelineError/invalidDefinition(_:)`` for s > 1 → r > 1, s ≠ r, dynamic.
    static func between(upstream: Int, replicas: Int, dealing: Dealing, names: (String, String))
        throws(PipelineError) -> Edge
    {
        guard dealing == .dynamic else { return .roundRobin }
        if upstream == replicas { return .paired }
        if upstream == 1 { return .dealt }
        if replicas == 1 { return .merged }
        throw .invalidDefinition("dynamic dealing cannot deal stage '\(names.1)' (\(replicas) replicas) from "
            + "'\(names.0)' (\(upstream) replicas): give them the same count, or put a one-replica stage between")
    }
}
