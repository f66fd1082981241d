import DealModel
import EventEncoding
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
        switch IngestProtocol.parse(frames, maxBatchEvents: maxBatchEvents, maxFrameBytes: maxFrameBytes,
                                    contentTypes: EventEncoding.contentTypes) {
        case .failure(let error):
            return .reply([IngestProtocol.err, error.requestID, Array(error.reason.utf8)])
        case .success(.ping(let requestID)):
            return .reply([IngestProtocol.pong, requestID])
        case .success(.events(let requestID, let contentType, let events)):
            let encoding = EventEncoding(contentType: contentType) ?? .json
            return .acknowledge(requestID: requestID, body: apply(events, encoding: encoding, changes: &changes))
        }
    }

    /// Decodes, validates and resolves the events of one request.
    private func apply(_ events: ArraySlice<[UInt8]>, encoding: EventEncoding, changes: inout [FactChange]) -> IngestProtocol.AckBody {
        var ack = IngestProtocol.AckBody()
        for (index, frame) in events.enumerated() {
            switch encoding.decode(frame, with: decoder) {
            case .failure(let rejection):
                ack.rejected.append(.init(index: index, error: rejection.description))
            case .success(let event):
                let resolution = durable.apply(event)
                switch resolution.outcome {
                case .applied: ack.applied += 1
                case .duplicate: ack.duplicate += 1
                case .stale: ack.stale += 1
                }
                if resolution.changedState { durable.append(frame, encoding: encoding) }
                if let change = resolution.change { changes.append(change) }
            }
        }
        ack.logSeq = durable.position
        return ack
    }

    /// Makes the current group durable; on failure nothing of it stays applied (see
    /// `DurableStore.commit`) and the caller answers the group with `ERR`.
    func commit() throws { try durable.commit() }
}
