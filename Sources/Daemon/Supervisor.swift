import Foundation
import Logging
import PipelineMetrics
import ServiceLifecycle
import Synchronization
import ZeroMQ

/// Starts the worker processes of the daemon and restarts any that exits.
///
/// Each family gets `workers.per_family` processes running `dealstream worker`, connected
/// to the daemon's worker endpoint. Each child gets a secret token of its own in its
/// environment, which it presents in `READY`: that is how the loop knows a session is one
/// of its children (and the only kind of process it ever signals). A worker that exits is
/// reported to the daemon loop (which moves its partitions to the family's other workers,
/// or waits for its replacement) and restarted with exponential back-off. Workers also ask the kernel for SIGTERM when
/// the daemon dies, so none outlives it, even after `kill -9`.
///
/// A `Service`: `run()` waits until the loop has bound its endpoints (`loopStart`), then
/// supervises from a thread of its own until graceful shutdown, when it stops every
/// worker (SIGTERM, then SIGKILL after a grace period). Linux delivers a child's
/// parent-death signal when the *thread* that forked it exits, so every worker is forked
/// from that one long-lived thread; its blocking waits never touch the cooperative pool.
final class Supervisor: Service {
    private struct Child {
        var slot: SpawnSlot
        var process: Process
        var started: Date
        var backoff: Double
    }

    /// What the thread is told: a child exited, or stop.
    private enum Event {
        case exited(pid: Int32, status: Int32, signaled: Bool)
        case stop
    }

    private let executable: String
    private let endpoint: String
    /// Flags every worker gets besides its slot (heartbeat, liveness, log level).
    private let extraArguments: [String]
    /// The environment of every worker (with `workers.curve`, its secret key); nil: the daemon's.
    private let environment: [String: String]?
    private let slots: [SpawnSlot]
    private let logger: Logger
    private let deadWorkers: DeadWorkerInbox
    private let spawnedWorkers: SpawnedWorkers
    /// How the loop's start went: workers are spawned once it has bound its endpoints.
    private let loopStart: LoopStart
    /// Told of each restart (`DaemonMetrics.workerRestarted`).
    private let restarted: @Sendable (SpawnSlot) -> Void
    private let events = Mutex<[Event]>([])
    private let wake = DispatchSemaphore(value: 0)

    init(
        executable: String,
        endpoint: String,
        extraArguments: [String],
        environment: [String: String]? = nil,
        slots: [SpawnSlot],
        logger: Logger,
        deadWorkers: DeadWorkerInbox,
        spawnedWorkers: SpawnedWorkers,
        loopStart: LoopStart,
        restarted: @escaping @Sendable (SpawnSlot) -> Void = { _ in }
    ) {
        self.restarted = restarted
        self.executable = executable
        self.endpoint = endpoint
        self.extraArguments = extraArguments
        self.environment = environment
        self.slots = slots
        self.logger = logger
        self.deadWorkers = deadWorkers
        self.spawnedWorkers = spawnedWorkers
        self.loopStart = loopStart
    }

    func run() async throws {
        guard await loopStart.wait() else { return }
        let thread = ZMQThread(name: "ds-supervisor") { [self] in supervise() }
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await thread.joined()
            } onGracefulShutdown: {
                self.post(.stop)
            }
        } onCancel: {
            self.post(.stop)
        }
    }

    private func post(_ event: Event) {
        events.withLock { $0.append(event) }
        wake.signal()
    }

    /// The supervisor thread: spawns, restarts after back-off, stops everything at the end.
    private func supervise() {
        var children: [Int32: Child] = [:]
        /// Restarts waiting for their back-off: when, which slot, with what back-off.
        var restarts: [(at: Date, slot: SpawnSlot, backoff: Double)] = slots.map { (Date(), $0, 0.1) }
        while true {
            let now = Date()
            for restart in restarts where restart.at <= now {
                spawn(restart.slot, backoff: restart.backoff, into: &children, restarts: &restarts)
            }
            restarts.removeAll { $0.at <= now }
            let next = restarts.map(\.at).min()
            _ = wake.wait(timeout: next.map { .now() + max(0, $0.timeIntervalSinceNow) } ?? .distantFuture)
            for event in events.withLock({ e in
                defer { e.removeAll() }
                return e
            }) {
                switch event {
                case .stop:
                    stopAll(children)
                    return
                case .exited(let pid, let status, let signaled):
                    guard let child = children.removeValue(forKey: pid) else { continue }
                    spawnedWorkers.remove(pid)
                    deadWorkers.post(pid)
                    logger.warning(
                        "Worker exited, restarting",
                        metadata: [
                            "worker.slot": "\(child.slot)", "worker.pid": "\(pid)",
                            signaled ? "worker.signal" : "worker.status": "\(status)",
                        ]
                    )
                    // A worker that ran a while restarts at once; one that keeps dying backs off.
                    let backoff = Date().timeIntervalSince(child.started) > 10 ? 0.1 : min(child.backoff * 2, 5)
                    restarted(child.slot)
                    restarts.append((Date().addingTimeInterval(backoff), child.slot, backoff))
                }
            }
        }
    }

    private func spawn(
        _ slot: SpawnSlot,
        backoff: Double,
        into children: inout [Int32: Child],
        restarts: inout [(at: Date, slot: SpawnSlot, backoff: Double)]
    ) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments =
            [
                "worker", "--family", slot.family.rawValue, "--connect", endpoint, "--parent-pid", "\(getpid())",
            ] + extraArguments
        let token = SpawnedWorkers.newToken()
        var environment = self.environment ?? ProcessInfo.processInfo.environment
        environment["DEALSTREAM_WORKER_TOKEN"] = token
        process.environment = environment
        process.terminationHandler = { [weak self] p in
            self?.post(
                .exited(
                    pid: p.processIdentifier,
                    status: p.terminationStatus,
                    signaled: p.terminationReason == .uncaughtSignal
                )
            )
        }
        do {
            try process.run()
            children[process.processIdentifier] = Child(slot: slot, process: process, started: Date(), backoff: backoff)
            spawnedWorkers.insert(process.processIdentifier, token: Array(token.utf8))
            logger.info(
                "Worker started",
                metadata: ["worker.slot": "\(slot)", "worker.pid": "\(process.processIdentifier)"]
            )
        } catch {
            logger.error("Worker could not be started", metadata: ["worker.slot": "\(slot)", "error": "\(error)"])
            restarts.append((Date().addingTimeInterval(backoff), slot, backoff))
        }
    }

    /// Sends SIGTERM to every worker, waits up to `grace` seconds, then SIGKILLs the rest.
    private func stopAll(_ children: [Int32: Child], grace: Double = 5) {
        for pid in children.keys { kill(pid, SIGTERM) }
        let deadline = Date().addingTimeInterval(grace)
        var running = children
        while !running.isEmpty && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.02)
            running = running.filter { $0.value.process.isRunning }
        }
        for pid in running.keys { kill(pid, SIGKILL) }
        for child in children.values { child.process.waitUntilExit() }
        for pid in children.keys { spawnedWorkers.remove(pid) }
    }
}

/// Pids of worker processes that exited, from the supervisor to the loop thread.
final class DeadWorkerInbox: Sendable {
    private let pids = Mutex<[Int32]>([])
    func post(_ pid: Int32) { pids.withLock { $0.append(pid) } }
    func drain() -> [Int32] {
        pids.withLock { p in
            defer { p.removeAll() }
            return p
        }
    }
}

/// The worker processes this daemon spawned (kept by the supervisor) and the secret token
/// each was given, so the loop can tell its own children's sessions from any other, may
/// kill a hung child, and never signals a process it does not own.
final class SpawnedWorkers: Sendable {
    /// Each running child's token and pid.
    private let children = Mutex<[[UInt8]: Int32]>([:])

    /// A new random token (32 hex digits from the system's random source).
    static func newToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<2).map { _ in String(generator.next() as UInt64, radix: 16) }.joined(separator: "-")
    }

    func insert(_ pid: Int32, token: [UInt8]) { children.withLock { $0[token] = pid } }
    func remove(_ pid: Int32) { children.withLock { $0 = $0.filter { $0.value != pid } } }
    func contains(_ pid: Int32) -> Bool { children.withLock { $0.values.contains(pid) } }

    /// The child that was given `token`, if one is running.
    func pid(forToken token: [UInt8]) -> Int32? { children.withLock { $0[token] } }
}
