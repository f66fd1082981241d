import ArgumentParser
import Daemon
import FramedLog
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// `dealstream daemon`: the ingestion daemon with its supervised workers.
struct DaemonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon",
        abstract: "Run the ingestion daemon and its metric workers.",
        discussion: """
            Restores its state from --data-dir (the last checkpoint, then the event logs after it), \
            binds the ingest, updates and snapshot endpoints (PROTOCOL.md), starts one worker process \
            per metric family and shard, and runs until SIGTERM or SIGINT, which stop it cleanly \
            (requests in hand answered, a checkpoint written, workers stopped); a second signal exits \
            at once. Flags override the config file, which overrides the defaults; config/README.md \
            documents every key.

            --data-dir is locked (dealstream.lock) for as long as the daemon runs: a second daemon on \
            it refuses to start, naming the first one's pid. A torn tail of the newest event log (a \
            crash mid-write) is cut; a corrupt record followed by valid ones is not: the daemon \
            refuses to start, naming the file and byte offset, and changes nothing. Recover with \
            `dealstream repair --data-dir D` (keeps a copy of what it cuts) or from a backup: \
            docs/recovery.md.
            """
    )

    @Option(help: "The model file: currencies and pipelines (METRICS.md §5).")
    var model: String?

    @Option(name: .customLong("data-dir"), help: "Directory of the checkpoint, the event logs and the worker socket (default ./data).")
    var dataDirectory: String?

    @Option(help: "A JSON config file (see config/dealstream.json).")
    var config: String?

    @Option(help: "Shards per metric family (default 1).")
    var shards: Int?

    @Option(help: "Ingest endpoint, ROUTER (default tcp://127.0.0.1:7701).")
    var ingest: String?

    @Option(help: "Updates endpoint, XPUB (default tcp://127.0.0.1:7702).")
    var updates: String?

    @Option(help: "Snapshot endpoint, ROUTER (default tcp://127.0.0.1:7703).")
    var snapshot: String?

    @Option(help: "Endpoint workers connect to (default ipc://<data-dir>/workers.sock).")
    var workers: String?

    @Option(name: .customLong("publish-interval-ms"), help: "At most one publication round per this many milliseconds; a round runs as soon as every worker has reported (default 2).")
    var publishInterval: Int?

    @Flag(name: .customLong("no-spawn"), help: "Do not start workers; wait for workers started by hand.")
    var noSpawn = false

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    func validate() throws {
        if let shards, shards < 1 { throw ValidationError("--shards must be at least 1") }
        if let publishInterval, publishInterval < 1 { throw ValidationError("--publish-interval-ms must be at least 1") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level: unknown level \(logLevel)") }
    }

    func run() async throws {
        var c = try config.map { try DaemonConfiguration.load(file: $0) } ?? DaemonConfiguration()
        if let model { c.modelPath = model }
        if let dataDirectory { c.dataDirectory = dataDirectory }
        if let shards { c.shards = shards }
        if let ingest { c.ingestEndpoint = ingest }
        if let updates { c.updatesEndpoint = updates }
        if let snapshot { c.snapshotEndpoint = snapshot }
        if let workers { c.workerEndpoint = workers }
        if let publishInterval { c.publishIntervalMilliseconds = publishInterval }
        if noSpawn { c.spawnWorkers = false }
        c.workerLogLevel = logLevel
        let logger = makeLogger("dealstream.daemon", level: logLevel)
        // One data directory, one daemon: held until this process exits (see DataDirectoryLock).
        try FileManager.default.createDirectory(atPath: c.dataDirectory, withIntermediateDirectories: true)
        let lock: DataDirectoryLock
        do {
            lock = try DataDirectoryLock(directory: c.dataDirectory)
        } catch {
            FileHandle.standardError.write(Data("error: --data-dir: \(error)\n".utf8))
            throw ExitCode(1)
        }
        defer { withExtendedLifetime(lock) {} }
        let service = DaemonService(configuration: c, logger: logger)
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: service)], gracefulShutdownSignals: [.sigterm, .sigint],
                                 logger: logger))
        try await group.run()
    }
}

/// A logger writing to standard error at `level`.
func makeLogger(_ label: String, level: String) -> Logger {
    var logger = Logger(label: label) { StreamLogHandler.standardError(label: $0) }
    logger.logLevel = Logger.Level(rawValue: level) ?? .info
    return logger
}
