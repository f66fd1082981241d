import Daemon
import Foundation
import PipelineMetrics
import Testing
import ZeroMQ

/// Flags > environment > config file > defaults, environment names after the key path,
/// and errors that name the key and its source.
struct ConfigurationSourcesTests {
    /// A folder with a config file; removed by `cleanUp`.
    struct Folder {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent(
            "config-env-\(UUID().uuidString.prefix(8))"
        )

        init(config: String) throws {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
            try write("dealstream.json", config)
        }

        var configPath: String { url.appendingPathComponent("dealstream.json").path }

        func write(_ name: String, _ text: String) throws {
            try Data(text.utf8).write(to: url.appendingPathComponent(name))
        }

        func cleanUp() { try? FileManager.default.removeItem(at: url) }
    }

    private func error(_ body: () throws(ConfigurationError) -> DaemonConfiguration) -> String {
        do {
            _ = try body()
            return "no error"
        } catch {
            return error.description
        }
    }

    @Test func environmentNamesFollowTheKeyPath() {
        #expect(DaemonConfiguration.environmentName("publish.interval_ms") == "DEALSTREAM_PUBLISH_INTERVAL_MS")
        #expect(DaemonConfiguration.environmentName("endpoints.ingest") == "DEALSTREAM_ENDPOINTS_INGEST")
        #expect(DaemonConfiguration.environmentName("data_dir") == "DEALSTREAM_DATA_DIR")
    }

    @Test func flagsWinOverTheEnvironmentWhichWinsOverTheFileWhichWinsOverDefaults() throws {
        let folder = try Folder(
            config: """
                {"publish": {"interval_ms": 7, "idle_progress_ms": 30, "max_interval_ms": 300}, "workers": {"shards": 2, "liveness": 5},
                 "log": {"format": "json"}}
                """
        )
        defer { folder.cleanUp() }
        let c = try DaemonConfiguration.resolve(
            file: folder.configPath,
            environment: [
                "DEALSTREAM_PUBLISH_INTERVAL_MS": "9", "DEALSTREAM_WORKERS_SHARDS": "3",
                "DEALSTREAM_PUBLISH_OUTPUT_SHARE_PERCENT": "35",
                "DEALSTREAM_ENDPOINTS_INGEST": "tcp://127.0.0.1:9701", "DEALSTREAM_WORKERS_SPAWN": "false",
                "DEALSTREAM_WORKERS_FAMILIES": "revenue, win_rate", "DEALSTREAM_HTTP_LISTEN": "0.0.0.0:9780",
                "DEALSTREAM_HUBSPOT_CLIENT_SECRET": "a connector's, not the daemon's", "PATH": "/bin",
            ],
            flags: ["workers.shards": "4"]
        )
        #expect(c.workersPerFamily == 4)  // flag over environment (3) over file (2); shards is its synonym
        #expect(c.publishIntervalMilliseconds == 9)  // environment over file (7)
        #expect(c.idleProgressMilliseconds == 30)  // file over default (20)
        #expect(c.publishMaxIntervalMilliseconds == 300)  // file over default (1000)
        #expect(c.publishOutputSharePercent == 35)  // environment over default (20)
        #expect(c.liveness == 5)
        #expect(c.heartbeatMilliseconds == 500)  // default
        #expect(c.ingestEndpoint == "tcp://127.0.0.1:9701")
        #expect(c.updatesEndpoint == "tcp://127.0.0.1:7702")
        #expect(!c.spawnWorkers)
        #expect(c.families.map(\.rawValue) == ["revenue", "win_rate"])
        #expect(c.httpListen == "0.0.0.0:9780")
        #expect(c.logFormat == "json")
        #expect(c.logLevel == "info")
    }

    @Test func workersPerFamilyTakesOverridesAndPartitionsAreBounded() throws {
        let folder = try Folder(
            config: #"{"workers": {"per_family": {"*": 2, "revenue": 4}, "partitions": 128, "result_timeout_ms": 900}}"#
        )
        defer { folder.cleanUp() }
        let c = try DaemonConfiguration.resolve(file: folder.configPath, environment: [:])
        #expect(c.workersToSpawn(.revenue) == 4 && c.workersToSpawn(.winRate) == 2)
        #expect(c.partitions == 128 && c.resultTimeoutMilliseconds == 900)
        for (config, key) in [
            (#"{"workers": {"partitions": 5000}}"#, "workers.partitions"),
            (#"{"workers": {"per_family": {"nope": 1}}}"#, "workers.per_family.nope"),
            (#"{"workers": {"per_family": 0}}"#, "workers.per_family"),
        ] {
            let bad = try Folder(config: config)
            defer { bad.cleanUp() }
            #expect(throws: ConfigurationError.self) {
                try DaemonConfiguration.resolve(file: bad.configPath, environment: [:])
            }
            do { _ = try DaemonConfiguration.resolve(file: bad.configPath, environment: [:]) } catch {
                #expect(error.key == key)
            }
        }
        #expect(throws: ConfigurationError.self) {
            try DaemonConfiguration.resolve(file: nil, environment: [:], flags: ["workers.partitions": "0"])
        }
    }

    @Test func anUnknownOrBadKeyIsAnErrorNamingItAndItsSource() throws {
        let folder = try Folder(config: "{}")
        defer { folder.cleanUp() }
        let path = folder.configPath
        #expect(
            error { () throws(ConfigurationError) in
                try DaemonConfiguration.resolve(file: path, environment: ["DEALSTREAM_PUBLISH_INTERVL_MS": "5"])
            } == "config: DEALSTREAM_PUBLISH_INTERVL_MS: unknown key (environment)"
        )
        #expect(
            error { () throws(ConfigurationError) in
                try DaemonConfiguration.resolve(file: path, environment: ["DEALSTREAM_PUBLISH_INTERVAL_MS": "0"])
            } == "config: publish.interval_ms (DEALSTREAM_PUBLISH_INTERVAL_MS): not an integer ≥ 1"
        )
        #expect(
            error { () throws(ConfigurationError) in
                try DaemonConfiguration.resolve(
                    file: path,
                    environment: ["DEALSTREAM_PUBLISH_OUTPUT_SHARE_PERCENT": "101"]
                )
            } == "config: publish.output_share_percent (DEALSTREAM_PUBLISH_OUTPUT_SHARE_PERCENT): not an integer 1…100"
        )
        #expect(
            error { () throws(ConfigurationError) in
                try DaemonConfiguration.resolve(
                    file: path,
                    environment: ["DEALSTREAM_PUBLISH_BUSY_LIMIT_PERCENT": "-1"]
                )
            } == "config: publish.busy_limit_percent (DEALSTREAM_PUBLISH_BUSY_LIMIT_PERCENT): not an integer 0…100"
        )
        #expect(
            try DaemonConfiguration.resolve(file: path, environment: ["DEALSTREAM_PUBLISH_BUSY_LIMIT_PERCENT": "0"])
                .publishBusyLimitPercent == 0
        )
        #expect(
            error { () throws(ConfigurationError) in
                try DaemonConfiguration.resolve(file: path, environment: ["DEALSTREAM_WORKERS_SPAWN": "maybe"])
            } == "config: workers.spawn (DEALSTREAM_WORKERS_SPAWN): not a boolean (true or false)"
        )
        #expect(
            error { () throws(ConfigurationError) in
                try DaemonConfiguration.resolve(file: path, environment: ["DEALSTREAM_LOG_FORMAT": "xml"])
            } == "config: log.format (DEALSTREAM_LOG_FORMAT): xml is not one of text, json"
        )
        #expect(
            error { () throws(ConfigurationError) in
                try DaemonConfiguration.resolve(file: path, environment: [:], flags: ["http.listen": "7780"])
            } == "config: http.listen (flag): expected HOST:PORT (e.g. 127.0.0.1:7780), got 7780"
        )
        try folder.write("bad.json", #"{"log": {"colour": "red"}}"#)
        #expect(
            error { () throws(ConfigurationError) in
                try DaemonConfiguration.resolve(
                    file: folder.url.appendingPathComponent("bad.json").path,
                    environment: [:]
                )
            } == "config: log.colour: unknown key"
        )
    }

    @Test func curveComesFromASecretFileAndConnectorListInTheEnvironment() throws {
        let folder = try Folder(config: #"{"endpoints": {"ingest": "tcp://0.0.0.0:7701"}}"#)
        defer { folder.cleanUp() }
        let daemon = try CurveKeyPair.generate()
        let hubspot = try CurveKeyPair.generate()
        let pipedrive = try CurveKeyPair.generate()
        try folder.write("ingest.key", daemon.secretKey.z85 + "\n")
        let keyFile = folder.url.appendingPathComponent("ingest.key").path
        let c = try DaemonConfiguration.resolve(
            file: folder.configPath,
            environment: [
                "DEALSTREAM_INGEST_CURVE_SECRET_KEY_FILE": keyFile,
                "DEALSTREAM_INGEST_CURVE_CONNECTORS":
                    "hubspot=\(hubspot.publicKey.z85), pipedrive=\(pipedrive.publicKey.z85)",
            ]
        )
        let curve = try #require(c.ingestCurve)
        #expect(curve.keyPair.publicKey == daemon.publicKey)
        #expect(curve.connectors == [hubspot.publicKey: "hubspot", pipedrive.publicKey: "pipedrive"])
        #expect(
            error { () throws(ConfigurationError) in
                try DaemonConfiguration.resolve(
                    file: folder.configPath,
                    environment: [
                        "DEALSTREAM_INGEST_CURVE_CONNECTORS": "hubspot=\(hubspot.publicKey.z85)"
                    ]
                )
            }
                == "config: ingest.curve.secret_key_file: missing: the daemon's secret key file (make one with dealstream keygen --out)"
        )
    }
}
