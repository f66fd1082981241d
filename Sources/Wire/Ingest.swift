import DealModel

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
            var out: [UInt8] = Array("{\"applied\":\(applied),\"duplicate\":\(duplicate),\"stale\":\(stale),\"rejected\":[".utf8)
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

    /// Snapshot endpoint commands (PROTOCOL.md §4).
    public static let snapshot: [UInt8] = Array("SNAPSHOT".utf8)
    public static let kv: [UInt8] = Array("KV".utf8)
    public static let end: [UInt8] = Array("END".utf8)
}

extension IngestProtocol.AckBody {
    /// Reads an `ACK` body; `nil` when it is not one.
    public static func decode(_ bytes: [UInt8]) -> IngestProtocol.AckBody? {
        guard let v = try? JSONParser.parse(bytes), case .object = v,
            case .int(let applied)? = v["applied"], case .int(let duplicate)? = v["duplicate"],
            case .int(let stale)? = v["stale"], case .int(let logSeq)? = v["log_seq"],
            case .array(let rejected)? = v["rejected"]
        else { return nil }
        var body = IngestProtocol.AckBody()
        body.applied = Int(applied)
        body.duplicate = Int(duplicate)
        body.stale = Int(stale)
        body.logSeq = UInt64(logSeq)
        for r in rejected {
            guard case .int(let index)? = r["index"], let error = r["error"]?.stringValue else { return nil }
            body.rejected.append(.init(index: Int(index), error: error))
        }
        return body
    }
}
