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
        var owner: SeriesOwner
    }

    private(set) var table: [TopicKey: Entry] = [:]
    private(set) var seq: UInt64 = 0
    private(set) var logSeq: UInt64 = 0

    /// Applies one round's coalesced changes at position `logSeq` and hands each message
    /// to publish (topic, payload) to `send`, `_progress` last. An empty payload removes
    /// the series (published once more with `"removed":true`).
    mutating func publish(
        round changes: [(topic: TopicKey, payload: [UInt8], owner: SeriesOwner)],
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
                // The same value again (a partition's new owner reports its whole state at
                // a switch): nothing changed for subscribers, nothing is sent.
                if let old = table[change.topic], Topics.isStamped(old.payload, from: change.payload) {
                    table[change.topic]!.owner = change.owner
                    continue
                }
                seq += 1
                let stamped = Topics.stamped(change.payload, seq: seq, logSeq: logSeq)
                table[change.topic] = Entry(payload: stamped, owner: change.owner)
                try send([change.topic.bytes, stamped])
            }
        }
        try send([Topics.progress, Topics.position(seq: seq, logSeq: logSeq)])
    }

    /// The topics published for some partitions of a family (a scan: needed only when
    /// partitions move).
    func topics(of family: MetricFamily, partitions: PartitionSet) -> Set<TopicKey> {
        Set(
            table.lazy.filter { $0.value.owner.family == family && partitions.contains($0.value.owner.partition) }.map(
                \.key
            )
        )
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
    func encoded(layout: Layout) -> [UInt8] {
        var w = BinaryWriter(capacity: 32 + table.count * 320)
        w.u32(PublishedState.fileFormat)
        w.string(layout.description)
        w.u64(seq)
        w.u64(logSeq)
        w.u64(UInt64(table.count))
        for (topic, entry) in table {
            w.bytes(topic.bytes)
            w.bytes(entry.payload)
            w.string(entry.owner.family.rawValue)
            w.u32(UInt32(entry.owner.partition))
        }
        return w.bytes
    }

    /// What a saved state belongs to: the families served and the partition count (which
    /// partition a series is in depends on it). How many workers serve them does not matter.
    struct Layout: CustomStringConvertible {
        var families: [MetricFamily]
        var partitions: Int
        var description: String {
            families.map(\.rawValue).sorted().joined(separator: ",") + ";partitions=\(partitions)"
        }
    }

    /// Reads `encoded(layout:)` bytes; fails unless they were saved by a daemon with the
    /// same layout (families and partition count): with another one, series would belong
    /// to other partitions and their removals could be lost.
    init(encoded bytes: [UInt8], layout: Layout) throws(BinaryDecodingError) {
        var r = BinaryReader(bytes)
        guard try r.u32("format") == PublishedState.fileFormat else {
            throw BinaryDecodingError("unknown published-state format")
        }
        guard try r.string("layout") == layout.description else {
            throw BinaryDecodingError("saved with another layout (families or partition count)")
        }
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
            let owner = SeriesOwner(family: family, partition: Int(try r.u32("partition")))
            guard layout.families.contains(family), owner.partition < layout.partitions else {
                throw BinaryDecodingError("series of \(owner), which this daemon does not serve")
            }
            table[topic] = Entry(payload: payload, owner: owner)
        }
        guard r.isAtEnd else { throw BinaryDecodingError("trailing bytes after the published state") }
    }
}
