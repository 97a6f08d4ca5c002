@testable import Conveyor
import Foundation
import Testing

/// Dynamic dealing: every item reaches the sink exactly once, in index order when the run
/// is ordered, whatever the replica counts and however uneven the items; definitions it
/// cannot deal are refused; nothing is left behind.
@Suite(.serialized) struct DynamicDealingTests {
    static let modes = [ExecutionMode.threads, .processes]

    /// A pseudo-random delay of 0–2 ms for item i (a fixed hash: the same every run).
    static func delay(_ i: Int, salt: UInt64) {
        var x = UInt64(i) &* 0x9E37_79B9_7F4A_7C15 ^ salt
        x ^= x >> 29
        x = x &* 0xBF58_476D_1CE4_E5B9
        usleep(UInt32(x % 2000))
    }

    /// Every item's value (i, in every element) as the sink saw it, in arrival order.
    static func values(_ pipeline: Pipeline<Double>, _ mode: ExecutionMode, ordered: Bool,
                       buffer: Int = 2, monitor: PipelineMonitor? = nil) throws -> [Int] {
        try pipeline.run(mode, buffer: buffer, ordered: ordered, dealing: .dynamic, monitor: monitor,
                         into: [Int]()) { seen, x in
            let v = x[0, 0]
            #expect(x[x.rows - 1, x.cols - 1] == v)
            seen.append(Int(v))
        }.result
    }

    static func numbered(_ items: Int, replicas: Int) -> Pipeline<Double> {
        Pipeline(items: items, rows: 3, cols: 5, of: Double.self, replicas: replicas) { i, x in
            delay(i, salt: 1)
            x.withUnsafeMutableBufferPointer { $0.update(repeating: Double(i)) }
        }
    }

    static func check(_ seen: [Int], items: Int, ordered: Bool, _ comment: Comment) {
        if ordered {
            #expect(seen == Array(0..<items), comment)
        } else {
            #expect(seen.sorted() == Array(0..<items), comment)
        }
    }

    @Test(arguments: modes)
    func replicatedSourcesClaimEveryItemOnce(mode: ExecutionMode) throws {
        if PipelineTests.skipped(mode) { return }
        for replicas in 1...4 {
            for ordered in [true, false] {
                let before = Leftovers.sharedMemory()
                let monitor = PipelineMonitor()
                let seen = try Self.values(Self.numbered(40, replicas: replicas), mode, ordered: ordered, monitor: monitor)
                Self.check(seen, items: 40, ordered: ordered, "\(mode) source ×\(replicas) ordered \(ordered)")
                let children = monitor.stageProcessIDs
                #expect(Leftovers.unreaped(children).isEmpty)
                #expect(Leftovers.sharedMemory(since: before, children: children) == [])
            }
        }
    }

    @Test(arguments: modes)
    func aStageDealtFromOneReplicaTakesEachItemOnce(mode: ExecutionMode) throws {
        if PipelineTests.skipped(mode) { return }
        for replicas in 1...4 {
            // One source deals to `replicas` closure replicas (credits), which a kernel stage
            // of as many replicas follows (paired), merged by the sink.
            let pipeline = Self.numbered(36, replicas: 1)
                .stage("slow", replicas: replicas) { input, output in
                    Self.delay(Int(input[0, 0]), salt: 2)
                    output.withUnsafeMutableBufferPointer { out in
                        input.withUnsafeBufferPointer { out.baseAddress!.update(from: $0.baseAddress!, count: $0.count) }
                    }
                }
                .stage("k", [.add(0)], replicas: replicas)
            for ordered in [true, false] {
                let seen = try Self.values(pipeline, mode, ordered: ordered, buffer: 1)
                Self.check(seen, items: 36, ordered: ordered, "\(mode) dealt ×\(replicas) ordered \(ordered)")
            }
        }
    }

    @Test(arguments: modes)
    func aOneReplicaStageMergesBackIntoOrderBeforeDealingAgain(mode: ExecutionMode) throws {
        if PipelineTests.skipped(mode) { return }
        // source ×3 (claims) -> merge ×1 (must see items in order) -> dealt ×2 -> sink.
        let pipeline = Self.numbered(30, replicas: 3)
            .stage("merge") { input, output in
                output.withUnsafeMutableBufferPointer { out in
                    input.withUnsafeBufferPointer { out.baseAddress!.update(from: $0.baseAddress!, count: $0.count) }
                }
            }
            .stage("deal", replicas: 2) { input, output in
                Self.delay(Int(input[0, 0]), salt: 3)
                output.withUnsafeMutableBufferPointer { out in
                    input.withUnsafeBufferPointer { out.baseAddress!.update(from: $0.baseAddress!, count: $0.count) }
                }
            }
        for ordered in [true, false] {
            let seen = try Self.values(pipeline, mode, ordered: ordered, buffer: 1)
            Self.check(seen, items: 30, ordered: ordered, "\(mode) merge then deal, ordered \(ordered)")
        }
    }

    /// Item 0 cannot be written until item 2 has been: round-robin gives both to replica 0,
    /// which would wait for itself (the stall timeout stops it); dynamic dealing gives item 2
    /// to the replica that is free, and the run completes in order.
    @Test(arguments: modes)
    func aBlockedItemDoesNotHoldBackTheItemsBehindIt(mode: ExecutionMode) throws {
        if PipelineTests.skipped(mode) { return }
        for dealing in [Dealing.dynamic, .roundRobin] {
            let gate = PipeSemaphore()
            let pipeline = Pipeline(items: 6, rows: 2, cols: 2, of: Double.self, replicas: 2) { i, x in
                if i == 0 { guard gate.wait() else { throw NeverReleased() } }
                if i == 2 { gate.signal() }
                x.withUnsafeMutableBufferPointer { $0.update(repeating: Double(i)) }
            }
            let run = { try pipeline.run(mode, dealing: dealing, stallTimeout: .seconds(1), into: [Int]()) { $0.append(Int($1[0, 0])) } }
            if dealing == .dynamic {
                #expect(try run().result == Array(0..<6), "\(mode)")
            } else {
                #expect {
                    _ = try run()
                } throws: { error in
                    guard case let .stageStalled(stage, item, _) = error as? PipelineError else { return false }
                    return stage == "source" && item == 0
                }
                gate.signal()  // lets a detached thread (threads mode) finish
            }
        }
    }

    @Test func roundRobinAndDynamicGiveTheSameResult() throws {
        let pipeline = Pipeline(items: 50, rows: 20, cols: 30, of: Double.self, replicas: 2) { i, x in
            x.fillUniform(seed: 9, stream: UInt64(i))
        }.stage("h", [.square], replicas: 2).stage("g", [.multiply(3)], replicas: 2)
        func total(_ dealing: Dealing) throws -> Double {
            try pipeline.run(PipelineTests.underTSan ? .threads : .processes, dealing: dealing, into: 0.0) {
                $0 += $1.sum()
            }.result
        }
        #expect(try total(.dynamic) == total(.roundRobin))
    }

    @Test func anEdgeDynamicDealingCannotServeIsRefused() {
        let pipeline = Self.numbered(4, replicas: 2).stage("three", [.add(1)], replicas: 3)
        #expect {
            _ = try pipeline.run(.threads, dealing: .dynamic, into: 0) { _, _ in }
        } throws: { error in
            guard case let .invalidDefinition(message) = error as? PipelineError else { return false }
            return message.contains("'three' (3 replicas)") && message.contains("'source' (2 replicas)")
        }
        // Round-robin deals it as before.
        #expect(throws: Never.self) { _ = try pipeline.run(.threads, into: 0) { _, _ in } }
    }
}
