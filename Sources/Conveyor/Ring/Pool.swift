internal import CKernels

/// A slot pool of the C core (`conveyor_pool`, section 9 of `conveyor.h`): shared memory
/// cut into `slotCount` page-aligned slots of `slotBytes`, each with a frame descriptor
/// saying what it holds now.
///
/// The pool has no protocol of its own: whoever holds a slot's number may touch the slot,
/// and the channel that carries the number publishes what was written before it was sent.
/// This wrapper is typed and checks nothing at run time that the C core checks; a status
/// that only a bug of the caller can cause (a bad index, an impossible descriptor) traps
/// with the status name instead of being dropped.
///
/// `@unchecked Sendable`: the handle's geometry never changes, and the slots are guarded by
/// the pipeline's protocol (one holder per slot number), not by this object.
final class Pool: @unchecked Sendable {
    private let pointer: OpaquePointer
    /// Slots in the pool. Read once from the handle.
    let slotCount: Int
    /// Capacity of each slot in bytes.
    let slotBytes: Int
    /// Bytes of the shared mapping: header, descriptors and page-rounded slots.
    let mappedBytes: Int

    /// Creates an anonymous pool (shared with processes forked afterwards, which inherit this
    /// handle), or with `passable`, a sealed memfd pool whose ``fd`` another program can
    /// attach (`conveyor_pool_attach_fd`). The corresponding C function is
    /// `conveyor_pool_create`. Cost: one mmap (plus memfd_create and ftruncate); slot memory
    /// is committed as it is first written.
    /// - Throws: ``ConveyorError`` with the C status: `CONVEYOR_E_INVALID_ARGUMENT` (0 or
    ///   too many slots, 0 or too many bytes), `CONVEYOR_E_OVERFLOW`, `CONVEYOR_E_SYSTEM`,
    ///   `CONVEYOR_E_NO_MEMORY`.
    init(slotCount: Int, slotBytes: Int, passable: Bool = false) throws(ConveyorError) {
        guard let count = UInt32(exactly: slotCount), let bytes = UInt64(exactly: slotBytes) else {
            throw .invalidArgument
        }
        var config = conveyor_pool_config()
        config.slot_count = count
        config.slot_bytes = bytes
        config.backing = Int32((passable ? CONVEYOR_RING_MEMFD : CONVEYOR_RING_ANONYMOUS).rawValue)
        var pool: OpaquePointer?
        try ConveyorError.check(conveyor_pool_create(&config, &pool))
        pointer = pool!
        self.slotCount = Int(conveyor_pool_slot_count(pointer))
        self.slotBytes = Int(conveyor_pool_slot_bytes(pointer))
        mappedBytes = Int(conveyor_pool_mapped_bytes(pointer))
    }

    deinit { conveyor_pool_destroy(pointer) }

    /// The memfd behind a passable pool (owned by this object; close-on-exec), or -1.
    var fd: Int32 { conveyor_pool_fd(pointer) }

    /// The writable memory of slot `index` (`conveyor_pool_slot`). Cost: arithmetic.
    /// Traps for an index outside the pool: callers check numbers that came from shared
    /// memory before using them.
    func slot(_ index: Int) -> UnsafeMutableRawPointer {
        guard let number = UInt32(exactly: index), let address = conveyor_pool_slot(pointer, number) else {
            preconditionFailure("conveyor_pool_slot: slot \(index) of a pool of \(slotCount)")
        }
        return address
    }

    /// Writes slot `index`'s descriptor: a `shape` matrix of `dtype` tagged `tag`
    /// (`conveyor_pool_describe`, rank 2). Call it before sending the slot's number, so a
    /// reader in any language finds what the slot holds. Cost: a 64-byte store. Traps on a
    /// bad index or a matrix larger than a slot (the pools are sized from the shapes).
    func describe(_ index: Int, _ frame: MatrixFrame) {
        var info = conveyor_frame_info()
        info.dtype = frame.dtype.conveyorDType
        info.rank = 2
        info.shape.0 = UInt64(frame.shape.rows)
        info.shape.1 = UInt64(frame.shape.cols)
        info.byte_length = UInt64(frame.shape.rows * frame.shape.cols * frame.dtype.size)
        info.tag = frame.tag
        let status = conveyor_pool_describe(pointer, UInt32(truncatingIfNeeded: index), &info)
        if status != 0 {
            preconditionFailure("conveyor_pool_describe: \(ConveyorError(rawValue: status).name) for slot \(index), \(frame)")
        }
    }

    /// Reads slot `index`'s descriptor (`conveyor_pool_frame`: copied out of shared memory
    /// once and validated). Returns nil when the slot does not hold a rank-2 float32 or
    /// float64 matrix. Cost: a 64-byte copy.
    /// - Throws: ``ConveyorError`` `CONVEYOR_E_CORRUPT` when the shared descriptor is
    ///   impossible (another process wrote nonsense). Traps on an index outside the pool.
    func frame(_ index: Int) throws(ConveyorError) -> MatrixFrame? {
        var data: UnsafeRawPointer?
        var info = conveyor_frame_info()
        let status = conveyor_pool_frame(pointer, UInt32(truncatingIfNeeded: index), &data, &info)
        if status == ConveyorError.corrupt.rawValue { throw .corrupt }
        if status != 0 { preconditionFailure("conveyor_pool_frame: \(ConveyorError(rawValue: status).name) for slot \(index)") }
        guard info.rank == 2, let dtype = DType(conveyorDType: info.dtype), let rows = Int(exactly: info.shape.0), let cols = Int(exactly: info.shape.1) else { return nil }
        return MatrixFrame(dtype: dtype, shape: Shape(rows: rows, cols: cols), tag: info.tag)
    }
}

/// What a pool slot's descriptor says when it holds a matrix: element type, shape, and the
/// application's tag (the pipeline's item number).
struct MatrixFrame: Equatable, CustomStringConvertible {
    var dtype: DType
    var shape: Shape
    var tag: UInt64

    /// "float64 500x2000, tag 7".
    var description: String { "\(dtype) \(shape), tag \(tag)" }
}
