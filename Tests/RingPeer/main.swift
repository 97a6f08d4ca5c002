// conveyor-ring-peer — a Swift producer for a Python consumer, through the Conveyor
// package's ring API (Tests/python/test_cross_language.py drives it).
//
//   conveyor-ring-peer produce NAME SLOTS FRAMES ROWS COLS SEED
//
// Creates the named ring NAME with SLOTS slots of ROWS x COLS doubles, prints "ready",
// then loans FRAMES frames: frame t is `fillUniform(seed: SEED, stream: t)` written in
// place in the slot, committed with tag t. Then it closes the stream and prints
// "frames N checksum HEX" — the stream checksum of Tests/CrossLang/crosslang.h over what
// it committed — and lets its producer go, which unlinks the name. Exit 0 on success,
// 1 if a ring call failed (message on stderr), 2 for bad arguments. Every wait is bounded
// (one minute), so a broken peer fails instead of hanging.
import Conveyor

#if canImport(Glibc)
import Glibc
#endif

func fail(_ message: String, status: Int32) -> Never {
    var line = "conveyor-ring-peer: \(message)\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    exit(status)
}

let arguments = CommandLine.arguments
guard arguments.count == 8, arguments[1] == "produce",
      let slots = Int(arguments[3]), let frames = UInt64(arguments[4]),
      let rows = Int(arguments[5]), let cols = Int(arguments[6]), let seed = UInt64(arguments[7])
else {
    fail("usage: conveyor-ring-peer produce NAME SLOTS FRAMES ROWS COLS SEED", status: 2)
}
let name = arguments[2]
let wait: Duration = .seconds(60)

/// The frame checksum of crosslang.h: sum of word_j * (2j + 1), wrapping.
func frameChecksum(_ values: UnsafeMutableBufferPointer<Double>) -> UInt64 {
    var sum: UInt64 = 0
    for (j, value) in values.enumerated() { sum &+= value.bitPattern &* (2 &* UInt64(j) &+ 1) }
    return sum
}

do throws(RingError) {
    let configuration = RingConfiguration(slotCount: slots, rows: rows, cols: cols, of: Double.self,
                                          backing: .named(name))
    let producer = try Ring.createProducer(configuration)
    print("ready")
    fflush(nil)
    var checksum: UInt64 = 0
    for t in 0..<frames {
        var lease = try producer.loan(rows: rows, cols: cols, of: Double.self, timeout: wait)
        lease.withMatrix { $0.fillUniform(seed: seed, stream: t) }
        checksum &+= (t &+ 1) &* lease.withUnsafeMutableBufferPointer(frameChecksum)
        try lease.commit(tag: t)
    }
    try producer.close()
    print("frames \(frames) checksum \(String(checksum, radix: 16))")
    fflush(nil)
} catch {
    fail("\(error)", status: 1)
}
