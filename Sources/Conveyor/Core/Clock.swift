#if canImport(Glibc)
import Glibc
#endif

/// The one monotonic clock of the package: `CLOCK_MONOTONIC` in nanoseconds, the clock
/// the C core's deadlines use too, so Swift and C times compare. Cost: a vDSO call
/// (about 20 ns), no system call.
func nowNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)  // cannot fail for CLOCK_MONOTONIC with a valid pointer
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

extension Duration {
    /// The duration in whole nanoseconds for a C timeout: negative durations give 0 (an
    /// expired wait), durations beyond `Int64.max` nanoseconds (292 years) saturate there
    /// (a wait without practical limit), never wrap.
    var saturatingNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        if seconds < 0 || (seconds == 0 && attoseconds < 0) { return 0 }
        let (ns, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let (total, overflow2) = ns.addingReportingOverflow(attoseconds / 1_000_000_000)
        return overflow || overflow2 ? Int64.max : total
    }
}
