import Metrics
import Wire

/// The published state: the latest payload of every live series, and the position of
/// the last publication round.
///
/// Owned by the loop thread, which also answers snapshots, so a snapshot is always one
/// whole round: never half of one.
struct PublishedState {
    struct Entry {
        var payload: [UInt8]
        var unstamped: [UInt8]
        var slot: Slot
    }

    private(set) var table: [TopicKey: Entry] = [:]
    private(set) var topicsBySlot: [Slot: Set<TopicKey>] = [:]
    private(set) var seq: UInt64 = 0
    private(set) var logSeq: UInt64 = 0

    /// Applies one round's coalesced changes at position `logSeq`; returns the messages
    /// to publish (topic, payload), `_progress` last.
    mutating func publish(round changes: [(topic: TopicKey, payload: [UInt8], slot: Slot)], logSeq: UInt64) -> [[[UInt8]]] {
        var out: [[[UInt8]]] = []
        out.reserveCapacity(changes.count + 1)
        self.logSeq = logSeq
        for change in changes {
            if change.payload.isEmpty {
                guard let old = table.removeValue(forKey: change.topic) else { continue }
                topicsBySlot[old.slot]?.remove(change.topic)
                seq += 1
                out.append([change.topic.bytes, Topics.removal(labels: old.unstamped, seq: seq, logSeq: logSeq)])
            } else {
                seq += 1
                let stamped = Topics.stamped(change.payload, seq: seq, logSeq: logSeq)
                if let old = table[change.topic], old.slot != change.slot { topicsBySlot[old.slot]?.remove(change.topic) }
                table[change.topic] = Entry(payload: stamped, unstamped: change.payload, slot: change.slot)
                topicsBySlot[change.slot, default: []].insert(change.topic)
            }
            if !change.payload.isEmpty { out.append([change.topic.bytes, table[change.topic]!.payload]) }
        }
        out.append([Topics.progress, Topics.position(seq: seq, logSeq: logSeq)])
        return out
    }

    func topics(of slot: Slot) -> Set<TopicKey> { topicsBySlot[slot] ?? [] }

    /// The snapshot of every series whose topic starts with `prefix`.
    func snapshot(prefix: [UInt8]) -> [(topic: [UInt8], payload: [UInt8])] {
        table.compactMap { topic, entry in
            topic.bytes.starts(with: prefix) ? (topic.bytes, entry.payload) : nil
        }.sorted { $0.topic.lexicographicallyPrecedes($1.topic) }
    }
}

/// One worker slot: a metric family and a shard of it.
struct Slot: Hashable, Sendable, CustomStringConvertible {
    var family: MetricFamily
    var shard: Int
    var description: String { "\(family.rawValue)#\(shard)" }
}
