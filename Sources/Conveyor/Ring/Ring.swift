internal import CKernels

/// Creates rings: shared-memory queues of fixed slots between exactly one ``Producer``
/// and one ``Consumer``, across threads or processes, that move frames without copying.
///
/// ```swift
/// let ring = try Ring.create(RingConfiguration(slotCount: 3, rows: 500, cols: 2000, of: Double.self))
/// var lease = try ring.producer.loan(rows: 500, cols: 2000, of: Double.self)
/// lease.withMatrix { $0.fillUniform(seed: 1) }            // written in place
/// try lease.commit(tag: 0)
/// if let frame = try ring.consumer.receive() {            // nil at end of stream
///     let s = try frame.withMatrix(of: Double.self) { $0.sum() }   // read in place
/// }                                                        // frame released here
/// ```
/// To run the ends in two tasks at once, ``Ends/run(producer:consumer:)`` hands each to a
/// child task of its own; ``Ends/split(_:)`` hands both to one closure, which moves each
/// to the thread (or, with fork, the process) that uses it.
public enum Ring {
    /// Both ends of a new ring, each to be handed to its own thread (or, with fork, its own
    /// process).
    ///
    /// `@frozen` so that code in other modules may bind the two fields separately
    /// (`let producer = ends.producer; let consumer = ends.consumer`), which Swift allows
    /// for a `~Copyable` struct only when its layout is fixed; the two stored properties
    /// are the whole of it, now and later.
    @frozen
    public struct Ends: ~Copyable, Sendable {
        /// The writing end.
        public var producer: Producer
        /// The reading end.
        public var consumer: Consumer

        /// Separates the two ends, to move each to its own thread or process:
        /// `try Ring.create(config).split { producer, consumer in ... }`. The closure runs
        /// on the calling thread; for two tasks, use ``run(producer:consumer:)``. Binding
        /// the fields (`let producer = ends.producer`) separates them too, and a bound end
        /// can be captured (borrowed) by a thread's or a task's closure. Cost: none.
        public consuming func split<R: ~Copyable, E: Error>(
            _ body: (consuming Producer, consuming Consumer) throws(E) -> R
        ) throws(E) -> R {
            try body(producer, consumer)
        }
    }

    /// Creates a ring and returns both ends.
    ///
    /// Cost: one shared mapping of slotCount × slotBytes (rounded to pages) plus a header
    /// page; memory is committed as slots are first written.
    /// - Throws: ``RingError/invalidConfiguration(_:)``; ``RingError/core(_:errno:)`` with
    ///   `CONVEYOR_E_EXISTS` for a taken name or `CONVEYOR_E_SYSTEM` when the system refuses.
    public static func create(_ configuration: RingConfiguration) throws(RingError) -> Ends {
        var producer: OpaquePointer?, consumer: OpaquePointer?
        try withCConfiguration(configuration) { (config) throws(RingError) in
            try RingError.check(conveyor_ring_create(config, &producer, &consumer))
        }
        return Ends(producer: Producer(handle: RingHandle(producer!)),
                    consumer: Consumer(handle: RingHandle(consumer!)))
    }

    /// Creates a ring with only its producer end here; the consumer attaches from another
    /// process (``Consumer/attach(fileDescriptor:)`` or ``Consumer/attach(name:)``).
    public static func createProducer(_ configuration: RingConfiguration) throws(RingError) -> Producer {
        var producer: OpaquePointer?
        try withCConfiguration(configuration) { (config) throws(RingError) in
            try RingError.check(conveyor_ring_create(config, &producer, nil))
        }
        return Producer(handle: RingHandle(producer!))
    }

    /// Creates a ring with only its consumer end here; the producer attaches elsewhere.
    public static func createConsumer(_ configuration: RingConfiguration) throws(RingError) -> Consumer {
        var consumer: OpaquePointer?
        try withCConfiguration(configuration) { (config) throws(RingError) in
            try RingError.check(conveyor_ring_create(config, nil, &consumer))
        }
        return Consumer(handle: RingHandle(consumer!))
    }

    /// Removes the name of a named ring (attached ends keep working).
    public static func unlink(name: String) throws(RingError) {
        try RingError.check(conveyor_ring_unlink_named(name))
    }

    private static func withCConfiguration(
        _ c: RingConfiguration, _ body: (UnsafePointer<conveyor_ring_config>) throws(RingError) -> Void
    ) throws(RingError) {
        guard (1...Int(CONVEYOR_RING_MAX_SLOTS)).contains(c.slotCount) else {
            throw .invalidConfiguration("slotCount \(c.slotCount) is not in 1...\(CONVEYOR_RING_MAX_SLOTS)")
        }
        guard c.slotBytes >= 1, UInt64(c.slotBytes) <= UInt64(1) << 40 else {
            throw .invalidConfiguration("slotBytes \(c.slotBytes) is not in 1...2^40")
        }
        guard let spin = UInt32(exactly: c.spin) else {
            throw .invalidConfiguration("spin \(c.spin) is not in 0...\(UInt32.max)")
        }
        var config = conveyor_ring_config()
        config.slot_count = UInt32(c.slotCount)
        config.slot_bytes = UInt64(c.slotBytes)
        config.spin = spin
        switch c.backing {
        case .anonymous:
            config.backing = Int32(CONVEYOR_RING_ANONYMOUS.rawValue)
            try body(&config)
        case .memfd:
            config.backing = Int32(CONVEYOR_RING_MEMFD.rawValue)
            try body(&config)
        case let .named(name):
            guard name.hasPrefix("/"), name.utf8.count >= 2, name.utf8.count <= 200,
                  !name.dropFirst().contains("/") else {
                throw .invalidConfiguration("ring name '\(name)' must be '/name', 2...200 bytes, no other '/'")
            }
            config.backing = Int32(CONVEYOR_RING_NAMED.rawValue)
            // withCString rethrows untyped errors: carry the typed one out by hand.
            var failure: RingError?
            name.withCString { cName in
                config.name = cName
                do throws(RingError) { try body(&config) } catch { failure = error }
            }
            if let failure { throw failure }
        }
    }
}
