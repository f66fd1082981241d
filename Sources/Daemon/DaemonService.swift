import DealModel
import Foundation
public import Logging
import Observability
public import ServiceLifecycle
import Synchronization
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
        self.metrics = metrics ?? DaemonMetrics(families: configuration.families)
    }

    /// The path of this executable, used to spawn `dealstream worker`.
    static var executablePath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    public func run() async throws {
        // workers.curve: the spawned workers' ephemeral key pair (WorkerSecurity.swift).
        var configuration = try self.configuration.withSpawnedWorkerKey()
        guard let modelPath = configuration.modelPath else {
            throw ConfigurationError(
                key: "model",
                reason: "no model file given (--model FILE or \"model\" in the config file)"
            )
        }
        guard let modelData = FileManager.default.contents(atPath: modelPath) else {
            throw ConfigurationError(key: "model", reason: "cannot read \(modelPath)")
        }
        let modelBytes = Array(modelData)
        let model = try Model.parse(modelBytes)
        try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
        configuration.partitionSetting = try PartitionCountFile.settle(configuration)

        let context = try ZMQContext(ioThreads: 1)
        let deadWorkers = DeadWorkerInbox()
        let spawnedWorkers = SpawnedWorkers()
        let loop = DaemonLoopService(
            configuration: configuration,
            model: model,
            modelBytes: modelBytes,
            context: context,
            logger: logger,
            deadWorkers: deadWorkers,
            spawnedWorkers: spawnedWorkers,
            metrics: metrics
        )
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: loop)]
        if configuration.spawnWorkers {
            let supervisor = Supervisor(
                executable: DaemonService.executablePath,
                endpoint: configuration.resolvedWorkerEndpoint,
                extraArguments: [
                    "--heartbeat-ms", "\(configuration.heartbeatMilliseconds)", "--liveness",
                    "\(configuration.liveness)",
                    "--log-level", configuration.workerLogLevel, "--log-format", configuration.logFormat,
                ] + configuration.spawnedWorkerCurveArguments,
                environment: configuration.spawnedWorkerEnvironment,
                slots: configuration.families.flatMap { f in
                    (0..<configuration.workersToSpawn(f)).map { SpawnSlot(family: f, ordinal: $0) }
                },
                logger: logger,
                deadWorkers: deadWorkers,
                spawnedWorkers: spawnedWorkers,
                loopStart: loop.start,
                restarted: { [metrics] in metrics.workerRestarted($0.family) }
            )
            // Shut down in reverse: the loop first (it answers what is in hand and publishes
            // a last round), then the workers.
            // It returns at once when the loop failed; the loop's error is what the group
            // then reports, not the supervisor's return.
            services.insert(.init(service: supervisor, successTerminationBehavior: .ignore), at: 0)
        }
        try await ServiceGroup(configuration: .init(services: services, logger: logger)).run()
        logger.info("Daemon stopped")
    }
}

/// The loop thread as a `Service`: makes the `DaemonLoop` on its own thread (the replay
/// in its init never runs on the cooperative pool, and the loop never crosses threads),
/// reports to `start` once the endpoints are bound (or binding failed), and on graceful
/// shutdown asks the loop to finish the requests in hand and stop.
struct DaemonLoopService: Service {
    let configuration: DaemonConfiguration
    let model: Model
    let modelBytes: [UInt8]
    let context: ZMQContext
    let logger: Logger
    let deadWorkers: DeadWorkerInbox
    let spawnedWorkers: SpawnedWorkers
    let metrics: DaemonMetrics
    let start = LoopStart()

    func run() async throws {
        let stop = StopFlag()
        let thread = ZMQThread(name: "ds-loop") { [self] in
            do {
                let loop = try DaemonLoop(
                    configuration: configuration,
                    model: model,
                    modelBytes: modelBytes,
                    context: context,
                    logger: logger,
                    stop: stop,
                    deadWorkers: deadWorkers,
                    spawnedWorkers: spawnedWorkers,
                    metrics: metrics
                )
                try loop.run(bound: {
                    start.bound()
                    metrics.probe.markRestored()
                    metrics.notifier.ready(status: "serving")
                })
            } catch {
                start.failed(error)
            }
        }
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await thread.joined()
            } onGracefulShutdown: {
                logger.info("Shutdown requested: finishing in-flight requests (a second signal exits at once)")
                ImpatientExit.arm(logger: logger)
                metrics.probe.markStopping()
                metrics.notifier.stopping()
                stop.set()
            }
        } onCancel: {
            stop.set()
        }
        if let error = start.error { throw error }
    }
}

/// How the loop thread's start went, from that thread to the services waiting on it: the
/// supervisor spawns workers only once the endpoints are bound, and never after a failure.
final class LoopStart: Sendable {
    private let state = Mutex<(outcome: Result<Void, any Error>?, waiters: [CheckedContinuation<Bool, Never>])>(
        (nil, [])
    )

    /// The loop has bound its endpoints.
    func bound() { finish(.success(())) }

    /// The loop failed before or while binding.
    func failed(_ error: any Error) { finish(.failure(error)) }

    /// The failure, if the loop failed.
    var error: (any Error)? {
        state.withLock { s in
            if case .failure(let e) = s.outcome { return e }
            return nil
        }
    }

    private func finish(_ outcome: Result<Void, any Error>) {
        let (waiters, ok) = state.withLock { s -> ([CheckedContinuation<Bool, Never>], Bool) in
            if s.outcome == nil { s.outcome = outcome }
            defer { s.waiters.removeAll() }
            if case .success = s.outcome! { return (s.waiters, true) }
            return (s.waiters, false)
        }
        for w in waiters { w.resume(returning: ok) }
    }

    /// Waits until the loop has bound (true) or failed (false).
    func wait() async -> Bool {
        await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
            let now = state.withLock { s -> Bool? in
                switch s.outcome {
                case .none:
                    s.waiters.append(c)
                    return nil
                case .success: return true
                case .failure: return false
                }
            }
            if let now { c.resume(returning: now) }
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
