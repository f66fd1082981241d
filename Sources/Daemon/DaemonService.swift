import DealModel
import Foundation
import Synchronization
import Logging
import Observability
import ServiceLifecycle
import ZeroMQ

/// The ingestion daemon as a swift-service-lifecycle `Service`.
///
/// `run()` replays the event log, binds the three public endpoints and the worker
/// endpoint on a socket thread of their own, starts the supervised worker processes and
/// runs until graceful shutdown (SIGTERM/SIGINT through the `ServiceGroup`): then it
/// stops taking requests, answers those in hand, publishes a last round, stops the
/// workers and returns.
public struct DaemonService: Service {
    public let configuration: DaemonConfiguration
    public let logger: Logger
    /// Metrics, probe state and systemd notifications (`DaemonMetrics`).
    public let metrics: DaemonMetrics

    public init(configuration: DaemonConfiguration, logger: Logger, metrics: DaemonMetrics? = nil) {
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics ?? DaemonMetrics(families: configuration.families, shards: configuration.shards)
    }

    /// The path of this executable, used to spawn `dealstream worker`.
    static var executablePath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    public func run() async throws {
        guard let modelPath = configuration.modelPath else {
            throw ConfigurationError(key: "model", reason: "no model file given (--model FILE or \"model\" in the config file)")
        }
        guard let modelData = FileManager.default.contents(atPath: modelPath) else {
            throw ConfigurationError(key: "model", reason: "cannot read \(modelPath)")
        }
        let modelBytes = Array(modelData)
        let model = try Model.parse(modelBytes)
        try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)

        let context = try ZMQContext(ioThreads: 1)
        let stop = StopFlag()
        let deadWorkers = DeadWorkerInbox()
        let spawnedWorkers = SpawnedWorkers()
        let loop = try DaemonLoop(configuration: configuration, model: model, modelBytes: modelBytes, context: context,
                                  logger: logger, stop: stop, deadWorkers: deadWorkers, spawnedWorkers: spawnedWorkers)
        let supervisor = Supervisor(executable: DaemonService.executablePath, endpoint: configuration.resolvedWorkerEndpoint,
                                    shards: configuration.shards,
                                    extraArguments: ["--heartbeat-ms", "\(configuration.heartbeatMilliseconds)",
                                                     "--liveness", "\(configuration.liveness)",
                                                     "--log-level", configuration.workerLogLevel,
                                                     "--log-format", configuration.logFormat],
                                    logger: logger, deadWorkers: deadWorkers, spawnedWorkers: spawnedWorkers,
                                    restarted: { [metrics] in metrics.workerRestarted($0) })
        let failure = LoopFailure()
        let bound = AsyncSignal()
        let slots = configuration.families.flatMap { f in (0..<configuration.shards).map { Slot(family: f, shard: $0) } }
        nonisolated(unsafe) let ownedLoop = loop
        let thread = ZMQThread(name: "ds-loop") {
            do {
                try ownedLoop.run(bound: { bound.fire() })
            } catch {
                failure.record(error)
                bound.fire()
            }
        }
        await bound.wait()
        if failure.error == nil {
            metrics.probe.markRestored()
            metrics.notifier.ready(status: "serving")
        }
        if configuration.spawnWorkers && failure.error == nil { await supervisor.start(slots) }
        await withGracefulShutdownHandler {
            await thread.joined()
        } onGracefulShutdown: {
            logger.info("Shutdown requested: finishing in-flight requests (a second signal exits at once)")
            ImpatientExit.arm(logger: logger)
            metrics.probe.markStopping()
            metrics.notifier.stopping()
            stop.set()
        }
        await supervisor.stopAll()
        if let error = failure.error { throw error }
        logger.info("Daemon stopped")
    }
}

/// An error from the loop thread, handed to the service.
final class LoopFailure: Sendable {
    private let value = Mutex<(any Error)?>(nil)
    func record(_ e: any Error) { value.withLock { $0 = e } }
    var error: (any Error)? { value.withLock { $0 } }
}

/// A one-shot signal from a thread to an async waiter.
final class AsyncSignal: Sendable {
    private let state = Mutex<(fired: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))
    func fire() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.fired = true
            defer { s.waiters.removeAll() }
            return s.waiters
        }
        for w in waiters { w.resume() }
    }
    func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { s -> Bool in
                if s.fired { return true }
                s.waiters.append(c)
                return false
            }
            if resumeNow { c.resume() }
        }
    }
}

/// After the first shutdown signal, a second SIGTERM or SIGINT ends the process at once.
///
/// Graceful shutdown answers the requests in hand and stops the workers; an operator who
/// signals again does not want to wait. Workers die with the daemon (parent-death signal).
enum ImpatientExit {
    private static let sources = Mutex<[any DispatchSourceSignal]>([])

    static func arm(logger: Logger) {
        sources.withLock { sources in
            guard sources.isEmpty else { return }
            for signal in [SIGTERM, SIGINT] {
                let source = DispatchSource.makeSignalSource(signal: signal, queue: .global())
                source.setEventHandler {
                    logger.warning("Second signal: exiting now")
                    // _exit, not exit: no atexit handlers or static destructors run while
                    // the socket threads still use libzmq (exit() made it abort).
                    _exit(1)
                }
                source.resume()
                sources.append(source)
            }
        }
    }
}
