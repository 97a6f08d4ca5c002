import Conveyor

#if canImport(Glibc)
import Glibc
#endif

/// One round of the soak: its backing, its kind and its numbers, all derived from the round
/// number, so every run plays the same rounds and a failing round can be run again.
struct SoakPlan {
    enum Backing: String { case anonymous, memfd, named }
    enum Kind: String { case plain, consumerKilled = "consumer killed", producerKilled = "producer killed" }

    /// Every kind on every backing it applies to. A consumer takeover needs a ring the new
    /// child can attach to: an anonymous ring's handle moves to the first child that uses
    /// it, and the parent may not hand its copy on again.
    static let cycle: [(Backing, Kind)] = [
        (.anonymous, .plain), (.memfd, .plain), (.named, .plain), (.memfd, .consumerKilled),
        (.anonymous, .producerKilled), (.named, .consumerKilled), (.memfd, .producerKilled),
        (.named, .producerKilled),
    ]

    let round: Int, backing: Backing, kind: Kind
    /// Frames the parent produces (plain and consumer-killed rounds).
    let frames: UInt64
    /// The frame the first consumer holds when it is killed; the frame after which the
    /// parent kills the producer.
    let killAt: UInt64
    let configuration: RingConfiguration

    init(round: Int) {
        self.round = round
        (backing, kind) = Self.cycle[round % Self.cycle.count]
        let h = SoakPayload.mix(UInt64(round) &+ 0xC0FFEE)
        frames = 20_000 + h % 30_000
        killAt = kind == .producerKilled ? 1_000 + (h >> 20) % 30_000 : 1 + (h >> 20) % (frames - 1)
        let ringBacking: RingBacking = switch backing {
            case .anonymous: .anonymous
            case .memfd: .memfd
            case .named: .named("/conveyor-soak-\(getpid())-\(round)")
        }
        configuration = RingConfiguration(slotCount: 2 + Int(h >> 40) % 63, slotBytes: SoakPayload.slotBytes,
                                          backing: ringBacking)
    }

    var title: String { "round \(round) (\(backing.rawValue), \(kind.rawValue))" }
}

/// A check of the soak that did not hold.
struct SoakFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }

    /// `error`, followed by the last words of the child involved when it left any: what
    /// went wrong on its side, when the parent noticed a failure first.
    init(_ error: any Error, lastWords: String?) {
        self.init(lastWords.map { "\(error); \($0)" } ?? "\(error)")
    }
}

/// Runs the soak's rounds and keeps the tally.
struct SoakRounds {
    private(set) var frames: UInt64 = 0
    private(set) var kills = 0
    private(set) var takeovers = 0
    private(set) var failures: [String] = []

    /// Runs one round; a failed check is tallied and printed (the first 20), not thrown.
    mutating func run(_ plan: SoakPlan) {
        do {
            switch (plan.backing, plan.kind) {
            case (.anonymous, .plain):
                try Ring.create(plan.configuration).split { producer, consumer in
                    let child = SoakChild { _ in consumeFrames(consumer, from: 0, holdAt: nil) }
                    _ = consume consumer  // the child owns it now; the parent may only destroy its copy
                    try feed(producer, plan, child)
                }
            case (.anonymous, .producerKilled):
                try Ring.create(plan.configuration).split { producer, consumer in
                    var child = SoakChild { _ in produceUntilKilled(producer) }
                    _ = consume producer
                    try drain(consumer, plan, &child)
                }
            case (_, .producerKilled):
                let consumer = try Ring.createConsumer(plan.configuration)
                let address = SoakRingAddress(plan, fileDescriptor: consumer.fileDescriptor)
                var child = SoakChild { _ in
                    do { return produceUntilKilled(try address.attachProducer()) }
                    catch { return .failed("producer child: attach: \(error)") }
                }
                try drain(consumer, plan, &child)
            case (_, .plain), (_, .consumerKilled):
                let producer = try Ring.createProducer(plan.configuration)
                let address = SoakRingAddress(plan, fileDescriptor: producer.fileDescriptor)
                let hold = plan.kind == .consumerKilled ? plan.killAt : nil
                let child = SoakChild { send in address.consume(from: 0, holdAt: hold, send: send) }
                try feed(producer, plan, child, takeover: address)
            }
        } catch {
            failures.append("\(plan.title): \(error)")
            if failures.count <= 20 { print("FAILED \(plan.title): \(error)") }
        }
    }

    /// Parent produces `plan.frames` frames into a consumer child and checks its report. With
    /// `takeover`, the consumer is killed holding frame `plan.killAt` and a second child
    /// attaches and must receive that frame again first.
    private mutating func feed(_ producer: borrowing Producer, _ plan: SoakPlan, _ child: consuming SoakChild,
                               takeover: SoakRingAddress? = nil) throws {
        do { try feedChecked(producer, plan, &child, takeover: takeover) }
        catch { throw SoakFailure(error, lastWords: child.lastWords()) }
    }

    private mutating func feedChecked(_ producer: borrowing Producer, _ plan: SoakPlan, _ child: inout SoakChild,
                                      takeover: SoakRingAddress?) throws {
        var sum: UInt64 = 0, received: UInt64 = 0, checksum: UInt64 = 0
        if plan.kind == .consumerKilled, let takeover {
            let k = plan.killAt
            sum = try produceFrames(producer, 0..<k + 1)
            let report = child.receive()
            guard let held = report, held.outcome == .holding, held.count == k else {
                let what = report.map { "\($0.outcome) after \($0.count) frames: \($0.message)" } ?? "no report"
                throw SoakFailure("the first consumer did not report holding frame \(k): \(what)")
            }
            child.kill()  // SIGKILL while it holds frame k and the stream is half done
            kills += 1
            (received, checksum) = (held.count, held.checksum)
            child = SoakChild { send in takeover.consume(from: k, holdAt: nil, announce: true, send: send) }
            // Produce again only once the new consumer owns the side: a producer that waits
            // on a full ring whose consumer is dead gets peerDied, as it should.
            let attached = child.receive()
            guard attached?.outcome == .attached else {
                throw SoakFailure("the new consumer did not attach: \(attached?.message ?? "no report")")
            }
            sum &+= try produceFrames(producer, k + 1..<plan.frames)
        } else {
            sum = try produceFrames(producer, 0..<plan.frames)
        }
        try producer.close()
        guard let last = child.receive() else { throw SoakFailure("the consumer child died without a report") }
        guard last.outcome == .ok, child.exitedCleanly() else { throw SoakFailure(last.message) }
        // A second consumer fails unless its first frame was k, the one the first held.
        if plan.kind == .consumerKilled { takeovers += 1 }
        received += last.count
        checksum &+= last.checksum
        guard received == plan.frames, checksum == sum else {
            throw SoakFailure("consumers verified \(received) of \(plan.frames) frames, checksum \(checksum) vs \(sum)")
        }
        frames += received
    }

    /// Parent consumes from a producer child, kills it after `plan.killAt` frames, and must
    /// then receive every frame it committed, in order, and `peerDied`.
    private mutating func drain(_ consumer: borrowing Consumer, _ plan: SoakPlan, _ child: inout SoakChild) throws {
        do { try drainChecked(consumer, plan, &child) }
        catch { throw SoakFailure(error, lastWords: child.lastWords()) }
    }

    private mutating func drainChecked(_ consumer: borrowing Consumer, _ plan: SoakPlan,
                                       _ child: inout SoakChild) throws {
        var next: UInt64 = 0
        do {
            while let frame = try consumer.receive(timeout: .seconds(10)) {
                guard frame.tag == next else { throw SoakFailure("received frame \(frame.tag) where \(next) was due") }
                guard SoakPayload.verify(frame) != nil else { throw SoakFailure("frame \(next): wrong payload") }
                next += 1
                if next == plan.killAt {
                    child.kill()  // mid-stream: the child is somewhere in loan, write or commit
                    kills += 1
                }
            }
            throw SoakFailure("the stream ended, but the killed producer never closed it")
        } catch RingError.peerDied {
            guard next >= plan.killAt else {
                throw SoakFailure("peerDied after \(next) frames, before the producer was killed at \(plan.killAt)")
            }
            // The commit counter is bumped just after a frame is published: a kill between
            // the two leaves it one short of what was received.
            let committed = UInt64(consumer.stats.framesCommitted)
            guard next == committed || next == committed + 1 else {
                throw SoakFailure("received \(next) frames, the producer committed \(committed)")
            }
            frames += next
        }
    }
}
