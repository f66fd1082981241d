import DealstreamTestSupport
import Foundation
import FramedLog
import Testing

/// A file replaced whole is synced, renamed and its directory synced, in that order (see
/// `AtomicFile`): checked on the real processes' system calls under strace, not by trust.
@Suite(
    .enabled(
        if: FileManager.default.isExecutableFile(atPath: "/usr/bin/strace"),
        "needs strace (scripts/install-deps installs it); skipped, not failed"
    )
)
struct DurableWriteOrderTests {
    /// Runs `arguments` of the dealstream binary under strace until `ready` appears in its
    /// stderr, stops it with SIGTERM and returns the traced calls.
    private func trace(_ arguments: [String], in directory: URL, ready: String) throws -> [String] {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let traceFile = directory.appendingPathComponent("strace.txt")
        let logFile = directory.appendingPathComponent("stderr.log")
        FileManager.default.createFile(atPath: logFile.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/strace")
        process.arguments =
            [
                "-f", "-y", "-e", "trace=fsync,fdatasync,rename,renameat,renameat2", "-o", traceFile.path,
                DaemonProcess.binary,
            ] + arguments
        process.standardError = try FileHandle(forWritingTo: logFile)
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline,
            !(String(data: (try? Data(contentsOf: logFile)) ?? Data(), encoding: .utf8) ?? "").contains(ready)
        {
            Thread.sleep(forTimeInterval: 0.05)
        }
        // The traced process itself gets SIGTERM (strace would only detach from it).
        let children =
            (try? String(
                contentsOfFile: "/proc/\(process.processIdentifier)/task/\(process.processIdentifier)/children",
                encoding: .utf8
            )) ?? ""
        for child in children.split(separator: " ").compactMap({ Int32($0) }) { kill(child, SIGTERM) }
        let stopDeadline = Date().addingTimeInterval(20)
        while process.isRunning && Date() < stopDeadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        let text = try String(contentsOf: traceFile, encoding: .utf8)
        return text.split(separator: "\n").map(String.init)
    }

    /// The index of the first line after `from` that contains every one of `parts`.
    private func index(_ lines: [String], after from: Int, _ parts: String...) -> Int? {
        lines.indices.first { $0 > from && parts.allSatisfy(lines[$0].contains) }
    }

    /// Checks sync of the temporary, rename over the file, sync of the directory, in order.
    private func expectAtomicReplace(_ lines: [String], temporary: String, file: String, directory: String) {
        let synced = index(lines, after: -1, "sync(", "<\(temporary)>")
        let renamed = synced.flatMap { index(lines, after: $0, "rename", "\"\(temporary)\"", "\"\(file)\"") }
        let directorySynced = renamed.flatMap { index(lines, after: $0, "fsync(", "<\(directory)>") }
        #expect(synced != nil, "no sync of \(temporary): \(lines.filter { $0.contains(directory) })")
        #expect(renamed != nil, "no rename of \(temporary) after its sync")
        #expect(directorySynced != nil, "no sync of \(directory) after the rename")
    }

    @Test func theDaemonsPublishedStateIsSyncedRenamedAndItsDirectorySynced() throws {
        let directory = temporaryDirectory("atomic-daemon")
        defer { try? FileManager.default.removeItem(at: directory) }
        let data = directory.appendingPathComponent("data").path
        let lines = try trace(
            [
                "daemon", "--model", packageRoot.appendingPathComponent("config/model.json").path, "--data-dir", data,
                "--no-spawn", "--ingest", "ipc://\(directory.path)/i.sock", "--updates",
                "ipc://\(directory.path)/u.sock",
                "--snapshot", "ipc://\(directory.path)/s.sock",
            ],
            in: directory,
            ready: "Daemon listening"
        )
        expectAtomicReplace(lines, temporary: "\(data)/published.tmp", file: "\(data)/published", directory: data)
    }

    @Test func aConnectorsCompactedDealStatesAreSyncedRenamedAndTheirDirectorySynced() throws {
        let directory = temporaryDirectory("atomic-connect")
        defer { try? FileManager.default.removeItem(at: directory) }
        let data = directory.appendingPathComponent("connect").path
        // One deal state already there, so the compaction at start has a record to write.
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let seeded = try RecordLog(path: "\(data)/deals.log") { _ in }
        seeded.append(Array(#"{"id":"d1","fields":{"stage":{"v":"lead","n":1}}}"#.utf8))
        try seeded.commit()
        let lines = try trace(
            [
                "connect", "pipedrive", "--insecure",
                "--mapping", packageRoot.appendingPathComponent("config/mapping-pipedrive.json").path,
                "--model", packageRoot.appendingPathComponent("config/model.json").path,
                "--listen", "127.0.0.1:0", "--ingest", "ipc://\(directory.path)/nobody.sock", "--data-dir", data,
            ],
            in: directory,
            ready: "listening"
        )
        expectAtomicReplace(lines, temporary: "\(data)/deals.log.compact", file: "\(data)/deals.log", directory: data)
    }
}
