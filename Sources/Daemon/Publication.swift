import Metrics
import Wire

/// The published state: the latest payload of every live series, and the position of
/// the last publication round.
///
/// Owned by the loop thread, which also answers snapshots, so a snapshot is always one
/// whole round: never half of one.
struct PublishedState {
    struct Entry {
        /// The payload as published, with its `seq` and `log_seq`.
        var payload: [UInt8]
        var slot: Slot
    }

    private(set) var table: [TopicKey: Entry] = [:]
    private(set) var seq: UInt64 = 0
    private(set) var logSeq: UInt64 = 0

    /// Applies one round's coalesced changes at position `logSeq` and hands each message
    /// to publish (topic, payload) to `send`, `_progress` last. An empty payload removes
    /// the series (published once more with `"removed":true`).
    mutating func publish(round changes: [(topic: TopicKey, payload: [UInt8], slot: Slot)], logSeq: UInt64,
                          send: ([[UInt8]]) throws -> Void) rethrows {
        self.logSeq = logSeq
        for change in changes {
            if change.payload.isEmpty {
                guard let old = table.removeValue(forKey: change.topic) else { continue }
                seq += 1
                try send([change.topic.bytes, Topics.removal(labels: old.payload, seq: seq, logSeq: logSeq)])
            } else {
                seq += 1
                let stamped = Topics.stamped(change.payload, seq: seq, logSeq: logSeq)
                table[change.topic] = Entry(payload: stamped, slot: change.slot)
                try send([change.topic.bytes, stamped])
            }
        }
        try send([Topics.progress, Topics.position(seq: seq, logSeq: logSeq)])
    }

    /// The topics a slot has published (a scan: needed only when a worker is rebuilt).
    func topics(of slot: Slot) -> Set<TopicKey> {
        Set(table.lazy.filter { $0.value.slot == slot }.map(\.key))
    }

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
