import Foundation

/// A process's memory as the kernel sums it in `/proc/PID/smaps_rollup`: resident (RSS)
/// and proportional (PSS), in bytes.
///
/// RSS counts every page a process has mapped, so the daemon and its ten workers, which
/// share the Swift runtime, Foundation and libzmq pages, count those pages eleven times
/// when their RSS is added up. PSS divides each page by the number of processes mapping
/// it: summed over a process tree it counts a shared page once, which is what the tree
/// really costs. `dealstream bench` reports both.
public struct MemoryRollup: Sendable, Equatable {
    /// `Rss:`, bytes.
    public var rss: Int
    /// `Pss:`, bytes.
    public var pss: Int
    /// `Pss_Anon:` (heap, stacks) and `Pss_File:` (code, mapped files), bytes; nil on
    /// kernels before 5.8, which print only the total.
    public var pssAnonymous: Int?
    public var pssFile: Int?

    public init(rss: Int, pss: Int, pssAnonymous: Int? = nil, pssFile: Int? = nil) {
        self.rss = rss
        self.pss = pss
        self.pssAnonymous = pssAnonymous
        self.pssFile = pssFile
    }

    /// The figures of a `smaps_rollup` text (`Key:   N kB` lines); nil without `Rss:` and `Pss:`.
    public init?(parsing text: String) {
        var values: [Substring: Int] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let fields = line[line.index(after: colon)...].split(separator: " ")
            guard fields.count == 2, fields[1] == "kB", let kilobytes = Int(fields[0]) else { continue }
            values[line[..<colon]] = kilobytes * 1024
        }
        guard let rss = values["Rss"], let pss = values["Pss"] else { return nil }
        self.init(rss: rss, pss: pss, pssAnonymous: values["Pss_Anon"], pssFile: values["Pss_File"])
    }

    /// The figures of a running process; nil when it is gone or its file cannot be read
    /// (another user's process, a kernel without smaps_rollup).
    public static func read(pid: Int32) -> MemoryRollup? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/smaps_rollup", encoding: .utf8) else {
            return nil
        }
        return MemoryRollup(parsing: text)
    }
}
