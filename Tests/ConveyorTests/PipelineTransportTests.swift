@testable import Conveyor
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The pieces the pipeline moves on: the typed pool and channel wrappers, the word a
/// channel carries, the progress option and the async run's thread.
@Suite struct PipelineTransportTests {
    @Test func slotWordsRoundTripAtTheirLimits() {
        for (item, slot) in [(0, 0), (1, 65_535), (SlotWord.maxItem, (1 << 24) - 1), (123_456_789, 42)] {
            let word = SlotWord(item: item, slot: slot)
            #expect(SlotWord(word.word) == word)
        }
        #expect(SlotWord.maxItem == (1 << 40) - 1)
        // Any 64-bit value decodes to some pair (a hostile peer's word is checked, not trusted).
        let any = SlotWord(UInt64.max)
        #expect(any.item == SlotWord.maxItem && any.slot == (1 << 24) - 1)
    }

    @Test func aPoolDescribesWhatItsSlotsHold() throws {
        let pool = try Pool(slotCount: 4, slotBytes: 3 * 5 * 8)
        #expect(pool.slotCount == 4 && pool.slotBytes == 120 && pool.mappedBytes >= 4 * 4096)
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        #expect((0..<4).allSatisfy { Int(bitPattern: pool.slot($0)) % page == 0 })
        #expect(Set((0..<4).map { Int(bitPattern: pool.slot($0)) }).count == 4)
        let frame = MatrixFrame(dtype: .float64, shape: Shape(rows: 3, cols: 5), tag: 77)
        pool.describe(2, frame)
        #expect(try pool.frame(2) == frame)
        pool.describe(2, MatrixFrame(dtype: .float32, shape: Shape(rows: 5, cols: 6), tag: 78))
        #expect(try pool.frame(2) == MatrixFrame(dtype: .float32, shape: Shape(rows: 5, cols: 6), tag: 78))
        #expect(throws: ConveyorError.self) { try Pool(slotCount: 0, slotBytes: 8) }
    }

    @Test func aChannelKeepsEachLaneInOrderAndEndsWhenEveryLaneCloses() throws {
        let channel = try Channel(lanes: 3, capacity: 8, spin: 0)
        let receiver = try channel.openReceiver()
        let senders = try (0..<3).map { try channel.openSender(lane: $0) }
        #expect(try receiver.receive(lane: 1, timeout: 0) == nil, "an empty lane times out")
        for value in 0..<8 { for (lane, sender) in senders.enumerated() { #expect(try sender.send(UInt64(lane * 100 + value), timeout: 0)) } }
        #expect(try senders[0].send(9, timeout: 0) == false, "a full lane times out (backpressure)")
        for value in 0..<8 { #expect(try receiver.receive(lane: 2, timeout: 0) == UInt64(200 + value)) }
        var seen: [Int: [UInt64]] = [:]
        for _ in 0..<16 {
            let (lane, word) = try #require(try receiver.receiveAny(timeout: 0))
            seen[lane, default: []].append(word)
        }
        #expect(seen[0] == (0..<8).map { UInt64($0) } && seen[1] == (0..<8).map { UInt64(100 + $0) })
        for sender in senders { sender.close() }
        #expect(throws: ConveyorError.self) { try receiver.receiveAny(timeout: 0) }  // end of stream
    }

    @Test func aSenderThatLeavesWithoutClosingIsADeadPeerOnceDrained() throws {
        let channel = try Channel(lanes: 1, capacity: 4, spin: 0)
        let receiver = try channel.openReceiver()
        do {
            let sender = try channel.openSender(lane: 0)
            #expect(try sender.send(5, timeout: 0))
        }  // handed back unclosed
        #expect(try receiver.receive(lane: 0, timeout: 0) == 5, "what it sent arrives first")
        #expect {
            _ = try receiver.receive(lane: 0, timeout: NoHang.nanoseconds)
        } throws: { error in
            (error as? ConveyorError) == .peerDead
        }
    }

    /// Wait-any across threads: the receiver sleeps on all 16 lanes at once, and each word,
    /// whichever lane it comes on, wakes it (no lost wake-up, no polling on its side).
    @Test func waitAnyWakesForEveryLaneAcrossThreads() throws {
        let lanes = 16, perLane = 2_000
        let channel = try Channel(lanes: lanes, capacity: 4, spin: 0)
        let receiver = try channel.openReceiver()
        let threads = try (0..<lanes).map { lane in
            try Posix.Thread.start {
                do throws(ConveyorError) {
                    let sender = try channel.openSender(lane: lane)
                    for i in 0..<perLane { guard try sender.send(UInt64(lane << 32 | i), timeout: NoHang.nanoseconds) else { return } }
                    sender.close()
                } catch {
                    return  // the receiver then sees a dead peer or a short stream and fails
                }
            }
        }
        var next = [Int](repeating: 0, count: lanes)
        var received = 0
        while let (lane, word) = try? receiver.receiveAny(timeout: NoHang.nanoseconds) {
            #expect(Int(word >> 32) == lane && Int(word & 0xffff_ffff) == next[lane], "lane \(lane) out of order")
            next[lane] += 1
            received += 1
        }
        for thread in threads { thread.join() }
        #expect(received == lanes * perLane)
    }

    @Test func theProgressOptionDecidesWhetherTheLineIsShown() throws {
        #expect(ProgressDisplay.always.isShown && !ProgressDisplay.never.isShown)
        #expect(ProgressDisplay.automatic.isShown == (isatty(2) == 1))
        let run = try PipelineFeatureTests.numbered(items: 5).run(progress: .never, into: 0) { n, _ in n += 1 }
        #expect(run.result == 5)
    }

    /// An async run holds no cooperative thread while it runs: more runs than the pool has
    /// threads are all blocked in a stage at once, and a task still gets to run and release
    /// them. (Had each run blocked its task's thread, the releasing task would never start;
    /// the stall guard would then fail the runs instead of hanging the test.)
    @Test func asyncRunsLeaveTheCooperativePoolFree() async throws {
        let runs = 2 * max(2, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        let holding = Counter(), release = PipeSemaphore()
        let pipeline = PipelineFeatureTests.numbered(items: 2).stage("held") { input, output in
            if input[0, 0] == 0 {
                holding.increment()
                guard release.wait() else { throw NeverReleased() }
            }
            output = input
        }
        try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<runs {
                group.addTask { try await pipeline.run(stallTimeout: NoHang.limit, into: 0) { n, _ in n += 1 }.result }
            }
            // This task needs a cooperative thread to see them all held, and to release them.
            #expect(await NoHang.until { holding.value == runs }, "\(holding.value) of \(runs) runs reached their held item")
            release.signal(runs)
            for try await count in group { #expect(count == 2) }
        }
    }
}

/// A counter that stage threads bump and a test reads.
private final class Counter: Sendable {
    private let count = Atomic<Int>(0)
    func increment() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}
