public import DealModel
import SwiftProtobuf

/// The content types the event frames of an ingest request may be in (PROTOCOL.md §2).
///
/// JSON is always accepted. The binary form is protobuf (`proto/dealstream/v1/event.proto`):
/// smaller frames and no text to scan. Both stand for the same JSON object and are
/// validated by the one `EventDecoder` (its fast path over `EventFields`, its reference path
/// over a `JSONValue`), so the rules, the rejection reasons and the
/// duplicate detection are the same whatever the encoding.
public enum EventEncoding: String, Sendable, CaseIterable {
    case json = "application/json"
    case protobuf = "application/x-protobuf"

    /// The content type frame of a request in this encoding.
    public var contentType: String { rawValue }

    public init?(contentType: String) { self.init(rawValue: contentType) }

    /// Every content type the daemon accepts.
    public static let contentTypes: Set<String> = Set(allCases.map(\.rawValue))

    /// Decodes and validates one event frame.
    public func decode(_ frame: [UInt8], with decoder: EventDecoder) -> Result<Event, EventRejection> {
        switch self {
        case .json: decoder.decode(json: frame)
        case .protobuf: ProtobufEvent.decode(frame, with: decoder)
        }
    }
}

/// Conversions between the protobuf `dealstream.v1.Event` and the JSON event it stands for.
public enum ProtobufEvent {
    /// Decodes and validates one protobuf event frame: the one-pass reader
    /// (`decodeDirect`) when it accepts the event, else SwiftProtobuf and the `JSONValue`
    /// path, which then accept it identically or word the rejection.
    public static func decode(_ frame: [UInt8], with decoder: EventDecoder) -> Result<Event, EventRejection> {
        if let event = decodeDirect(frame, with: decoder) { return .success(event) }
        return decodeThroughValue(frame, with: decoder)
    }

    /// Decodes a protobuf frame with SwiftProtobuf, reads it as its JSON value
    /// (`jsonValue(of:)`) and validates that: the reference path, which words every rejection.
    public static func decodeThroughValue(
        _ frame: [UInt8],
        with decoder: EventDecoder
    ) -> Result<Event, EventRejection> {
        let message: Dealstream_V1_Event
        do {
            message = try Dealstream_V1_Event(serializedBytes: frame)
        } catch {
            return .failure(EventRejection("event", "not a dealstream.v1.Event protobuf message (\(error))"))
        }
        return decoder.decode(value: jsonValue(of: message))
    }

    /// The JSON event with the same keys and values: absent fields are absent keys, enums
    /// their JSON strings (an unknown or unset enum value is an absent key).
    public static func jsonValue(of e: Dealstream_V1_Event) -> JSONValue {
        var members: [(String, JSONValue)] = []
        members.reserveCapacity(8)
        switch e.kind {
        case .deal: members.append(("kind", .string("deal")))
        case .dealDeleted: members.append(("kind", .string("deal_deleted")))
        case .spend: members.append(("kind", .string("spend")))
        case .account: members.append(("kind", .string("account")))
        case .unspecified, .UNRECOGNIZED: break
        }
        if e.hasSource { members.append(("source", .string(e.source))) }
        if e.hasID { members.append(("id", .string(e.id))) }
        if e.hasVersion { members.append(("version", .int(e.version))) }
        if e.hasOccurredAt { members.append(("occurred_at", .string(e.occurredAt))) }
        if e.hasDeal {
            let d = e.deal
            var deal: [(String, JSONValue)] = []
            deal.reserveCapacity(11)
            if d.hasPipeline { deal.append(("pipeline", .string(d.pipeline))) }
            if d.hasStage { deal.append(("stage", .string(d.stage))) }
            switch d.status {
            case .open: deal.append(("status", .string("open")))
            case .won: deal.append(("status", .string("won")))
            case .lost: deal.append(("status", .string("lost")))
            case .unspecified, .UNRECOGNIZED: break
            }
            if d.hasAmount { deal.append(("amount", .double(d.amount))) }
            if d.hasCurrency { deal.append(("currency", .string(d.currency))) }
            if d.hasOwner { deal.append(("owner", .string(d.owner))) }
            if d.hasTeam { deal.append(("team", .string(d.team))) }
            if d.hasLeadSource { deal.append(("lead_source", .string(d.leadSource))) }
            if d.hasAccount { deal.append(("account", .string(d.account))) }
            if d.hasCreatedAt { deal.append(("created_at", .string(d.createdAt))) }
            if d.hasClosedAt { deal.append(("closed_at", .string(d.closedAt))) }
            members.append(("deal", .object(deal)))
        }
        if e.hasSpend {
            let s = e.spend
            var spend: [(String, JSONValue)] = []
            if s.hasLeadSource { spend.append(("lead_source", .string(s.leadSource))) }
            if s.hasAmount { spend.append(("amount", .double(s.amount))) }
            if s.hasCurrency { spend.append(("currency", .string(s.currency))) }
            if s.hasDate { spend.append(("date", .string(s.date))) }
            members.append(("spend", .object(spend)))
        }
        if e.hasAccount {
            let a = e.account
            var account: [(String, JSONValue)] = []
            switch a.status {
            case .active: account.append(("status", .string("active")))
            case .churned: account.append(("status", .string("churned")))
            case .unspecified, .UNRECOGNIZED: break
            }
            if a.hasChangedAt { account.append(("changed_at", .string(a.changedAt))) }
            members.append(("account", .object(account)))
        }
        return .object(members)
    }

    /// Why a JSON event has no protobuf form; `field` is the JSON path.
    public struct ConversionError: Error, Sendable, CustomStringConvertible {
        public var field: String
        public var reason: String
        public var description: String { "\(field): \(reason)" }
    }

    /// The protobuf form of a JSON event (for clients that hold JSON, like `dealstream send
    /// --binary`). Keys the protobuf schema does not have are dropped; a value of a type
    /// the schema cannot hold is an error naming the field.
    public static func encode(json value: JSONValue) throws(ConversionError) -> [UInt8] {
        guard case .object = value else { throw ConversionError(field: "event", reason: "not a JSON object") }
        var e = Dealstream_V1_Event()
        switch try string(value["kind"], "kind") {
        case nil: break
        case "deal": e.kind = .deal
        case "deal_deleted": e.kind = .dealDeleted
        case "spend": e.kind = .spend
        case "account": e.kind = .account
        case let other?: throw ConversionError(field: "kind", reason: "\"\(other)\" has no protobuf form")
        }
        if let s = try string(value["source"], "source") { e.source = s }
        if let s = try string(value["id"], "id") { e.id = s }
        if let v = value["version"], v != .null {
            guard case .int(let version) = v else {
                throw ConversionError(field: "version", reason: "not a 64-bit integer")
            }
            e.version = version
        }
        if let s = try string(value["occurred_at"], "occurred_at") { e.occurredAt = s }
        if let d = value["deal"], d != .null {
            var deal = Dealstream_V1_Deal()
            if let s = try string(d["pipeline"], "deal.pipeline") { deal.pipeline = s }
            if let s = try string(d["stage"], "deal.stage") { deal.stage = s }
            switch try string(d["status"], "deal.status") {
            case nil: break
            case "open": deal.status = .open
            case "won": deal.status = .won
            case "lost": deal.status = .lost
            case let other?: throw ConversionError(field: "deal.status", reason: "\"\(other)\" has no protobuf form")
            }
            if let a = try number(d["amount"], "deal.amount") { deal.amount = a }
            if let s = try string(d["currency"], "deal.currency") { deal.currency = s }
            if let s = try string(d["owner"], "deal.owner") { deal.owner = s }
            if let s = try string(d["team"], "deal.team") { deal.team = s }
            if let s = try string(d["lead_source"], "deal.lead_source") { deal.leadSource = s }
            if let s = try string(d["account"], "deal.account") { deal.account = s }
            if let s = try string(d["created_at"], "deal.created_at") { deal.createdAt = s }
            if let s = try string(d["closed_at"], "deal.closed_at") { deal.closedAt = s }
            e.deal = deal
        }
        if let s = value["spend"], s != .null {
            var spend = Dealstream_V1_Spend()
            if let v = try string(s["lead_source"], "spend.lead_source") { spend.leadSource = v }
            if let a = try number(s["amount"], "spend.amount") { spend.amount = a }
            if let v = try string(s["currency"], "spend.currency") { spend.currency = v }
            if let v = try string(s["date"], "spend.date") { spend.date = v }
            e.spend = spend
        }
        if let a = value["account"], a != .null {
            var account = Dealstream_V1_Account()
            switch try string(a["status"], "account.status") {
            case nil: break
            case "active": account.status = .active
            case "churned": account.status = .churned
            case let other?: throw ConversionError(field: "account.status", reason: "\"\(other)\" has no protobuf form")
            }
            if let v = try string(a["changed_at"], "account.changed_at") { account.changedAt = v }
            e.account = account
        }
        do {
            return try e.serializedBytes()
        } catch {
            throw ConversionError(field: "event", reason: "could not be serialized (\(error))")
        }
    }

    private static func string(_ value: JSONValue?, _ field: String) throws(ConversionError) -> String? {
        guard let value, value != .null else { return nil }
        guard let s = value.stringValue else { throw ConversionError(field: field, reason: "not a string") }
        return s
    }

    private static func number(_ value: JSONValue?, _ field: String) throws(ConversionError) -> Double? {
        guard let value, value != .null else { return nil }
        guard let d = value.numberValue else { throw ConversionError(field: field, reason: "not a number") }
        return d
    }
}
