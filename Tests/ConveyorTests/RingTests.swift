import CKernels
@testable import Conveyor
import Foundation
import Synchronization
import Testing

/// The ring across threads, through the Swift API: zero-copy leases, order, end of stream,
/// backpressure, timeouts, cancellation and every error path.
@Suite(.serialized) struct RingTests {
    static func config(slots: Int = 3, rows: Int = 4, cols: Int = 5, spin: Int = RingConfiguration.defaultSpin,
                       backing: RingBacking = .anonymous) -> RingConfiguration {
        RingConfiguration(slotCount: slots, rows: rows, cols: cols, of: Double.self, spin: spin, backing: backing)
    }

    @Test func matricesCrossThreadsInOrderWithoutLoss() async throws {
        let ring = try Ring.create(Self.config(slots: 3, rows: 50, cols: 40))
        let (handoff, consumerHandoff) = ring.split { (Handoff($0), Handoff($1)) }
        let consumer = consumerHandoff.take()
        let count = 500
        // Each side waits for the other's event (a released slot, a committed frame); the
        // timeouts are only no-hang guards. With 10 s per call this test once failed under
        // ThreadSanitizer on a loaded machine: the consumer, an async task, waited over
        // 10 s for a cooperative thread (other suites' tests held both), so the producer's
        // loan on the full ring timed out; the producer then left without closing, and
        // the consumer, resumed, drained the 3 frames and waited its own 10 s in vain.
        let producing = Thread.detachNewThreadWithResult {
            let producer = handoff.take()
            defer { try? producer.close() }  // also on failure: the consumer sees the end at once
            for i in 0..<count {
                var lease = try producer.loan(rows: 50, cols: 40, of: Double.self, timeout: NoHang.limit)
                lease.withMatrix { $0.fillUniform(seed: 7, stream: UInt64(i)) }
                try lease.commit(tag: UInt64(i))
            }
            try producer.close()
            return producer.stats
        }
        var sum = 0.0, next: UInt64 = 0
        while let frame = try await consumer.receive(timeout: NoHang.limit) {
            let tag = frame.tag, dtype = frame.dtype, shape = frame.shape
            #expect(tag == next && dtype == .float64 && shape == [50, 40])
            sum += try frame.withMatrix(of: Double.self) { $0.sum() }
            next += 1
        }
        #expect(next == UInt64(count))
        var expected = 0.0
        for i in 0..<count { expected += try Matrix<Double>.uniform(rows: 50, cols: 40, seed: 7, stream: UInt64(i)).sum() }
        #expect(sum == expected)
        _ = try await producing.value
        let stats = consumer.stats
        #expect(stats.framesCommitted == count && stats.framesReleased == count)
        #expect(stats.peakOccupancy <= 3 && stats.closed)
    }

    @Test func aMillionSmallFramesAcrossThreadsWithChecksums() async throws {
        // The C API directly: the Swift wrapper adds nothing to what is tested here, and a
        // debug build would make a million Swift round trips slow.
        var config = conveyor_ring_config()
        config.slot_count = 8; config.slot_bytes = 64; config.spin = 256
        var p: OpaquePointer?, c: OpaquePointer?
        #expect(conveyor_ring_create(&config, &p, &c) == 0)
        nonisolated(unsafe) let producer = p!, consumer = c!
        defer { conveyor_ring_destroy(producer); conveyor_ring_destroy(consumer) }
        let frames: UInt64 = 1_000_000
        // Both sides on threads of their own: a consumer blocking in C for seconds (17 s
        // under TSan) on one of the cooperative pool's two threads starved the async tests
        // of the suites running alongside. The timeouts are only no-hang guards.
        let producing = Thread.detachNewThreadWithResult {
            defer { _ = conveyor_ring_close(producer) }  // also on failure: the consumer stops
            var checksum: UInt64 = 0
            for i in 0..<frames {
                var slot: UnsafeMutableRawPointer?
                guard conveyor_ring_loan(producer, NoHang.nanoseconds, &slot, nil) == 0 else { return UInt64.max }
                let value = i &* 0x9E37_79B9_7F4A_7C15
                slot!.storeBytes(of: value, as: UInt64.self)
                checksum = checksum &+ value
                var info = conveyor_frame_info()
                info.dtype = UInt32(CONVEYOR_DTYPE_BYTES.rawValue); info.rank = 1
                info.shape.0 = 8; info.byte_length = 8; info.tag = i
                guard conveyor_ring_commit(producer, &info) == 0 else { return UInt64.max }
            }
            return checksum
        }
        let consuming = Thread.detachNewThreadWithResult {
            var checksum: UInt64 = 0, received: UInt64 = 0, inOrder = true
            var data: UnsafeRawPointer?
            var info = conveyor_frame_info()
            var status: Int32
            repeat {
                status = conveyor_ring_receive(consumer, NoHang.nanoseconds, &data, &info)
                if status == 0 {
                    inOrder = inOrder && info.tag == received
                    checksum = checksum &+ data!.load(as: UInt64.self)
                    received += 1
                    _ = conveyor_ring_release(consumer)
                }
            } while status == 0
            return (status: status, received: received, inOrder: inOrder, checksum: checksum)
        }
        let consumed = try await consuming.value
        #expect(consumed.status == Int32(CONVEYOR_E_END_OF_STREAM.rawValue))
        #expect(consumed.received == frames && consumed.inOrder)
        #expect(try await producing.value == consumed.checksum)
    }

    @Test func slowConsumerGetsBackpressureNotLoss() async throws {
        let ring = try Ring.create(Self.config(slots: 2, rows: 1, cols: 8, spin: 0))
        let (handoff, consumerHandoff) = ring.split { (Handoff($0), Handoff($1)) }
        let consumer = consumerHandoff.take()
        let producing = Thread.detachNewThreadWithResult {
            let producer = handoff.take()
            defer { try? producer.close() }
            for i in 0..<200 {
                var lease = try producer.loan(rows: 1, cols: 8, of: Double.self, timeout: NoHang.limit)
                lease.withUnsafeMutableBufferPointer { $0.initialize(repeating: Double(i)) }
                try lease.commit(tag: UInt64(i))
            }
            try producer.close()
            return producer.stats
        }
        // The consumer starts only once the producer has found the ring full and gone to
        // sleep (its wait counter, which only grows, says so): backpressure is then certain,
        // not a race between a 2 ms sleep and the producer's speed.
        #expect(await NoHang.until { consumer.stats.producerWaits > 0 }, "the producer never waited")
        var seen = 0
        while let frame = try await consumer.receive(timeout: NoHang.limit) {
            let first = try frame.withMatrix(of: Double.self) { $0[0, 7] }
            let tag = frame.tag
            #expect(first == Double(seen) && tag == UInt64(seen))
            seen += 1
        }
        let stats = try await producing.value
        #expect(seen == 200)
        #expect(stats.peakOccupancy <= 2, "a 2-slot ring held \(stats.peakOccupancy) frames")
        #expect(stats.producerWaits > 0, "the producer never had to wait: no backpressure was tested")
    }

    @Test func writeLeaseWritesInPlaceAndReadLeaseReadsInPlace() throws {
        let detachesBefore = MatrixStorage<Double>.detachCount
        defer {
            // Nothing escaped either lease: nothing may have been copied. (The suite is
            // serialized, and no other suite escapes a slot matrix.)
            #expect(MatrixStorage<Double>.detachCount == detachesBefore)
        }
        let ring = try Ring.create(Self.config(rows: 2, cols: 3))
        var lease = try ring.producer.loan(rows: 2, cols: 3, of: Double.self)
        var slotAddress: UnsafeMutableRawPointer?
        lease.withUnsafeMutableBufferPointer { slotAddress = UnsafeMutableRawPointer($0.baseAddress) }
        var matrixAddress: UnsafeRawPointer?
        lease.withMatrix { m in
            m.fillUniform(seed: 3)
            try! m.apply([.square, .multiply(3), .add(1)])
            m.withUnsafeBufferPointer { matrixAddress = UnsafeRawPointer($0.baseAddress) }
        }
        #expect(matrixAddress == UnsafeRawPointer(slotAddress), "the lease's matrix was not the slot")
        try lease.commit(tag: 9)
        let expected = try Matrix<Double>.uniform(rows: 2, cols: 3, seed: 3).applying([.square, .multiply(3), .add(1)])
        guard let frame = try ring.consumer.receive(timeout: .seconds(1)) else { Issue.record("no frame"); return }
        try frame.withMatrix(of: Double.self) { m in
            #expect(m == expected)
            m.withUnsafeBufferPointer { #expect(UnsafeRawPointer($0.baseAddress) == UnsafeRawPointer(slotAddress)) }
        }
    }

    @Test func readLeaseCannotWriteTheSlotAndEscapedCopiesKeepTheirValues() throws {
        let ring = try Ring.create(Self.config(slots: 1, rows: 1, cols: 4))
        try ring.producer.push(Matrix<Double>(rows: 1, cols: 4, elements: [1, 2, 3, 4]), tag: 0)
        var kept: Matrix<Double>?
        do {
            guard let frame = try ring.consumer.receive(timeout: .seconds(1)) else { Issue.record("no frame"); return }
            try frame.withMatrix(of: Double.self) { m in
                var local = m
                local[0, 0] = 100  // copy-on-write: the slot keeps 1
                #expect(local[0, 0] == 100 && m[0, 0] == 1)
                kept = m  // escapes the closure: detached when it returns
            }
            frame.withUnsafeBytes { #expect($0.load(as: Double.self) == 1) }
        }
        // The slot is reused with other values; the kept copy must not change.
        try ring.producer.push(Matrix<Double>(rows: 1, cols: 4, elements: [9, 9, 9, 9]), tag: 1)
        #expect(kept?.elements == [1, 2, 3, 4])
        #expect(MatrixStorage<Double>.detachCount > 0)
        guard let second = try ring.consumer.receive(timeout: .seconds(1)) else { Issue.record("no frame"); return }
        let tag = second.tag
        #expect(tag == 1)
    }

    @Test func droppingALeaseAbandonsIt() throws {
        let ring = try Ring.create(Self.config(slots: 2, rows: 1, cols: 1))
        do {
            var lease = try ring.producer.loan(rows: 1, cols: 1, of: Double.self)
            lease.withMatrix { $0[0, 0] = 42 }
        }  // dropped: abandoned
        #expect(throws: RingError.timedOut) { _ = try ring.consumer.receive(timeout: .zero) }
        try ring.producer.push(Matrix<Double>(rows: 1, cols: 1, elements: [7]), tag: 5)
        guard let frame = try ring.consumer.receive(timeout: .zero) else { Issue.record("no frame"); return }
        let tag = frame.tag, stats = ring.producer.stats
        #expect(tag == 5)
        #expect(stats.framesCommitted == 1)
    }

    @Test func endOfStreamAfterDrainingAndUseAfterClose() throws {
        let ring = try Ring.create(Self.config(slots: 3, rows: 1, cols: 1))
        for i in 0..<3 { try ring.producer.push(Matrix<Double>(rows: 1, cols: 1, elements: [Double(i)]), tag: UInt64(i)) }
        try ring.producer.close()
        try ring.producer.close()  // idempotent
        #expect(throws: RingError.closed) { _ = try ring.producer.loan(rows: 1, cols: 1, of: Double.self) }
        #expect(throws: RingError.closed) { try ring.producer.push(Matrix<Double>(rows: 1, cols: 1, elements: [1])) }
        for i in 0..<3 {
            guard let frame = try ring.consumer.receive(timeout: .zero) else { Issue.record("no frame \(i)"); return }
            let tag = frame.tag
            #expect(tag == UInt64(i))
        }
        let ended = try ring.consumer.receive(timeout: .zero) == nil
        let stillEnded = try ring.consumer.receive() == nil  // stays ended, never blocks
        #expect(ended && stillEnded)
    }

    @Test func timeoutsOnEmptyAndFullRings() throws {
        let ring = try Ring.create(Self.config(slots: 1, rows: 1, cols: 1, spin: 0))
        let start = ContinuousClock.now
        #expect(throws: RingError.timedOut) { _ = try ring.consumer.receive(timeout: .milliseconds(30)) }
        #expect(ContinuousClock.now - start >= .milliseconds(30))
        try ring.producer.push(Matrix<Double>(rows: 1, cols: 1, elements: [1]))
        #expect(throws: RingError.timedOut) { try ring.producer.push(Matrix<Double>(rows: 1, cols: 1, elements: [2]), timeout: .zero) }
        #expect(throws: RingError.timedOut) {
            try ring.producer.push(Matrix<Double>(rows: 1, cols: 1, elements: [2]), timeout: .milliseconds(20))
        }
    }

    @Test func cancellationStopsAnAsyncReceivePromptly() async throws {
        let ring = try Ring.create(Self.config(slots: 1, rows: 1, cols: 1, spin: 0))
        let (producerHandoff, handoff) = ring.split { (Handoff($0), Handoff($1)) }
        let producer = producerHandoff.take()  // kept, never used: the ring stays open
        let task = Task { () async throws(RingError) -> Bool in
            let consumer = handoff.take()
            let frame = try await consumer.receive()
            return frame != nil
        }
        // Cancel once the receive is asleep on the empty ring (the consumer's wait counter,
        // which only grows, says so), so that the cancellation stops a blocked wait.
        #expect(await NoHang.until { producer.stats.consumerWaits > 0 }, "the receive never waited")
        let cancelledAt = ContinuousClock.now
        task.cancel()
        let result = await task.result
        #expect(throws: RingError.cancelled) { try result.get() }
        // Behaviour, not speed: without cancellation this receive would wait forever; the
        // guard only catches that. (The delay itself is the cooperative pool's, which other
        // suites may keep busy while this runs.)
        #expect(ContinuousClock.now - cancelledAt < NoHang.limit)
    }

    @Test func badShapesAndTypesThrowTypedErrors() throws {
        let ring = try Ring.create(Self.config(slots: 1, rows: 2, cols: 2))
        #expect(throws: RingError.frameTooLarge(bytes: 3 * 2 * 8, capacity: 32)) {
            _ = try ring.producer.loan(rows: 3, cols: 2, of: Double.self)
        }
        #expect(throws: RingError.frameTooLarge(bytes: 8 * 513, capacity: 32)) {
            try ring.producer.push(Matrix<Double>.zeros(rows: 1, cols: 513))
        }
        #expect(throws: RingError.self) { _ = try ring.producer.loan(rows: -1, cols: 2, of: Double.self) }
        #expect(throws: RingError.frameTooLarge(bytes: .max, capacity: 32)) {
            _ = try ring.producer.loan(rows: .max, cols: 2, of: Double.self)
        }
        try ring.producer.push(Matrix<Float>(rows: 2, cols: 2, elements: [1, 2, 3, 4]))
        guard let frame = try ring.consumer.receive(timeout: .zero) else { Issue.record("no frame"); return }
        let dtype = frame.dtype, bytes = frame.byteCount
        #expect(dtype == .float32 && bytes == 16)
        #expect(throws: RingError.dtypeMismatch(expected: .float64, actual: .float32)) {
            try frame.withMatrix(of: Double.self) { _ in }
        }
        #expect(try frame.withMatrix(of: Float.self) { $0.sum() } == 10)
    }

    @Test func aFrameThatIsNotAMatrixIsRefusedAsOne() throws {
        // A C producer (another process, in real life) sends a rank-1 frame.
        let consumer = try Ring.createConsumer(RingConfiguration(slotCount: 1, slotBytes: 64, backing: .memfd))
        var producer: OpaquePointer?
        guard let fd = consumer.fileDescriptor else { Issue.record("no descriptor"); return }
        #expect(conveyor_ring_attach_fd(fd, Int32(CONVEYOR_RING_PRODUCER.rawValue), &producer) == 0)
        defer { conveyor_ring_destroy(producer) }
        var info = conveyor_frame_info()
        info.dtype = UInt32(CONVEYOR_DTYPE_F64.rawValue); info.rank = 1; info.shape.0 = 4; info.byte_length = 32
        let values: [Double] = [1, 2, 3, 4]
        #expect(conveyor_ring_push(producer, 0, values, &info) == 0)
        guard let frame = try consumer.receive(timeout: .zero) else { Issue.record("no frame"); return }
        #expect(throws: RingError.notAMatrix(rank: 1)) { try frame.withMatrix(of: Double.self) { _ in } }
        let sum = frame.withUnsafeBytes { $0.bindMemory(to: Double.self).reduce(0, +) }
        #expect(sum == 10)
    }

    @Test func invalidConfigurationsAreRejected() {
        for bad in [RingConfiguration(slotCount: 0, slotBytes: 64), RingConfiguration(slotCount: 70_000, slotBytes: 64),
                    RingConfiguration(slotCount: 2, slotBytes: 0), RingConfiguration(slotCount: 2, slotBytes: -5),
                    RingConfiguration(slotCount: 2, slotBytes: Int.max), RingConfiguration(slotCount: 2, slotBytes: 64, spin: -1),
                    RingConfiguration(slotCount: 2, slotBytes: 64, backing: .named("no-slash")),
                    RingConfiguration(slotCount: 2, slotBytes: 64, backing: .named("/a/b")),
                    RingConfiguration(slotCount: 2, rows: .max, cols: 3, of: Double.self)] {
            #expect(throws: RingError.self) { _ = try Ring.create(bad) }
        }
        // A huge but valid ring fails cleanly (the mapping is refused or reserved lazily).
        let huge = RingConfiguration(slotCount: 65_536, slotBytes: 1 << 40)
        if let ends = try? Ring.create(huge) { _ = ends } else { #expect(Bool(true)) }
    }

    @Test func namedRingsAreExclusiveOwnerOnlyAndRemoved() throws {
        let name = "/conveyor-test-\(getpid())-named"
        do {
            let producer = try Ring.createProducer(Self.config(slots: 2, rows: 1, cols: 2, backing: .named(name)))
            var info = stat()
            #expect(stat("/dev/shm" + name, &info) == 0)
            #expect(info.st_mode & 0o777 == 0o600)
            #expect(throws: RingError.core(.exists, errno: 0)) {
                _ = try Ring.createProducer(Self.config(backing: .named(name)))
            }
            let consumer = try Consumer.attach(name: name)
            // The producer side is held by this (live) process's creator: a second is refused.
            #expect(throws: RingError.core(.busy, errno: 0)) { _ = try Producer.attach(name: name) }
            #expect(throws: RingError.core(.busy, errno: 0)) { _ = try Consumer.attach(name: name) }
            try producer.push(Matrix<Double>(rows: 1, cols: 2, elements: [3, 4]), tag: 1)
            guard let frame = try consumer.receive(timeout: .seconds(1)) else { Issue.record("no frame"); return }
            let elements = try frame.withMatrix(of: Double.self) { $0.elements }
            #expect(elements == [3, 4])
        }
        #expect(access("/dev/shm" + name, F_OK) != 0, "the creator did not remove its name")
        #expect(throws: RingError.core(.system, errno: ENOENT)) { _ = try Consumer.attach(name: name) }
    }

    @Test func memfdRingsAttachByDescriptor() throws {
        let producer = try Ring.createProducer(Self.config(slots: 2, rows: 1, cols: 1, backing: .memfd))
        guard let fd = producer.fileDescriptor else { Issue.record("no descriptor"); return }
        let consumer = try Consumer.attach(fileDescriptor: fd)
        try producer.push(Matrix<Double>(rows: 1, cols: 1, elements: [5]), tag: 3)
        guard let frame = try consumer.receive(timeout: .seconds(1)) else { Issue.record("no frame"); return }
        let tag = frame.tag
        #expect(tag == 3)
        // Both sides report the one mapping they share: a header, descriptors, 2 slot pages.
        let mapped = producer.stats.mappedBytes
        #expect(mapped == consumer.stats.mappedBytes && mapped >= 3 * 4096 && mapped % 4096 == 0)
        #expect(throws: RingError.self) { _ = try Consumer.attach(fileDescriptor: -1) }
    }
}

extension Thread {
    /// Starts `body` on a new OS thread now (a blocking ring call must not hold one of the
    /// cooperative pool's threads, and must not wait for one to start) and returns its
    /// result as a task.
    static func detachNewThreadWithResult<T: Sendable>(
        _ body: @escaping @Sendable () throws -> T
    ) -> Task<T, any Error> {
        let box = ThreadResult<T>()
        Thread { box.finish(Result { try body() }) }.start()
        return Task { try await box.value() }
    }
}

/// The result of a thread, awaited by a task whether it finishes before or after.
final class ThreadResult<T: Sendable>: Sendable {
    private enum State {
        case running
        case waiting(CheckedContinuation<T, any Error>)
        case finished(Result<T, any Error>)
    }
    private let state = Mutex(State.running)

    func finish(_ result: Result<T, any Error>) {
        let waiter: CheckedContinuation<T, any Error>? = state.withLock { state in
            defer { state = .finished(result) }
            if case let .waiting(continuation) = state { return continuation }
            return nil
        }
        waiter?.resume(with: result)
    }

    func value() async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let done: Result<T, any Error>? = state.withLock { state in
                if case let .finished(result) = state { return result }
                state = .waiting(continuation)
                return nil
            }
            if let done { continuation.resume(with: done) }
        }
    }
}

/// Moves a non-copyable value (a ring end) into a closure that runs on another thread.
final class Handoff<Value: ~Copyable>: @unchecked Sendable {
    private var value: Value?

    init(_ value: consuming Value) { self.value = consume value }

    /// The value; callable once.
    func take() -> Value {
        guard let value = value.take() else { fatalError("Handoff taken twice") }
        return value
    }

    /// Calls `body` with the value, still held (not to be mixed with a concurrent take).
    func peek<R>(_ body: (borrowing Value) -> R) -> R {
        switch value {
        case .some(let held): return body(held)
        case .none: fatalError("Handoff peeked after take")
        }
    }
}

/// The README's examples, compiled and run as written.
@Suite struct ReadmeExampleTests {
    /// The ring snippet (proposed in /tmp/spec/readme-ring.md), in a function instead of
    /// at top level: the two ends in two tasks at once (8 frames through 3 slots, so the
    /// producer must wait for the consumer, which only works if both run).
    @Test func ringExample() async throws {
        let config = RingConfiguration(slotCount: 3, rows: 500, cols: 2000, of: Double.self)
        let (sent, sums) = try await Ring.create(config).run(
            producer: { producer in
                for i in 0..<8 {
                    var lease = try await producer.loan(rows: 500, cols: 2000, of: Double.self)
                    try lease.withMatrix { m in
                        m.fillUniform(seed: 2016, stream: UInt64(i))
                        try m.apply([.square, .multiply(3), .add(1)])
                    }
                    try lease.commit(tag: UInt64(i))
                }
                try producer.close()
                return 8
            },
            consumer: { consumer in
                var sums: [Double] = []
                while let frame = try await consumer.receive() {
                    sums.append(try frame.withMatrix(of: Double.self) { $0.sum() })
                }
                return sums
            })
        let expected = try (0..<8).map { i in
            try Matrix<Double>.uniform(rows: 500, cols: 2000, seed: 2016, stream: UInt64(i))
                .applying([.square, .multiply(3), .add(1)]).sum()
        }
        #expect(sent == 8 && sums == expected)
    }

    /// The snippet before it: both ends handed to one closure by `split`.
    @Test func ringSplitExample() throws {
        var sums: [Double] = []
        let ring = try Ring.create(RingConfiguration(slotCount: 3, rows: 500, cols: 2000, of: Double.self))
        try ring.split { producer, consumer in
            var lease = try producer.loan(rows: 500, cols: 2000, of: Double.self)
            try lease.withMatrix { m in m.fillUniform(seed: 1); try m.apply([.square, .multiply(3), .add(1)]) }
            try lease.commit(tag: 0)
            try producer.close()
            while let frame = try consumer.receive(timeout: .seconds(1)) {
                sums.append(try frame.withMatrix(of: Double.self) { $0.sum() })
            }
        }
        let expected = try Matrix<Double>.uniform(rows: 500, cols: 2000, seed: 1).applying([.square, .multiply(3), .add(1)]).sum()
        #expect(sums == [expected])
    }

    @Test func matrixExample() throws {
        let x = try Matrix<Double>.uniform(rows: 500, cols: 2000, seed: 2016)
        let y = x.squared() * 3 + 1
        let z = try x.applying([.square, .multiply(3), .add(1)])
        #expect(y == z)
        var w = x
        try w += z
        #expect(abs(w.sum() - (x.sum() + z.sum())) < 1e-6)
    }
}
