@testable import Conveyor
import Foundation
import Synchronization
import Testing

/// The async ring calls and ``Ring/Ends/run(producer:consumer:)``: waits that never hold a
/// thread of the cooperative pool, the blocking forms' timeouts and errors, and the two
/// ends in two tasks.
@Suite(.serialized) struct RingAsyncTests {
    static func config(slots: Int = 1, cols: Int = 1, spin: Int = 0) -> RingConfiguration {
        RingConfiguration(slotCount: slots, rows: 1, cols: cols, of: Double.self, spin: spin)
    }

    /// The threads of the cooperative pool: one per core (never more than the cores
    /// online, which is what libdispatch counts).
    static var poolWidth: Int {
        min(ProcessInfo.processInfo.activeProcessorCount, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    @Test func waitingReceivesDoNotHoldThePoolsThreads() async throws {
        // More waiting receives than the pool has threads, each on an empty ring of its own.
        let width = Self.poolWidth, waiting = 2 * width + 2
        var producers: [Handoff<Producer>] = [], stats: [@Sendable () -> RingStats] = []
        var receives: [Task<UInt64?, any Error>] = []
        for _ in 0..<waiting {
            let ring = try Ring.create(Self.config())
            let (producer, consumer) = ring.split { (Handoff($0), Handoff($1)) }
            producers.append(producer)
            stats.append { producer.peek { $0.stats } }
            receives.append(Task {
                guard let frame = try await consumer.take().receive(timeout: NoHang.limit) else { return nil }
                return frame.tag
            })
        }
        // All of them asleep in C at once (each ring's wait counter, which only grows)...
        #expect(await NoHang.until { stats.allSatisfy { $0().consumerWaits > 0 } }, "not every receive waited")
        // ...and other tasks still run.
        #expect(await Task { 6 * 7 }.value == 42)

        // Now hold every thread of the pool with tasks that block it (on a pipe). The
        // receives must go on waiting in C meanwhile, slice after slice: they wait on
        // threads of their own. (Had a wait held a pool thread, the blockers could not all
        // start, or no slice could run while they hold the pool; the check below would
        // then wait out the no-hang guard and fail.)
        let gate = PipeSemaphore(), started = Started(), probes = stats
        let blockers = (0..<width).map { _ in
            Task { started.count.add(1, ordering: .relaxed); return gate.wait() }
        }
        let watcher = Thread.detachNewThreadWithResult { () -> Bool in
            defer { gate.signal(width) }  // whatever happens, let the pool go
            while started.count.load(ordering: .relaxed) < width { usleep(1_000) }  // every pool thread is held
            let before = probes.map { $0().consumerWaits }
            let clock = ContinuousClock(), deadline = clock.now + NoHang.limit
            while zip(probes, before).contains(where: { $0.0().consumerWaits <= $0.1 }) {
                if clock.now > deadline { return false }
                usleep(1_000)
            }
            return true
        }
        #expect(try await watcher.value, "a receive stopped waiting while the pool was held")
        for blocker in blockers { #expect(await blocker.value) }

        // Each receive still gets its frame.
        for (index, producer) in producers.enumerated() {
            let producer = producer.take()
            try producer.push(Matrix<Double>(rows: 1, cols: 1, elements: [1]), tag: UInt64(index))
        }
        for (index, receive) in receives.enumerated() { #expect(try await receive.value == UInt64(index)) }
    }

    @Test func asyncTimeoutsAndEndOfStreamAsTheBlockingForms() async throws {
        let ring = try Ring.create(Self.config())
        let start = ContinuousClock.now
        await #expect(throws: RingError.timedOut) { _ = try await ring.consumer.receive(timeout: .milliseconds(30)) }
        #expect(ContinuousClock.now - start >= .milliseconds(30))
        await #expect(throws: RingError.timedOut) { _ = try await ring.consumer.receive(timeout: .zero) }
        await #expect(throws: RingError.timedOut) { _ = try await ring.consumer.receive(timeout: .seconds(-1)) }
        var lease = try await ring.producer.loan(rows: 1, cols: 1, of: Double.self, timeout: .zero)
        lease.withUnsafeMutableBufferPointer { $0[0] = 5 }
        try lease.commit(tag: 8)
        // Full: a loan waits, then times out.
        await #expect(throws: RingError.timedOut) {
            _ = try await ring.producer.loan(rows: 1, cols: 1, of: Double.self, timeout: .milliseconds(20))
        }
        await #expect(throws: RingError.frameTooLarge(bytes: 16, capacity: 8)) {
            _ = try await ring.producer.loan(rows: 1, cols: 2, of: Double.self)
        }
        if let frame = try await ring.consumer.receive(timeout: .zero) {
            let tag = frame.tag
            #expect(tag == 8)
        } else {
            Issue.record("no frame")
        }
        try ring.producer.close()
        await #expect(throws: RingError.closed) { _ = try await ring.producer.loan(rows: 1, cols: 1, of: Double.self) }
        #expect(try await ring.consumer.receive() == nil)
    }

    @Test func aWaitingReceiveSeesTheFrameThatEndsItsWait() async throws {
        let ring = try Ring.create(Self.config())
        let (producer, consumer) = ring.split { (Handoff($0), Handoff($1)) }
        let probe = producer.take()
        let receive = Task { () async throws(RingError) -> UInt64? in
            guard let frame = try await consumer.take().receive(timeout: NoHang.limit) else { return nil }
            return frame.tag
        }
        #expect(await NoHang.until { probe.stats.consumerWaits > 0 }, "the receive never waited")
        try probe.push(Matrix<Double>(rows: 1, cols: 1, elements: [3]), tag: 77)
        #expect(try await receive.value == 77)
    }

    @Test func aWaitingReceiveSeesThePeerDie() async throws {
        let ring = try Ring.create(Self.config())
        let (producer, consumer) = ring.split { (Handoff($0), Handoff($1)) }
        let receive = Task { () async throws(RingError) -> Bool in
            try await consumer.take().receive(timeout: NoHang.limit) != nil
        }
        #expect(await NoHang.until { producer.peek { $0.stats.consumerWaits } > 0 }, "the receive never waited")
        // The producer goes away without closing. Claim first: a handle whose process
        // forked since its last call (other suites fork stage processes) skips the hand-back
        // in conveyor_ring_destroy, so the consumer would never see it go.
        let end = producer.take()
        try end.claim()
        _ = consume end
        await #expect(throws: RingError.peerDied) { _ = try await receive.value }
    }

    @Test func runHandsTheEndsToTwoTasksAtOnce() async throws {
        // Two slots for 300 frames: the producer must wait for the consumer again and
        // again, so the run completes only if the two bodies run at the same time.
        let count = 300
        let (waits, tags) = try await Ring.create(Self.config(slots: 2, cols: 4)).run(
            producer: { producer in
                for i in 0..<count {
                    var lease = try await producer.loan(rows: 1, cols: 4, of: Double.self, timeout: NoHang.limit)
                    lease.withUnsafeMutableBufferPointer { $0.initialize(repeating: Double(i)) }
                    try lease.commit(tag: UInt64(i))
                }
                try producer.close()
                return producer.stats.producerWaits
            },
            consumer: { consumer in
                var tags: [UInt64] = []
                while let frame = try await consumer.receive(timeout: NoHang.limit) {
                    let values = frame.withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
                    #expect(values == [Double](repeating: Double(tags.count), count: 4))
                    tags.append(frame.tag)
                }
                return tags
            })
        #expect(tags == (0..<UInt64(count)).map { $0 })
        #expect(waits >= 0)
    }

    @Test func theEndsBindSeparatelyForAThreadAndATask() async throws {
        // Ring.Ends is @frozen, so another module may bind its fields one by one; each
        // bound end is then borrowed by a closure on a thread or in a task.
        let ends = try Ring.create(Self.config(slots: 2))
        let producer = ends.producer
        let consumer = ends.consumer
        let producing = Thread.detachNewThreadWithResult {
            defer { try? producer.close() }
            for i in 0..<100 { try producer.push(Matrix<Double>(rows: 1, cols: 1, elements: [Double(i)]), tag: UInt64(i), timeout: NoHang.limit) }
        }
        var next: UInt64 = 0
        while let frame = try await consumer.receive(timeout: NoHang.limit) {
            let tag = frame.tag
            #expect(tag == next)
            next += 1
        }
        try await producing.value
        #expect(next == 100)
    }

    struct Stop: Error, Equatable {}

    @Test func runStopsBothEndsOnTheFirstError() async throws {
        await #expect(throws: Stop()) {
            _ = try await Ring.create(Self.config(slots: 2)).run(
                producer: { producer in
                    try producer.push(Matrix<Double>(rows: 1, cols: 1, elements: [1]))
                    throw Stop()  // without closing
                },
                consumer: { consumer in
                    var received = 0
                    while try await consumer.receive() != nil { received += 1 }  // no timeout
                    return received
                })
        }
    }
}

/// How many of the tasks that hold the pool have started.
private final class Started: Sendable {
    let count = Atomic<Int>(0)
}
