import ArgumentParser
import Daemon
import Foundation
import FramedLog
import Logging
import Observability
import OperatorHTTP
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
            per metric family (more may join from any host, at any time), and runs until SIGTERM or SIGINT, which stop it cleanly \
            (requests in hand answered, a checkpoint written, workers stopped); a second signal exits \
            at once. Flags override the environment (DEALSTREAM_<KEY PATH>, e.g. \
            DEALSTREAM_PUBLISH_INTERVAL_MS), which overrides the config file, which overrides the \
            defaults; config/README.md documents every key.

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

    @Option(
        name: .customLong("data-dir"),
        help: "Directory of the checkpoint, the event logs and the worker socket (default ./data)."
    )
    var dataDirectory: String?

    @Option(help: "A JSON config file (see config/dealstream.json).")
    var config: String?

    @Option(
        name: .customLong("workers-per-family"),
        help: "Worker processes the daemon spawns per metric family (default 1); workers started by hand join on top."
    )
    var workersPerFamily: Int?

    @Option(help: ArgumentHelp("Synonym of --workers-per-family (its old name).", valueName: "n"))
    var shards: Int?

    @Option(help: "Partitions per family's series (default 64); fixed for a data directory.")
    var partitions: Int?

    @Option(help: "Ingest endpoint, ROUTER (default tcp://127.0.0.1:7701).")
    var ingest: String?

    @Option(help: "Updates endpoint, XPUB (default tcp://127.0.0.1:7702).")
    var updates: String?

    @Option(help: "Snapshot endpoint, ROUTER (default tcp://127.0.0.1:7703).")
    var snapshot: String?

    @Option(help: "Endpoint workers connect to (default ipc://<data-dir>/workers.sock).")
    var workers: String?

    @Option(
        name: .customLong("publish-interval-ms"),
        help:
            "At most one publication round per this many milliseconds; a round runs as soon as every worker has reported (default 2)."
    )
    var publishInterval: Int?

    @Flag(name: .customLong("no-spawn"), help: "Do not start workers; wait for workers started by hand.")
    var noSpawn = false

    @Option(
        help: ArgumentHelp(
            "HOST:PORT of the HTTP listener for /metrics, /health and /ready (default 127.0.0.1:7780).",
            valueName: "host:port"
        )
    )
    var http: String?

    @OptionGroup(title: "Logging")
    var logging: LoggingOptions

    @Option(
        name: .customLong("debug-freeze-signal"),
        help: ArgumentHelp(
            "Test hook: this signal number freezes the daemon loop, the next one thaws it.",
            visibility: .hidden
        )
    )
    var debugFreezeSignal: Int32?

    func validate() throws {
        if let shards, shards < 1 { throw ValidationError("--shards must be at least 1") }
        if let workersPerFamily, workersPerFamily < 1 {
            throw ValidationError("--workers-per-family must be at least 1")
        }
        if shards != nil && workersPerFamily != nil {
            throw ValidationError("--shards is a synonym of --workers-per-family: give one of them")
        }
        if let partitions, !(1...4096).contains(partitions) {
            throw ValidationError("--partitions must be in 1…4096")
        }
        if let publishInterval, publishInterval < 1 {
            throw ValidationError("--publish-interval-ms must be at least 1")
        }
        if let http, HTTPListenAddress(http) == nil {
            throw ValidationError("--http: expected HOST:PORT, got \"\(http)\"")
        }
    }

    /// The flags given, as config keys (they win over the environment and the file).
    var flagValues: [String: String] {
        var flags: [String: String] = [:]
        flags["model"] = model
        flags["data_dir"] = dataDirectory
        flags["workers.per_family"] = (workersPerFamily ?? shards).map(String.init)
        flags["workers.partitions"] = partitions.map(String.init)
        flags["endpoints.ingest"] = ingest
        flags["endpoints.updates"] = updates
        flags["endpoints.snapshot"] = snapshot
        flags["endpoints.workers"] = workers
        flags["publish.interval_ms"] = publishInterval.map(String.init)
        if noSpawn { flags["workers.spawn"] = "false" }
        flags["http.listen"] = http
        flags["log.level"] = logging.level?.rawValue
        flags["log.format"] = logging.format?.rawValue
        return flags
    }

    func run() async throws {
        let c = try DaemonConfiguration.resolve(file: config, flags: flagValues)
        let logger = ProcessLogging.logger(
            "dealstream.daemon",
            level: Logger.Level(rawValue: c.logLevel) ?? .info,
            format: LogFormat(rawValue: c.logFormat) ?? .text
        )
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
        // The loop counts as stuck after the silence that drops a worker (heartbeat × liveness).
        let metrics = DaemonMetrics(
            exposition: MetricsExposition(),
            probe: ProbeState(liveTimeout: .milliseconds(c.heartbeatMilliseconds * c.liveness)),
            notifier: .fromEnvironment(),
            families: c.families
        )
        metrics.exposition.bootstrapSwiftMetrics()
        if let signal = debugFreezeSignal { DebugFreeze.arm(signal: signal, probe: metrics.probe, logger: logger) }
        let service = DaemonService(configuration: c, logger: logger, metrics: metrics)
        let address = HTTPListenAddress(c.httpListen)!
        let http = OperatorHTTP.application(
            host: address.host,
            port: address.port,
            exposition: metrics.exposition,
            probe: metrics.probe,
            logger: logger
        ) { port in
            logger.notice("HTTP listening", metadata: ["http.url": "http://\(address.host):\(port)"])
        }
        // The listener first, so /health and /metrics answer during the replay; it stops last.
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: http), .init(service: service)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
    }
}

/// A text logger writing to standard error at `level` (the bench and client tools).
func makeLogger(_ label: String, level: String) -> Logger {
    ProcessLogging.logger(label, level: Logger.Level(rawValue: level) ?? .info, format: .text)
}
