public import DealModel
import Dispatch
import Wire
public import ZeroMQ

/// A late joiner's view of the published metrics (the Guide's Clone pattern).
///
/// Subscribes to updates first, then takes a snapshot, then applies only updates with a
/// `seq` above the snapshot's. A gap in `seq` (an update dropped at a high-water mark)
/// is detected when following everything (empty prefix) and repaired by a fresh
/// snapshot. Blocking: run it on a `ZMQThread`.
public final class UpdatesFollower {
    /// One series as last seen.
    public struct Series {
        public var topic: String
        public var payload: JSONValue
        public var raw: [UInt8]
    }

    public enum Event {
        /// A fresh snapshot replaced the whole state.
        case snapshot(seq: UInt64, logSeq: UInt64, count: Int)
        case update(Series)
        case removed(topic: String, raw: [UInt8])
        case progress(seq: UInt64, logSeq: UInt64)
        case gap(expected: UInt64, got: UInt64)
    }

    public private(set) var state: [String: Series] = [:]
    public private(set) var seq: UInt64 = 0
    public private(set) var logSeq: UInt64 = 0
    let prefix: [UInt8]
    let updates: ZMQSocket
    let snapshots: ZMQSocket
    let timeoutMilliseconds: Int

    public init(
        context: ZMQContext,
        updatesEndpoint: String,
        snapshotEndpoint: String,
        prefix: String,
        timeoutMilliseconds: Int = 10_000
    ) throws {
        self.prefix = Array(prefix.utf8)
        self.timeoutMilliseconds = timeoutMilliseconds
        updates = try ZMQSocket(context: context, type: .sub)
        try updates.set(.receiveHighWaterMark, 100_000)
        try updates.subscribe(self.prefix)
        if !prefix.isEmpty { try updates.subscribe(Topics.progress) }
        try updates.connect(updatesEndpoint)
        snapshots = try ZMQSocket(context: context, type: .dealer)
        try snapshots.set(.receiveHighWaterMark, 0)
        try snapshots.connect(snapshotEndpoint)
    }

    public struct Timeout: Error, CustomStringConvertible {
        public var description: String
    }

    /// Takes a snapshot of the prefix, replacing the state.
    public func takeSnapshot() throws -> Event {
        try snapshots.send([IngestProtocol.snapshot, prefix])
        var fresh: [String: Series] = [:]
        var poller = ZMQPoller()
        poller.add(snapshots)
        while true {
            guard try poller.poll(timeoutMilliseconds: timeoutMilliseconds)[0] else {
                throw Timeout(description: "no snapshot reply within \(timeoutMilliseconds) ms")
            }
            while let reply = try snapshots.receive(blocking: false) {
                let frames = IngestProtocol.withoutDelimiter(reply)
                if frames.count == 3 && frames[0] == IngestProtocol.kv {
                    let topic = String(decoding: frames[1], as: UTF8.self)
                    fresh[topic] = Series(
                        topic: topic,
                        payload: (try? JSONParser.parse(frames[2])) ?? .null,
                        raw: frames[2]
                    )
                } else if frames.count == 2 && frames[0] == IngestProtocol.end {
                    let position = try? JSONParser.parse(frames[1])
                    seq = position?["seq"]?.position ?? 0
                    logSeq = position?["log_seq"]?.position ?? 0
                    state = fresh
                    return .snapshot(seq: seq, logSeq: logSeq, count: fresh.count)
                } else if frames.first == IngestProtocol.err {
                    throw Timeout(
                        description: "snapshot refused: \(String(decoding: frames.last ?? [], as: UTF8.self))"
                    )
                }
            }
        }
    }

    /// Waits up to `milliseconds` for updates and returns what happened, in order.
    public func poll(milliseconds: Int) throws -> [Event] {
        var poller = ZMQPoller()
        poller.add(updates)
        guard try poller.poll(timeoutMilliseconds: milliseconds)[0] else { return [] }
        var events: [Event] = []
        while events.count < 10_000, let frames = try updates.receive(blocking: false) {
            guard frames.count == 2, let payload = try? JSONParser.parse(frames[1]) else { continue }
            let topic = String(decoding: frames[0], as: UTF8.self)
            let messageSeq = payload["seq"]?.position ?? 0
            let messageLogSeq = payload["log_seq"]?.position ?? 0
            if frames[0] == Topics.progress {
                if prefix.isEmpty && messageSeq > seq {
                    // Updates up to messageSeq were published but not all reached us.
                    events.append(.gap(expected: seq + 1, got: messageSeq))
                    events.append(try takeSnapshot())
                    continue
                }
                logSeq = max(logSeq, messageLogSeq)
                events.append(.progress(seq: messageSeq, logSeq: messageLogSeq))
                continue
            }
            guard messageSeq > seq else { continue }  // already in the snapshot
            if prefix.isEmpty && messageSeq != seq + 1 {
                events.append(.gap(expected: seq + 1, got: messageSeq))
                events.append(try takeSnapshot())
                continue
            }
            seq = messageSeq
            if payload["removed"] == .bool(true) {
                state[topic] = nil
                events.append(.removed(topic: topic, raw: frames[1]))
            } else {
                let series = Series(topic: topic, payload: payload, raw: frames[1])
                state[topic] = series
                events.append(.update(series))
            }
        }
        return events
    }
}
