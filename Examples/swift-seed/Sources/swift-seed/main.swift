// The question's pipeline: samples of uniform 500x2000 Double through h(x) = x*x,
// g(x) = 3x, f(x) = x + 1, each stage in its own process, summed in this one.
//   swift run -c release swift-seed [COUNT] [--check]
import Conveyor
import Glibc

let arguments = CommandLine.arguments.dropFirst()
let count = arguments.compactMap { Int($0) }.first ?? 1000
let seed = Pipeline(items: count, rows: 500, cols: 2000, of: Double.self) { i, x in
        x.fillUniform(seed: 2016, stream: UInt64(i)) }   // sample i, written straight into a slot
    .stage("h", [.square])                               // kernel stages (fused into one pass)
    .stage("g", [.multiply(3)])
    .stage("f", [.add(1)])
do {
    let run = try seed.run(.processes, buffer: 3, into: 0.0) { total, x in total += x.sum() }
    print("samples \(count) sum \(run.result)")          // shortest repr that round-trips
    print(run.stats)

    if arguments.contains("--check") {   // the same sums again, serially here, three unfused passes
        var serial = 0.0
        for i in 0..<count {
            let x = try Matrix<Double>.uniform(rows: 500, cols: 2000, seed: 2016, stream: UInt64(i))
            serial += (x.squared() * 3 + 1).sum()
        }
        print("check: serial sum \(serial), \(serial == run.result ? "equal to the bit" : "DIFFERENT")")
        if serial != run.result { exit(1) }
    }
} catch {
    print("swift-seed: \(error)")
    exit(1)
}
