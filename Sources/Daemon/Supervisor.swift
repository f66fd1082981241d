import CLinuxShims
import Foundation
import Synchronization
import Logging
import Metrics

/// Starts the worker processes of the daemon and restarts any that exits.
///
/// Each slot (metric family, shard) gets one process running `dealstream worker`,
/// connected to the daemon's worker endpoint over ipc. A worker that exits is reported to
/// the daemon loop (which drops its session, so publication waits for its replacement)
/// and restarted with exponential back-off. Workers also ask the kernel for SIGTERM when
/// the daemon dies, so none outlives it, even after `kill -9`.
actor Supervisor {
    struct Child {
        var slot: Slot
        var process: Process
        var started: Date
        var backoff: Double
    }

    let executable: String
    let endpoint: String
    let shards: Int
    /// Flags every worker gets besides its slot (heartbeat, liveness, log level).
    let extraArguments: [String]
    let logger: Logger
    let deadWorkers: DeadWorkerInbox
    let spawnedWorkers: SpawnedWorkers
    private var children: [Int32: Child] = [:]
    private let spawner = SpawnerThread()
    private var stopping = false
    /// Told of each restart (`DaemonMetrics.workerRestarted`).
    private let restarted: @Sendable (Slot) -> Void

    init(executable: String, endpoint: String, shards: Int, extraArguments: [String], logger: Logger,
         deadWorkers: DeadWorkerInbox, spawnedWorkers: SpawnedWorkers, restarted: @escaping @Sendable (Slot) -> Void = { _ in }) {
        self.restarted = restarted
        self.spawnedWorkers = spawnedWorkers
        self.extraArguments = extraArguments
        self.executable = executable
        self.endpoint = endpoint
        self.shards = shards
        self.logger = logger
        self.deadWorkers = deadWorkers
    }

    func start(_ slots: [Slot]) {
        for slot in slots { spawn(slot, backoff: 0.1) }
    }

    private func spawn(_ slot: Slot, backoff: Double) {
        guard !stopping else { return }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = [
            "worker", "--family", slot.family.rawValue, "--shard", "\(slot.shard)", "--shards", "\(shards)",
            "--connect", endpoint, "--parent-pid", "\(getpid())",
        ] + extraArguments
        process.terminationHandler = { [weak self] p in
            let pid = p.processIdentifier
            let status = p.terminationStatus
            let reason = p.terminationReason
            Task { await self?.exited(pid: pid, status: status, signaled: reason == .uncaughtSignal) }
        }
        do {
            try spawner.run(process)
            children[process.processIdentifier] = Child(slot: slot, process: process, started: Date(), backoff: backoff)
            spawnedWorkers.insert(process.processIdentifier)
            logger.info("Worker started", metadata: ["worker.slot": "\(slot)", "worker.pid": "\(process.processIdentifier)"])
        } catch {
            logger.error("Worker could not be started", metadata: ["worker.slot": "\(slot)", "error": "\(error)"])
            scheduleRestart(slot, backoff: backoff)
        }
    }

    private func exited(pid: Int32, status: Int32, signaled: Bool) {
        guard let child = children.removeValue(forKey: pid) else { return }
        spawnedWorkers.remove(pid)
        deadWorkers.post(pid)
        guard !stopping else { return }
        logger.warning("Worker exited, restarting", metadata: [
            "worker.slot": "\(child.slot)", "worker.pid": "\(pid)",
            signaled ? "worker.signal" : "worker.status": "\(status)",
        ])
        // A worker that ran a while restarts at once; one that keeps dying backs off.
        let backoff = Date().timeIntervalSince(child.started) > 10 ? 0.1 : min(child.backoff * 2, 5)
        restarted(child.slot)
        scheduleRestart(child.slot, backoff: backoff)
    }

    private func scheduleRestart(_ slot: Slot, backoff: Double) {
        Task {
            try? await Task.sleep(for: .milliseconds(Int(backoff * 1000)))
            self.spawn(slot, backoff: backoff)
        }
    }

    /// Sends SIGTERM to every worker, waits up to `grace` seconds, then SIGKILLs the rest.
    func stopAll(grace: Double = 5) async {
        stopping = true
        for pid in children.keys { kill(pid, SIGTERM) }
        let deadline = Date().addingTimeInterval(grace)
        while !children.isEmpty && Date() < deadline {
            try? await Task.sleep(for: .milliseconds(20))
            for (pid, child) in children where !child.process.isRunning { children[pid] = nil }
        }
        for pid in children.keys { kill(pid, SIGKILL) }
        for child in children.values { child.process.waitUntilExit() }
        children.removeAll()
    }
}

/// Starts processes from one long-lived thread.
///
/// Linux delivers a child's parent-death signal when the *thread* that forked it exits,
/// not the process; pool threads come and go, so every worker is forked from this thread,
/// which lives as long as the daemon.
final class SpawnerThread: Sendable {
    private struct Request: @unchecked Sendable {
        var process: Process
        var done: DispatchSemaphore
    }

    private let requests = Mutex<[Request]>([])
    private let wake = DispatchSemaphore(value: 0)
    private let errors = Mutex<[ObjectIdentifier: any Error]>([:])

    init() {
        let thread = Thread { [self] in
            _ = CLinuxShims_setThreadName("ds-spawner")
            while true {
                wake.wait()
                let batch = requests.withLock { r in defer { r.removeAll() }; return r }
                for request in batch {
                    do {
                        try request.process.run()
                    } catch {
                        errors.withLock { $0[ObjectIdentifier(request.process)] = error }
                    }
                    request.done.signal()
                }
            }
        }
        thread.name = "worker-spawner"
        thread.start()
    }

    /// Runs `process` from the spawner thread and waits until it has started.
    func run(_ process: Process) throws {
        let done = DispatchSemaphore(value: 0)
        requests.withLock { $0.append(Request(process: process, done: done)) }
        wake.signal()
        done.wait()
        if let error = errors.withLock({ $0.removeValue(forKey: ObjectIdentifier(process)) }) { throw error }
    }
}
