import DealModel

/// Salesforce Change Data Capture `OpportunityChangeEvent`s in JSON (the payload alone, as
/// Pub/Sub API relays decode it, or CometD's `{"data":{"payload":…}}`; one or an array)
/// → `DealChange`s.
///
/// Why: CDC sends all fields on CREATE and only `changedFields` on UPDATE (unchanged
/// fields are null in the Pub/Sub form, so only the listed ones are read); one event can
/// name several `recordIds` that had the same change. The version is `commitNumber`.
/// `GAP_*` events carry no field values, and a wildcard record id (`006*`, after a field
/// type conversion) names no record: both become warnings with a resync hint.
public enum SalesforceChangeEvent {
    static let fieldNames: [String: DealField] = [
        "StageName": .stage, "Amount": .amount, "CurrencyIsoCode": .currency, "CloseDate": .closedAt,
        "OwnerId": .owner, "LeadSource": .leadSource, "AccountId": .account, "CreatedDate": .createdAt,
        "RecordTypeId": .pipeline,
    ]

    static func names(_ mapping: Mapping) -> [String: DealField] {
        var map = fieldNames
        for (key, field) in [("lead_source", DealField.leadSource), ("account", .account), ("pipeline", .pipeline)] {
            if let name = mapping.fields[key] {
                for (k, v) in map where v == field { map[k] = nil }
                map[name] = field
            }
        }
        return map
    }

    public static func translate(_ body: [UInt8], mapping: Mapping) throws(PayloadError) -> Translation {
        let root = try JSONFields.parse(body)
        var items: [(String, JSONValue)] = []
        if case .array(let list) = root {
            items = list.enumerated().map { ("[\($0.offset)]", $0.element) }
        } else {
            items = [("", root)]
        }
        var out = Translation()
        let map = names(mapping)
        for (path, item) in items {
            var payload = item
            var base = path
            if let inner = item["data"]?["payload"] {
                payload = inner
                base += base.isEmpty ? "data.payload" : ".data.payload"
            } else if let inner = item["payload"] {
                payload = inner
                base += base.isEmpty ? "payload" : ".payload"
            }
            let prefix = base.isEmpty ? "" : base + "."
            guard let header = payload["ChangeEventHeader"], case .object = header else {
                throw PayloadError(field: prefix + "ChangeEventHeader", reason: "missing or not an object")
            }
            let h = prefix + "ChangeEventHeader"
            if let entity = header["entityName"]?.stringValue, entity != "Opportunity" {
                out.ignored += 1
                continue
            }
            guard let changeType = header["changeType"]?.stringValue else {
                throw PayloadError(field: "\(h).changeType", reason: "missing")
            }
            guard case .array(let idValues)? = header["recordIds"], !idValues.isEmpty else {
                throw PayloadError(field: "\(h).recordIds", reason: "missing or empty")
            }
            var ids: [String] = []
            for (i, v) in idValues.enumerated() { ids.append(try JSONFields.id(v, "\(h).recordIds[\(i)]")) }
            if changeType.hasPrefix("GAP_") || ids.contains(where: { $0.hasSuffix("*") }) {
                out.warnings.append(
                    "Salesforce \(changeType) for Opportunity \(ids.joined(separator: ",")): the event carries no field values; "
                        + "resync these records (query Opportunity by Id, or replay from the CDC channel) and send their current state"
                )
                continue
            }
            let version = try JSONFields.version(header["commitNumber"], "\(h).commitNumber")
            let at = try JSONFields.time(header["commitTimestamp"], "\(h).commitTimestamp") ?? nil
            var fields: [DealField: String?] = [:]
            var names: [String]
            switch changeType {
            case "CREATE", "UNDELETE":
                guard case .object(let members) = payload else { continue }
                names = members.map(\.0).filter { payload[$0] != .null }
            case "UPDATE":
                names = []
                for key in ["changedFields", "nulledFields"] {
                    if case .array(let list)? = header[key] { names += list.compactMap(\.stringValue) }
                }
            case "DELETE":
                for id in ids {
                    out.changes.append(DealChange(recordID: id, version: version, occurredAt: at, action: .delete))
                }
                continue
            default:
                throw PayloadError(field: "\(h).changeType", reason: "unknown change type \"\(changeType)\"")
            }
            for name in names {
                let raw = payload[name] ?? .null
                if name == "IsClosed" || name == "IsWon" { continue }
                guard let field = map[name] else { continue }
                let value: String??
                switch field {
                case .createdAt, .closedAt: value = try JSONFields.time(raw, prefix + name)
                case .amount: value = try JSONFields.amount(raw, prefix + name)
                default: value = try JSONFields.text(raw, prefix + name)
                }
                if case .some(let v) = value { fields[field] = v }
            }
            let closed = names.contains("IsClosed") ? payload["IsClosed"] : nil
            let won = names.contains("IsWon") ? payload["IsWon"] : nil
            if closed == .bool(false) {
                fields[.status] = "open"
            } else if won == .bool(true) {
                fields[.status] = "won"
            } else if closed == .bool(true) {
                fields[.status] = won == .bool(false) || won == nil ? "lost" : "won"
            }
            if changeType == "CREATE" || changeType == "UNDELETE", fields[.pipeline] == nil {
                fields[.pipeline] = "default"
            }
            for id in ids {
                let action: DealChange.Action = changeType == "UNDELETE" ? .restore(fields) : .upsert(fields)
                out.changes.append(DealChange(recordID: id, version: version, occurredAt: at, action: action))
            }
        }
        return out
    }
}
