import DealModel
import Logging
import Wire

/// Turns ingest requests into store changes, log records and replies (PROTOCOL.md §2).
///
/// Owned by the daemon's loop thread. A request is answered at once when it is a `PING`
/// or malformed (`ERR`, nothing applied); an `EVENTS` request is resolved event by event
/// against the record store, and its `ACK` waits until the log group holding its events
/// is committed.
final class IngestProcessor {
    let model: Model
    let decoder: EventDecoder
    let maxBatchEvents: Int
    let maxFrameBytes: Int
    let durable: DurableStore
    let logger: Logger

    /// What to do with one request.
    enum Outcome {
        /// Send these frames now (after the envelope).
        case reply([[UInt8]])
        /// Send an ACK once the current log group is durable.
        case acknowledge(requestID: [UInt8], body: IngestProtocol.AckBody)
    }

    init(model: Model, durable: DurableStore, maxBatchEvents: Int, maxFrameBytes: Int, logger: Logger) {
        self.model = model
        self.decoder = EventDecoder(model: model)
        self.maxBatchEvents = maxBatchEvents
        self.maxFrameBytes = maxFrameBytes
        self.durable = durable
        self.logger = logger
    }

    /// The input position: records ever made durable (or pending in this group).
    var logSeq: UInt64 { durable.position }

    var store: RecordStore { durable.store }

    /// Handles one request (the frames after the routing envelope), appending the fact
    /// changes it causes to `changes`.
    func handle(_ frames: [[UInt8]], changes: inout [FactChange]) -> Outcome {
        guard let command = frames.first else { return .reply(error(id: [], "empty request")) }
        let requestID = frames.count > 1 ? frames[1] : []
        switch command {
        case IngestProtocol.ping:
            guard requestID.count <= IngestProtocol.maximumRequestIDBytes else {
                return .reply(error(id: [], "request id longer than \(IngestProtocol.maximumRequestIDBytes) bytes"))
            }
            return .reply([IngestProtocol.pong, requestID])
        case IngestProtocol.events:
            return events(frames, changes: &changes)
        default:
            let echo = requestID.count <= IngestProtocol.maximumRequestIDBytes ? requestID : []
            let shown = String(decoding: command.prefix(32), as: UTF8.self).filter { !$0.isNewline }
            return .reply(error(id: echo, "unknown command \"\(shown)\" (expected EVENTS or PING)"))
        }
    }

    private func error(id: [UInt8], _ reason: String) -> [[UInt8]] {
        [IngestProtocol.err, id, Array(reason.utf8)]
    }

    private func events(_ frames: [[UInt8]], changes: inout [FactChange]) -> Outcome {
        guard frames.count >= 2 else { return .reply(error(id: [], "EVENTS needs a request id, a content type and at least one event")) }
        let requestID = frames[1]
        guard requestID.count <= IngestProtocol.maximumRequestIDBytes else {
            return .reply(error(id: [], "request id longer than \(IngestProtocol.maximumRequestIDBytes) bytes"))
        }
        guard frames.count >= 3 else { return .reply(error(id: requestID, "EVENTS needs a content type and at least one event")) }
        let contentType = String(decoding: frames[2], as: UTF8.self)
        guard contentType == IngestProtocol.jsonContentType else {
            let shown = String(contentType.prefix(64)).filter { !$0.isNewline }
            return .reply(error(id: requestID, "unknown content type \"\(shown)\" (expected application/json)"))
        }
        let eventCount = frames.count - 3
        guard eventCount >= 1 else { return .reply(error(id: requestID, "EVENTS carries no event")) }
        guard eventCount <= maxBatchEvents else {
            return .reply(error(id: requestID, "\(eventCount) events exceed the batch limit of \(maxBatchEvents)"))
        }
        if let big = frames[3...].firstIndex(where: { $0.count > maxFrameBytes }) {
            return .reply(error(id: requestID, "event \(big - 3) is \(frames[big].count) bytes, over the limit of \(maxFrameBytes)"))
        }
        var ack = IngestProtocol.AckBody()
        for index in 0..<eventCount {
            let frame = frames[3 + index]
            switch decoder.decode(json: frame) {
            case .failure(let rejection):
                ack.rejected.append(.init(index: index, error: rejection.description))
            case .success(let event):
                let resolution = durable.apply(event)
                switch resolution.outcome {
                case .applied: ack.applied += 1
                case .duplicate: ack.duplicate += 1
                case .stale: ack.stale += 1
                }
                if resolution.changedState { durable.append(frame) }
                if let change = resolution.change { changes.append(change) }
            }
        }
        ack.logSeq = durable.position
        return .acknowledge(requestID: requestID, body: ack)
    }

    /// Makes the current group durable; on failure nothing of it stays applied (see
    /// `DurableStore.commit`) and the caller answers the group with `ERR`.
    func commit() throws { try durable.commit() }
}
