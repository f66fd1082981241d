import DealModel
import PipelineMetrics
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
    mutating func publish(
        round changes: [(topic: TopicKey, payload: [UInt8], slot: Slot)],
        logSeq: UInt64,
        send: ([[UInt8]]) throws -> Void
    ) rethrows {
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

extension PublishedState {
    static let fileFormat: UInt32 = 1

    /// The published state as bytes, saved with every checkpoint and at a graceful stop:
    /// a restart serves it (an earlier consistent state) at once, while the workers are
    /// still being rebuilt, instead of an empty snapshot.
    func encoded(slots: [Slot]) -> [UInt8] {
        var w = BinaryWriter(capacity: 32 + table.count * 320)
        w.u32(PublishedState.fileFormat)
        w.string(PublishedState.layout(slots))
        w.u64(seq)
        w.u64(logSeq)
        w.u64(UInt64(table.count))
        for (topic, entry) in table {
            w.bytes(topic.bytes)
            w.bytes(entry.payload)
            w.string(entry.slot.family.rawValue)
            w.u32(UInt32(entry.slot.shard))
        }
        return w.bytes
    }

    /// The worker layout a saved state belongs to: which shard owns a series depends on it.
    static func layout(_ slots: [Slot]) -> String { slots.map(\.description).sorted().joined(separator: ",") }

    /// Reads `encoded(slots:)` bytes; fails unless they were saved by a daemon with the
    /// same worker layout (families and shard count): with another one, series would
    /// belong to other slots and their removals could be lost.
    init(encoded bytes: [UInt8], slots: [Slot]) throws(BinaryDecodingError) {
        var r = BinaryReader(bytes)
        guard try r.u32("format") == PublishedState.fileFormat else {
            throw BinaryDecodingError("unknown published-state format")
        }
        guard try r.string("layout") == PublishedState.layout(slots) else {
            throw BinaryDecodingError("saved with another worker layout (families or shard count)")
        }
        let known = Set(slots)
        seq = try r.u64("seq")
        logSeq = try r.u64("log_seq")
        let count = try r.u64("count")
        table.reserveCapacity(Int(min(count, 1 << 24)))
        for _ in 0..<count {
            let topic = TopicKey(try r.bytes("topic"))
            let payload = try r.bytes("payload")
            guard let family = MetricFamily(rawValue: try r.string("family")) else {
                throw BinaryDecodingError("unknown family")
            }
            let slot = Slot(family: family, shard: Int(try r.u32("shard")))
            guard known.contains(slot) else {
                throw BinaryDecodingError("series of slot \(slot), which this daemon does not run")
            }
            table[topic] = Entry(payload: payload, slot: slot)
        }
        guard r.isAtEnd else { throw BinaryDecodingError("trailing bytes after the published state") }
    }
}
