// conveyor-swift-stage OP [A] [--fail-at N]: a pipeline stage written in Swift, served by
// StageServer (conveyor.h section 10). OP is square, mul A, add A or copy, on float64
// items of the shape the pipeline declares; --fail-at N throws at item N. The pipeline
// tests of every language start it as a stage (Swift's external stages, Python's).
import Conveyor

#if canImport(Glibc)
import Glibc
#endif

struct Usage: Error, CustomStringConvertible {
    var description: String
}

var arguments = Array(CommandLine.arguments.dropFirst())
var failAt: Double?
if let k = arguments.firstIndex(of: "--fail-at"), k + 1 < arguments.count {
    failAt = Double(arguments[k + 1])
    arguments.removeSubrange(k...(k + 1))
}
let ops: [ElementwiseOp<Double>]
switch (arguments.first, arguments.count > 1 ? Double(arguments[1]) : nil) {
case ("square", _): ops = [.square]
case ("mul", let a?): ops = [.multiply(a)]
case ("add", let a?): ops = [.add(a)]
case ("copy", _): ops = []
default:
    print("usage: conveyor-swift-stage square|mul A|add A|copy [--fail-at N]")
    exit(2)
}

/// Thrown for --fail-at, so the pipeline reports a Swift error by stage and item.
struct AskedToFail: Error, CustomStringConvertible {
    var description: String { "asked to fail" }
}

let failValue = failAt
exit(StageServer.serve(input: Double.self, output: Double.self) { input, output in
    // The input slot's item index is not in the matrix; --fail-at compares the first
    // element against N, which the tests make the item's number.
    if let failValue, input[0, 0] == failValue { throw AskedToFail() }
    output.withUnsafeMutableBufferPointer { out in
        input.withUnsafeBufferPointer { out.baseAddress!.update(from: $0.baseAddress!, count: $0.count) }
    }
    try output.apply(ops)
})
