/// The CONVEYOR_STAGE line a pipeline gives a stage program (conveyor.h section 10): what
/// the program reads and writes, and which inherited descriptors carry its pools and
/// channels. Built by the proxy worker that starts the program.
struct StageContract {
    /// The environment variable that carries the line (`CONVEYOR_STAGE_ENV`).
    static var variable: String { "CONVEYOR_STAGE" }

    /// Descriptor numbers the program finds its pieces at (the file actions put them there).
    enum Target {
        static let inPool: Int32 = 3
        static let outPool: Int32 = 4
        static let jobs: Int32 = 5
        static let done: Int32 = 6
        static let report: Int32 = 7
    }

    /// The input's dtype and shape; nil for a source.
    var input: (dtype: DType, shape: Shape)?
    var output: (dtype: DType, shape: Shape)
    /// The program writes its output into its input slot (a kernel stage).
    var inPlace: Bool
    var parent: Int32
    var replica: Int
    var name: String

    /// "conveyor-stage/1 in=f64:500x2000 out=f64:500x2000 in_pool=3 out_pool=4 jobs=5
    /// done=6 report=7 parent=4242 replica=0 name=g".
    var line: String {
        func side(_ s: (dtype: DType, shape: Shape)) -> String {
            "\(s.dtype == .float32 ? "f32" : "f64"):\(s.shape.rows)x\(s.shape.cols)"
        }
        var tokens = ["conveyor-stage/1", "in=\(input.map(side) ?? "none")", "out=\(side(output))"]
        if input != nil { tokens.append("in_pool=\(Target.inPool)") }
        tokens.append("out_pool=\(inPlace ? "in" : "\(Target.outPool)")")
        tokens += ["jobs=\(Target.jobs)", "done=\(Target.done)", "report=\(Target.report)", "parent=\(parent)",
                   "replica=\(replica)", "name=\(name)"]
        return tokens.joined(separator: " ")
    }
}
