import ArgumentParser
import BenchBaselines
import CKernels
import Conveyor

#if canImport(Glibc)
import Glibc
#endif

/// `conveyor-bench ring`: hand-off latency and throughput of the ring across threads and
/// processes, spinning and blocking, beside a copying pipe, the copying push, this
/// machine's floors (a bare shared atomic word, a bare futex), the same ring driven
/// from Python through the `conveyor` package (ring-python: processes, 64 B and 8 MiB),
/// and the pipeline's transport pieces: index channels and wait-any (``ChannelBench``).
struct RingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ring",
        abstract: "Ring latency and throughput vs pipes, push and the machine's floors.")

    @Option(help: "Comma-separated payload sizes in bytes.")
    var payloads = "64,65536,8388608,67108864"
    @Option(help: "Round trips per latency measurement (fewer for copies of large payloads).")
    var roundTrips = 2000
    @Option(help: "Comma-separated scopes: threads, processes.") var scopes = "threads,processes"
    @Option(help: "Write the rows as a JSON array to this path.") var json: String?
    @Option(help: "Python with numpy and conveyor for the ring-python rows (default: \(PythonInterpreter.venv) if it exists, else python3).")
    var python: String?
    @Option(help: "The ring-python rows' script.") var pythonRingScript = "Benchmarks/python/ring_python.py"
    @Flag(help: "Run the two sides of every ping-pong and stream on two different CPUs (the first two this process may use), C and Python rows alike (default: wherever the kernel puts them).")
    var pin = false
    @Flag(help: "Measure only the channel and wait-any rows (64-bit words through index channels).")
    var channelsOnly = false

    func run() throws {
        let sizes = payloads.split(separator: ",").compactMap { Int($0) }
        guard !sizes.isEmpty, sizes.allSatisfy({ $0 >= 8 && $0 <= 1 << 30 }) else {
            throw ValidationError("--payloads must list sizes in 8...2^30 bytes")
        }
        let scopeList = try scopes.split(separator: ",").map { name -> Scope in
            guard let scope = Scope(rawValue: String(name)) else { throw ValidationError("unknown scope \(name)") }
            return scope
        }
        print("conveyor-bench ring: one-way latency = round trip / 2; throughput = one-way stream")
        print("machine: \(machineDescription())")
        if pin {
            let cpus = allowedCPUs()
            guard cpus.count >= 2 else { throw ValidationError("--pin needs two CPUs; this process may use \(cpus)") }
            print("the two sides of each measurement run on CPUs \(cpus[0]) and \(cpus[1]) (--pin)")
        }
        print("")
        let interpreter = PythonInterpreter.resolve(python)
        var pythonNote: String?
        if !scopeList.contains(.processes) {
            pythonNote = "no ring-python rows: they are measured in scope processes only"
        } else if PythonRing.payloads.isDisjoint(with: sizes) {
            pythonNote = "no ring-python rows: they are measured for payloads 64 and 8388608 only"
        } else if let why = PythonRing.unavailable(python: interpreter, script: pythonRingScript) {
            pythonNote = "no ring-python rows: \(why)"
        }
        var rows: [RingRow] = []
        let channels = ChannelBench(roundTrips: roundTrips, concurrently: { concurrently($0, other: $1, main: $2) })
        for scope in scopeList {
            rows.append(floor(scope: scope, futex: false))
            rows.append(floor(scope: scope, futex: true))
            rows += channels.rows(scope: scope)
            if channelsOnly { continue }
            for payload in sizes {
                for (mode, spin) in [("spin", UInt32.max), ("block", UInt32(0)),
                                     ("block", UInt32(RingConfiguration.defaultSpin))] {
                    rows.append(try ring(scope: scope, payload: payload, copy: false, mode: mode, spin: spin))
                }
                for (mode, spin) in [("spin", UInt32.max), ("block", UInt32(RingConfiguration.defaultSpin))] {
                    rows.append(try ring(scope: scope, payload: payload, copy: true, mode: mode, spin: spin))
                }
                rows.append(try pipe(scope: scope, payload: payload))
                if scope == .processes, pythonNote == nil, PythonRing.payloads.contains(payload) {
                    rows += try PythonRing.rows(python: interpreter, script: pythonRingScript, payload: payload,
                                                roundTrips: roundTrips, defaultSpin: RingConfiguration.defaultSpin,
                                                pin: pin)
                }
            }
        }
        if !channelsOnly { rows.append(idleConsumer()) }
        printRingTable(rows)
        if let pythonNote { print("\n" + pythonNote) }
        let targets = PythonRing.targetLines(rows)
        if !targets.isEmpty { print("\n" + targets.joined(separator: "\n")) }
        if let json {
            try writeJSON(rows, to: json)
            print("\nwrote \(rows.count) rows to \(json)")
        }
    }

    /// runConcurrently, with `main` on the first allowed CPU and `other` on the second
    /// under --pin (the calling thread's affinity is restored after).
    private func concurrently(_ scope: Scope, other: @escaping () -> Int32, main: () -> Void) -> Bool {
        guard pin, case let cpus = allowedCPUs(), cpus.count >= 2 else {
            return runConcurrently(scope, other: other, main: main)
        }
        var saved = cpu_set_t()
        _ = Affinity.get(0, MemoryLayout<cpu_set_t>.size, &saved)
        defer { _ = Affinity.set(0, MemoryLayout<cpu_set_t>.size, &saved) }
        pinCallingThread(to: cpus[0])
        let second = cpus[1]
        return runConcurrently(scope, other: { pinCallingThread(to: second); return other() }, main: main)
    }

    /// Round trips for a transport that moves `copiedBytes` per hop: about 2 s of copying.
    private func trips(copiedBytes: Int) -> Int {
        max(20, min(roundTrips, 2_000_000_000 / max(1, 2 * copiedBytes) / 8))
    }

    private func frames(copiedBytes: Int, spin: Bool) -> Int {
        max(20, min(spin ? 1_000_000 : 200_000, 4_000_000_000 / max(1, copiedBytes)))
    }

    private func floor(scope: Scope, futex: Bool) -> RingRow {
        let page = mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)!
        defer { munmap(page, 4096) }
        let word = page.bindMemory(to: UInt32.self, capacity: 1)
        let iters = futex ? roundTrips : roundTrips * 10
        var samples = [Double](repeating: 0, count: iters)
        let ok = concurrently(scope, other: {
            bench_floor_pong(word, UInt64(iters), futex ? 1 : 0)
            return 0
        }, main: {
            samples.withUnsafeMutableBufferPointer { bench_floor_ping(word, UInt64(iters), futex ? 1 : 0, $0.baseAddress) }
        })
        precondition(ok, "floor ping-pong failed")
        return RingRow(transport: futex ? "floor-futex" : "floor-atomic", scope: scope.rawValue,
                       mode: futex ? "block" : "spin", spinBudget: futex ? 0 : Int(UInt32.max), payloadBytes: 0,
                       p50Us: percentile(samples, 50) / 2, p99Us: percentile(samples, 99) / 2,
                       roundTrips: iters, framesPerS: 0, frames: 0, futexWaits: 0, futexWakes: 0)
    }

    private func makeRing(slots: UInt32, bytes: Int, spin: UInt32) -> (OpaquePointer, OpaquePointer) {
        var config = conveyor_ring_config()
        config.slot_count = slots
        config.slot_bytes = UInt64(bytes)
        config.spin = spin
        var p: OpaquePointer?, c: OpaquePointer?
        let status = conveyor_ring_create(&config, &p, &c)
        precondition(status == 0, "ring: \(String(cString: conveyor_status_message(status)))")
        return (p!, c!)
    }

    private func ring(scope: Scope, payload: Int, copy: Bool, mode: String, spin: UInt32) throws -> RingRow {
        let source = UnsafeMutableRawPointer.allocate(byteCount: payload, alignment: 64)
        defer { source.deallocate() }
        memset(source, 7, payload)
        let from: UnsafeRawPointer? = copy ? UnsafeRawPointer(source) : nil

        // Latency: ping on ring a, pong back on ring b.
        let (aP, aC) = makeRing(slots: 2, bytes: payload, spin: spin)
        let (bP, bC) = makeRing(slots: 2, bytes: payload, spin: spin)
        defer { [aP, aC, bP, bC].forEach { conveyor_ring_destroy($0) } }
        let iters = copy ? trips(copiedBytes: payload) : roundTrips
        var samples = [Double](repeating: 0, count: iters)
        var pingStatus: Int32 = 0
        let ok = concurrently(scope, other: {
            _ = conveyor_ring_claim(aC); _ = conveyor_ring_claim(bP)
            return bench_ring_pong(aC, bP, UInt64(payload), from, UInt64(iters))
        }, main: {
            pingStatus = samples.withUnsafeMutableBufferPointer {
                bench_ring_ping(aP, bC, UInt64(payload), from, UInt64(iters), $0.baseAddress)
            }
        })
        precondition(ok && pingStatus == 0, "ring ping-pong failed: \(pingStatus)")

        // Throughput: a one-way stream through a 4-slot ring.
        let (sP, sC) = makeRing(slots: 4, bytes: payload, spin: spin)
        defer { conveyor_ring_destroy(sP); conveyor_ring_destroy(sC) }
        let count = frames(copiedBytes: copy ? payload : 8, spin: mode == "spin")
        var received: UInt64 = 0
        let start = bench_now_ns()
        let streamed = concurrently(scope, other: {
            _ = conveyor_ring_claim(sP)
            return bench_ring_stream_produce(sP, UInt64(payload), from, UInt64(count))
        }, main: {
            _ = bench_ring_stream_consume(sC, &received)
        })
        let seconds = Double(bench_now_ns() - start) / 1e9
        precondition(streamed && received == UInt64(count), "ring stream lost frames")
        var stats = conveyor_ring_stats()
        _ = conveyor_ring_get_stats(sC, &stats)
        return RingRow(transport: copy ? "ring-push" : "ring", scope: scope.rawValue, mode: mode,
                       spinBudget: Int(spin), payloadBytes: payload,
                       p50Us: percentile(samples, 50) / 2, p99Us: percentile(samples, 99) / 2,
                       roundTrips: iters, framesPerS: Double(count) / seconds, frames: count,
                       futexWaits: Int(stats.producer_waits + stats.consumer_waits),
                       futexWakes: Int(stats.producer_wakes + stats.consumer_wakes))
    }

    private func pipe(scope: Scope, payload: Int) throws -> RingRow {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: payload, alignment: 64)
        let other = UnsafeMutableRawPointer.allocate(byteCount: payload, alignment: 64)
        defer { buffer.deallocate(); other.deallocate() }
        memset(buffer, 7, payload)
        var there: [Int32] = [0, 0], back: [Int32] = [0, 0]
        precondition(Glibc.pipe(&there) == 0 && Glibc.pipe(&back) == 0)
        let iters = trips(copiedBytes: payload)
        var samples = [Double](repeating: 0, count: iters)
        let (w1, r1, w2, r2) = (there[1], there[0], back[1], back[0])
        let ok = concurrently(scope, other: {
            bench_pipe_pong(r1, w2, other, UInt64(payload), UInt64(iters))
        }, main: {
            _ = samples.withUnsafeMutableBufferPointer {
                bench_pipe_ping(w1, r2, buffer, UInt64(payload), UInt64(iters), $0.baseAddress)
            }
        })
        precondition(ok, "pipe ping-pong failed")
        let count = frames(copiedBytes: payload, spin: false)
        let start = bench_now_ns()
        let streamed = concurrently(scope, other: {
            bench_pipe_stream_write(w1, other, UInt64(payload), UInt64(count))
        }, main: {
            _ = bench_pipe_stream_read(r1, buffer, UInt64(payload), UInt64(count))
        })
        let seconds = Double(bench_now_ns() - start) / 1e9
        precondition(streamed, "pipe stream failed")
        [w1, r1, w2, r2].forEach { close($0) }
        return RingRow(transport: "pipe", scope: scope.rawValue, mode: "block", spinBudget: 0,
                       payloadBytes: payload, p50Us: percentile(samples, 50) / 2,
                       p99Us: percentile(samples, 99) / 2, roundTrips: iters,
                       framesPerS: Double(count) / seconds, frames: count, futexWaits: 0, futexWakes: 0)
    }

    /// CPU time of a consumer thread blocked 1 s in receive on an empty ring (default spin).
    private func idleConsumer() -> RingRow {
        let (p, c) = makeRing(slots: 2, bytes: 64, spin: UInt32(RingConfiguration.defaultSpin))
        defer { conveyor_ring_destroy(p); conveyor_ring_destroy(c) }
        var cpuSeconds = 0.0, wallSeconds = 0.0
        _ = runConcurrently(.threads, other: {
            let cpuBefore = bench_thread_cpu_seconds()
            let start = bench_now_ns()
            var data: UnsafeRawPointer?
            var info = conveyor_frame_info()
            let status = conveyor_ring_receive(c, 1_000_000_000, &data, &info)
            wallSeconds = Double(bench_now_ns() - start) / 1e9
            cpuSeconds = bench_thread_cpu_seconds() - cpuBefore
            return status == Int32(CONVEYOR_E_TIMEOUT.rawValue) ? 0 : 1
        }, main: {})
        var stats = conveyor_ring_stats()
        _ = conveyor_ring_get_stats(c, &stats)
        return RingRow(transport: "ring-idle", scope: "threads", mode: "block", spinBudget: RingConfiguration.defaultSpin,
                       payloadBytes: 0, p50Us: 0, p99Us: 0, roundTrips: 0, framesPerS: 0, frames: 0,
                       futexWaits: Int(stats.consumer_waits), futexWakes: 0,
                       idleCpuPercent: 100 * cpuSeconds / max(wallSeconds, 1e-9))
    }
}

/// glibc's sched_getaffinity and sched_setaffinity (declared only under _GNU_SOURCE, so
/// not imported into Swift), looked up once.
enum Affinity {
    typealias Call = @convention(c) (pid_t, Int, UnsafeMutableRawPointer?) -> Int32
    static let get = lookup("sched_getaffinity")
    static let set = lookup("sched_setaffinity")
    private static func lookup(_ name: String) -> Call {
        guard let symbol = dlsym(nil, name) else { return { _, _, _ in -1 } }
        return unsafeBitCast(symbol, to: Call.self)
    }
}

/// The CPUs the calling thread may run on, in increasing order.
func allowedCPUs() -> [Int] {
    var set = cpu_set_t()
    guard Affinity.get(0, MemoryLayout<cpu_set_t>.size, &set) == 0 else { return [] }
    return withUnsafeBytes(of: &set) { raw in (0..<raw.count * 8).filter { raw[$0 / 8] & (1 << ($0 % 8)) != 0 } }
}

/// Keeps the calling thread (in a forked child: the process) on CPU `cpu`.
func pinCallingThread(to cpu: Int) {
    var set = cpu_set_t()
    withUnsafeMutableBytes(of: &set) { $0[cpu / 8] |= UInt8(1 << (cpu % 8)) }
    _ = Affinity.set(0, MemoryLayout<cpu_set_t>.size, &set)
}
