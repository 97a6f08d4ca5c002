import Conveyor

#if canImport(Glibc)
import Glibc
#endif

// The soak's two sides of a stream, run by the parent or by a child: producing frames,
// consuming and verifying them, and attaching to a ring the child did not inherit.

/// Produces frames `range` (tag = frame number); returns their checksum.
func produceFrames(_ producer: borrowing Producer, _ range: Range<UInt64>) throws(RingError) -> UInt64 {
    var sum: UInt64 = 0
    for n in range {
        let (rows, cols) = SoakPayload.shape(n)
        var lease = try producer.loan(rows: rows, cols: cols, of: Double.self, timeout: .seconds(10))
        sum &+= lease.withUnsafeMutableBufferPointer { SoakPayload.write(n, into: $0) }
        try lease.commit(tag: n)
    }
    return sum
}

/// A consumer child's work: receives frames `first`, `first + 1`, ... to the end of the
/// stream, verifying each, and reports how many and their checksum. At frame `holdAt` it
/// reports `.holding` (what it verified before) and keeps that frame until it is killed.
func consumeFrames(_ consumer: borrowing Consumer, from first: UInt64, holdAt: UInt64?,
                   send: (SoakReport) -> Void = { _ in }) -> SoakReport {
    var report = SoakReport(outcome: .ok)
    do {
        // An inherited handle moves to this process on first use; claim it before that.
        try consumer.claim()
        while let frame = try consumer.receive(timeout: .seconds(10)) {
            let due = first + report.count
            guard frame.tag == due else { return .failed("consumer child: frame \(frame.tag) where \(due) was due") }
            guard let sum = SoakPayload.verify(frame) else { return .failed("consumer child: frame \(due): wrong payload") }
            if due == holdAt {
                var holding = report
                holding.outcome = .holding
                send(holding)
                holdUntilKilled(frame)
                return .failed("consumer child: held frame \(due) for 10 s and was not killed")
            }
            report.count += 1
            report.checksum &+= sum
        }  // each frame is released here
    } catch {
        return .failed("consumer child: \(error)")
    }
    return report
}

/// Keeps `frame` received (borrowed for the whole call) for 10 s, waiting for SIGKILL: a
/// bounded wait, so that a parent that died first leaves no process behind.
private func holdUntilKilled(_ frame: borrowing ReadLease) {
    for _ in 0..<100 { usleep(100_000) }
}

/// The producer child of a producer-killed round: frames 0, 1, ... until it is killed (or,
/// if the parent died, until the ring says the consumer is gone).
func produceUntilKilled(_ producer: borrowing Producer) -> SoakReport {
    do {
        try producer.claim()
        _ = try produceFrames(producer, 0..<UInt64.max)
    } catch {
        return .failed("producer child: \(error)")
    }
    return .failed("producer child: ran out of frames")
}

/// Where a child attaches to a memfd ring (the descriptor it inherited) or a named one.
enum SoakRingAddress {
    case fileDescriptor(Int32), name(String)

    init(_ plan: SoakPlan, fileDescriptor: Int32?) {
        if case let .named(name) = plan.configuration.backing { self = .name(name) }
        else { self = .fileDescriptor(fileDescriptor ?? -1) }
    }

    func attachProducer() throws(RingError) -> Producer {
        switch self {
        case let .fileDescriptor(fd): try Producer.attach(fileDescriptor: fd)
        case let .name(name): try Producer.attach(name: name)
        }
    }

    func attachConsumer() throws(RingError) -> Consumer {
        switch self {
        case let .fileDescriptor(fd): try Consumer.attach(fileDescriptor: fd)
        case let .name(name): try Consumer.attach(name: name)
        }
    }

    /// The consumer child's work when it attaches (runs in the child); with `announce`, it
    /// reports `.attached` first.
    func consume(from first: UInt64, holdAt: UInt64?, announce: Bool = false,
                 send: (SoakReport) -> Void) -> SoakReport {
        do {
            let consumer = try attachConsumer()
            if announce { send(SoakReport(outcome: .attached)) }
            return consumeFrames(consumer, from: first, holdAt: holdAt, send: send)
        } catch {
            return .failed("consumer child: attach: \(error)")
        }
    }
}
