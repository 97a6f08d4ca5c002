internal import CKernels

/// Process-wide settings of the C kernels: thread count, parallel threshold, build facts.
///
/// These are the Swift faces of section 3 of `conveyor.h`. Every setting applies to all
/// kernels of the process, from any thread.
public enum Kernels {
    /// `true` when the package was built with its `OpenMP` trait (the default), so kernels
    /// can run on several threads. The corresponding C function is `conveyor_has_openmp`.
    public static var hasOpenMP: Bool { conveyor_has_openmp() != 0 }

    /// The number of threads kernels use now (at least 1). Cost: an atomic load.
    /// The corresponding C function is `conveyor_get_threads`.
    public static var threads: Int { Int(conveyor_get_threads()) }

    /// Sets the number of threads every kernel uses from now on.
    ///
    /// - Throws: ``ConveyorError/invalidArgument`` outside `1...256`;
    ///   ``ConveyorError/unsupported`` for more than 1 in a build without OpenMP.
    /// The corresponding C function is `conveyor_set_threads`.
    public static func setThreads(_ count: Int) throws(ConveyorError) {
        guard let count = Int32(exactly: count) else { throw .invalidArgument }
        try ConveyorError.check(conveyor_set_threads(count))
    }

    /// The output size in bytes from which a kernel goes parallel; below it, the calling
    /// thread does all the work. Setting it never fails.
    /// The corresponding C functions are `conveyor_get/set_parallel_threshold`.
    public static var parallelThreshold: Int {
        get { Int(conveyor_get_parallel_threshold()) }
        set { ConveyorError.expect(conveyor_set_parallel_threshold(max(0, newValue)), from: "conveyor_set_parallel_threshold") }
    }

    /// The version of the linked C core, `"major.minor.patch"` (`CONVEYOR_VERSION_STRING`).
    public static var version: String { String(cString: conveyor_version_string()) }
}
