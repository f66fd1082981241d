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
            Connects to the daemon's worker endpoint, announces the metric family and shard it \
            serves, and is rebuilt from the daemon's state. A worker started by hand over tcp joins \
            exactly like the ones the daemon spawns over ipc. Families: \
            \(MetricFamily.allCases.map(\.rawValue).joined(separator: ", ")).
            """
    )

    @Option(help: "The metric family to serve.")
    var family: MetricFamily

    @Option(help: "Which shard (0-based).")
    var shard: Int = 0

    @Option(help: "How many shards the family has (must match the daemon's --shards).")
    var shards: Int = 1

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

    @OptionGroup(title: "Worker link CURVE (a daemon with workers.curve)")
    var curve: WorkerCurveOptions

    @OptionGroup(title: "Logging")
    var logging: LoggingOptions

    func validate() throws {
        guard shards >= 1, shard >= 0, shard < shards else { throw ValidationError("--shard must be in 0..<--shards") }
        guard heartbeat >= 10 else { throw ValidationError("--heartbeat-ms must be at least 10") }
        guard liveness >= 2 else { throw ValidationError("--liveness must be at least 2") }
    }

    func run() async throws {
        let logger = logging.logger("dealstream.worker")
        var options = MetricWorker.Options(
            family: family,
            shard: shard,
            shards: shards,
            endpoint: connect,
            parentPID: parentPID
        )
        options.heartbeatMilliseconds = heartbeat
        options.liveness = liveness
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
