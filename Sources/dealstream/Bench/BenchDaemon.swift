import Clients
import Foundation
import ZeroMQ

/// A daemon of this same executable on ipc endpoints in a temporary directory, for one
/// benchmark run: started, waited for, measured and stopped.
final class BenchDaemon {
    let directory: URL
    let dataDirectory: String
    let process = Process()
    let started = DispatchTime.now().uptimeNanoseconds
    var ingest: String { "ipc://" + directory.appendingPathComponent("i").path }
    var snapshot: String { "ipc://" + directory.appendingPathComponent("s").path }
    var updates: String { "ipc://" + directory.appendingPathComponent("u").path }
    var pid: Int32 { process.processIdentifier }

    /// With `dataDirectory`, the daemon runs on that (kept) directory; otherwise on a fresh
    /// one. `config` is a config file's JSON (flags still win over it).
    init(modelPath: String, shards: Int, dataDirectory: String? = nil, config: String? = nil) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ds-bench-\(getpid())-\(UUID().uuidString.prefix(6))"
        )
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        self.dataDirectory = dataDirectory ?? directory.appendingPathComponent("data").path
        process.executableURL = URL(
            fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
                ?? CommandLine.arguments[0]
        )
        process.arguments = [
            "daemon", "--http", "127.0.0.1:0", "--model", modelPath, "--data-dir", self.dataDirectory, "--shards",
            "\(shards)",
            "--ingest", ingest, "--updates", updates, "--snapshot", snapshot, "--log-level", "warning",
        ]
        if let config {
            let path = directory.appendingPathComponent("config.json").path
            try Data(config.utf8).write(to: URL(fileURLWithPath: path))
            process.arguments! += ["--config", path]
        }
        // DEALSTREAM_BENCH_DAEMON_LOG=FILE: the daemons' debug logs (rounds, pacing) go there.
        if let log = ProcessInfo.processInfo.environment["DEALSTREAM_BENCH_DAEMON_LOG"] {
            if !FileManager.default.fileExists(atPath: log) {
                _ = FileManager.default.createFile(atPath: log, contents: nil)
            }
            process.arguments! += ["--log-level", "debug"]
            let handle = FileHandle(forWritingAtPath: log)
            _ = handle?.seekToEndOfFile()
            process.standardError = handle
        } else {
            process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        }
        try process.run()
    }

    /// Waits until every worker has joined and reported (the published state answers at
    /// `logSeq`); returns the seconds since the process started.
    @discardableResult
    func waitPublished(_ logSeq: UInt64, context: ZMQContext, timeoutMilliseconds: Int = 60_000) throws -> Double {
        let probe = try SnapshotProbe(context: context, endpoint: snapshot)
        try probe.waitUntilPublished(logSeq, timeoutMilliseconds: timeoutMilliseconds)
        return secondsSinceStart
    }

    /// Waits until the snapshot endpoint answers at all (the state is restored and the
    /// loop runs); returns the seconds since the process started.
    func waitAnswering(context: ZMQContext, timeoutMilliseconds: Int = 600_000) throws -> Double {
        let probe = try SnapshotProbe(context: context, endpoint: snapshot)
        _ = try probe.publishedLogSeq(timeoutMilliseconds: timeoutMilliseconds)
        return secondsSinceStart
    }

    var secondsSinceStart: Double { Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 }

    /// Waits for a fresh daemon's workers to join, plus a second for them to settle.
    func waitReady(context: ZMQContext) throws {
        try waitPublished(0, context: context, timeoutMilliseconds: 30_000)
        Thread.sleep(forTimeInterval: 1.0)
    }

    /// The worker processes (children of the daemon).
    var workerPIDs: [Int32] { ProcessMemory.children(of: pid) }

    /// SIGTERM and wait: a graceful stop (final checkpoint, saved published state).
    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }

    deinit {
        stop()
        // The socket folder, and with it the data directory when it is the run's own.
        try? FileManager.default.removeItem(at: directory)
    }
}

/// Resident memory of processes, from /proc.
enum ProcessMemory {
    /// (peak, current) resident bytes: `VmHWM` and `VmRSS`.
    static func resident(_ pid: Int32) -> (peak: Int, current: Int)? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        func kilobytes(_ key: String) -> Int? {
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(key + ":") }) else { return nil }
            return line.split(separator: " ").compactMap { Int($0) }.first
        }
        guard let peak = kilobytes("VmHWM"), let current = kilobytes("VmRSS") else { return nil }
        return (peak * 1024, current * 1024)
    }

    /// CPU seconds (user + system) a process has used, from /proc/PID/stat.
    static func cpuSeconds(_ pid: Int32) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    static func children(of parent: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && Int32(fields[1]) == parent
        }.sorted()
    }
}
