import CKernels
import Conveyor
import Foundation
import Testing

/// Tests that change or depend on the process-wide thread settings run one at a time in
/// this suite, and restore the settings after each test.
@Suite(.serialized) struct ThreadSettingsTests {
    /// Runs body with the given settings, then restores the previous ones.
    private func with(threads: Int, threshold: Int, _ body: () -> Void) {
        let savedThreads = Kernels.threads, savedThreshold = Kernels.parallelThreshold
        defer {
            try? Kernels.setThreads(savedThreads)
            Kernels.parallelThreshold = savedThreshold
        }
        try? Kernels.setThreads(threads)
        Kernels.parallelThreshold = threshold
        body()
    }

    private var threadCounts: [Int] { Kernels.hasOpenMP ? [1, 2] : [1] }

    @Test func threadCountValidation() throws {
        let saved = Kernels.threads
        defer { try? Kernels.setThreads(saved) }
        #expect(throws: ConveyorError.invalidArgument) { try Kernels.setThreads(0) }
        #expect(throws: ConveyorError.invalidArgument) { try Kernels.setThreads(257) }
        #expect(throws: ConveyorError.invalidArgument) { try Kernels.setThreads(Int.max) }
        try Kernels.setThreads(1)
        #expect(Kernels.threads == 1)
        if Kernels.hasOpenMP {
            try Kernels.setThreads(2)
            #expect(Kernels.threads == 2)
        } else {
            #expect(throws: ConveyorError.unsupported) { try Kernels.setThreads(2) }
            #expect(Kernels.threads == 1)
        }
        #expect(conveyor_set_threads(-1) == Int32(CONVEYOR_E_INVALID_ARGUMENT.rawValue))
    }

    @Test func threadLocalOverrideLeavesTheProcessSettingAlone() async throws {
        let process = Kernels.threads
        #expect(conveyor_set_threads_local(1) == 0)
        #expect(Kernels.threads == 1)
        let seenElsewhere = Thread.detachNewThreadWithResult { Int(conveyor_get_threads()) }
        #expect(conveyor_set_threads_local(0) == 0)
        #expect(Kernels.threads == process)
        #expect(conveyor_set_threads_local(-1) == Int32(CONVEYOR_E_INVALID_ARGUMENT.rawValue))
        #expect(conveyor_set_threads_local(257) == Int32(CONVEYOR_E_INVALID_ARGUMENT.rawValue))
        if !Kernels.hasOpenMP { #expect(conveyor_set_threads_local(2) == Int32(CONVEYOR_E_UNSUPPORTED.rawValue)) }
        #expect(try await seenElsewhere.value == process, "another thread saw this thread's override")
    }

    @Test func thresholdRoundTrips() {
        let saved = Kernels.parallelThreshold
        defer { Kernels.parallelThreshold = saved }
        #expect(saved == Int(CONVEYOR_DEFAULT_PARALLEL_THRESHOLD))
        Kernels.parallelThreshold = 0
        #expect(Kernels.parallelThreshold == 0)
        Kernels.parallelThreshold = -5
        #expect(Kernels.parallelThreshold == 0)
    }

    /// Thread count 1 vs 2, and serial vs forced-parallel regions: same values.
    @Test func uniformIsIdenticalAcrossThreadCountsAndChunkings() {
        var results: [[Double]] = []
        var floats: [[Float]] = []
        for threads in threadCounts {
            for threshold in [0, Int.max] {
                with(threads: threads, threshold: threshold) {
                    var d = [Double](repeating: 0, count: 300_007)
                    var f = [Float](repeating: 0, count: 300_007)
                    d.withUnsafeMutableBufferPointer { _ = Double.fill($0.baseAddress, $0.count, seed: 8, stream: 1, first: 5) }
                    f.withUnsafeMutableBufferPointer { _ = Float.fill($0.baseAddress, $0.count, seed: 8, stream: 1, first: 5) }
                    results.append(d)
                    floats.append(f)
                }
            }
        }
        #expect(results.allSatisfy { $0 == results[0] })
        #expect(floats.allSatisfy { $0 == floats[0] })
    }

    @Test func elementwiseIsIdenticalAcrossThreadCounts() throws {
        let x = try Matrix<Double>.uniform(rows: 999, cols: 1001, seed: 3)
        var outputs: [Matrix<Double>] = []
        for threads in threadCounts {
            for threshold in [0, Int.max] {
                with(threads: threads, threshold: threshold) {
                    outputs.append(try! x.applying([.square, .multiply(3), .add(1)]))
                }
            }
        }
        #expect(outputs.allSatisfy { $0 == outputs[0] })
    }

    /// The sum's chunking depends on the thread count only: whether the region runs in
    /// parallel (threshold) and where the array lives must not change a bit.
    @Test func sumIsDeterministicForAGivenThreadCount() {
        let values = SumTests.illConditioned(Double.self, count: 1_000_003, seed: 77)
        for threads in threadCounts {
            var bits: Set<UInt64> = []
            for threshold in [0, Int(CONVEYOR_DEFAULT_PARALLEL_THRESHOLD), Int.max] {
                with(threads: threads, threshold: threshold) {
                    bits.insert(SumTests.conveyorSum(values).bitPattern)
                    withUnalignedBuffer(values.count) { (shifted: UnsafeMutableBufferPointer<Double>) in
                        _ = shifted.update(from: values)
                        var r = 0.0
                        #expect(Double.sum(shifted.baseAddress, shifted.count, &r) == 0)
                        bits.insert(r.bitPattern)
                    }
                }
            }
            #expect(bits.count == 1, "threads \(threads): \(bits.count) different results")
        }
    }
}
