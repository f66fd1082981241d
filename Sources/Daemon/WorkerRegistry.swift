import DealModel
import Dispatch
import PipelineMetrics
import Wire

/// The worker slots the daemon expects and the session serving each.
///
/// A slot (family, shard) is served by at most one worker session at a time. A session
/// starts with `READY`, is rebuilt from the daemon's current facts, and then receives
/// every fact batch; its `RESULT`s wait here until a publication round can take them
/// (the round's position is the lowest position every slot has reported).
struct WorkerRegistry {
    struct Result {
        var logSeq: UInt64
        /// The first result of a session holds every series of the slot.
        var isFull: Bool
        var series: [(topic: TopicKey, payload: [UInt8])]

        /// One slot's consecutive results as one: each topic once, in the order it first
        /// appeared, with its latest payload; full if any of them was (only a session's
        /// first result is, and results of an earlier session are dropped when a new one
        /// is admitted, so a full one is always first). The one place results coalesce.
        static func merged(_ results: [Result]) -> Result {
            if results.count == 1 { return results[0] }
            var order: [TopicKey] = []
            var latest: [TopicKey: [UInt8]] = [:]
            for result in results {
                for (topic, payload) in result.series where latest.updateValue(payload, forKey: topic) == nil {
                    order.append(topic)
                }
            }
            return Result(
                logSeq: results.last!.logSeq,
                isFull: results.contains(where: \.isFull),
                series: order.map { ($0, latest[$0]!) }
            )
        }
    }

    struct Session {
        var identity: [UInt8]
        var pid: Int
        var lastHeard: UInt64
        var lastSent: UInt64
        var stringsSent: Int
        /// The batches sent that asked for a result and are not yet covered by one (a worker
        /// may answer several batches with one result): their positions and fact counts.
        var awaited: [(position: UInt64, facts: Int)] = []
        var outstanding: Int { awaited.count }
        /// The facts in `awaited`, kept as they come and go (read on every loop iteration).
        var outstandingFacts = 0

        mutating func await(_ position: UInt64, facts: Int) {
            awaited.append((position, facts))
            outstandingFacts += facts
        }

        /// A result covers every batch up to its position.
        mutating func covered(upTo position: UInt64) {
            let n = awaited.prefix { $0.position <= position }.count
            outstandingFacts -= awaited.prefix(n).reduce(0) { $0 + $1.facts }
            awaited.removeFirst(n)
        }

        var awaitingFull = true
        /// What this session is rebuilt from (shared with the others rebuilt at the same
        /// position); nil once the rebuild is sent.
        var rebuild: RebuildSource?
        /// Index of the next fact of `rebuild` to send; nil once the rebuild is sent.
        var rebuildCursor: Int? = 0
        /// Live fact batches that arrive while the rebuild is being sent, in order.
        var queued: [[[UInt8]]] = []
        var results: [Result] = []
        /// Highest position reported (results received), `nil` until the rebuild result.
        var reported: UInt64?
    }

    let slots: [Slot]
    let shards: Int
    private(set) var sessions: [Slot: Session] = [:]
    private var slotByIdentity: [[UInt8]: Slot] = [:]

    init(families: [MetricFamily], shards: Int) {
        self.shards = shards
        slots = families.flatMap { f in (0..<shards).map { Slot(family: f, shard: $0) } }
    }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    func slot(of identity: [UInt8]) -> Slot? { slotByIdentity[identity] }

    enum Admission {
        case admitted(Slot)
        case refused(String)
    }

    /// Decides whether a `READY` may take its slot. A slot whose session has gone silent
    /// for `expiry` nanoseconds is taken over.
    mutating func admit(_ ready: WorkerLink.Ready, identity: [UInt8], expiry: UInt64) -> Admission {
        guard let family = MetricFamily(rawValue: ready.family) else {
            return .refused("unknown metric family \(ready.family)")
        }
        guard ready.shards == shards else {
            return .refused("daemon runs \(shards) shard(s) per family, worker asked for \(ready.shards)")
        }
        let slot = Slot(family: family, shard: ready.shard)
        guard slots.contains(slot) else { return .refused("daemon does not serve \(slot)") }
        let now = WorkerRegistry.now()
        if let existing = sessions[slot], existing.identity != identity, now - existing.lastHeard < expiry {
            return .refused("slot \(slot) is served by pid \(existing.pid)")
        }
        drop(slot)
        sessions[slot] = Session(identity: identity, pid: ready.pid, lastHeard: now, lastSent: now, stringsSent: 0)
        slotByIdentity[identity] = slot
        return .admitted(slot)
    }

    mutating func drop(_ slot: Slot) {
        if let old = sessions.removeValue(forKey: slot) { slotByIdentity[old.identity] = nil }
    }

    mutating func update(_ slot: Slot, _ body: (inout Session) -> Void) {
        if var s = sessions[slot] {
            body(&s)
            sessions[slot] = s
        }
    }

    /// The position every slot has reported: what the next round may publish.
    var commonPosition: UInt64? {
        var lowest: UInt64?
        for slot in slots {
            guard let reported = sessions[slot]?.reported else { return nil }
            lowest = min(lowest ?? reported, reported)
        }
        return lowest
    }

    /// Whether some session holds a result at or below `position`.
    func hasResults(upTo position: UInt64) -> Bool {
        sessions.values.contains { ($0.results.first?.logSeq).map { $0 <= position } ?? false }
    }

    /// Whether any session is too far behind to send it more (ingest then waits): too
    /// many batches, or too many facts, unanswered.
    func isBackPressured(batches: Int, facts: Int) -> Bool {
        sessions.values.contains { $0.outstanding >= batches || $0.outstandingFacts >= facts }
    }

    /// Whether some slot has no worker at all: its replacement will be rebuilt at a
    /// position at least as far as anything dispatched so far.
    var hasVacantSlot: Bool { slots.contains { sessions[$0] == nil } }

    /// Folds the slot's pending results into one (see `Result.merged`). Only correct while
    /// `hasVacantSlot`: no round can publish before the vacant slot's rebuild position,
    /// which is beyond every result pending now. Keeps memory bounded by the number of
    /// series, not by how long a worker is away.
    mutating func coalesceResults(of slot: Slot) {
        guard var s = sessions[slot], s.results.count > 1 else { return }
        s.results = [Result.merged(s.results)]
        sessions[slot] = s
    }

    /// Removes and returns, per slot, the results up to `position`.
    mutating func takeResults(upTo position: UInt64) -> [(Slot, [Result])] {
        var out: [(Slot, [Result])] = []
        for slot in slots {
            guard var s = sessions[slot] else { continue }
            let ready = s.results.prefix { $0.logSeq <= position }
            if !ready.isEmpty {
                out.append((slot, Array(ready)))
                s.results.removeFirst(ready.count)
                sessions[slot] = s
            }
        }
        return out
    }
}
