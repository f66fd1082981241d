import Daemon
import DealModel
import Dispatch
import EventEncoding
import EventSources
import Foundation
import Observability
import ZeroMQ

/// Restart after a long history, and memory with that many live deals.
///
/// The history (`deals × updatesPerDeal` synthetic events, plus spend and account events)
/// is written into a data directory through `DataDirectoryImport`, the ingest path without
/// the sockets. Then a daemon starts on it twice: first with only the event log (the
/// worst case: everything replayed, every worker rebuilt), then, after a graceful stop has
/// written a checkpoint and the published state, from the checkpoint.
enum Recovery {
    struct ProcessFigure {
        var name: String
        /// Peak and current RSS (`VmHWM`, `VmRSS`), bytes.
        var peak: Int
        var current: Int
        /// Current PSS (`smaps_rollup`), bytes: shared pages divided among the processes
        /// mapping them, so the sum over the tree counts each once; nil when unreadable.
        var pss: Int?
    }

    struct Result {
        var summary: DataDirectoryImport.Summary
        var importSeconds: Double
        var logRestoredSeconds: Double
        var logPublishedSeconds: Double
        var checkpointRestoredSeconds: Double
        var checkpointPublishedSeconds: Double
        var memory: [ProcessFigure]
    }

    static func run(model: Model, modelPath: String, deals: Int, updatesPerDeal: Int, shards: Int) throws -> Result {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ds-bench-recovery-\(getpid())")
            .path
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }

        var options = SyntheticEvents.Options()
        options.deals = deals
        options.updatesPerDeal = updatesPerDeal
        options.seed = 7
        let importStart = DispatchTime.now().uptimeNanoseconds
        let summary = try DataDirectoryImport.run(
            SyntheticEvents(model: model, options: options),
            encoding: .json,
            directory: directory,
            model: model,
            logger: makeLogger("dealstream.bench", level: "warning")
        )
        let importSeconds = Double(DispatchTime.now().uptimeNanoseconds - importStart) / 1e9

        let context = try ZMQContext()
        // 1. Only the log: replay everything, rebuild every worker.
        let fromLog = try BenchDaemon(modelPath: modelPath, shards: shards, dataDirectory: directory)
        let logRestored = try fromLog.waitAnswering(context: context)
        let logPublished = try fromLog.waitPublished(summary.logSeq, context: context, timeoutMilliseconds: 900_000)
        Thread.sleep(forTimeInterval: 1.0)
        var memory: [ProcessFigure] = []
        if let m = ProcessMemory.resident(fromLog.pid) {
            let pss = MemoryRollup.read(pid: fromLog.pid)?.pss
            memory.append(ProcessFigure(name: "daemon", peak: m.peak, current: m.current, pss: pss))
        }
        for pid in fromLog.workerPIDs {
            guard let m = ProcessMemory.resident(pid) else { continue }
            let pss = MemoryRollup.read(pid: pid)?.pss
            memory.append(
                ProcessFigure(name: "worker \(family(of: pid))", peak: m.peak, current: m.current, pss: pss)
            )
        }
        fromLog.stop()

        // 2. From the checkpoint the graceful stop wrote, with the saved published state.
        let fromCheckpoint = try BenchDaemon(modelPath: modelPath, shards: shards, dataDirectory: directory)
        let checkpointRestored = try fromCheckpoint.waitAnswering(context: context)
        let checkpointPublished = try fromCheckpoint.waitPublished(
            summary.logSeq,
            context: context,
            timeoutMilliseconds: 900_000
        )
        fromCheckpoint.stop()
        return Result(
            summary: summary,
            importSeconds: importSeconds,
            logRestoredSeconds: logRestored,
            logPublishedSeconds: logPublished,
            checkpointRestoredSeconds: checkpointRestored,
            checkpointPublishedSeconds: checkpointPublished,
            memory: memory
        )
    }

    /// The `--family` argument of a worker process.
    private static func family(of pid: Int32) -> String {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return "pid \(pid)" }
        let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        guard let i = arguments.firstIndex(of: "--family"), i + 1 < arguments.count else { return "pid \(pid)" }
        let shard =
            arguments.firstIndex(of: "--shard").flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil } ?? "0"
        return "\(arguments[i + 1])#\(shard)"
    }
}
