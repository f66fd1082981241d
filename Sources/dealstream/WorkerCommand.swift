import ArgumentParser
import Foundation
import Logging
import PipelineMetrics
import ServiceLifecycle
import UnixSignals
import Worker

/// `dealstream worker`: one metric worker process.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run one metric worker (the daemon starts these; you can too, e.g. on another host).",
        discussion: """
            Connects to the daemon's worker endpoint, announces the metric family it serves, and \
            is given a fair share of the family's partitions, rebuilt from the daemon's facts while \
            their old owners keep serving them. Start as many as you like, on any host, at any time; \
            SIGTERM hands the partitions back before exiting. A worker that is not the daemon's own \
            child joins only an endpoint with CURVE (workers.curve). Families: \
            \(MetricFamily.allCases.map(\.rawValue).joined(separator: ", ")).
            """
    )

    @Option(help: "The metric family to serve.")
    var family: MetricFamily

    @Option(help: ArgumentHelp("Ignored: the daemon assigns partitions (kept for old scripts).", visibility: .hidden))
    var shard: Int?

    @Option(help: ArgumentHelp("Ignored: the daemon assigns partitions (kept for old scripts).", visibility: .hidden))
    var shards: Int?

    @Option(help: "The daemon's worker endpoint, e.g. tcp://daemon-host:7704 or ipc:///path/workers.sock.")
    var connect: String

    @Option(name: .customLong("parent-pid"), help: "Exit when this process (the spawning daemon) is gone.")
    var parentPID: Int32?

    @Option(
        name: .customLong("heartbeat-ms"),
        help: "Milliseconds between heartbeats (match the daemon's workers.heartbeat_ms)."
    )
    var heartbeat = 500

    @Option(help: "Silent heartbeats before reconnecting to the daemon (match the daemon's workers.liveness).")
    var liveness = 20

    @Option(
        name: .customLong("drain-ms"),
        help: "After SIGTERM, at most this many milliseconds serving while the daemon moves this worker's partitions."
    )
    var drain = 10_000

    @OptionGroup(title: "Worker link CURVE (a daemon with workers.curve)")
    var curve: WorkerCurveOptions

    @OptionGroup(title: "Logging")
    var logging: LoggingOptions

    func validate() throws {
        guard heartbeat >= 10 else { throw ValidationError("--heartbeat-ms must be at least 10") }
        guard liveness >= 2 else { throw ValidationError("--liveness must be at least 2") }
        guard drain >= 0 else { throw ValidationError("--drain-ms must not be negative") }
    }

    func run() async throws {
        let logger = logging.logger("dealstream.worker")
        if shard != nil || shards != nil {
            logger.warning("--shard and --shards are ignored: the daemon assigns partitions")
        }
        var options = MetricWorker.Options(family: family, endpoint: connect, parentPID: parentPID)
        options.heartbeatMilliseconds = heartbeat
        options.liveness = liveness
        options.drainMilliseconds = drain
        options.curve = try curve.keys()
        let worker = MetricWorker(options: options, logger: logger)
        signal(SIGPIPE, SIG_IGN)
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: worker)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
    }
}
