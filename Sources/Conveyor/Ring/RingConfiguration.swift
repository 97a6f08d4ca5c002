/// Where a ring's shared memory comes from.
public enum RingBacking: Sendable, Equatable {
    /// Shared anonymous memory: threads of one process, or processes forked after creation.
    case anonymous
    /// A memfd whose descriptor another process can receive (``Producer/fileDescriptor``).
    case memfd
    /// A POSIX shared-memory object `"/name"`, created exclusively, mode 0600; unrelated
    /// processes attach by name. The creator removes the name when its handle goes away.
    case named(String)
}

/// The shape of a new ring: how many slots, how large, how to wait.
public struct RingConfiguration: Sendable, Equatable {
    /// Frames in flight (1...65536): the producer blocks when all are full.
    public var slotCount: Int
    /// Capacity of each slot in bytes (1 B...1 TiB), rounded up to whole pages.
    public var slotBytes: Int
    /// Pause iterations a waiting side spins before sleeping on a futex; 0 sleeps at once.
    public var spin: Int
    /// Where the memory comes from.
    public var backing: RingBacking

    /// The default spin budget: about 10-50 µs of polling before sleeping.
    public static var defaultSpin: Int { 2048 }

    /// A configuration; nothing is validated until the ring is created.
    public init(slotCount: Int, slotBytes: Int, spin: Int = RingConfiguration.defaultSpin,
                backing: RingBacking = .anonymous) {
        self.slotCount = slotCount
        self.slotBytes = slotBytes
        self.spin = spin
        self.backing = backing
    }

    /// Slots sized for `rows` × `cols` matrices of `element`.
    public init<Element: MatrixElement>(slotCount: Int, rows: Int, cols: Int, of element: Element.Type,
                                        spin: Int = RingConfiguration.defaultSpin,
                                        backing: RingBacking = .anonymous) {
        // An impossible shape gives an impossible size, which creating the ring refuses.
        let bytes = elementByteCount(rows: rows, cols: cols, stride: MemoryLayout<Element>.stride) ?? -1
        self.init(slotCount: slotCount, slotBytes: bytes, spin: spin, backing: backing)
    }
}

/// A snapshot of a ring's counters, readable from either side.
public struct RingStats: Sendable, Equatable {
    /// Frames the producer published.
    public var framesCommitted: Int
    /// Their total payload bytes.
    public var bytesCommitted: Int
    /// Frames the consumer released.
    public var framesReleased: Int
    /// Times the producer slept on a full ring.
    public var producerWaits: Int
    /// Futex wakes the producer issued.
    public var producerWakes: Int
    /// Times the consumer slept on an empty ring.
    public var consumerWaits: Int
    /// Futex wakes the consumer issued.
    public var consumerWakes: Int
    /// Most frames in flight, as the producer saw it.
    public var peakOccupancy: Int
    /// Slots of the ring.
    public var slotCount: Int
    /// Capacity of a slot in bytes.
    public var slotBytes: Int
    /// Whether the producer closed the ring.
    public var closed: Bool
    /// Bytes of the ring's shared mapping (header, descriptors, page-rounded slots): what
    /// the ring costs in memory.
    public var mappedBytes: Int
}
