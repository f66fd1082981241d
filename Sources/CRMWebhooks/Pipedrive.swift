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
        guard case .object = root else {
            throw PayloadError(field: "body", reason: "expected a JSON object, got \(root.typeName)")
        }
        guard let meta = root["meta"], case .object = meta else {
            throw PayloadError(field: "meta", reason: "missing or not an object")
        }
        let isV2 = meta["version"]?.stringValue?.hasPrefix("2") == true || root["data"] != nil
        var out = Translation()
        let object = (isV2 ? meta["entity"] : meta["object"])?.stringValue
        guard object == "deal" else {
            out.ignored += 1
            return out
        }
        guard let action = meta["action"]?.stringValue else {
            throw PayloadError(field: "meta.action", reason: "missing or not a string")
        }
        let current = isV2 ? root["data"] : root["current"]
        let previous = root["previous"]
        let idField = isV2 ? "meta.entity_id" : "meta.id"
        let id = try JSONFields.id(
            (isV2 ? meta["entity_id"] : meta["id"]) ?? current?["id"] ?? previous?["id"],
            idField
        )
        let version: UInt64
        if isV2 {
            guard let t = meta["timestamp"]?.stringValue, let ms = VendorTime.milliseconds(rfc3339: t), ms >= 0 else {
                throw PayloadError(field: "meta.timestamp", reason: "missing or not an RFC 3339 time")
            }
            version = UInt64(ms)
        } else if let micro = meta["timestamp_micro"], micro != .null {
            version = try JSONFields.unsigned(micro, "meta.timestamp_micro") / 1000
        } else {
            let seconds = try JSONFields.unsigned(meta["timestamp"], "meta.timestamp")
            let (ms, overflow) = seconds.multipliedReportingOverflow(by: 1000)
            guard !overflow else {
                throw PayloadError(field: "meta.timestamp", reason: "\(seconds) seconds is out of range")
            }
            version = ms
        }
        guard version <= DealAssembler.maximumVendorVersion else {
            let field = isV2 || meta["timestamp_micro"] == nil ? "meta.timestamp" : "meta.timestamp_micro"
            throw PayloadError(field: field, reason: "out of range (at most \(DealAssembler.maximumVendorVersion) ms)")
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
            out.changes.append(
                DealChange(
                    recordID: id,
                    version: version,
                    occurredAt: at,
                    action: .upsert(try fields(current, base: base, mapping: mapping))
                )
            )
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
        set(
            .owner,
            try JSONFields.text(
                deal["owner_id"] ?? deal["user_id"],
                "\(base).\(deal["owner_id"] != nil ? "owner_id" : "user_id")"
            )
        )
        set(.account, try JSONFields.text(member(mapping.fields["account"] ?? "org_id"), "\(base).org_id"))
        if let key = mapping.fields["lead_source"] {
            set(.leadSource, try JSONFields.text(member(key), "\(base).\(key)"))
        }
        let status = deal["status"]?.stringValue
        let closeKey = status == "won" ? "won_time" : status == "lost" ? "lost_time" : nil
        if let closeKey {
            var closed = try JSONFields.time(deal[closeKey], "\(base).\(closeKey)")
            // Absent or empty: fall back to close_time.
            if (closed ?? nil) == nil { closed = try JSONFields.time(deal["close_time"], "\(base).close_time") }
            set(.closedAt, closed)
        } else if status == "open" {
            out[.closedAt] = .some(nil)
        }
        return out
    }
}
