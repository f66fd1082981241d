import DealModel
import DealstreamTestSupport
import Foundation
import Testing
import ZeroMQ

@testable import Daemon

/// `workers.curve` from the config file and the environment, the refusal of an exposed
/// worker endpoint without it, and what spawned workers are given.
struct WorkerCurveTests {
    /// A folder with the daemon's worker-link secret key file `workers.key`.
    struct Folder {
        let url = temporaryDirectory("worker-curve")
        let daemonKeys = try! CurveKeyPair.generate()
        let worker = try! CurveKeyPair.generate()

        init() throws {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
            try Data((daemonKeys.secretKey.z85 + "\n").utf8).write(to: url.appendingPathComponent("workers.key"))
        }

        /// Writes `json` as the config file and returns its path.
        func config(_ json: String) throws -> String {
            let path = url.appendingPathComponent("dealstream.json").path
            try Data(json.utf8).write(to: URL(fileURLWithPath: path))
            return path
        }

        func cleanUp() { try? FileManager.default.removeItem(at: url) }
    }

    @Test func offByDefaultAndReadFromTheFileWithTheKeyFileRelativeToIt() throws {
        #expect(DaemonConfiguration().workerCurve == nil)
        let folder = try Folder()
        defer { folder.cleanUp() }
        let path = try folder.config(
            #"{"workers": {"curve": {"secret_key_file": "workers.key", "workers": {"eu-1": "\#(folder.worker.publicKey)"}}}}"#
        )
        let curve = try #require(try DaemonConfiguration.resolve(file: path, environment: [:]).workerCurve)
        #expect(curve.keyPair.publicKey == folder.daemonKeys.publicKey)
        #expect(curve.secretKeyFile == folder.url.appendingPathComponent("workers.key").path)
        #expect(curve.workers == [folder.worker.publicKey: "eu-1"])
        #expect(curve.allowlist == [folder.worker.publicKey: "eu-1"])
    }

    @Test func theEnvironmentSetsOrCompletesIt() throws {
        let folder = try Folder()
        defer { folder.cleanUp() }
        let other = try CurveKeyPair.generate()
        let keyFile = folder.url.appendingPathComponent("workers.key").path
        let c = try DaemonConfiguration.resolve(
            file: nil,
            environment: [
                "DEALSTREAM_WORKERS_CURVE_SECRET_KEY_FILE": keyFile,
                "DEALSTREAM_WORKERS_CURVE_WORKERS": "eu-1=\(folder.worker.publicKey), us-1=\(other.publicKey)",
                "DEALSTREAM_ENDPOINTS_WORKERS": "tcp://0.0.0.0:7704",
            ]
        )
        #expect(c.workerCurve?.workers == [folder.worker.publicKey: "eu-1", other.publicKey: "us-1"])
        #expect(c.workerEndpoint == "tcp://0.0.0.0:7704")
        // The file's key file, the environment's workers (a file's key file is read at once,
        // as ingest.curve's is: it must exist).
        let path = try folder.config(
            #"{"workers": {"curve": {"secret_key_file": "workers.key", "workers": {"eu-1": "\#(folder.worker.publicKey)"}}}}"#
        )
        let completed = try DaemonConfiguration.resolve(
            file: path,
            environment: ["DEALSTREAM_WORKERS_CURVE_WORKERS": "us-1=\(other.publicKey)"]
        )
        #expect(completed.workerCurve?.workers == [other.publicKey: "us-1"])
        #expect(completed.workerCurve?.keyPair.publicKey == folder.daemonKeys.publicKey)
        // A misspelt variable of the section is an error naming it.
        #expect(throws: ConfigurationError(key: "DEALSTREAM_WORKERS_CURVE_WORKER", reason: "unknown key (environment)"))
        {
            try DaemonConfiguration.resolve(file: nil, environment: ["DEALSTREAM_WORKERS_CURVE_WORKER": "a=b"])
        }
        #expect(throws: ConfigurationError.self) {
            try DaemonConfiguration.resolve(
                file: nil,
                environment: [
                    "DEALSTREAM_WORKERS_CURVE_SECRET_KEY_FILE": keyFile, "DEALSTREAM_WORKERS_CURVE_WORKERS": "eu-1",
                ]
            )
        }
    }

    @Test func anExposedWorkerEndpointNeedsIt() throws {
        for exposed in ["tcp://0.0.0.0:7704", "tcp://*:7704", "tcp://10.0.0.5:7704", "tcp://eth0:7704"] {
            #expect(throws: ConfigurationError.self) {
                try DaemonConfiguration.resolve(file: nil, environment: [:], flags: ["endpoints.workers": exposed])
            }
            do {
                _ = try DaemonConfiguration.resolve(file: nil, environment: [:], flags: ["endpoints.workers": exposed])
            } catch {
                #expect(error.key == "workers.curve")
                #expect(error.reason.contains(exposed))
            }
        }
        for local in ["tcp://127.0.0.1:7704", "tcp://localhost:7704", "tcp://[::1]:7704", "ipc:///tmp/w.sock"] {
            #expect(throws: Never.self) {
                try DaemonConfiguration.resolve(file: nil, environment: [:], flags: ["endpoints.workers": local])
            }
        }
        // The default (ipc in the data directory) is local.
        #expect(throws: Never.self) { try DaemonConfiguration().checkWorkerEndpointSecurity() }
    }

    @Test func spawnedWorkersGetAnEphemeralKeyAdmittedAsSpawned() throws {
        let folder = try Folder()
        defer { folder.cleanUp() }
        var c = DaemonConfiguration()
        #expect(try c.withSpawnedWorkerKey().workerCurve == nil)
        #expect(c.spawnedWorkerCurveArguments.isEmpty && c.spawnedWorkerEnvironment == nil)
        c.workerCurve = try WorkerCurve.make(
            secretKeyFile: folder.url.appendingPathComponent("workers.key").path,
            workers: [("eu-1", .string(folder.worker.publicKey.z85))]
        )
        let prepared = try c.withSpawnedWorkerKey()
        let spawned = try #require(prepared.workerCurve?.spawnedKeyPair)
        #expect(prepared.workerCurve?.allowlist == [folder.worker.publicKey: "eu-1", spawned.publicKey: "spawned"])
        #expect(prepared.spawnedWorkerCurveArguments == ["--curve-server-key", folder.daemonKeys.publicKey.z85])
        #expect(prepared.spawnedWorkerEnvironment?["DEALSTREAM_WORKER_SECRET_KEY"] == spawned.secretKey.z85)
        #expect(!prepared.spawnedWorkerCurveArguments.contains(spawned.secretKey.z85))
        // A new pair per daemon start, kept for the life of one.
        #expect(try c.withSpawnedWorkerKey().workerCurve?.spawnedKeyPair?.publicKey != spawned.publicKey)
        #expect(try prepared.withSpawnedWorkerKey().workerCurve?.spawnedKeyPair?.publicKey == spawned.publicKey)
        // No spawning, no spawned key.
        c.spawnWorkers = false
        #expect(try c.withSpawnedWorkerKey().workerCurve?.spawnedKeyPair == nil)
    }
}
