import BenchBaselines
import CKernels
import Conveyor

/// The `channel` and `wait-any` rows of `conveyor-bench ring`: 64-bit words (slot
/// numbers, as the pipeline sends them) through the C core's index channels.
///
/// - `channel`: one lane, received with `conveyor_channel_receive`: the plain SPSC index
///   channel, beside the ring's 64 B rows.
/// - `wait-any` with N = 1, 4, 16 lanes: the pinger sends round i on lane i % N, the
///   ponger sleeps in `conveyor_channel_receive_any` over all N, so every word arrives on
///   another lane than the last; the stream spreads its words over the N lanes the same
///   way. What N adds over N = 1 is the cost of looking at more lanes.
///
/// Replies go back on a one-lane channel. Each measurement uses fresh channels.
struct ChannelBench {
    let roundTrips: Int
    let concurrently: (Scope, @escaping () -> Int32, () -> Void) -> Bool

    /// The lane counts of the wait-any rows.
    static let waitAnyLanes: [UInt32] = [1, 4, 16]

    func rows(scope: Scope) -> [RingRow] {
        var rows: [RingRow] = []
        for (mode, spin) in [("spin", UInt32.max), ("block", UInt32(0)), ("block", UInt32(RingConfiguration.defaultSpin))] {
            rows.append(measure(scope: scope, lanes: 1, any: false, mode: mode, spin: spin))
        }
        for lanes in Self.waitAnyLanes {
            for (mode, spin) in [("spin", UInt32.max), ("block", UInt32(RingConfiguration.defaultSpin))] {
                rows.append(measure(scope: scope, lanes: lanes, any: true, mode: mode, spin: spin))
            }
        }
        return rows
    }

    /// A channel of `lanes` lanes and `capacity` words per lane: its receiver and one
    /// sender per lane (the holder is destroyed at once: the ends keep the mapping).
    private func channel(lanes: UInt32, capacity: UInt32, spin: UInt32) -> (receiver: OpaquePointer, senders: [OpaquePointer?]) {
        var config = conveyor_channel_config()
        config.lanes = lanes
        config.capacity = capacity
        config.spin = spin
        var holder: OpaquePointer?
        check(conveyor_channel_create(&config, &holder), "create")
        defer { conveyor_channel_destroy(holder) }
        var receiver: OpaquePointer?
        check(conveyor_channel_open(holder, Int32(CONVEYOR_CHANNEL_RECEIVER.rawValue), 0, &receiver), "open receiver")
        var senders: [OpaquePointer?] = []
        for lane in 0..<lanes {
            var sender: OpaquePointer?
            check(conveyor_channel_open(holder, Int32(CONVEYOR_CHANNEL_SENDER.rawValue), lane, &sender), "open sender")
            senders.append(sender)
        }
        return (receiver!, senders)
    }

    private func check(_ status: Int32, _ what: String) {
        precondition(status == 0, "channel \(what): \(String(cString: conveyor_status_name(status)))")
    }

    private func measure(scope: Scope, lanes: UInt32, any: Bool, mode: String, spin: UInt32) -> RingRow {
        // Latency: ping on `there` (lane i % N), pong back on `back`.
        let there = channel(lanes: lanes, capacity: 2, spin: spin)
        let back = channel(lanes: 1, capacity: 2, spin: spin)
        defer { ([there.receiver, back.receiver] + there.senders + back.senders).forEach { conveyor_channel_destroy($0) } }
        var samples = [Double](repeating: 0, count: roundTrips)
        var pingStatus: Int32 = 0
        let (pongReceiver, pongReply) = (there.receiver, back.senders[0])
        let iters = roundTrips
        let ok = concurrently(scope, {
            guard conveyor_channel_claim(pongReceiver) == 0, conveyor_channel_claim(pongReply) == 0 else { return 1 }
            return bench_channel_pong(pongReceiver, any ? 1 : 0, pongReply, UInt64(iters))
        }, {
            pingStatus = there.senders.withUnsafeBufferPointer { senders in
                samples.withUnsafeMutableBufferPointer {
                    bench_channel_ping(senders.baseAddress, lanes, back.receiver, UInt64(iters), $0.baseAddress)
                }
            }
        })
        precondition(ok && pingStatus == 0, "channel ping-pong failed: \(pingStatus)")

        // Throughput: a one-way stream of words 1...count over the lanes, 64 words a lane.
        let stream = channel(lanes: lanes, capacity: 64, spin: spin)
        defer { ([stream.receiver] + stream.senders).forEach { conveyor_channel_destroy($0) } }
        let count = mode == "spin" ? 4_000_000 : 1_000_000
        var received: UInt64 = 0, sum: UInt64 = 0
        let senders = stream.senders
        let start = bench_now_ns()
        let streamed = concurrently(scope, {
            for sender in senders where conveyor_channel_claim(sender) != 0 { return 1 }
            return senders.withUnsafeBufferPointer { bench_channel_stream_send($0.baseAddress, lanes, UInt64(count)) }
        }, {
            let status = bench_channel_stream_receive(stream.receiver, any ? 1 : 0, &received, &sum)
            precondition(status == 0, "channel stream: \(String(cString: conveyor_status_name(status)))")
        })
        let seconds = Double(bench_now_ns() - start) / 1e9
        let expectedSum = UInt64(count) * UInt64(count + 1) / 2
        precondition(streamed && received == UInt64(count) && sum == expectedSum, "channel stream lost or changed words")
        var stats = conveyor_channel_stats()
        check(conveyor_channel_read_stats(stream.receiver, &stats, MemoryLayout<conveyor_channel_stats>.size), "stats")
        return RingRow(transport: any ? "wait-any" : "channel", scope: scope.rawValue, mode: mode,
                       spinBudget: Int(spin), payloadBytes: 8,
                       p50Us: percentile(samples, 50) / 2, p99Us: percentile(samples, 99) / 2,
                       roundTrips: iters, framesPerS: Double(count) / seconds, frames: count,
                       futexWaits: Int(stats.sender_waits + stats.receiver_waits),
                       futexWakes: Int(stats.sender_wakes + stats.receiver_wakes), lanes: Int(lanes))
    }
}
