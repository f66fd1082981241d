import DealModel
import Foundation
public import PipelineMetrics

/// Everything the daemon needs to run, with the defaults of PROTOCOL.md.
///
/// Read from an optional JSON config file (see `config/dealstream.json`, which documents
/// every key) and overridden by command-line flags. The daemon runs with no file at all.
///
/// - Configuration keys:
///   - `model` (string, required unless `--model`): path of the model file (METRICS.md §5)
///   - `data_dir` (string, default `./data`): where the event log and the worker socket live
///   - `endpoints.ingest` (string, default `tcp://127.0.0.1:7701`)
///   - `endpoints.updates` (string, default `tcp://127.0.0.1:7702`)
///   - `endpoints.snapshot` (string, default `tcp://127.0.0.1:7703`)
///   - `endpoints.workers` (string, default `ipc://<data_dir>/workers.sock`): where workers connect
///   - `workers.per_family` (int, or an object family → int with `"*"` for the rest; default
///     1): worker processes the daemon spawns per metric family; `workers.shards` is a
///     synonym (what it was called when the count was fixed). Workers started by hand join
///     on top of these, at any time.
///   - `workers.partitions` (int, default 64, 1…4096): how many partitions each family's
///     series are split into; fixed for a data directory (recorded there at first start)
///   - `workers.result_timeout_ms` (int, default 5000): a worker that leaves a batch or a
///     rebuild chunk unanswered this long is dropped (and, if spawned, killed)
///   - `workers.spawn` (bool, default true): start and supervise the worker processes
///   - `workers.families` ([string], default all ten): metric families to serve
///   - `workers.heartbeat_ms` (int, default 500), `workers.liveness` (int, default 20)
///   - `workers.curve` (object, default absent: off): CURVE authentication of workers on the
///     worker endpoint, see `WorkerCurve` for its keys; required when that endpoint is tcp
///     and not loopback
///   - `publish.interval_ms` (int, default 2): a round runs as soon as every worker has
///     reported a new position, at most once per this many milliseconds
///   - `publish.max_interval_ms` (int, default 1000) and `publish.output_share_percent`
///     (int 1…100, default 20): under load rounds are spaced so that output (results,
///     rendering, publication) takes at most that share of the loop, up to this gap
///   - `publish.busy_limit_percent` (int 0…100, default 70): output may also take the
///     loop's idle time, as long as the loop stays at most this busy (0: only
///     `publish.output_share_percent`)
///   - `publish.idle_progress_ms` (int, default 20): with nothing new, `_progress` is still
///     published this often
///   - `publish.subscriber_hwm` (int, default 100000): updates queued per subscriber before drops
///   - `limits.max_batch_events` (int, default 10000, at least 1000)
///   - `limits.max_frame_bytes` (int, default 1048576)
///   - `limits.max_outstanding_batches` (int, default 256) and `limits.max_outstanding_facts`
///     (int, default 200000): back-pressure on ingest
///   - `checkpoint.every_records` (int, default 1000000): log records between checkpoints
///   - `ingest.curve` (object, default absent: off): CURVE authentication of connectors,
///     see `IngestCurve` for its keys
///   - `http.listen` (string `HOST:PORT`, default `127.0.0.1:7780`): /metrics, /health, /ready
///   - `log.level` (string, default `info`), `log.format` (`text` or `json`, default `text`)
///
/// Every key can also come from the environment (`DEALSTREAM_` + the key path in capitals,
/// dots as underscores: `DEALSTREAM_PUBLISH_INTERVAL_MS`); see `resolve(file:environment:flags:)`.
public struct DaemonConfiguration: Sendable {
    public var modelPath: String?
    public var dataDirectory = "./data"
    public var ingestEndpoint = "tcp://127.0.0.1:7701"
    public var updatesEndpoint = "tcp://127.0.0.1:7702"
    public var snapshotEndpoint = "tcp://127.0.0.1:7703"
    public var workerEndpoint: String?
    /// Worker processes spawned per family (`workers.per_family`, `--workers-per-family`, `--shards`).
    public var workersPerFamily = 1
    /// Per-family exceptions to `workersPerFamily`.
    public var workersPerFamilyOverrides: [MetricFamily: Int] = [:]
    /// `workers.partitions`; nil: the data directory's (64 for a new one), see `PartitionCountFile`.
    public var partitionSetting: Int?
    public var resultTimeoutMilliseconds = 5000
    public var spawnWorkers = true
    public var families: [MetricFamily] = MetricFamily.allCases
    public var heartbeatMilliseconds = 500
    public var liveness = 20
    public var publishIntervalMilliseconds = 2
    public var idleProgressMilliseconds = 20
    /// The longest gap between rounds under load (`publish.max_interval_ms`, see `RoundPacing`).
    public var publishMaxIntervalMilliseconds = 1000
    /// The share of the loop's time output may take (`publish.output_share_percent`).
    public var publishOutputSharePercent = 20
    /// How busy output may make an otherwise idle loop (`publish.busy_limit_percent`).
    public var publishBusyLimitPercent = 70
    public var subscriberHighWaterMark: Int32 = 100_000
    public var maxBatchEvents = 10_000
    public var maxFrameBytes = 1 << 20
    public var maxOutstandingBatches = 256
    public var maxOutstandingFacts = 200_000
    public var checkpointEveryRecords: UInt64 = 1_000_000
    /// CURVE on the ingest endpoint; nil (the default): off.
    public var ingestCurve: IngestCurve?
    /// CURVE on the worker endpoint (`workers.curve`); nil (the default): off.
    public var workerCurve: WorkerCurve?
    /// The daemon's log level (`log.level`), also given to the workers it spawns.
    public var logLevel = "info"
    /// `text` or `json` (`log.format`), also given to the workers it spawns.
    public var logFormat = "text"
    /// Where /metrics, /health and /ready are served (`http.listen`, `HOST:PORT`).
    public var httpListen = "127.0.0.1:7780"

    /// Log level of spawned workers: the daemon's own.
    public var workerLogLevel: String {
        get { logLevel }
        set { logLevel = newValue }
    }

    public init() {}

    /// The partition count in force (after `PartitionCountFile.settle`, the data directory's).
    public var partitions: Int { partitionSetting ?? PartitionCountFile.defaultCount }

    /// How many workers the daemon spawns for `family`.
    public func workersToSpawn(_ family: MetricFamily) -> Int { workersPerFamilyOverrides[family] ?? workersPerFamily }

    /// The worker endpoint, defaulting to an ipc socket in the data directory.
    public var resolvedWorkerEndpoint: String {
        workerEndpoint ?? "ipc://" + URL(fileURLWithPath: dataDirectory).standardizedFileURL.path + "/workers.sock"
    }

    /// Reads a config file over the defaults. Unknown keys are errors, so a typo is not silently ignored.
    public static func load(file path: String) throws(ConfigurationError) -> DaemonConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(key: "(file)", reason: "cannot read \(path)")
        }
        let root: JSONValue
        do { root = try JSONParser.parse(Array(data)) } catch {
            throw ConfigurationError(key: "(file)", reason: "\(path) is not JSON: \(error)")
        }
        guard case .object(let members) = root else {
            throw ConfigurationError(key: "(file)", reason: "not a JSON object")
        }
        var c = DaemonConfiguration()
        let baseDirectory = URL(fileURLWithPath: path).deletingLastPathComponent()
        func resolve(_ p: String) -> String { p.hasPrefix("/") ? p : baseDirectory.appendingPathComponent(p).path }
        for (key, value) in members {
            switch key {
            case "model": c.modelPath = resolve(try string(value, key))
            case "data_dir": c.dataDirectory = resolve(try string(value, key))
            case "endpoints":
                for (k, v) in try object(value, key) {
                    switch k {
                    case "ingest": c.ingestEndpoint = try string(v, "endpoints.ingest")
                    case "updates": c.updatesEndpoint = try string(v, "endpoints.updates")
                    case "snapshot": c.snapshotEndpoint = try string(v, "endpoints.snapshot")
                    case "workers": c.workerEndpoint = try string(v, "endpoints.workers")
                    default: throw ConfigurationError(key: "endpoints.\(k)", reason: "unknown key")
                    }
                }
            case "workers":
                for (k, v) in try object(value, key) {
                    switch k {
                    case "shards", "per_family":
                        if case .object(let members) = v {
                            for (name, count) in members {
                                let n = try int(count, "workers.\(k).\(name)", min: 0)
                                if name == "*" {
                                    c.workersPerFamily = n
                                } else if let family = MetricFamily(rawValue: name) {
                                    c.workersPerFamilyOverrides[family] = n
                                } else {
                                    throw ConfigurationError(key: "workers.\(k).\(name)", reason: "unknown family")
                                }
                            }
                        } else {
                            c.workersPerFamily = try int(v, "workers.\(k)", min: 1)
                        }
                    case "partitions": c.partitionSetting = try int(v, "workers.partitions", min: 1, max: 4096)
                    case "result_timeout_ms":
                        c.resultTimeoutMilliseconds = try int(v, "workers.result_timeout_ms", min: 100)
                    case "spawn":
                        guard case .bool(let b) = v else {
                            throw ConfigurationError(key: "workers.spawn", reason: "not a boolean")
                        }
                        c.spawnWorkers = b
                    case "families":
                        guard case .array(let items) = v else {
                            throw ConfigurationError(key: "workers.families", reason: "not an array")
                        }
                        c.families = try items.map { (item) throws(ConfigurationError) -> MetricFamily in
                            guard let name = item.stringValue, let f = MetricFamily(rawValue: name) else {
                                throw ConfigurationError(key: "workers.families", reason: "unknown family \(item)")
                            }
                            return f
                        }
                    case "heartbeat_ms": c.heartbeatMilliseconds = try int(v, "workers.heartbeat_ms", min: 10)
                    case "liveness": c.liveness = try int(v, "workers.liveness", min: 2)
                    case "curve": c.workerCurve = try WorkerCurve.parse(v, resolve: resolve)
                    default: throw ConfigurationError(key: "workers.\(k)", reason: "unknown key")
                    }
                }
            case "publish":
                for (k, v) in try object(value, key) {
                    switch k {
                    case "interval_ms": c.publishIntervalMilliseconds = try int(v, "publish.interval_ms", min: 1)
                    case "idle_progress_ms": c.idleProgressMilliseconds = try int(v, "publish.idle_progress_ms", min: 1)
                    case "max_interval_ms":
                        c.publishMaxIntervalMilliseconds = try int(v, "publish.max_interval_ms", min: 1)
                    case "output_share_percent":
                        c.publishOutputSharePercent = try int(v, "publish.output_share_percent", min: 1, max: 100)
                    case "busy_limit_percent":
                        c.publishBusyLimitPercent = try int(v, "publish.busy_limit_percent", min: 0, max: 100)
                    case "subscriber_hwm":
                        c.subscriberHighWaterMark = Int32(try int(v, "publish.subscriber_hwm", min: 0))
                    default: throw ConfigurationError(key: "publish.\(k)", reason: "unknown key")
                    }
                }
            case "limits":
                for (k, v) in try object(value, key) {
                    switch k {
                    case "max_batch_events": c.maxBatchEvents = try int(v, "limits.max_batch_events", min: 1000)
                    case "max_frame_bytes": c.maxFrameBytes = try int(v, "limits.max_frame_bytes", min: 1024)
                    case "max_outstanding_batches":
                        c.maxOutstandingBatches = try int(v, "limits.max_outstanding_batches", min: 1)
                    case "max_outstanding_facts":
                        c.maxOutstandingFacts = try int(v, "limits.max_outstanding_facts", min: 1)
                    default: throw ConfigurationError(key: "limits.\(k)", reason: "unknown key")
                    }
                }
            case "ingest":
                for (k, v) in try object(value, key) {
                    switch k {
                    case "curve": c.ingestCurve = try IngestCurve.parse(v, resolve: resolve)
                    default: throw ConfigurationError(key: "ingest.\(k)", reason: "unknown key")
                    }
                }
            case "http":
                for (k, v) in try object(value, key) {
                    switch k {
                    case "listen": c.httpListen = try checkedHTTPListen(try string(v, "http.listen"), "http.listen")
                    default: throw ConfigurationError(key: "http.\(k)", reason: "unknown key")
                    }
                }
            case "log":
                for (k, v) in try object(value, key) {
                    switch k {
                    case "level": c.logLevel = try checkedChoice(try string(v, "log.level"), "log.level", logLevels)
                    case "format":
                        c.logFormat = try checkedChoice(try string(v, "log.format"), "log.format", logFormats)
                    default: throw ConfigurationError(key: "log.\(k)", reason: "unknown key")
                    }
                }
            case "checkpoint":
                for (k, v) in try object(value, key) {
                    switch k {
                    case "every_records":
                        c.checkpointEveryRecords = UInt64(try int(v, "checkpoint.every_records", min: 1))
                    default: throw ConfigurationError(key: "checkpoint.\(k)", reason: "unknown key")
                    }
                }
            case "web":
                break  // read by `dealstream web` (Dashboard's WebConfiguration), not the daemon
            default:
                throw ConfigurationError(key: key, reason: "unknown key")
            }
        }
        return c
    }

    static func string(_ v: JSONValue, _ key: String) throws(ConfigurationError) -> String {
        guard let s = v.stringValue, !s.isEmpty else {
            throw ConfigurationError(key: key, reason: "not a non-empty string")
        }
        return s
    }

    static func object(_ v: JSONValue, _ key: String) throws(ConfigurationError) -> [(String, JSONValue)] {
        guard case .object(let m) = v else { throw ConfigurationError(key: key, reason: "not an object") }
        return m
    }

    static func int(_ v: JSONValue, _ key: String, min: Int, max: Int = .max) throws(ConfigurationError) -> Int {
        guard case .int(let i) = v, i >= min, i <= max else {
            throw ConfigurationError(
                key: key,
                reason: max == .max ? "not an integer ≥ \(min)" : "not an integer in \(min)…\(max)"
            )
        }
        return Int(i)
    }
}

/// A configuration value that cannot be used, naming its key.
public struct ConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    public var key: String
    public var reason: String
    public var description: String { "config: \(key): \(reason)" }
}
