import Conveyor

#if canImport(Glibc)
import Glibc
#endif

/// One line describing the machine behind the numbers: CPU model, cores, caches, and the
/// kernel settings in force.
func machineDescription() -> String {
    let cpu = firstLine(of: "/proc/cpuinfo", withPrefix: "model name")
        .map { String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingSpaces() } ?? "unknown CPU"
    let cores = sysconf(Int32(_SC_NPROCESSORS_ONLN))
    let blocktime = getenv("KMP_BLOCKTIME").map { String(cString: $0) } ?? "unset"
    return "\(cpu), \(cores) cores; Conveyor \(Kernels.version), OpenMP \(Kernels.hasOpenMP ? "on" : "off"), "
        + "KMP_BLOCKTIME=\(blocktime), parallel threshold \(Kernels.parallelThreshold / 1024) KiB"
}

private func firstLine(of path: String, withPrefix prefix: String) -> String? {
    guard let file = fopen(path, "r") else { return nil }
    defer { fclose(file) }
    var line: UnsafeMutablePointer<CChar>?
    var capacity = 0
    defer { free(line) }
    while getline(&line, &capacity, file) > 0, let line {
        let text = String(cString: line)
        if text.hasPrefix(prefix) { return text }
    }
    return nil
}

extension String {
    func trimmingSpaces() -> String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\n" || $0 == "\t" }.reversed())
    }
}
