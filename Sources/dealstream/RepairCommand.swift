import ArgumentParser
import Foundation
import FramedLog

/// `dealstream repair`: cuts the framed logs of a data directory at their first bad record.
///
/// Why: a daemon or connector refuses to start on a log with a corrupt record followed by
/// valid ones (cutting it silently would drop acknowledged events and reuse their
/// positions). An operator who has decided to accept that loss runs this; every byte cut
/// is first copied beside the log, so nothing is destroyed (docs/recovery.md).
struct RepairCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repair",
        abstract: "Cut a data directory's logs at their first bad record, keeping a copy of what is cut.",
        discussion: """
            For a directory that `dealstream daemon` or `dealstream connect` refused to open because \
            a log (events-N.log, spool.log, deals.log) has a corrupt record followed by valid ones. \
            Each such log (and each log with a torn tail) is cut at its first bad record, after the \
            bytes from there to the end are copied and synced to <log>.cut-<offset> beside it; the \
            output names every copy. Intact logs are not touched. The directory must not be in use \
            (its dealstream.lock is taken). What is cut is lost to the daemon: every event after the \
            bad record, including acknowledged ones. Before repairing, consider restoring the \
            directory from a backup; after it, resend what the connectors still have (versions make \
            resent events harmless). See docs/recovery.md.
            """
    )

    @Option(name: .customLong("data-dir"), help: "The daemon's or a connector's data directory.")
    var dataDirectory: String

    func run() throws {
        func fail(_ message: String) -> ExitCode {
            FileHandle.standardError.write(Data("error: \(message)\n".utf8))
            return ExitCode(1)
        }
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: dataDirectory, isDirectory: &isDirectory)
        guard exists, isDirectory.boolValue else {
            throw fail("--data-dir: \(dataDirectory) is not a directory")
        }
        let lock: DataDirectoryLock
        do { lock = try DataDirectoryLock(directory: dataDirectory) } catch { throw fail("--data-dir: \(error)") }
        defer { withExtendedLifetime(lock) {} }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dataDirectory)) ?? []
        let logs = names.filter { name in
            name == "spool.log" || name == "deals.log" || (name.hasPrefix("events-") && name.hasSuffix(".log"))
        }.sorted()
        guard !logs.isEmpty else {
            throw fail("--data-dir: no events-N.log, spool.log or deals.log in \(dataDirectory)")
        }
        var repaired = 0
        for name in logs {
            let path = "\(dataDirectory)/\(name)"
            do {
                if let repair = try RecordLog.repair(path: path) {
                    print(repair.description)
                    repaired += 1
                } else {
                    print("\(path): intact")
                }
            } catch {
                throw fail("\(error)")
            }
        }
        print("\(repaired) of \(logs.count) logs cut")
    }
}
