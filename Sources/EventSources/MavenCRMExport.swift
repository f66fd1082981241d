import DealModel
import Foundation

/// Turns the Maven Analytics "CRM Sales Opportunities" export into deal events.
///
/// The export is a snapshot of 8,800 opportunities (`sales_pipeline.csv`) with the
/// agents' managers (`sales_teams.csv`) and list prices (`products.csv`) beside it. The
/// mapping (documented in docs/sample-data.md):
///
/// | event field | from |
/// |---|---|
/// | `source` | `--source` (default `maven-crm`) |
/// | `id` | `opportunity_id` |
/// | `version` | 1 (the export is one snapshot; `MavenCRMExport.Options.version`) |
/// | `deal.pipeline` | `--pipeline` (default `sales`) |
/// | `deal.stage` | `Prospecting` → `Prospecting`; `Engaging`, `Won`, `Lost` → `Engaging` (a lost deal without `engage_date` → `Prospecting`) |
/// | `deal.status` | `Won` → won, `Lost` → lost, else open |
/// | `deal.amount` | `close_value` when closed; else the product's `sales_price` (`GTXPro` read as `GTX Pro`) |
/// | `deal.currency` | `USD` |
/// | `deal.owner` | `sales_agent` |
/// | `deal.team` | the agent's `manager` (from `sales_teams.csv`) |
/// | `deal.lead_source` | absent (the export has none: `unknown`) |
/// | `deal.account` | `account` (empty: no account) |
/// | `deal.created_at` | `engage_date` at 00:00Z; a prospect without one: `--open-created-at` |
/// | `deal.closed_at` | `close_date` at 00:00Z when won or lost |
public struct MavenCRMExport: Sendable {
    public struct Options: Sendable {
        public var source = "maven-crm"
        public var pipeline = "sales"
        public var version: Int64 = 1
        /// created_at of prospects the export gives no date for.
        public var openCreatedAt = "2017-12-31T00:00:00Z"
        public init() {}
    }

    public let options: Options

    public init(options: Options) { self.options = options }

    /// Parses a comma-separated file without quoting (the export has none), CRLF or LF.
    static func rows(_ path: String) throws -> [[String: String]] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw EventFileError(origin: path, reason: "cannot read the file")
        }
        let text = String(decoding: data, as: UTF8.self)
        var lines = text.split(
            omittingEmptySubsequences: true,
            whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }
        )
        guard !lines.isEmpty else { throw EventFileError(origin: path, reason: "empty file") }
        let header = lines.removeFirst().split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        return try lines.enumerated().map { (i, line) in
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == header.count else {
                throw EventFileError(
                    origin: "\(path):\(i + 2)",
                    reason: "\(fields.count) fields, header has \(header.count)"
                )
            }
            return Dictionary(uniqueKeysWithValues: zip(header, fields))
        }
    }

    /// The events of `sales_pipeline.csv` (the other two files are read from its folder).
    public func events(pipelineFile path: String) throws -> [SourcedEvent] {
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        let pipeline = try MavenCRMExport.rows(path)
        guard let first = pipeline.first, first["opportunity_id"] != nil, first["deal_stage"] != nil else {
            throw EventFileError(
                origin: path,
                reason: "not the Maven CRM export (no opportunity_id/deal_stage columns)"
            )
        }
        var managers: [String: String] = [:]
        let teamsPath = folder.appendingPathComponent("sales_teams.csv").path
        if FileManager.default.fileExists(atPath: teamsPath) {
            for r in try MavenCRMExport.rows(teamsPath) { managers[r["sales_agent"] ?? ""] = r["manager"] }
        }
        var prices: [String: Double] = [:]
        let productsPath = folder.appendingPathComponent("products.csv").path
        if FileManager.default.fileExists(atPath: productsPath) {
            for r in try MavenCRMExport.rows(productsPath) {
                prices[r["product"] ?? ""] = Double(r["sales_price"] ?? "")
            }
        }
        return try pipeline.enumerated().map { (i, row) in
            let origin = "\(path):\(i + 2)"
            return SourcedEvent(
                json: try event(row, managers: managers, prices: prices, origin: origin),
                origin: origin
            )
        }
    }

    func event(
        _ row: [String: String],
        managers: [String: String],
        prices: [String: Double],
        origin: String
    ) throws -> [UInt8] {
        let stageField = row["deal_stage"] ?? ""
        let engage = row["engage_date"] ?? ""
        let status: String
        let stage: String
        switch stageField {
        case "Prospecting": (status, stage) = ("open", "Prospecting")
        case "Engaging": (status, stage) = ("open", "Engaging")
        case "Won": (status, stage) = ("won", "Engaging")
        case "Lost": (status, stage) = ("lost", engage.isEmpty ? "Prospecting" : "Engaging")
        default: throw EventFileError(origin: origin, reason: "deal_stage: unknown value \(stageField)")
        }
        var amount: Double
        if status == "open" {
            let product = row["product"] == "GTXPro" ? "GTX Pro" : (row["product"] ?? "")
            amount = prices[product] ?? 0
        } else {
            guard let v = Double(row["close_value"] ?? "") else {
                throw EventFileError(origin: origin, reason: "close_value: not a number for a closed deal")
            }
            amount = v
        }
        if amount < 0 { amount = 0 }
        let created = engage.isEmpty ? options.openCreatedAt : engage + "T00:00:00Z"
        var out: [UInt8] = []
        func field(_ name: String, _ value: String, last: Bool = false) {
            JSONWriter.appendString(name, to: &out)
            out.append(UInt8(ascii: ":"))
            JSONWriter.appendString(value, to: &out)
            if !last { out.append(UInt8(ascii: ",")) }
        }
        out.append(contentsOf: Array("{\"kind\":\"deal\",".utf8))
        field("source", options.source)
        field("id", row["opportunity_id"] ?? "")
        out.append(contentsOf: Array("\"version\":\(options.version),\"deal\":{".utf8))
        field("pipeline", options.pipeline)
        field("stage", stage)
        field("status", status)
        out.append(contentsOf: Array("\"amount\":\(JSONWriter.number(amount)),".utf8))
        field("currency", "USD")
        let agent = row["sales_agent"] ?? ""
        field("owner", agent)
        field("team", managers[agent] ?? "")
        field("account", row["account"] ?? "")
        if status != "open", let close = row["close_date"], !close.isEmpty {
            field("closed_at", close + "T00:00:00Z")
        }
        field("created_at", created, last: true)
        out.append(contentsOf: Array("}}".utf8))
        return out
    }
}
