#if MPI
import ArgumentParser
import Conveyor
import Foundation
import MPIBench

/// `conveyor-bench mpi` (trait MPI; started under mpirun by `scripts/bench mpi`): the
/// bridge against MPI's own floor, and the question's pipeline across ranks beside the
/// same pipeline on one machine.
///   --part ping (2 ranks)  rows mpi-bridge and mpi-floor per payload, interleaved in blocks
///   --part seed (4 ranks)  rows pipeline-ranks (h, g, f on ranks 1-3) and pipeline-local
/// `--btl` only labels the rows: mpirun's `--mca btl` chooses the transport.
struct MPICommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mpi", abstract: "MPI bridge vs bare MPI, and the seed pipeline across ranks (run under mpirun).")

    @Option(help: "ping (2 ranks) or seed (4 ranks).") var part = "ping"
    @Option(help: "The transport mpirun was given, for the rows: sm or tcp.") var btl = "sm"
    @Option(help: "Comma-separated payload sizes in bytes (ping).") var payloads = "65536,8388608,67108864"
    @Option(help: "Interleaved blocks of floor and bridge rounds (ping), or of local and ranks runs (seed).")
    var blocks = 5
    @Option(help: "Items of the seed pipeline per run.") var samples = 100
    @Option(help: "Bridge chunk size in bytes.") var chunkBytes = 4 << 20
    @Option(help: "Write the rows as a JSON array to this path (rank 0).") var json: String?

    func run() throws {
        try MPIJob.start()
        let rank = MPIJob.rank
        if rank == 0 { print("machine: \(machineDescription()); \(MPIJob.size) ranks, btl \(btl)") }
        switch part {
        case "ping":
            guard MPIJob.size == 2 else { throw ValidationError("--part ping runs on 2 ranks (mpirun -n 2)") }
            let rows = try ping(rank: rank)
            if rank == 0, let json { try writeJSON(rows, to: json) }
        case "seed":
            guard MPIJob.size == 4 else { throw ValidationError("--part seed runs on 4 ranks (mpirun -n 4)") }
            let rows = try seed(rank: rank)
            if rank == 0, let json { try writeJSON(rows, to: json) }
        default:
            throw ValidationError("--part is ping or seed")
        }
        MPIJob.finish()
    }

    /// Rounds per block and variant: 8 × (8 MiB / payload), within 10...400 (400 of 64 KiB,
    /// 10 of 8 MiB or 64 MiB).
    private func rounds(_ bytes: Int) -> Int { max(10, min(400, 40 * (8 << 20) / max(bytes, 1) / 5)) }

    private func ping(rank: Int) throws -> [MPIPingRow] {
        let sizes = payloads.split(separator: ",").compactMap { Int($0) }
        guard !sizes.isEmpty, sizes.allSatisfy({ $0 >= 0 && $0 < 1 << 31 }) else {
            throw ValidationError("--payloads must list sizes in 0..<2^31 bytes")
        }
        var rows: [MPIPingRow] = []
        for bytes in sizes {
            let n = rounds(bytes)
            let names = ["mpi-floor", "mpi-link", "mpi-bridge", "mpi-floor-shm"]
            var samples: [[Double]] = [[], [], [], []]
            let peer = 1 - Int32(rank), sending: Int32 = rank == 0 ? 1 : 0, chunk = UInt64(chunkBytes)
            for block in 0..<blocks {
                // Rotate which variant goes first, so none always gets the warmer machine.
                for step in 0..<names.count {
                    let variant = (step + block) % names.count
                    var us = [Double](repeating: 0, count: n)
                    _ = cvb_mpi_barrier()
                    let status = switch variant {
                    case 0: cvb_mpi_floor(UInt64(bytes), Int32(n), 2, peer, sending, 0, &us)
                    case 3: cvb_mpi_floor(UInt64(bytes), Int32(n), 2, peer, sending, 1, &us)
                    case 1: cvb_mpi_link(UInt64(bytes), Int32(n), 2, peer, sending, chunk, &us)
                    default: cvb_mpi_bridge(UInt64(bytes), Int32(n), 2, peer, sending, chunk, &us)
                    }
                    guard status == 0 else { throw ValidationError("rank \(rank): the \(names[variant]) loop failed with status \(status)") }
                    samples[variant] += us
                }
            }
            guard rank == 0 else { continue }
            let r = names.indices.map { MPIPingRow(transport: names[$0], btl: btl, bytes: bytes, samples: samples[$0]) }
            rows += r
            print("\(btl) \(bytes) B, p50 us (GB/s): floor \(fmt(r[0].p50Us)) (\(fmt(r[0].gbPerS))), link \(fmt(r[1].p50Us)) "
                + "(\(fmt(r[1].gbPerS))), bridge \(fmt(r[2].p50Us)) (\(fmt(r[2].gbPerS))); bridge/floor "
                + "\(fmt(r[2].p50Us / r[0].p50Us)), link/floor \(fmt(r[1].p50Us / r[0].p50Us)); "
                + "floor from shared memory \(fmt(r[3].p50Us)) (/floor \(fmt(r[3].p50Us / r[0].p50Us))); \(samples[0].count) rounds each")
        }
        return rows
    }

    private func seed(rank: Int) throws -> [MPISeedRow] {
        let rows = 500, cols = 2000, items = samples
        func pipeline(placed: Bool) -> Pipeline<Double> {
            Pipeline(items: items, rows: rows, cols: cols, of: Double.self) { i, x in x.fillUniform(seed: 2016, stream: UInt64(i)) }
                .stage("h", [.square], on: placed ? .rank(1) : nil)
                .stage("g", [.multiply(3)], on: placed ? .rank(2) : nil)
                .stage("f", [.add(1)], on: placed ? .rank(3) : nil)
        }
        var local: [Double] = [], across: [Double] = [], last: RanksRun<Double>?
        for _ in 0..<blocks {
            if rank == 0 {
                let start = ContinuousClock.now
                _ = try pipeline(placed: false).run(.threads, progress: .never, into: 0.0) { $0 += $1.sum() }
                local.append(milliseconds(ContinuousClock.now - start) / Double(items))
            }
            let start = ContinuousClock.now
            let run = try pipeline(placed: true).runAcrossRanks(.threads, link: LinkOptions(chunkBytes: chunkBytes),
                                                                into: 0.0) { $0 += $1.sum() }
            across.append(milliseconds(ContinuousClock.now - start) / Double(items))
            last = run
        }
        guard rank == 0, let last else { return [] }
        let links = last.ranks.flatMap { r in r.links.filter { $0.from == r.rank } }.map {
            MPISeedRow.Link(from: $0.from, to: $0.to, bytes: $0.bytes, blockedS: $0.blockedSeconds)
        }
        // Where it stalls: the link whose receiving end waited longest for its items.
        let waits = last.ranks.flatMap { r in r.links.filter { $0.to == r.rank } }
        let stall = waits.max { $0.blockedSeconds < $1.blockedSeconds }
            .map { "rank \($0.to) waited \(fmt($0.blockedSeconds)) s for items from rank \($0.from)" } ?? ""
        let l = MPISeedRow(transport: "pipeline-local", btl: btl, samples: items, msPerSample: median(local), links: [], stall: "")
        let a = MPISeedRow(transport: "pipeline-ranks", btl: btl, samples: items, msPerSample: median(across),
                           links: links, stall: stall)
        print("seed \(items) x 500x2000 f64: one machine \(fmt(l.msPerSample)) ms/sample, across 4 ranks over \(btl) "
            + "\(fmt(a.msPerSample)) ms/sample; \(stall)")
        for link in links { print("  rank \(link.from) -> rank \(link.to): \(link.bytes) B") }
        return [l, a]
    }
}

/// One row of the bridge against the floor.
struct MPIPingRow: Codable {
    var transport: String  // mpi-bridge | mpi-link | mpi-floor | mpi-floor-shm
    var btl: String        // sm | tcp
    var payloadBytes: Int
    var p50Us: Double      // one way plus a 0-byte acknowledgement, median over rounds
    var gbPerS: Double     // payload bytes / p50
    var rounds: Int

    init(transport: String, btl: String, bytes: Int, samples: [Double]) {
        self.transport = transport
        self.btl = btl
        payloadBytes = bytes
        p50Us = median(samples)
        gbPerS = Double(bytes) / (p50Us * 1e3)
        rounds = samples.count
    }

    enum CodingKeys: String, CodingKey {
        case transport, btl, rounds
        case payloadBytes = "payload_bytes", p50Us = "p50_us", gbPerS = "gb_per_s"
    }
}

/// One row of the seed pipeline, across ranks or on one machine.
struct MPISeedRow: Codable {
    struct Link: Codable {
        var from: Int, to: Int, bytes: Int, blockedS: Double
        enum CodingKeys: String, CodingKey { case from, to, bytes, blockedS = "blocked_s" }
    }
    var transport: String  // pipeline-ranks | pipeline-local
    var btl: String
    var samples: Int
    var msPerSample: Double
    var links: [Link]
    var stall: String

    enum CodingKeys: String, CodingKey {
        case transport, btl, samples, links, stall
        case msPerSample = "ms_per_sample"
    }
}

private func milliseconds(_ d: Duration) -> Double {
    Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
}
private func median(_ xs: [Double]) -> Double { percentile(xs, 50) }
private func fmt(_ x: Double) -> String { String(format: "%.3g", x) }
#endif
