public import DealModel

/// How one CRM account's ids become the dealstream model's: its source id, pipelines and
/// stages, won and lost stages, owners and teams, and the default currency.
///
/// Why it exists: vendor ids (HubSpot `appointmentscheduled`, Pipedrive stage `7`,
/// Salesforce `Prospecting`) mean nothing to the daemon, whose model names its own
/// pipelines and stages; one JSON file per connector says how they correspond, and it is
/// checked when the connector starts (against the model file when one is given), so a
/// typo is an error naming the key, not silently rejected events later.
///
/// The file format is documented in `config/README.md`; `config/mapping-*.json` are examples.
public struct Mapping: Sendable, Equatable {
    /// One vendor pipeline: the model pipeline it feeds and what its stages mean.
    public struct Pipeline: Sendable, Equatable {
        public var pipeline: String
        /// Vendor stage id → model stage (open stages; a won or lost stage may be listed too).
        public var stages: [String: String]
        public var wonStages: Set<String>
        public var lostStages: Set<String>
    }

    /// A vendor owner or user: the rep and team the metrics show.
    public struct Owner: Sendable, Equatable {
        public var owner: String
        public var team: String?
    }

    /// The dealstream `source` of every event this connector sends.
    public var source: String
    /// Vendor pipeline id → pipeline; the key `*` matches any pipeline id not listed.
    public var pipelines: [String: Pipeline]
    public var owners: [String: Owner]
    /// The currency of a deal that names none.
    public var defaultCurrency: String
    /// A JSON file `{"DEALSTREAM_…": "secret"}` read when the environment has no secret.
    public var secretsFile: String?
    /// Vendor field (property) names that carry the lead source, the account, the pipeline,
    /// overriding each vendor's default (see `config/README.md`).
    public var fields: [String: String]
    /// HubSpot: the base URL of the CRM REST API used to fetch missing deal properties.
    public var apiBaseURL: String?
    /// HubSpot: the scheme and host HubSpot calls (`https://hooks.example.com`), which the
    /// v3 signature covers; default: `http://` and the request's Host header.
    public var publicURL: String?
    /// The currencies the model has rates for, once `validate(against:)` has seen the model:
    /// a deal in another currency is then refused by the connector (422) instead of being
    /// rejected later by the daemon.
    public var knownCurrencies: Set<String>?

    static let keys: Set<String> = [
        "source", "pipelines", "owners", "default_currency", "secrets_file", "fields", "api_base_url", "public_url",
        "comment",
    ]
    static let fieldKeys: Set<String> = ["lead_source", "account", "pipeline"]

    /// Parses a mapping file; every error names its key (`mapping.pipelines.7.stages.12: expected a string`).
    public static func parse(_ bytes: [UInt8]) throws(PayloadError) -> Mapping {
        let root: JSONValue
        do { root = try JSONParser.parse(bytes) } catch {
            throw PayloadError(field: "mapping", reason: "not JSON: \(error)")
        }
        guard case .object(let members) = root else {
            throw PayloadError(field: "mapping", reason: "expected an object")
        }
        for (key, _) in members where !keys.contains(key) {
            throw PayloadError(field: "mapping.\(key)", reason: "unknown key")
        }
        func string(_ value: JSONValue?, _ field: String, required: Bool) throws(PayloadError) -> String? {
            guard let value, value != .null else {
                if required { throw PayloadError(field: field, reason: "missing") }
                return nil
            }
            guard let s = value.stringValue, !s.isEmpty else {
                throw PayloadError(field: field, reason: "expected a non-empty string, got \(value.typeName)")
            }
            return s
        }
        func object(_ value: JSONValue?, _ field: String) throws(PayloadError) -> [(String, JSONValue)] {
            guard let value else { return [] }
            guard case .object(let m) = value else {
                throw PayloadError(field: field, reason: "expected an object, got \(value.typeName)")
            }
            return m
        }
        let source = try string(root["source"], "mapping.source", required: true)!
        guard source.utf8.count <= 128 else {
            throw PayloadError(field: "mapping.source", reason: "longer than 128 bytes")
        }
        var pipelines: [String: Pipeline] = [:]
        guard root["pipelines"] != nil else { throw PayloadError(field: "mapping.pipelines", reason: "missing") }
        for (id, value) in try object(root["pipelines"], "mapping.pipelines") {
            let base = "mapping.pipelines.\(id)"
            let members = try object(value, base)
            for (key, _) in members where !["pipeline", "stages", "won_stages", "lost_stages"].contains(key) {
                throw PayloadError(field: "\(base).\(key)", reason: "unknown key")
            }
            let model = try string(value["pipeline"], "\(base).pipeline", required: true)!
            var stages: [String: String] = [:]
            for (stage, target) in try object(value["stages"], "\(base).stages") {
                stages[stage] = try string(target, "\(base).stages.\(stage)", required: true)!
            }
            guard !stages.isEmpty else { throw PayloadError(field: "\(base).stages", reason: "missing or empty") }
            func list(_ key: String) throws(PayloadError) -> Set<String> {
                guard let value = value[key] else { return [] }
                guard case .array(let items) = value else {
                    throw PayloadError(
                        field: "\(base).\(key)",
                        reason: "expected an array of stage ids, got \(value.typeName)"
                    )
                }
                var out: Set<String> = []
                for (i, item) in items.enumerated() {
                    out.insert(try string(item, "\(base).\(key)[\(i)]", required: true)!)
                }
                return out
            }
            let won = try list("won_stages")
            let lost = try list("lost_stages")
            if let both = won.intersection(lost).first {
                throw PayloadError(field: "\(base).lost_stages", reason: "stage \"\(both)\" is also a won stage")
            }
            pipelines[id] = Pipeline(pipeline: model, stages: stages, wonStages: won, lostStages: lost)
        }
        guard !pipelines.isEmpty else {
            throw PayloadError(field: "mapping.pipelines", reason: "empty: map at least one pipeline")
        }
        var owners: [String: Owner] = [:]
        for (id, value) in try object(root["owners"], "mapping.owners") {
            let base = "mapping.owners.\(id)"
            for (key, _) in try object(value, base) where key != "owner" && key != "team" {
                throw PayloadError(field: "\(base).\(key)", reason: "unknown key")
            }
            owners[id] = Owner(
                owner: try string(value["owner"], "\(base).owner", required: true)!,
                team: try string(value["team"], "\(base).team", required: false)
            )
        }
        var fields: [String: String] = [:]
        for (key, value) in try object(root["fields"], "mapping.fields") {
            guard fieldKeys.contains(key) else {
                throw PayloadError(
                    field: "mapping.fields.\(key)",
                    reason: "unknown key (lead_source, account, pipeline)"
                )
            }
            fields[key] = try string(value, "mapping.fields.\(key)", required: true)!
        }
        let currency = try string(root["default_currency"], "mapping.default_currency", required: false) ?? "USD"
        return Mapping(
            source: source,
            pipelines: pipelines,
            owners: owners,
            defaultCurrency: currency,
            secretsFile: try string(root["secrets_file"], "mapping.secrets_file", required: false),
            fields: fields,
            apiBaseURL: try string(root["api_base_url"], "mapping.api_base_url", required: false),
            publicURL: try string(root["public_url"], "mapping.public_url", required: false)
        )
    }

    /// Checks every model id the mapping names against the daemon's model file, so that
    /// nothing this connector sends is rejected for an unknown pipeline, stage or currency.
    public mutating func validate(against model: Model) throws(PayloadError) {
        knownCurrencies = Set(model.fx.keys)
        guard model.fx[defaultCurrency] != nil else {
            throw PayloadError(
                field: "mapping.default_currency",
                reason: "no rate for \"\(defaultCurrency)\" in the model"
            )
        }
        for (id, p) in pipelines.sorted(by: { $0.key < $1.key }) {
            guard let index = model.pipelineIndex(named: p.pipeline) else {
                throw PayloadError(
                    field: "mapping.pipelines.\(id).pipeline",
                    reason: "unknown pipeline \"\(p.pipeline)\" in the model"
                )
            }
            let stages = model.pipelines[index].stages
            for (vendor, stage) in p.stages.sorted(by: { $0.key < $1.key }) where !stages.contains(stage) {
                throw PayloadError(
                    field: "mapping.pipelines.\(id).stages.\(vendor)",
                    reason: "unknown stage \"\(stage)\" in the model"
                )
            }
        }
    }

    /// The pipeline entry for a vendor pipeline id (`*` when it is not listed).
    public func pipeline(forVendorID id: String) -> Pipeline? { pipelines[id] ?? pipelines["*"] }
}
