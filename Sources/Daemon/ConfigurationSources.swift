import Configuration
import DealModel
public import Foundation
import PipelineMetrics
import ZeroMQ

/// The daemon's configuration from all its sources, with precedence
/// **flags > environment > config file > defaults**.
///
/// Why: 12-factor deployments (Kubernetes, systemd `Environment=`) set a key without
/// writing a file; a mounted Secret hands over a file whose path a variable names
/// (`DEALSTREAM_INGEST_CURVE_SECRET_KEY_FILE`). The file is read strictly by
/// `DaemonConfiguration.load(file:)`; flags and environment are looked up through
/// swift-configuration, flags first (an `InMemoryProvider`), then the environment (an
/// `EnvironmentVariablesProvider` under the prefix `dealstream`, so `publish.interval_ms`
/// is `DEALSTREAM_PUBLISH_INTERVAL_MS`). Every value is checked as the file's is, and an
/// error names the key and where it came from. A variable that starts like a key
/// (`DEALSTREAM_PUBLISH_…`, `DEALSTREAM_LIMITS_…`) but is none is an error naming it, as an
/// unknown key in the file is; other `DEALSTREAM_` variables (a connector's secrets) are
/// not the daemon's and are left alone.
extension DaemonConfiguration {
    /// Every key that the environment and flags can set, in the file's dotted form.
    public static let environmentKeys: [String] = [
        "model", "data_dir", "endpoints.ingest", "endpoints.updates", "endpoints.snapshot", "endpoints.workers",
        "workers.shards", "workers.per_family", "workers.partitions", "workers.result_timeout_ms", "workers.spawn",
        "workers.families", "workers.heartbeat_ms", "workers.liveness",
        "publish.interval_ms", "publish.idle_progress_ms", "publish.max_interval_ms", "publish.output_share_percent",
        "publish.busy_limit_percent", "publish.subscriber_hwm", "limits.max_batch_events",
        "limits.max_frame_bytes", "limits.max_outstanding_batches", "limits.max_outstanding_facts",
        "checkpoint.every_records", "ingest.curve.secret_key_file", "ingest.curve.connectors", "http.listen",
        "log.level", "log.format", "workers.curve.secret_key_file", "workers.curve.workers",
    ]

    /// The environment variable for a key: `publish.interval_ms` → `DEALSTREAM_PUBLISH_INTERVAL_MS`.
    public static func environmentName(_ key: String) -> String {
        "DEALSTREAM_" + key.uppercased().replacingOccurrences(of: ".", with: "_")
    }

    static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
    static let logFormats = ["text", "json"]

    /// Reads `file` (if any) over the defaults, then the environment over it, then `flags`
    /// (dotted key → value as typed on the command line) over both.
    public static func resolve(
        file: String?,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        flags: [String: String] = [:]
    ) throws(ConfigurationError) -> DaemonConfiguration {
        var c = try file.map { (path) throws(ConfigurationError) in try load(file: path) } ?? DaemonConfiguration()
        let known = Set(environmentKeys.map(environmentName))
        let sections = Set(
            environmentKeys.compactMap { $0.split(separator: ".").count > 1 ? $0.split(separator: ".")[0] : nil }
        )
        .map { "DEALSTREAM_" + $0.uppercased() + "_" }
        for name in environment.keys.sorted() where !known.contains(name) {
            if sections.contains(where: { name.hasPrefix($0) }) {
                throw ConfigurationError(key: name, reason: "unknown key (environment)")
            }
        }
        for key in flags.keys where !environmentKeys.contains(key) {
            throw ConfigurationError(key: key, reason: "unknown key (flag)")
        }
        let flagValues = Dictionary(
            uniqueKeysWithValues: flags.map {
                (
                    AbsoluteConfigKey(ConfigKey($0.key)),
                    ConfigValue(.string($0.value), isSecret: false)
                )
            }
        )
        let reader = ConfigReader(providers: [
            InMemoryProvider(name: "flags", values: flagValues),
            EnvironmentVariablesProvider(
                environmentVariables: environment.filter { known.contains($0.key) },
                secretsSpecifier: .specific([
                    environmentName("ingest.curve.connectors"), environmentName("workers.curve.workers"),
                ])
            ).prefixKeys(with: "dealstream"),
        ])
        var curveFile: String?
        var curveConnectors: [(String, String)]?
        var workerCurveFile: String?
        var workerCurveWorkers: [(String, String)]?
        for key in environmentKeys {
            guard let text = reader.string(forKey: ConfigKey(key)) else { continue }
            let origin = flags[key] != nil ? "flag" : environmentName(key)
            let field = "\(key) (\(origin))"
            func int(min: Int, max: Int = .max) throws(ConfigurationError) -> Int {
                guard let i = Int(text), i >= min, i <= max else {
                    let range = max == .max ? "≥ \(min)" : "\(min)…\(max)"
                    throw ConfigurationError(key: field, reason: "not an integer \(range)")
                }
                return i
            }
            func nonEmpty() throws(ConfigurationError) -> String {
                guard !text.isEmpty else { throw ConfigurationError(key: field, reason: "not a non-empty string") }
                return text
            }
            switch key {
            case "model": c.modelPath = try nonEmpty()
            case "data_dir": c.dataDirectory = try nonEmpty()
            case "endpoints.ingest": c.ingestEndpoint = try nonEmpty()
            case "endpoints.updates": c.updatesEndpoint = try nonEmpty()
            case "endpoints.snapshot": c.snapshotEndpoint = try nonEmpty()
            case "endpoints.workers": c.workerEndpoint = try nonEmpty()
            case "workers.shards", "workers.per_family": c.workersPerFamily = try int(min: 1)
            case "workers.partitions":
                let n = try int(min: 1)
                guard n <= 4096 else { throw ConfigurationError(key: field, reason: "at most 4096") }
                c.partitionSetting = n
            case "workers.result_timeout_ms": c.resultTimeoutMilliseconds = try int(min: 100)
            case "workers.spawn":
                switch text {
                case "true", "1", "yes": c.spawnWorkers = true
                case "false", "0", "no": c.spawnWorkers = false
                default: throw ConfigurationError(key: field, reason: "not a boolean (true or false)")
                }
            case "workers.families":
                c.families = try text.split(separator: ",").map { (name) throws(ConfigurationError) -> MetricFamily in
                    guard let f = MetricFamily(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                        throw ConfigurationError(key: field, reason: "unknown family \(name)")
                    }
                    return f
                }
                if c.families.isEmpty { throw ConfigurationError(key: field, reason: "no family listed") }
            case "workers.heartbeat_ms": c.heartbeatMilliseconds = try int(min: 10)
            case "workers.liveness": c.liveness = try int(min: 2)
            case "publish.interval_ms": c.publishIntervalMilliseconds = try int(min: 1)
            case "publish.idle_progress_ms": c.idleProgressMilliseconds = try int(min: 1)
            case "publish.max_interval_ms": c.publishMaxIntervalMilliseconds = try int(min: 1)
            case "publish.output_share_percent": c.publishOutputSharePercent = try int(min: 1, max: 100)
            case "publish.busy_limit_percent": c.publishBusyLimitPercent = try int(min: 0, max: 100)
            case "publish.subscriber_hwm":
                let v = try int(min: 0)
                guard v <= Int(Int32.max) else { throw ConfigurationError(key: field, reason: "at most \(Int32.max)") }
                c.subscriberHighWaterMark = Int32(v)
            case "limits.max_batch_events": c.maxBatchEvents = try int(min: 1000)
            case "limits.max_frame_bytes": c.maxFrameBytes = try int(min: 1024)
            case "limits.max_outstanding_batches": c.maxOutstandingBatches = try int(min: 1)
            case "limits.max_outstanding_facts": c.maxOutstandingFacts = try int(min: 1)
            case "checkpoint.every_records": c.checkpointEveryRecords = UInt64(try int(min: 1))
            case "ingest.curve.secret_key_file": curveFile = try nonEmpty()
            case "ingest.curve.connectors": curveConnectors = try namedKeys(text, field)
            case "workers.curve.secret_key_file": workerCurveFile = try nonEmpty()
            case "workers.curve.workers": workerCurveWorkers = try namedKeys(text, field)
            case "http.listen": c.httpListen = try checkedHTTPListen(text, field)
            case "log.level": c.logLevel = try checkedChoice(text, field, logLevels)
            case "log.format": c.logFormat = try checkedChoice(text, field, logFormats)
            default: break
            }
        }
        if curveFile != nil || curveConnectors != nil {
            // The environment completes or replaces the file's ingest.curve, key by key.
            let file = curveFile ?? c.ingestCurve?.secretKeyFile
            let connectors =
                curveConnectors
                ?? (c.ingestCurve?.connectors.map { ($0.value, $0.key.z85) }.sorted { $0.0 < $1.0 } ?? [])
            c.ingestCurve = try IngestCurve.make(
                secretKeyFile: file,
                connectors: connectors.map { ($0.0, .string($0.1)) }
            )
        }
        if workerCurveFile != nil || workerCurveWorkers != nil {
            // As for ingest.curve: the environment completes or replaces the file's, key by key.
            let file = workerCurveFile ?? c.workerCurve?.secretKeyFile
            let workers =
                workerCurveWorkers
                ?? (c.workerCurve?.workers.map { ($0.value, $0.key.z85) }.sorted { $0.0 < $1.0 } ?? [])
            c.workerCurve = try WorkerCurve.make(secretKeyFile: file, workers: workers.map { ($0.0, .string($0.1)) })
        }
        try c.checkWorkerEndpointSecurity()
        return c
    }

    /// `name=public-key` pairs separated by commas (a Z85 key has no comma; a name has no '='),
    /// as `ingest.curve.connectors` and `workers.curve.workers` are set in the environment.
    static func namedKeys(_ text: String, _ field: String) throws(ConfigurationError) -> [(String, String)] {
        try text.split(separator: ",").map { (pair) throws(ConfigurationError) -> (String, String) in
            let item = pair.trimmingCharacters(in: .whitespaces)
            guard let eq = item.firstIndex(of: "=") else {
                throw ConfigurationError(key: field, reason: "expected name=public-key pairs separated by commas")
            }
            return (String(item[..<eq]), String(item[item.index(after: eq)...]))
        }
    }

    /// `HOST:PORT` with a port in 0…65535 (0: any free port); an IPv6 host in brackets.
    static func checkedHTTPListen(_ text: String, _ field: String) throws(ConfigurationError) -> String {
        guard HTTPListenAddress(text) != nil else {
            throw ConfigurationError(key: field, reason: "expected HOST:PORT (e.g. 127.0.0.1:7780), got \(text)")
        }
        return text
    }

    static func checkedChoice(_ text: String, _ field: String, _ choices: [String]) throws(ConfigurationError) -> String
    {
        guard choices.contains(text) else {
            throw ConfigurationError(key: field, reason: "\(text) is not one of \(choices.joined(separator: ", "))")
        }
        return text
    }
}

/// A `HOST:PORT` listen address, as `http.listen` and `--http` take it.
public struct HTTPListenAddress: Sendable, Hashable {
    public var host: String
    public var port: Int

    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self.host = host
        self.port = port
    }
}
