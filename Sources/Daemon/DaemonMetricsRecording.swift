import DealModel
import Foundation
import Observability
import PipelineMetrics
import Prometheus
import Synchronization
import Wire

/// The one-line calls the loop, the ingest thread, the checkpoint thread and the
/// supervisor make (see `DaemonMetrics` for which thread calls which).
extension DaemonMetrics {
    // MARK: loop thread

    /// Every turn of the loop: the liveness stamp and, under systemd, the watchdog.
    func loopTurn() {
        probe.loopAnswered()
        notifier.watchdogIfDue()
    }

    /// After the ACKs of a committed group are handed back.
    func acknowledged(_ requests: [IngestFront.Request], _ acks: [IngestProtocol.AckBody]) {
        let now = DispatchTime.now().uptimeNanoseconds
        var counts = (received: 0, applied: 0, duplicate: 0, stale: 0)
        for (request, ack) in zip(requests, acks) {
            counts.received += request.frames.count
            counts.applied += ack.applied
            counts.duplicate += ack.duplicate
            counts.stale += ack.stale
            for rejection in ack.rejected {
                guard rejection.index < request.decoded.count, case .failure(let why) = request.decoded[rejection.index]
                else {
                    rejected[.invalid]!.increment()
                    continue
                }
                rejected[RejectionClass(why)]!.increment()
            }
            ackLatency.recordNanoseconds(Int64(now &- request.received))
        }
        received.increment(by: Int64(counts.received))
        applied.increment(by: Int64(counts.applied))
        duplicate.increment(by: Int64(counts.duplicate))
        stale.increment(by: Int64(counts.stale))
    }

    /// A group the store could not commit, answered ERR.
    func refused(_ requests: Int) { errors["store"]!.increment(by: Int64(requests)) }

    /// A group commit that took `nanoseconds`, after which the log holds `logSeq` records.
    func synced(nanoseconds: UInt64, logSeq: UInt64) {
        syncLatency.recordNanoseconds(Int64(nanoseconds))
        logged.store(logSeq, ordering: .relaxed)
        loggedLogSeq.set(Double(logSeq))
        publishLag.set(Double(logSeq &- min(logSeq, publishedPosition.load(ordering: .relaxed))))
    }

    /// After a publication round was sent (on the updates thread): its position and
    /// sequence number, and the subscribers.
    func published(logSeq: UInt64, seq: UInt64, subscribers connected: Int) {
        subscribers.set(Double(connected))
        rounds.increment()
        let before = publishedSeq.exchange(seq, ordering: .relaxed)
        if seq > before { seriesPublished.increment(by: Int64(seq - before)) }
        publishedPosition.store(logSeq, ordering: .relaxed)
        publishedLogSeq.set(Double(logSeq))
        let log = logged.load(ordering: .relaxed)
        publishLag.set(Double(log &- min(log, logSeq)))
    }

    /// The output budget after a round (`RoundPacing`).
    func paced(_ pacing: RoundPacing) {
        roundGap.set(Double(pacing.gap) / 1e9)
        roundOutput.set(Double(pacing.lastRoundCost) / 1e9)
    }

    /// The state restored at start: where the log and the saved publication are.
    func restored(logSeq: UInt64, published: PublishedState, checkpoint: String) {
        let (position, seq) = (published.logSeq, published.seq)
        logged.store(logSeq, ordering: .relaxed)
        loggedLogSeq.set(Double(logSeq))
        publishedSeq.store(seq, ordering: .relaxed)
        publishedPosition.store(position, ordering: .relaxed)
        publishedLogSeq.set(Double(position))
        publishLag.set(Double(logSeq &- min(logSeq, position)))
        if let modified = (try? FileManager.default.attributesOfItem(atPath: checkpoint))?[.modificationDate] as? Date {
            checkpointAt(modified.timeIntervalSince1970)
        }
    }

    /// The worker sessions as the loop sees them (each heartbeat): sessions per family,
    /// outstanding work per family, vacant partitions, and whether every partition has a
    /// caught-up owner.
    func workers(_ registry: WorkerRegistry) {
        var up: [MetricFamily: Int] = [:]
        var facts: [MetricFamily: Int] = [:]
        var batches: [MetricFamily: Int] = [:]
        for session in registry.sessions.values {
            up[session.family, default: 0] += 1
            facts[session.family, default: 0] += session.outstandingFacts
            batches[session.family] = max(batches[session.family] ?? 0, session.outstanding)
        }
        var allCaughtUp = true
        for family in registry.families {
            let vacant = registry.vacant(family)
            if vacant > 0 { allCaughtUp = false }
            vacantPartitions[family]?.set(Double(vacant))
            sessionsUp[family]?.set(Double(up[family] ?? 0))
            outstandingFacts[family]?.set(Double(facts[family] ?? 0))
            outstandingBatches[family]?.set(Double(batches[family] ?? 0))
        }
        probe.setCaughtUp(allCaughtUp)
    }

    /// Partitions of `family` moved to another session.
    func partitionsMoved(_ family: MetricFamily, count: Int) { moves[family]?.increment(by: Int64(count)) }

    // MARK: other threads

    /// The ingest thread read a request of `type` (`events`, `ping`), or answered one ERR.
    func requestReceived(_ type: String) { requests[type]?.increment() }
    func malformed() { errors["malformed"]!.increment() }

    /// A checkpoint finished (`ok`) or failed, after `seconds`.
    func checkpointWritten(seconds: Double, ok: Bool) {
        guard ok else {
            checkpointFailures.increment()
            return
        }
        checkpointDuration.record(.nanoseconds(Int64(seconds * 1e9)))
        checkpointAt(Date().timeIntervalSince1970)
    }

    private func checkpointAt(_ unixTime: Double) {
        lastCheckpoint.store(UInt64(unixTime), ordering: .relaxed)
        checkpointLast.set(unixTime)
    }

    /// The supervisor restarts a worker of `family`.
    func workerRestarted(_ family: MetricFamily) { restarts[family]?.increment() }
}
