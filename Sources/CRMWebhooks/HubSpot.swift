import Crypto
import DealModel
import FoundationEssentials

/// HubSpot webhooks v3 (the JSON array of deal events) → `DealChange`s, and the deal
/// response of the CRM REST API (`GET /crm/v3/objects/deals/{id}`) → a `DealChange`.
///
/// Why: HubSpot sends one property per `deal.propertyChange` and nothing but the id on
/// `deal.creation`; this only says which field changed at which `occurredAt` (the
/// version), and `DealAssembler` builds the deal from what has been seen.
public enum HubSpotWebhook {
    /// HubSpot deal property → field. The mapping's `fields` can name the properties of
    /// the lead source and the account (e.g. `hs_analytics_source`).
    static let properties: [String: DealField] = [
        "dealstage": .stage, "pipeline": .pipeline, "amount": .amount, "deal_currency_code": .currency,
        "hubspot_owner_id": .owner, "createdate": .createdAt, "closedate": .closedAt,
    ]

    static func propertyMap(_ mapping: Mapping) -> [String: DealField] {
        var map = properties
        if let p = mapping.fields["lead_source"] { map[p] = .leadSource }
        if let p = mapping.fields["account"] { map[p] = .account }
        if let p = mapping.fields["pipeline"] {
            map["pipeline"] = nil
            map[p] = .pipeline
        }
        return map
    }

    /// The properties to ask the REST API for.
    public static func requestedProperties(_ mapping: Mapping) -> [String] { propertyMap(mapping).keys.sorted() }

    static func value(_ field: DealField, _ raw: JSONValue?, _ path: String) throws(PayloadError) -> String?? {
        switch field {
        case .createdAt, .closedAt: return try JSONFields.time(raw, path)
        case .amount: return try JSONFields.amount(raw, path)
        default:
            let t = try JSONFields.text(raw, path)
            if case .some(.some(let s)) = t, s.isEmpty { return .some(nil) }
            return t
        }
    }

    /// Translates one webhook request body.
    public static func translate(_ body: [UInt8], mapping: Mapping) throws(PayloadError) -> Translation {
        let root = try JSONFields.parse(body)
        guard case .array(let events) = root else {
            throw PayloadError(field: "body", reason: "expected a JSON array of events, got \(root.typeName)")
        }
        let map = propertyMap(mapping)
        var out = Translation()
        for (i, event) in events.enumerated() {
            let base = "[\(i)]"
            guard case .object = event else {
                throw PayloadError(field: base, reason: "expected an object, got \(event.typeName)")
            }
            guard var type = event["subscriptionType"]?.stringValue else {
                throw PayloadError(field: "\(base).subscriptionType", reason: "missing or not a string")
            }
            // Generic webhooks (`object.creation`, …) name deals by objectTypeId 0-3.
            if type.hasPrefix("object."), event["objectTypeId"]?.stringValue == "0-3" {
                type = "deal." + type.dropFirst(7)
            }
            guard type.hasPrefix("deal.") else {
                out.ignored += 1
                continue
            }
            let id = try JSONFields.id(event["objectId"], "\(base).objectId")
            let occurred = try JSONFields.version(event["occurredAt"], "\(base).occurredAt")
            _ = try JSONFields.id(event["eventId"], "\(base).eventId")
            let at = VendorTime.rfc3339(milliseconds: Int64(occurred))
            switch type {
            case "deal.creation":
                out.changes.append(DealChange(recordID: id, version: occurred, occurredAt: at, action: .upsert([:])))
            case "deal.deletion":
                out.changes.append(DealChange(recordID: id, version: occurred, occurredAt: at, action: .delete))
            case "deal.restore":
                out.changes.append(DealChange(recordID: id, version: occurred, occurredAt: at, action: .restore([:])))
            case "deal.propertyChange":
                guard let name = event["propertyName"]?.stringValue else {
                    throw PayloadError(field: "\(base).propertyName", reason: "missing or not a string")
                }
                guard let field = map[name] else {
                    out.ignored += 1
                    continue
                }
                guard let v = try value(field, event["propertyValue"] ?? .null, "\(base).propertyValue") else {
                    continue
                }
                out.changes.append(
                    DealChange(recordID: id, version: occurred, occurredAt: at, action: .upsert([field: v]))
                )
            default:
                out.ignored += 1  // deal.merge, deal.associationChange, …
            }
        }
        return out
    }

    /// Translates a CRM API deal (`{"id":…,"properties":{…},"updatedAt":…,"archived":…}`)
    /// into one change at the version of its `updatedAt` (or `hs_lastmodifieddate`).
    public static func translateDeal(_ body: [UInt8], mapping: Mapping) throws(PayloadError) -> DealChange {
        let root = try JSONFields.parse(body)
        let id = try JSONFields.id(root["id"], "id")
        guard case .object(let properties)? = root["properties"] else {
            throw PayloadError(field: "properties", reason: "missing or not an object")
        }
        let updatedText = try JSONFields.time(
            root["updatedAt"] ?? root["properties"]?["hs_lastmodifieddate"],
            "updatedAt"
        )
        guard case .some(.some(let updated)) = updatedText, let ms = VendorTime.milliseconds(rfc3339: updated) else {
            throw PayloadError(field: "updatedAt", reason: "missing")
        }
        guard ms >= 0 else { throw PayloadError(field: "updatedAt", reason: "before 1970: \(updated)") }
        let map = propertyMap(mapping)
        var fields: [DealField: String?] = [:]
        for (name, raw) in properties {
            guard let field = map[name], let v = try value(field, raw, "properties.\(name)") else { continue }
            fields[field] = v
        }
        if root["archived"] == .bool(true) {
            return DealChange(recordID: id, version: UInt64(ms), occurredAt: updated, action: .delete)
        }
        return DealChange(recordID: id, version: UInt64(ms), occurredAt: updated, action: .upsert(fields))
    }
}

/// HubSpot's request signature v3: base64(HMAC-SHA256(client secret, method + URI + body + timestamp)).
///
/// Why: it is what proves a request comes from HubSpot; requests whose
/// `X-HubSpot-Request-Timestamp` is more than five minutes from now (older, or in the
/// future) are refused, so a captured request cannot be replayed later.
public enum HubSpotSignature {
    public static let maximumAgeMilliseconds: Int64 = 5 * 60 * 1000

    /// The signature HubSpot sends for this request.
    public static func sign(secret: String, method: String, uri: String, body: [UInt8], timestamp: String) -> String {
        var message = Array((method + decodeURI(uri)).utf8)
        message += body
        message += Array(timestamp.utf8)
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: Array(secret.utf8)))
        return Base64.encode(Array(mac))
    }

    /// Throws unless `signature` is the v3 signature of the request and `timestamp` is within
    /// five minutes of `nowMilliseconds`.
    public static func verify(
        secret: String,
        method: String,
        uri: String,
        body: [UInt8],
        timestamp: String?,
        signature: String?,
        nowMilliseconds: Int64
    ) throws(AuthenticationError) {
        guard let signature, !signature.isEmpty else {
            throw AuthenticationError(reason: "X-HubSpot-Signature-v3: missing")
        }
        guard let timestamp, let ms = Int64(timestamp) else {
            throw AuthenticationError(reason: "X-HubSpot-Request-Timestamp: missing or not milliseconds")
        }
        // |now − t| ≤ 5 min, in both directions (a future timestamp is no fresher than a
        // stale one), computed without overflow for any Int64 the header can carry.
        let (age, overflow) = nowMilliseconds.subtractingReportingOverflow(ms)
        guard !overflow, age.magnitude <= UInt64(maximumAgeMilliseconds) else {
            let future = overflow ? ms > 0 : age < 0
            throw AuthenticationError(
                reason: "X-HubSpot-Request-Timestamp: "
                    + (future ? "more than 5 minutes in the future" : "older than 5 minutes")
            )
        }
        let expected = sign(secret: secret, method: method, uri: uri, body: body, timestamp: timestamp)
        guard constantTimeEqual(Array(expected.utf8), Array(signature.utf8)) else {
            throw AuthenticationError(reason: "X-HubSpot-Signature-v3: does not match")
        }
    }

    /// HubSpot decodes these URL-encoded characters of the URI before signing.
    static func decodeURI(_ uri: String) -> String {
        let table: [(String, String)] = [
            ("%3A", ":"), ("%2F", "/"), ("%3F", "?"), ("%40", "@"), ("%21", "!"), ("%24", "$"), ("%27", "'"),
            ("%28", "("), ("%29", ")"), ("%2A", "*"), ("%2C", ","), ("%3B", ";"),
        ]
        guard uri.contains("%") else { return uri }
        var out = ""
        var rest = Substring(uri)
        outer: while !rest.isEmpty {
            if rest.first == "%", rest.count >= 3 {
                let code = rest.prefix(3).uppercased()
                for (encoded, plain) in table where encoded == code {
                    out += plain
                    rest = rest.dropFirst(3)
                    continue outer
                }
            }
            out.append(rest.removeFirst())
        }
        return out
    }
}

/// Compares secrets in time independent of where they differ.
public func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var diff: UInt8 = 0
    for i in 0..<a.count { diff |= a[i] ^ b[i] }
    return diff == 0
}

/// Standard base64 (RFC 4648, padded), for signatures and Basic credentials: Foundation's.
public enum Base64 {
    public static func encode(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }
}
