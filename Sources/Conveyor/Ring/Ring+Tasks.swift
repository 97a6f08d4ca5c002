import Synchronization

extension Ring.Ends {
    /// Runs the two ends at the same time, each in a child task of its own, and returns
    /// what each body returned: the split for async code.
    ///
    /// ```swift
    /// let (sent, total) = try await Ring.create(config).run(
    ///     producer: { producer in /* loan, write, commit ...; */ try producer.close(); return n },
    ///     consumer: { consumer in /* while let frame = try await consumer.receive() { ... } */ })
    /// ```
    ///
    /// Each body owns its end (it may keep it, hand it on or let it go). The tasks run on
    /// the cooperative pool, in parallel when it has two threads free; use the async
    /// ``Producer/loan(rows:cols:of:timeout:)-4sbjn`` and ``Consumer/receive(timeout:)-9yu9d`` in them,
    /// which never block a pool thread, not the blocking forms. Cost: two child tasks.
    ///
    /// - Throws: the first error either body throws. The other task is then cancelled
    ///   (its async ring calls throw ``RingError/cancelled``) and awaited, so no end
    ///   outlives the call. An end dropped without ``Producer/close()`` makes the other
    ///   side's waits end with ``RingError/peerDied`` after the frames it committed.
    public consuming func run<ProducerResult: Sendable, ConsumerResult: Sendable>(
        producer producerBody: @escaping @Sendable (consuming Producer) async throws -> ProducerResult,
        consumer consumerBody: @escaping @Sendable (consuming Consumer) async throws -> ConsumerResult
    ) async throws -> (producer: ProducerResult, consumer: ConsumerResult) {
        let producer = EndHandOff(producer), consumer = EndHandOff(consumer)
        return try await withThrowingTaskGroup(of: EndResult<ProducerResult, ConsumerResult>.self) { group in
            group.addTask { .producer(try await producerBody(producer.take())) }
            group.addTask { .consumer(try await consumerBody(consumer.take())) }
            var produced: ProducerResult?, consumed: ConsumerResult?
            for try await result in group {  // a throw here cancels and awaits the other task
                switch result {
                case let .producer(value): produced = value
                case let .consumer(value): consumed = value
                }
            }
            return (produced!, consumed!)  // both tasks returned, or the loop threw
        }
    }
}

/// The result of one of ``Ring/Ends/run(producer:consumer:)``'s tasks.
private enum EndResult<P: Sendable, C: Sendable>: Sendable {
    case producer(P)
    case consumer(C)
}

/// Moves a ring end (`~Copyable`) into a child task's closure, which may only capture
/// copies: the closure takes it out once.
private final class EndHandOff<End: ~Copyable & Sendable>: Sendable {
    private let end: Mutex<End?>

    init(_ end: consuming End) { self.end = Mutex(Optional(end)) }

    /// The end; a second call is a bug in this file and traps.
    func take() -> End {
        guard let end = end.withLock({ $0.take() }) else { preconditionFailure("a ring end was taken twice") }
        return end
    }
}
