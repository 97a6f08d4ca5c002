import Conveyor
import Foundation
import Synchronization
import Testing

/// The pipeline's optional features: stages that change the dtype, the order-free merge,
/// live statistics, and the errors for stages that misuse their slots.
@Suite(.serialized) struct PipelineFeatureTests {
    static let modes = [ExecutionMode.threads, .processes]
    static func skipped(_ mode: ExecutionMode) -> Bool { PipelineTests.skipped(mode) }

    /// A source whose item i is filled with the value i: the sink can tell items apart.
    static func numbered(items: Int, rows: Int = 4, cols: Int = 6, replicas: Int = 1) -> Pipeline<Double> {
        Pipeline(items: items, rows: rows, cols: cols, of: Double.self, replicas: replicas) { i, x in fill(&x, with: i) }
    }

    static func fill(_ x: inout Matrix<Double>, with i: Int) {
        x.withUnsafeMutableBufferPointer { $0.update(repeating: Double(i)) }
    }

    @Test(arguments: modes)
    func aStageMayChangeTheDtypeAndShape(mode: ExecutionMode) throws {
        if Self.skipped(mode) { return }
        let items = 20
        // f64 source -> h (f64 kernel) -> narrow to f32 and keep the first 3 columns ->
        // g+f (f32 kernels) -> widen back to f64 as one row.
        let pipeline = Pipeline(items: items, rows: 5, cols: 8, of: Double.self) { i, x in
            x.fillUniform(seed: 7, stream: UInt64(i))
        }
        .stage("h", [.square])
        .stage("narrow", cols: 3, as: Float.self) { input, output in
            for r in 0..<input.rows { for c in 0..<3 { output[r, c] = Float(input[r, c]) } }
        }
        .stage("g", [.multiply(3)])
        .stage("f", [.add(1)])
        .stage("widen", rows: 1, cols: 15, as: Double.self) { input, output in
            for r in 0..<input.rows { for c in 0..<3 { output[0, r * 3 + c] = Double(input[r, c]) } }
        }
        #expect(pipeline.outputShape == Shape(rows: 1, cols: 15))
        let expected = try (0..<items).map { i -> [Double] in
            let x = try Matrix<Double>.uniform(rows: 5, cols: 8, seed: 7, stream: UInt64(i))
            return (0..<5).flatMap { r in (0..<3).map { c in Double(Float(x[r, c] * x[r, c]) * 3 + 1) } }
        }
        for fusion in [true, false] {
            let run = try pipeline.run(mode, buffer: 2, fusion: fusion, into: [[Double]]()) { rows, x in
                rows.append((0..<15).map { x[0, $0] })
            }
            #expect(run.result == expected, "\(mode) fusion \(fusion)")
            // g and f run on f32 and fuse; h cannot fuse across the dtype change.
            let names = run.stats.stages.map(\.name)
            #expect(names == (fusion ? ["source", "h", "narrow", "g+f", "widen", "sink"]
                                     : ["source", "h", "narrow", "g", "f", "widen", "sink"]))
        }
    }

    @Test(arguments: modes)
    func orderFreeMergeDoesNotWaitForASlowItem(mode: ExecutionMode) throws {
        if Self.skipped(mode) { return }
        let items = 24
        for ordered in [true, false] {
            // Item 0 (replica 0 of every node) is held until the items of replica 1 have
            // gone ahead: in order, until replica 1 has started item 5 (its three slots'
            // worth); order-free, until the sink has received every odd item. The hold is
            // an event, a pipe the stage waits on (the stage may be a forked process).
            let release = PipeSemaphore()
            let pipeline = Self.numbered(items: items, replicas: 2)
                .stage("slow-at-0", replicas: 2) { input, output in
                    let item = Int(input[0, 0])
                    if item == 0 { guard release.wait() else { throw NeverReleased() } }
                    if ordered, item == 5 { release.signal() }
                    output = input
                }
            let run = try pipeline.run(mode, buffer: 3, ordered: ordered, stallTimeout: nil, into: [Int]()) { seen, x in
                seen.append(Int(x[0, 0]))
                if !ordered, seen.count == items / 2, seen.allSatisfy({ $0 % 2 == 1 }) { release.signal() }
            }
            #expect(run.result.sorted() == Array(0..<items), "every item exactly once, ordered: \(ordered)")
            if ordered {
                #expect(run.result == Array(0..<items))
            } else {
                // The odd items did not wait behind item 0: all of them arrived while it was
                // held (the even ones stall behind it once its 3 slots are taken). Had they
                // waited, item 0 would never have been released: the run would have failed.
                #expect(run.result.prefix(items / 2).allSatisfy { $0 % 2 == 1 }, "\(run.result)")
            }
        }
    }

    @Test(arguments: modes)
    func orderFreeMergeKeepsEveryItemThroughMixedStages(mode: ExecutionMode) throws {
        if Self.skipped(mode) { return }
        let items = 300
        let pipeline = Pipeline(items: items, rows: 6, cols: 5, of: Double.self, replicas: 2) { i, x in
            Self.fill(&x, with: i)
            if i % 7 == 0 { usleep(500) }  // uneven work, so replicas finish out of step
        }
        .stage("plus", [.add(1)], replicas: 3)
        .stage("first-row", rows: 1, replicas: 2) { input, output in
            if Int(input[0, 0]) % 5 == 0 { usleep(300) }
            for c in 0..<input.cols { output[0, c] = input[0, c] }
        }
        .stage("times", [.multiply(2)], replicas: 3)
        for buffer in [1, 3] {
            let run = try pipeline.run(mode, buffer: buffer, ordered: false, into: [Int]()) { seen, x in
                seen.append(Int(x[0, 4]))
            }
            #expect(run.result.sorted() == (0..<items).map { ($0 + 1) * 2 }, "buffer \(buffer)")
        }
    }

    @Test(arguments: modes)
    func aMonitorReadsStatsDuringTheRun(mode: ExecutionMode) async throws {
        if Self.skipped(mode) { return }
        let items = 60, held = 30
        let monitor = PipelineMonitor()
        #expect(monitor.stats == nil)
        // The stage holds item `held` until the test has taken its snapshot, so the run is
        // midway when it does, however the threads are scheduled. (Polling the monitor
        // every 10 ms missed the whole run under ThreadSanitizer: the polling task waited
        // seconds for a cooperative thread while other suites' tests held both.)
        let release = PipeSemaphore()
        let pipeline = Self.numbered(items: items).stage("held") { input, output in
            if input[0, 0] == Double(held) { guard release.wait() else { throw NeverReleased() } }
            output = input
        }
        // The sink tells the test when it has reduced every item before the held one.
        let (reached, reachedHeld) = AsyncStream<Void>.makeStream()
        let task = Task {
            defer { reachedHeld.finish() }  // a run that ends early ends the wait too
            return try await pipeline.run(mode, monitor: monitor, stallTimeout: nil, into: 0) { n, _ in
                n += 1
                if n == held { reachedHeld.yield() }
            }
        }
        var events = reached.makeAsyncIterator()
        let arrived = await events.next() != nil
        let midway = monitor.stats
        release.signal()
        let run = try await task.value
        #expect(arrived, "the run ended before its sink reached item \(held)")
        let live = try #require(midway)
        #expect(live.stages.map(\.name) == ["source", "held", "sink"])
        // The stage has passed on items 0..<held and holds item `held`; the sink has reduced
        // them all (its counter may not yet show the last one).
        #expect((held - 1...held).contains(live.stages[1].items), "\(live.stages.map(\.items))")
        #expect((held - 1...held).contains(live.stages[2].items), "\(live.stages.map(\.items))")
        let final = try #require(monitor.stats)
        #expect(final.stages.map(\.items) == run.stats.stages.map(\.items))
        #expect(run.stats.stages.allSatisfy { $0.items == items })
    }

    @Test(arguments: modes)
    func replacingAnOutputWithAnotherShapeFailsTheStage(mode: ExecutionMode) {
        if Self.skipped(mode) { return }
        let pipeline = Self.numbered(items: 5).stage("reshape") { input, output in
            if input[0, 0] == 3 { output = try Matrix(rows: 2, cols: 2, repeating: 1) } else { output = input }
        }
        #expect {
            _ = try pipeline.run(mode, into: 0) { n, _ in n += 1 }
        } throws: { error in
            guard case let .stageFailed(stage, item, message) = error as? PipelineError else { return false }
            return stage == "reshape" && item == 3 && message.contains("2x2")
        }
    }

    @Test(arguments: modes)
    func aStalledStageStopsTheRunInsteadOfHangingIt(mode: ExecutionMode) {
        if Self.skipped(mode) { return }
        // Item 2 is stuck (a stand-in for a deadlock) until the test releases it, which it
        // does only after the run has returned: a run that waited for the stage would never
        // return (until the stage's no-hang guard, which fails the stage instead). The
        // watchdog allows 1 s, far more than any other item takes even under TSan.
        let release = PipeSemaphore()
        let pipeline = Self.numbered(items: 8).stage("stuck") { input, output in
            if input[0, 0] == 2 { guard release.wait() else { throw NeverReleased() } }
            output = input
        }
        #expect {
            _ = try pipeline.run(mode, stallTimeout: .seconds(1), into: 0) { n, _ in n += 1 }
        } throws: { error in
            guard case let .stageStalled(stage, item, seconds) = error as? PipelineError else { return false }
            return stage == "stuck" && item == 2 && seconds >= 1
        }
        release.signal()  // threads mode: the detached stage thread finishes its item and leaves
    }

    @Test(.disabled(if: PipelineTests.underTSan, "fork under ThreadSanitizer"))
    func aForkedStageThatUsesDispatchFinishesOrIsReportedNeverHangs() {
        // Against the rules (toolchain.md: such a child hung 5 times out of 5 while the
        // parent's Dispatch threads were busy). Whatever happens, the run must end.
        let busy = DispatchQueue(label: "busy", attributes: .concurrent)
        for _ in 0..<4 { busy.async { let end = Date() + 1; while Date() < end {} } }
        let pipeline = Self.numbered(items: 4).stage("dispatch") { input, output in
            DispatchQueue.global().sync { output = input }
        }
        let clock = ContinuousClock(), start = clock.now
        do {
            let run = try pipeline.run(.processes, stallTimeout: .seconds(1), into: 0) { n, _ in n += 1 }
            #expect(run.result == 4)
        } catch {
            guard case .stageStalled(stage: "dispatch", _, _) = error else {
                Issue.record("unexpected \(error)")
                return
            }
        }
        // Only a hang guard: the watchdog stops a stuck stage after 1 s.
        #expect(clock.now - start < NoHang.limit)
    }

    @Test func aKernelOperandOfAnotherShapeIsRejected() throws {
        let operand = try Matrix<Double>(rows: 2, cols: 2, repeating: 1)
        let pipeline = Self.numbered(items: 3).stage("add", [.addMatrix(operand)])
        #expect {
            _ = try pipeline.run(into: 0) { n, _ in n += 1 }
        } throws: { error in
            guard case let .invalidDefinition(message) = error as? PipelineError else { return false }
            return message.contains("'add'") && message.contains("2x2")
        }
        // The right shape runs, and the operand is applied to every item.
        let good = try Matrix<Double>(rows: 4, cols: 6, repeating: 0.5)
        let run = try Self.numbered(items: 3).stage("add", [.addMatrix(good)])
            .run(into: [Double]()) { firsts, x in firsts.append(x[3, 5]) }
        #expect(run.result == [0.5, 1.5, 2.5])
    }
}
