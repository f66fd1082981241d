public import CRMWebhooks
import DealModel
public import Foundation
import FramedLog

/// The durable `DealState` of every deal a connector has seen.
///
/// Why: HubSpot and Salesforce send partial deals, so a restart must not forget the
/// fields already seen (or a later stage change could never be sent complete). Each
/// changed state is appended to `deals.log` (a `FramedLog.RecordLog`, one JSON record per
/// deal state, synced before the webhook is answered); on open the log is replayed (the
/// last record of a deal wins) and compacted into a new file holding one record per deal.
public final class DealStateStore {
    private var log: RecordLog
    public private(set) var states: [String: DealState] = [:]

    public init(directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("deals.log").path
        var states: [String: DealState] = [:]
        _ = try RecordLog(path: path) { record in
            if let (id, state) = DealStateStore.decode(record) { states[id] = state }
        }
        // Compact: one record per deal, written aside and synced, then installed over the
        // old log (`AtomicFile`: rename, directory synced).
        let compacted = path + ".compact"
        try? FileManager.default.removeItem(atPath: compacted)
        let fresh = try RecordLog(path: compacted) { _ in }
        for (id, state) in states { fresh.append(DealStateStore.encode(id, state)) }
        try fresh.commit()
        try AtomicFile.install(compacted, as: path)
        log = try RecordLog(path: path) { _ in }
        self.states = states
    }

    /// Records changed states; durable when this returns. Not thread-safe: the caller
    /// (`WebhookProcessor`) serialises.
    public func save(_ changed: [String: DealState]) throws {
        guard !changed.isEmpty else { return }
        for (id, state) in changed { log.append(DealStateStore.encode(id, state)) }
        try log.commit()
        for (id, state) in changed { states[id] = state }
    }

    static func encode(_ id: String, _ s: DealState) -> [UInt8] {
        var out = Array("{\"id\":".utf8)
        JSONWriter.appendString(id, to: &out)
        out += Array(",\"fields\":{".utf8)
        func stamped(_ v: DealState.Stamped) {
            out += Array("{\"v\":".utf8)
            if let value = v.value { JSONWriter.appendString(value, to: &out) } else { out += Array("null".utf8) }
            out += Array(",\"n\":\(v.version)}".utf8)
        }
        for (i, (field, v)) in s.fields.sorted(by: { $0.key.rawValue < $1.key.rawValue }).enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.appendString(field.rawValue, to: &out)
            out.append(UInt8(ascii: ":"))
            stamped(v)
        }
        out.append(UInt8(ascii: "}"))
        if let open = s.lastOpenStage {
            out += Array(",\"last_open_stage\":".utf8)
            stamped(open)
        }
        if let d = s.deletedVersion { out += Array(",\"deleted\":\(d)".utf8) }
        if let a = s.aliveVersion { out += Array(",\"alive\":\(a)".utf8) }
        out += Array(",\"sent_base\":\(s.sentBase),\"sent_late\":\(s.sentLate)}".utf8)
        return out
    }

    static func decode(_ record: [UInt8]) -> (String, DealState)? {
        guard let root = try? JSONParser.parse(record), let id = root["id"]?.stringValue else { return nil }
        func number(_ v: JSONValue?) -> UInt64? {
            if case .int(let i)? = v, i >= 0 { return UInt64(i) }
            return nil
        }
        func stamped(_ v: JSONValue?) -> DealState.Stamped? {
            guard let v, let n = number(v["n"]) else { return nil }
            return DealState.Stamped(value: v["v"]?.stringValue, version: n)
        }
        var s = DealState()
        if case .object(let members)? = root["fields"] {
            for (key, value) in members {
                if let field = DealField(rawValue: key), let st = stamped(value) { s.fields[field] = st }
            }
        }
        s.lastOpenStage = stamped(root["last_open_stage"])
        s.deletedVersion = number(root["deleted"])
        s.aliveVersion = number(root["alive"])
        s.sentBase = number(root["sent_base"]) ?? 0
        s.sentLate = number(root["sent_late"]) ?? 0
        return (id, s)
    }
}
