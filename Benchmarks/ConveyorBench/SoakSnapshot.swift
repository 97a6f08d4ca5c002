#if canImport(Glibc)
import Glibc
#endif

/// What the soak's verdict compares: the parent's resident memory, its open descriptors,
/// and the entries of /dev/shm (everyone's), read from /proc and the directory itself.
struct SoakSnapshot {
    var rssKiB: Int
    var fds: Int
    var shm: Set<String>

    static func take() -> SoakSnapshot {
        // opendir holds one descriptor of its own while it lists /proc/self/fd.
        SoakSnapshot(rssKiB: residentKiB(), fds: entries(of: "/proc/self/fd").count - 1,
                     shm: Set(entries(of: "/dev/shm")))
    }

    /// Resident set size in KiB, from the second field of /proc/self/statm (in pages); -1
    /// if it cannot be read.
    private static func residentKiB() -> Int {
        guard let file = fopen("/proc/self/statm", "r") else { return -1 }
        defer { fclose(file) }
        var line = [UInt8](repeating: 0, count: 256)
        let length = fread(&line, 1, line.count - 1, file)
        let fields = String(decoding: line.prefix(length), as: UTF8.self).split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return -1 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE))) / 1024
    }

    /// The names in a directory, without "." and "..".
    private static func entries(of path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
