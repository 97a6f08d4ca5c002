internal import CKernels

/// A status code returned by the C core, as a typed Swift error.
///
/// Mirrors `enum conveyor_status` in `conveyor.h` one to one: the raw value is the C code,
/// every code has a named static below (``busy``, ``corrupt``...), and ``name`` and
/// ``message`` come from `conveyor_status_name` and `conveyor_status_message`. A test holds
/// the list to the C table, so neither can drift. Swift APIs that check their arguments
/// before calling C throw ``MatrixError`` or ``RingError`` instead; this type surfaces what
/// only the core can detect. Ring calls wrap it in ``RingError/core(_:errno:)`` for the
/// codes ``RingError`` has no case of its own for; ``RingError/conveyorError`` gives it
/// back for every ring error that came from C, and `catch ConveyorError.busy` matches
/// either form.
public struct ConveyorError: Error, RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The C status code (never `CONVEYOR_OK`).
    public let rawValue: Int32

    /// Wraps a C status code. Cost: none.
    public init(rawValue: Int32) { self.rawValue = rawValue }

    private init(_ status: conveyor_status) { self.rawValue = Int32(status.rawValue) }

    // MARK: Kernels and arguments

    /// A required pointer was NULL.
    ///
    /// Kernels return it for a NULL array with a nonzero count (an empty array may be
    /// NULL); ring, pool and channel calls for a NULL handle or output pointer.
    ///
    /// The corresponding C code is `CONVEYOR_E_NULL_POINTER` (1).
    public static let nullPointer = ConveyorError(CONVEYOR_E_NULL_POINTER)

    /// An argument is outside its documented range.
    ///
    /// A thread count outside 1...256, an unknown opcode or a nonzero reserved field in a
    /// program step, a ring configuration field out of range or a bad name, a slot or lane
    /// index past the end.
    ///
    /// The corresponding C code is `CONVEYOR_E_INVALID_ARGUMENT` (2).
    public static let invalidArgument = ConveyorError(CONVEYOR_E_INVALID_ARGUMENT)

    /// A byte size overflows.
    ///
    /// An element count times the element size exceeds `PTRDIFF_MAX`, or a pool's slot
    /// count times its rounded slot size does not fit.
    ///
    /// The corresponding C code is `CONVEYOR_E_OVERFLOW` (3).
    public static let overflow = ConveyorError(CONVEYOR_E_OVERFLOW)

    /// A pointer is not aligned to its element type.
    ///
    /// A `double` array that does not start on a multiple of 8 bytes, a `float` array
    /// not on a multiple of 4; the kernel writes nothing.
    ///
    /// The corresponding C code is `CONVEYOR_E_MISALIGNED` (4).
    public static let misaligned = ConveyorError(CONVEYOR_E_MISALIGNED)

    /// An output partially overlaps an input.
    ///
    /// The same array as input and output is fine (in place); a shifted view of it is
    /// not, since the result would depend on the order of the writes.
    ///
    /// The corresponding C code is `CONVEYOR_E_OVERLAP` (5).
    public static let overlap = ConveyorError(CONVEYOR_E_OVERLAP)

    /// The feature is not built in.
    ///
    /// A serial build (without the `OpenMP` trait) asked for more than one kernel thread.
    ///
    /// The corresponding C code is `CONVEYOR_E_UNSUPPORTED` (6).
    public static let unsupported = ConveyorError(CONVEYOR_E_UNSUPPORTED)

    /// An allocation failed.
    ///
    /// The C core could not allocate a handle or its bookkeeping (shared mappings that
    /// the system refuses give ``system`` instead).
    ///
    /// The corresponding C code is `CONVEYOR_E_NO_MEMORY` (7).
    public static let noMemory = ConveyorError(CONVEYOR_E_NO_MEMORY)

    // MARK: Waiting and the stream

    /// Nothing became ready before the timeout.
    ///
    /// A loan found no free slot, a receive no frame, a send no room, within the timeout
    /// (a timeout of 0 tries once). Ring calls throw ``RingError/timedOut`` for it.
    ///
    /// The corresponding C code is `CONVEYOR_E_TIMEOUT` (8).
    public static let timeout = ConveyorError(CONVEYOR_E_TIMEOUT)

    /// The stream ended normally.
    ///
    /// The producer (or every sender of a channel) closed, and everything it sent was
    /// received. Not an error for Swift callers: ``Consumer/receive(timeout:)-19tsq`` returns
    /// `nil` for it.
    ///
    /// The corresponding C code is `CONVEYOR_E_END_OF_STREAM` (9).
    public static let endOfStream = ConveyorError(CONVEYOR_E_END_OF_STREAM)

    /// The ring or lane is closed: nothing more may be loaned or sent.
    ///
    /// The producer called close before this loan. Ring calls throw
    /// ``RingError/closed`` for it.
    ///
    /// The corresponding C code is `CONVEYOR_E_CLOSED` (10).
    public static let closed = ConveyorError(CONVEYOR_E_CLOSED)

    /// The process on the other side died, or let go of its end, without closing.
    ///
    /// Reported within about 10 ms, and only after every frame the peer committed was
    /// received. Ring calls throw ``RingError/peerDied`` for it.
    ///
    /// The corresponding C code is `CONVEYOR_E_PEER_DEAD` (11).
    public static let peerDead = ConveyorError(CONVEYOR_E_PEER_DEAD)

    // MARK: Misuse of a handle

    /// A call out of order.
    ///
    /// A commit or abandon without a loan, a second loan while one is outstanding, a
    /// release with nothing held, a receive while the consumer already holds its limit
    /// of frames. The ~Copyable leases of the Swift API make most of these impossible.
    ///
    /// The corresponding C code is `CONVEYOR_E_BAD_STATE` (12).
    public static let badState = ConveyorError(CONVEYOR_E_BAD_STATE)

    /// A call for the other role.
    ///
    /// A producer call on a consumer handle or the reverse, a send on a channel's
    /// receiver, a claim on a channel's holder handle.
    ///
    /// The corresponding C code is `CONVEYOR_E_WRONG_ROLE` (13).
    public static let wrongRole = ConveyorError(CONVEYOR_E_WRONG_ROLE)

    // MARK: Attaching to shared memory

    /// The memory is not what was asked for.
    ///
    /// The file behind a descriptor or name does not start with a ring header (or, since
    /// 0.5, with the pool or channel header the call expects).
    ///
    /// The corresponding C code is `CONVEYOR_E_NOT_A_RING` (14).
    public static let notARing = ConveyorError(CONVEYOR_E_NOT_A_RING)

    /// The memory was laid out by another version of the library.
    ///
    /// Its header names a layout version this library does not speak; both sides must
    /// link compatible versions.
    ///
    /// The corresponding C code is `CONVEYOR_E_VERSION` (15).
    public static let version = ConveyorError(CONVEYOR_E_VERSION)

    /// The file is shorter than its header says.
    ///
    /// It starts like a ring (or pool, or channel) but ends before the slots its header
    /// declares: attaching would map memory that is not there.
    ///
    /// The corresponding C code is `CONVEYOR_E_TRUNCATED` (16).
    public static let truncated = ConveyorError(CONVEYOR_E_TRUNCATED)

    /// Shared state is impossible.
    ///
    /// A shared index, counter or frame header holds a value no correct peer writes
    /// (head behind tail, a frame larger than its slot...): a hostile or broken peer.
    /// The call touched nothing outside the mapping.
    ///
    /// The corresponding C code is `CONVEYOR_E_CORRUPT` (17).
    public static let corrupt = ConveyorError(CONVEYOR_E_CORRUPT)

    /// The name is taken.
    ///
    /// Creating a `.named` ring, pool or channel whose `/dev/shm` name already exists:
    /// names are created exclusively.
    ///
    /// The corresponding C code is `CONVEYOR_E_EXISTS` (18).
    public static let exists = ConveyorError(CONVEYOR_E_EXISTS)

    /// That side is held by another live handle.
    ///
    /// Attaching to, or claiming, a ring side or channel end that a live process
    /// (this one or another) already holds; a dead or departed holder is taken over
    /// instead.
    ///
    /// The corresponding C code is `CONVEYOR_E_BUSY` (19).
    public static let busy = ConveyorError(CONVEYOR_E_BUSY)

    /// A system call failed.
    ///
    /// `shm_open`, `memfd_create`, `ftruncate`, `mmap` or the like refused; the errno it
    /// set travels with the error (``RingError/core(_:errno:)``), e.g. `ENOENT` when a
    /// named ring does not exist.
    ///
    /// The corresponding C code is `CONVEYOR_E_SYSTEM` (20).
    public static let system = ConveyorError(CONVEYOR_E_SYSTEM)

    /// A frame does not fit in a slot.
    ///
    /// A commit or describe with a byte length larger than the slot. The Swift producer
    /// checks before loaning and throws ``RingError/frameTooLarge(bytes:capacity:)``.
    ///
    /// The corresponding C code is `CONVEYOR_E_TOO_LARGE` (21).
    public static let tooLarge = ConveyorError(CONVEYOR_E_TOO_LARGE)

    /// The file could be resized under this process.
    ///
    /// A descriptor passed to attach is not sealed with `F_SEAL_SHRINK` and
    /// `F_SEAL_GROW`, so another process could truncate the mapping: not a `.memfd`
    /// ring's. Attach a `.named` ring by name instead. Since 0.3.
    ///
    /// The corresponding C code is `CONVEYOR_E_NOT_SEALED` (22).
    public static let notSealed = ConveyorError(CONVEYOR_E_NOT_SEALED)

    // MARK: Describing

    /// The C symbol of the code, e.g. `"CONVEYOR_E_OVERLAP"`; `"CONVEYOR_E_UNKNOWN"` for a
    /// code the linked library does not know. Cost: a table lookup and a string copy.
    public var name: String { String(cString: conveyor_status_name(rawValue)) }

    /// The C core's one-line explanation of the code. Cost: as ``name``.
    public var message: String { String(cString: conveyor_status_message(rawValue)) }

    /// `"CONVEYOR_E_OVERLAP: an output partially overlaps an input"`.
    public var description: String { "\(name): \(message)" }

    /// Throws the error a C status stands for; returns on `CONVEYOR_OK`.
    static func check(_ status: Int32) throws(ConveyorError) {
        if status != 0 { throw ConveyorError(rawValue: status) }
    }

    /// For a call whose failure leaves the caller nothing to do (a `deinit` releasing a
    /// frame, a setter that cannot fail): returns when `status` is `CONVEYOR_OK` or one of
    /// `outcomes` (what another process or a takeover can legitimately cause), and traps
    /// with the call and the status name otherwise, since any other status is our bug.
    static func expect(_ status: Int32, from call: StaticString, outcomes: Set<ConveyorError> = []) {
        guard status != 0 else { return }
        let error = ConveyorError(rawValue: status)
        precondition(outcomes.contains(error), "\(call) returned \(error.name): a bug in Conveyor")
    }

    /// Matches an error against a status in a `catch` or `switch`: true for this
    /// `ConveyorError` itself and for a ``RingError`` whose ``RingError/conveyorError`` it
    /// is, so `catch ConveyorError.busy` catches a busy side from any API.
    public static func ~= (status: ConveyorError, error: any Error) -> Bool {
        switch error {
        case let error as ConveyorError: return error == status
        case let error as RingError: return error.conveyorError == status
        default: return false
        }
    }
}
