import Foundation
import Logging
import Wire

/// How worker sessions end: the process exited, the store was reloaded, or the session
/// went silent (heartbeats, Paranoid Pirate). Kept beside `WorkerLinkServer`, whose state
/// it changes, on the same loop thread.
extension WorkerLinkServer {
    func dropSession(_ slot: Slot, reason: String) {
        logger.warning("Worker session dropped", metadata: ["worker.slot": "\(slot)", "reason": "\(reason)"])
        registry.drop(slot)
    }

    /// The supervisor saw process `pid` exit: its sessions are gone.
    func dropSessions(pid: Int32) {
        for slot in registry.slots where registry.sessions[slot]?.pid == Int(pid) {
            dropSession(slot, reason: "process \(pid) exited")
        }
    }

    /// After the store was reloaded, every worker must be rebuilt from it.
    func resetAllSessions() {
        for slot in registry.slots {
            if let s = registry.sessions[slot] { refuse(s.identity, "daemon state reloaded, send READY") }
            registry.drop(slot)
        }
        dispatchedLogSeq = committer.logSeq
    }

    /// Heartbeats to sessions that have had nothing for an interval; drops silent ones.
    func heartbeat() throws {
        defer { metrics?.workers(registry) }
        let now = WorkerRegistry.now()
        let interval = UInt64(configuration.heartbeatMilliseconds) * 1_000_000
        for slot in registry.slots {
            guard let s = registry.sessions[slot] else { continue }
            if now - s.lastHeard > expiryNanoseconds {
                dropSession(slot, reason: "silent for \(configuration.liveness) heartbeats")
                // A spawned worker that stopped answering is hung: kill it so the
                // supervisor starts a fresh one. (A remote worker is only dropped.)
                if spawnedWorkers.contains(Int32(s.pid)) {
                    logger.warning(
                        "Killing hung worker",
                        metadata: ["worker.slot": "\(slot)", "worker.pid": "\(s.pid)"]
                    )
                    kill(Int32(s.pid), SIGKILL)
                }
                continue
            }
            if now - s.lastSent >= interval {
                if try send(s, [Array(WorkerLink.Command.heartbeat.rawValue.utf8)]) {
                    registry.update(slot) { $0.lastSent = now }
                } else {
                    dropSession(slot, reason: "unreachable")
                }
            }
        }
    }
}
