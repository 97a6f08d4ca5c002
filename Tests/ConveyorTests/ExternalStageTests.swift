@testable import Conveyor
import Foundation
import Testing

/// External stages (a C, Swift or Python program serving items through conveyor.h
/// section 10) and the spawned mode: the same results as closures, every failure of the
/// program reported by stage and item, and nothing left behind.
@Suite(.serialized) struct ExternalStageTests {
    static let modes = [ExecutionMode.threads, .processes]

    /// The directory the test runner and the stage programs were built into.
    static let products: URL = {
        let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        return URL(fileURLWithPath: exe ?? CommandLine.arguments[0]).deletingLastPathComponent()
    }()

    static func program(_ name: String) -> String { products.appendingPathComponent(name).path }
    static var kernelStage: String { program("conveyor-kernel-stage") }
    static var swiftStage: String { program("conveyor-swift-stage") }

    /// The question's pipeline; `h` and `f` as given, `g` a kernel stage.
    static func seed(items: Int, h: (Pipeline<Double>) -> Pipeline<Double>,
                     f: (Pipeline<Double>) -> Pipeline<Double>) -> Pipeline<Double> {
        let source = Pipeline(items: items, rows: 50, cols: 40, of: Double.self) { i, x in
            x.fillUniform(seed: 2016, stream: UInt64(i))
        }
        return f(h(source).stage("g", [.multiply(3)]))
    }

    static func allSwift(items: Int) throws -> Double {
        try seed(items: items, h: { $0.stage("h", [.square]) }, f: { $0.stage("f", [.add(1)]) })
            .run(.threads, into: 0.0) { $0 += $1.sum() }.result
    }

    /// `__KMP_REGISTERED_LIB_<pid>` entries new since `before` whose process is gone: what
    /// a program killed without its reaper removing the file would leave (a live or zombie
    /// process still holds its own).
    static func orphanedRegistrations(since before: Set<String>) -> [String] {
        Leftovers.sharedMemory().subtracting(before).filter { name in
            guard name.hasPrefix("__KMP_REGISTERED_LIB_"), let pid = Leftovers.owner(of: name) else { return false }
            return kill(pid, 0) == -1 && errno == ESRCH
        }.sorted()
    }

    /// Stage programs of this suite still running (any process whose executable is one of
    /// this build's): after a run, there must be none. The suite is serialized, and only it
    /// starts them.
    static func livePrograms() -> [String] {
        // By full path: programs of another checkout's tests on the same machine are not ours.
        let ours: Set<String> = [kernelStage, swiftStage]
        return Leftovers.entries(of: "/proc").compactMap { pid -> String? in
            guard Int32(pid) != nil,
                  let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe") else { return nil }
            return ours.contains(exe) ? "\(pid) \(exe)" : nil
        }
    }

    @Test(arguments: modes)
    func cAndSwiftProgramsInTheMiddleGiveTheAllSwiftChecksum(mode: ExecutionMode) throws {
        if PipelineTests.skipped(mode) { return }
        let before = Leftovers.sharedMemory()
        let mixed = Self.seed(items: 30, h: { $0.external("h", command: [Self.kernelStage, "square"]) },
                              f: { $0.external("f", command: [Self.swiftStage, "add", "1"], replicas: 2) })
        let inPlace = Self.seed(items: 30, h: { $0.external("h", command: [Self.kernelStage, "square"], inPlace: true) },
                                f: { $0.external("f", command: [Self.kernelStage, "add", "1"], replicas: 2, inPlace: true) })
        for (pipeline, dealing) in [(mixed, Dealing.roundRobin), (mixed, .dynamic), (inPlace, .roundRobin)] {
            let monitor = PipelineMonitor()
            let run = try pipeline.run(mode, dealing: dealing, monitor: monitor, into: 0.0) { $0 += $1.sum() }
            #expect(run.result == (try Self.allSwift(items: 30)), "\(mode) \(dealing)")
            #expect(run.stats.stages.map(\.name) == ["source", "h", "g", "f", "sink"])
            #expect(Leftovers.unreaped(monitor.stageProcessIDs).isEmpty)
            #expect(Self.livePrograms() == [])
            #expect(Leftovers.sharedMemory(since: before, children: monitor.stageProcessIDs) == [])
        }
        #expect(Self.orphanedRegistrations(since: before) == [])
    }

    /// The seed with a C stage and a Python stage in the middle: h in C (in place), g a
    /// Python program on `conveyor.serve_stage` (Tests/python/stage_programs/pystage.py,
    /// which multiplies by 3), f a kernel stage. It needs the Python package, so it runs
    /// when scripts/test-python sets CONVEYOR_PYTHON (its virtualenv's python) and
    /// CONVEYOR_PYTHON_STAGE (that script).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["CONVEYOR_PYTHON_STAGE"] != nil))
    func aCAndAPythonProgramInTheMiddleGiveTheAllSwiftChecksum() throws {
        let env = ProcessInfo.processInfo.environment
        let python = [env["CONVEYOR_PYTHON"] ?? "/usr/bin/python3", env["CONVEYOR_PYTHON_STAGE"]!]
        let mixed = Pipeline(items: 12, rows: 50, cols: 40, of: Double.self) { i, x in
            x.fillUniform(seed: 2016, stream: UInt64(i))
        }
        .external("h", command: [Self.kernelStage, "square"], inPlace: true)
        .external("g", command: python, replicas: 2)
        .stage("f", [.add(1)])
        for mode in [ExecutionMode.processes, .threads] {
            let run = try mixed.run(mode, dealing: .dynamic, into: 0.0) { $0 += $1.sum() }
            #expect(run.result == (try Self.allSwift(items: 12)), "\(mode)")
        }
    }

    /// How each way a program can go wrong is reported: (arguments, stage-failure check).
    static let failures: [(arguments: [String], expect: String)] = [
        (["square", "--fail-at", "3"], "asked to fail at item 3"),
        (["square", "--crash-at", "2"], "killed by signal 11"),
        (["square", "--exit-at", "2"], "exited with status 0"),
        (["square", "--expect", "f32"], "refused its contract"),
    ]

    @Test(arguments: modes)
    func aFailingProgramIsReportedByStageAndItemAndCleanedUp(mode: ExecutionMode) throws {
        if PipelineTests.skipped(mode) { return }
        let before = Leftovers.sharedMemory()
        for (arguments, expected) in Self.failures {
            let pipeline = Self.seed(items: 8, h: { $0.external("h", command: [Self.kernelStage] + arguments) },
                                     f: { $0.stage("f", [.add(1)]) })
            let monitor = PipelineMonitor()
            #expect {
                _ = try pipeline.run(mode, monitor: monitor, into: 0.0) { $0 += $1.sum() }
            } throws: { error in
                guard case let .stageFailed(stage, item, message) = error as? PipelineError else { return false }
                let item0 = arguments.count > 2 ? Int(arguments[2]) ?? -1 : -1
                return stage == "h" && message.contains(expected) && (item0 < 0 || item == item0)
            }
            #expect(Leftovers.unreaped(monitor.stageProcessIDs).isEmpty, "\(arguments)")
            #expect(Self.livePrograms() == [], "\(arguments)")
            #expect(Leftovers.sharedMemory(since: before, children: monitor.stageProcessIDs) == [], "\(arguments)")
        }
        #expect(Self.orphanedRegistrations(since: before) == [])
    }

    @Test(arguments: modes)
    func aHangingProgramIsStoppedByTheStallTimeout(mode: ExecutionMode) throws {
        if PipelineTests.skipped(mode) { return }
        let before = Leftovers.sharedMemory()
        // Item 3, so that the program's start (in item 0's time) never counts as the stall.
        let pipeline = Self.seed(items: 6, h: { $0.external("h", command: [Self.kernelStage, "square", "--hang-at", "3"]) },
                                 f: { $0.stage("f", [.add(1)]) })
        #expect {
            _ = try pipeline.run(mode, stallTimeout: .seconds(1), into: 0.0) { $0 += $1.sum() }
        } throws: { error in
            guard case let .stageStalled(stage, item, _) = error as? PipelineError else { return false }
            return stage == "h" && item == 3
        }
        #expect(Self.livePrograms() == [])
        #expect(Self.orphanedRegistrations(since: before) == [])
    }

    @Test func anInPlaceProgramMustOutputWhatItReads() {
        let pipeline = Self.seed(items: 3, h: { $0.external("h", command: [Self.kernelStage, "square"], cols: 7, inPlace: true) },
                                 f: { $0 })
        #expect {
            _ = try pipeline.run(.threads, into: 0.0) { $0 += $1.sum() }
        } throws: { error in
            guard case let .invalidDefinition(message) = error as? PipelineError else { return false }
            return message.contains("'h' works in place")
        }
        // And a program that does not accept in-place work refuses it: the Swift stage.
        let refused = Self.seed(items: 3, h: { $0.external("h", command: [Self.swiftStage, "square"], inPlace: true) },
                                f: { $0 })
        #expect {
            _ = try refused.run(.processes, into: 0.0) { $0 += $1.sum() }
        } throws: { error in
            guard case let .stageFailed(stage, _, message) = error as? PipelineError else { return false }
            return stage == "h" && message.contains("refused its contract")
        }
    }

    @Test func aProgramThatCannotStartIsReported() {
        let pipeline = Self.seed(items: 3, h: { $0.external("h", command: ["/nonexistent/stage"]) },
                                 f: { $0.stage("f", [.add(1)]) })
        #expect {
            _ = try pipeline.run(.threads, into: 0.0) { $0 += $1.sum() }
        } throws: { error in
            guard case let .stageFailed(stage, _, message) = error as? PipelineError else { return false }
            return stage == "h" && message.contains("/nonexistent/stage") && message.contains("No such file")
        }
    }

    @Test func aSwiftStageThatUsesDispatchAndATaskRunsInTheSpawnedMode() throws {
        let check = Process()
        check.executableURL = URL(fileURLWithPath: Self.program("conveyor-spawn-check"))
        check.arguments = ["20"]
        let out = Pipe()
        check.standardOutput = out
        try check.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        check.waitUntilExit()
        #expect(check.terminationStatus == 0, "\(text)")
        #expect(text.hasPrefix("spawned "), "\(text)")
        #expect(text.contains("stages in other processes"), "\(text)")
    }
}
