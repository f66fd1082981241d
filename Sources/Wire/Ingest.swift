public import DealModel

/// Frames of the public ingest endpoint (PROTOCOL.md §2).
public enum IngestProtocol {
    public static let events: [UInt8] = Array("EVENTS".utf8)
    public static let ping: [UInt8] = Array("PING".utf8)
    public static let pong: [UInt8] = Array("PONG".utf8)
    public static let ack: [UInt8] = Array("ACK".utf8)
    public static let err: [UInt8] = Array("ERR".utf8)
    public static let jsonContentType = "application/json"
    public static let maximumRequestIDBytes = 64

    /// One rejected event of a request.
    public struct Rejection: Sendable, Equatable {
        public var index: Int
        public var error: String
        public init(index: Int, error: String) {
            self.index = index
            self.error = error
        }
    }

    /// The body of an `ACK`.
    public struct AckBody: Sendable, Equatable {
        public var applied = 0
        public var duplicate = 0
        public var stale = 0
        public var rejected: [Rejection] = []
        public var logSeq: UInt64 = 0
        public init() {}

        public func encode() -> [UInt8] {
            var out: [UInt8] = Array(
                "{\"applied\":\(applied),\"duplicate\":\(duplicate),\"stale\":\(stale),\"rejected\":[".utf8
            )
            for (i, r) in rejected.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                out.append(contentsOf: Array("{\"index\":\(r.index),\"error\":".utf8))
                JSONWriter.appendString(r.error, to: &out)
                out.append(UInt8(ascii: "}"))
            }
            out.append(contentsOf: Array("],\"log_seq\":\(logSeq)}".utf8))
            return out
        }
    }

    /// A reply without the empty delimiter frame a ROUTER may put in front of it (it does
    /// when the request looked like a REQ envelope).
    public static func withoutDelimiter(_ frames: [[UInt8]]) -> [[UInt8]] {
        frames.first?.isEmpty == true ? Array(frames.dropFirst()) : frames
    }

    /// Splits a message received on a ROUTER into its envelope (the peer identity, plus the
    /// empty delimiter a REQ client sends) and the request frames.
    public static func splitEnvelope(_ frames: [[UInt8]]) -> (envelope: [[UInt8]], body: [[UInt8]]) {
        let split = frames.count > 1 && frames[1].isEmpty ? 2 : 1
        return (Array(frames.prefix(split)), Array(frames.dropFirst(split)))
    }

    /// Snapshot endpoint commands (PROTOCOL.md §4).
    public static let snapshot: [UInt8] = Array("SNAPSHOT".utf8)
    public static let kv: [UInt8] = Array("KV".utf8)
    public static let end: [UInt8] = Array("END".utf8)
}

extension IngestProtocol.AckBody {
    /// Reads an `ACK` body; `nil` when it is not one.
    public static func decode(_ bytes: [UInt8]) -> IngestProtocol.AckBody? {
        guard let v = try? JSONParser.parse(bytes), case .object = v, let position = v["log_seq"]?.position,
            case .int(let applied)? = v["applied"], case .int(let duplicate)? = v["duplicate"],
            case .int(let stale)? = v["stale"], applied >= 0, duplicate >= 0, stale >= 0,
            case .array(let rejected)? = v["rejected"]
        else { return nil }
        var body = IngestProtocol.AckBody()
        body.applied = Int(applied)
        body.duplicate = Int(duplicate)
        body.stale = Int(stale)
        body.logSeq = position
        for r in rejected {
            guard case .int(let index)? = r["index"], let error = r["error"]?.stringValue else { return nil }
            body.rejected.append(.init(index: Int(index), error: error))
        }
        return body
    }
}

/// A well-formed ingest request (PROTOCOL.md §2), its frames checked but its events not
/// yet decoded.
public enum IngestRequest: Equatable {
    case ping(requestID: [UInt8])
    case events(requestID: [UInt8], contentType: String, events: ArraySlice<[UInt8]>)
}

/// Why a request is not of the protocol's form: answered with `ERR`, the request id it
/// could read (empty when none) and this one-line reason.
public struct IngestRequestError: Error, Equatable {
    public var requestID: [UInt8]
    public var reason: String
}

extension IngestProtocol {
    /// Checks the frames of a request (after the routing envelope): command, request id,
    /// content type, number and size of event frames.
    public static func parse(
        _ frames: [[UInt8]],
        maxBatchEvents: Int,
        maxFrameBytes: Int,
        contentTypes: Set<String> = [jsonContentType]
    ) -> Result<IngestRequest, IngestRequestError> {
        func fail(_ id: [UInt8], _ reason: String) -> Result<IngestRequest, IngestRequestError> {
            .failure(IngestRequestError(requestID: id, reason: reason))
        }
        guard let command = frames.first else { return fail([], "empty request") }
        let requestID = frames.count > 1 ? frames[1] : []
        let readableID = requestID.count <= maximumRequestIDBytes ? requestID : []
        switch command {
        case ping:
            guard requestID.count <= maximumRequestIDBytes else {
                return fail([], "request id longer than \(maximumRequestIDBytes) bytes")
            }
            return .success(.ping(requestID: requestID))
        case events:
            guard frames.count >= 2 else {
                return fail([], "EVENTS needs a request id, a content type and at least one event")
            }
            guard requestID.count <= maximumRequestIDBytes else {
                return fail([], "request id longer than \(maximumRequestIDBytes) bytes")
            }
            guard frames.count >= 3 else {
                return fail(requestID, "EVENTS needs a content type and at least one event")
            }
            let contentType = String(decoding: frames[2], as: UTF8.self)
            guard contentTypes.contains(contentType) else {
                let shown = String(contentType.prefix(64)).filter { !$0.isNewline }
                return fail(
                    requestID,
                    "unknown content type \"\(shown)\" (expected \(contentTypes.sorted().joined(separator: " or ")))"
                )
            }
            let eventCount = frames.count - 3
            guard eventCount >= 1 else { return fail(requestID, "EVENTS carries no event") }
            guard eventCount <= maxBatchEvents else {
                return fail(requestID, "\(eventCount) events exceed the batch limit of \(maxBatchEvents)")
            }
            if let big = frames[3...].firstIndex(where: { $0.count > maxFrameBytes }) {
                return fail(
                    requestID,
                    "event \(big - 3) is \(frames[big].count) bytes, over the limit of \(maxFrameBytes)"
                )
            }
            return .success(.events(requestID: requestID, contentType: contentType, events: frames[3...]))
        default:
            let shown = String(decoding: command.prefix(32), as: UTF8.self).filter {
                !$0.isNewline && !$0.isASCIIControl
            }
            return fail(readableID, "unknown command \"\(shown)\" (expected EVENTS or PING)")
        }
    }
}

extension Character {
    var isASCIIControl: Bool { isASCII && (asciiValue ?? 32) < 32 }
}

extension JSONValue {
    /// A `seq` or `log_seq`: a non-negative integer, or nil for anything else (a peer's
    /// bad number must never trap a client).
    public var position: UInt64? {
        if case .int(let i) = self, i >= 0 { return UInt64(i) }
        return nil
    }
}
