import DealModel

/// Pipedrive webhooks, v1 (`meta`/`current`/`previous`) and v2 (`meta`/`data`/`previous`),
/// for deals → `DealChange`s.
///
/// Why: Pipedrive sends the whole deal on every change, so each event sets every field it
/// carries; the version is the event's `meta.timestamp` in milliseconds (v1:
/// `timestamp_micro` when present, else the seconds × 1000; v2: the ISO time), the same
/// for a retried delivery.
public enum PipedriveWebhook {
    /// Translates one webhook request body (one event).
    public static func translate(_ body: [UInt8], mapping: Mapping) throws(PayloadError) -> Translation {
        let root = try JSONFields.parse(body)
        guard case .object = root else { throw PayloadError(field: "body", reason: "expected a JSON object, got \(root.typeName)") }
        guard let meta = root["meta"], case .object = meta else { throw PayloadError(field: "meta", reason: "missing or not an object") }
        let isV2 = meta["version"]?.stringValue?.hasPrefix("2") == true || root["data"] != nil
        var out = Translation()
        let object = (isV2 ? meta["entity"] : meta["object"])?.stringValue
        guard object == "deal" else { out.ignored += 1; return out }
        guard let action = meta["action"]?.stringValue else { throw PayloadError(field: "meta.action", reason: "missing or not a string") }
        let current = isV2 ? root["data"] : root["current"]
        let previous = root["previous"]
        let idField = isV2 ? "meta.entity_id" : "meta.id"
        let id = try JSONFields.id((isV2 ? meta["entity_id"] : meta["id"]) ?? current?["id"] ?? previous?["id"], idField)
        let version: UInt64
        if isV2 {
            guard let t = meta["timestamp"]?.stringValue, let ms = VendorTime.milliseconds(rfc3339: t), ms >= 0 else {
                throw PayloadError(field: "meta.timestamp", reason: "missing or not an RFC 3339 time")
            }
            version = UInt64(ms)
        } else if let micro = meta["timestamp_micro"], micro != .null {
            version = try JSONFields.unsigned(micro, "meta.timestamp_micro") / 1000
        } else {
            version = try JSONFields.unsigned(meta["timestamp"], "meta.timestamp") * 1000
        }
        let at = VendorTime.rfc3339(milliseconds: Int64(version))
        switch action {
        case "deleted", "delete":
            out.changes.append(DealChange(recordID: id, version: version, occurredAt: at, action: .delete))
        case "added", "create", "updated", "change", "merged":
            guard let current, case .object = current else {
                throw PayloadError(field: isV2 ? "data" : "current", reason: "missing or not an object")
            }
            let base = isV2 ? "data" : "current"
            if current["status"]?.stringValue == "deleted" || current["is_deleted"] == .bool(true) {
                out.changes.append(DealChange(recordID: id, version: version, occurredAt: at, action: .delete))
                return out
            }
            out.changes.append(DealChange(recordID: id, version: version, occurredAt: at,
                                          action: .upsert(try fields(current, base: base, mapping: mapping))))
        default:
            throw PayloadError(field: "meta.action", reason: "unknown action \"\(action)\"")
        }
        return out
    }

    static func fields(_ deal: JSONValue, base: String, mapping: Mapping) throws(PayloadError) -> [DealField: String?] {
        var out: [DealField: String?] = [:]
        func set(_ field: DealField, _ v: String??) { if case .some(let value) = v { out[field] = value } }
        func member(_ key: String) -> JSONValue? { deal[key] ?? deal["custom_fields"]?[key] }
        set(.stage, try JSONFields.text(deal["stage_id"], "\(base).stage_id"))
        set(.pipeline, try JSONFields.text(member(mapping.fields["pipeline"] ?? "pipeline_id"), "\(base).pipeline_id"))
        set(.status, try JSONFields.text(deal["status"], "\(base).status"))
        set(.amount, try JSONFields.amount(deal["value"], "\(base).value"))
        set(.currency, try JSONFields.text(deal["currency"], "\(base).currency"))
        set(.createdAt, try JSONFields.time(deal["add_time"], "\(base).add_time"))
        set(.owner, try JSONFields.text(deal["owner_id"] ?? deal["user_id"], "\(base).\(deal["owner_id"] != nil ? "owner_id" : "user_id")"))
        set(.account, try JSONFields.text(member(mapping.fields["account"] ?? "org_id"), "\(base).org_id"))
        if let key = mapping.fields["lead_source"] { set(.leadSource, try JSONFields.text(member(key), "\(base).\(key)")) }
        let status = deal["status"]?.stringValue
        let closeKey = status == "won" ? "won_time" : status == "lost" ? "lost_time" : nil
        if let closeKey {
            var closed = try JSONFields.time(deal[closeKey], "\(base).\(closeKey)")
            if case .none = closed { closed = try JSONFields.time(deal["close_time"], "\(base).close_time") }
            if case .some(.none) = closed { closed = try JSONFields.time(deal["close_time"], "\(base).close_time") }
            set(.closedAt, closed)
        } else if status == "open" {
            out[.closedAt] = .some(nil)
        }
        return out
    }
}

/// Salesforce Change Data Capture `OpportunityChangeEvent`s in JSON (the payload alone, as
/// Pub/Sub API relays decode it, or CometD's `{"data":{"payload":…}}`; one or an array)
/// → `DealChange`s.
///
/// Why: CDC sends all fields on CREATE and only `changedFields` on UPDATE (unchanged
/// fields are null in the Pub/Sub form, so only the listed ones are read); one event can
/// name several `recordIds` that had the same change. The version is `commitNumber`.
/// `GAP_*` events carry no field values: they become warnings with a resync hint.
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
            if let entity = header["entityName"]?.stringValue, entity != "Opportunity" { out.ignored += 1; continue }
            guard let changeType = header["changeType"]?.stringValue else { throw PayloadError(field: "\(h).changeType", reason: "missing") }
            guard case .array(let idValues)? = header["recordIds"], !idValues.isEmpty else {
                throw PayloadError(field: "\(h).recordIds", reason: "missing or empty")
            }
            var ids: [String] = []
            for (i, v) in idValues.enumerated() { ids.append(try JSONFields.id(v, "\(h).recordIds[\(i)]")) }
            if changeType.hasPrefix("GAP_") {
                out.warnings.append("Salesforce \(changeType) for Opportunity \(ids.joined(separator: ",")): the event carries no field values; "
                    + "resync these records (query Opportunity by Id, or replay from the CDC channel) and send their current state")
                continue
            }
            let version = try JSONFields.unsigned(header["commitNumber"], "\(h).commitNumber")
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
                for id in ids { out.changes.append(DealChange(recordID: id, version: version, occurredAt: at, action: .delete)) }
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
            if (changeType == "CREATE" || changeType == "UNDELETE"), fields[.pipeline] == nil { fields[.pipeline] = "default" }
            for id in ids {
                let action: DealChange.Action = changeType == "UNDELETE" ? .restore(fields) : .upsert(fields)
                out.changes.append(DealChange(recordID: id, version: version, occurredAt: at, action: action))
            }
        }
        return out
    }
}
