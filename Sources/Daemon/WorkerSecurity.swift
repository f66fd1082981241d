import DealModel
import Foundation
import Logging
public import ZeroMQ

/// CURVE authentication of workers on the worker endpoint: the daemon's worker-link key
/// pair and the public key of every worker allowed to join.
///
/// Why: a worker receives the model, the string table and its family's facts, and what
/// it answers is published. Without this, anyone who can reach a tcp worker endpoint can
/// take a vacant slot. With `workers.curve` the worker socket is a CURVE server whose ZAP
/// domain is `workers` (`WorkerCurve.zapDomain`), separate from ingest's (`ingest`), so a
/// connector key is never a worker key and a worker key never gets events in. A worker
/// endpoint reachable from other hosts (tcp, not loopback) without it refuses to start.
///
/// Workers the daemon spawns itself get an ephemeral key pair made at start
/// (`spawnedKeyPair`), admitted under the name `spawned`; they receive the secret key in
/// their environment (`DEALSTREAM_WORKER_SECRET_KEY`) and the daemon's public key as
/// `--curve-server-key`.
///
/// - Configuration keys (under `workers.curve`):
///   - `secret_key_file` (string, required): file holding the daemon's worker-link secret
///     key (Z85, as `dealstream keygen --out` writes it); the public key is derived from it
///     and is every worker's `--curve-server-key`
///   - `workers` (object, required, non-empty): worker name → its public key (Z85); the name
///     is the worker's identity in the daemon's logs (`spawned` is reserved)
public struct WorkerCurve: Sendable {
    /// The ZAP domain of the worker socket.
    public static let zapDomain = "workers"
    /// The name the daemon's own (spawned) workers are admitted under.
    public static let spawnedName = "spawned"
    /// The environment variable a spawned worker reads its secret key from.
    public static let secretKeyEnvironment = "DEALSTREAM_WORKER_SECRET_KEY"

    /// The daemon's worker-link key pair (its public key is every worker's `--curve-server-key`).
    public var keyPair: CurveKeyPair
    /// Where the secret key was read from (for logs).
    public var secretKeyFile: String
    /// Allowed worker public keys and their names, as configured.
    public var workers: [CurveKey: String]
    /// The key pair of the workers this daemon spawns, made at start (`withSpawnedWorkerKey`).
    public var spawnedKeyPair: CurveKeyPair?

    public init(keyPair: CurveKeyPair, secretKeyFile: String, workers: [CurveKey: String]) {
        self.keyPair = keyPair
        self.secretKeyFile = secretKeyFile
        self.workers = workers
    }

    /// Every key the ZAP handler admits on the worker socket: the configured ones and the
    /// spawned workers' key.
    public var allowlist: [CurveKey: String] {
        var keys = workers
        if let spawnedKeyPair { keys[spawnedKeyPair.publicKey] = WorkerCurve.spawnedName }
        return keys
    }

    /// Reads `workers.curve` (the object `value`); `resolve` makes a relative path relative
    /// to the config file.
    static func parse(_ value: JSONValue, resolve: (String) -> String) throws(ConfigurationError) -> WorkerCurve {
        let prefix = "workers.curve"
        var secretKeyFile: String?
        var workerMembers: [(String, JSONValue)]?
        for (key, v) in try DaemonConfiguration.object(value, prefix) {
            switch key {
            case "secret_key_file":
                secretKeyFile = resolve(try DaemonConfiguration.string(v, "\(prefix).secret_key_file"))
            case "workers":
                workerMembers = try DaemonConfiguration.object(v, "\(prefix).workers")
            default:
                throw ConfigurationError(key: "\(prefix).\(key)", reason: "unknown key")
            }
        }
        return try make(secretKeyFile: secretKeyFile, workers: workerMembers)
    }

    /// Checks and loads `workers.curve` from its two keys, wherever they were set (the file,
    /// or the environment: `DaemonConfiguration.resolve`).
    static func make(
        secretKeyFile: String?,
        workers workerMembers: [(String, JSONValue)]?
    )
        throws(ConfigurationError) -> WorkerCurve
    {
        let prefix = "workers.curve"
        guard let secretKeyFile else {
            throw ConfigurationError(
                key: "\(prefix).secret_key_file",
                reason: "missing: the daemon's worker-link secret key file (make one with dealstream keygen --out)"
            )
        }
        let keyPair: CurveKeyPair
        do { keyPair = try CurveKeyPair.load(secretKeyFile: secretKeyFile) } catch {
            throw ConfigurationError(key: "\(prefix).secret_key_file", reason: error.reason)
        }
        guard let workerMembers, !workerMembers.isEmpty else {
            throw ConfigurationError(
                key: "\(prefix).workers",
                reason:
                    "missing or empty: list each worker's public key (dealstream keygen), or no remote worker can join"
            )
        }
        var workers: [CurveKey: String] = [:]
        var names: Set<String> = []
        for (name, v) in workerMembers {
            let field = "\(prefix).workers.\(name)"
            guard IngestCurve.isValidName(name) else {
                throw ConfigurationError(
                    key: field,
                    reason: "a worker name is 1 to 64 letters, digits, '.', '_' or '-'"
                )
            }
            guard name != spawnedName else {
                throw ConfigurationError(
                    key: field,
                    reason: "\"\(spawnedName)\" is reserved for the daemon's own workers"
                )
            }
            guard names.insert(name).inserted else { throw ConfigurationError(key: field, reason: "listed twice") }
            guard let text = v.stringValue else {
                throw ConfigurationError(key: field, reason: "not a string (a Z85 public key)")
            }
            let key: CurveKey
            do { key = try CurveKey(z85: text) } catch { throw ConfigurationError(key: field, reason: error.reason) }
            if let other = workers[key] {
                throw ConfigurationError(key: field, reason: "same public key as \(prefix).workers.\(other)")
            }
            if key == keyPair.secretKey {
                throw ConfigurationError(
                    key: field,
                    reason: "this is the daemon's secret key, not a worker's public key"
                )
            }
            if key == keyPair.publicKey {
                throw ConfigurationError(key: field, reason: "this is the daemon's own worker-link public key")
            }
            workers[key] = name
        }
        return WorkerCurve(keyPair: keyPair, secretKeyFile: secretKeyFile, workers: workers)
    }
}

extension DaemonConfiguration {
    /// Refuses a worker endpoint that other hosts can reach without `workers.curve`: anyone
    /// reaching it could take a slot, read the facts and have its numbers published.
    public func checkWorkerEndpointSecurity() throws(ConfigurationError) {
        guard workerCurve == nil, !IngestCurve.isLocal(endpoint: resolvedWorkerEndpoint) else { return }
        throw ConfigurationError(
            key: "workers.curve",
            reason:
                "required: the worker endpoint \(resolvedWorkerEndpoint) is reachable from other hosts "
                + "(not ipc or loopback tcp); set workers.curve (config/README.md, Worker authentication) "
                + "or bind 127.0.0.1 or ipc"
        )
    }

    /// This configuration with the spawned workers' ephemeral key pair made, when
    /// `workers.curve` is on and the daemon spawns its workers; else itself.
    public func withSpawnedWorkerKey() throws -> DaemonConfiguration {
        guard spawnWorkers, var curve = workerCurve, curve.spawnedKeyPair == nil else { return self }
        var c = self
        curve.spawnedKeyPair = try CurveKeyPair.generate()
        c.workerCurve = curve
        return c
    }

    /// The flags a spawned worker gets for the worker link: the daemon's public key.
    var spawnedWorkerCurveArguments: [String] {
        guard let curve = workerCurve, curve.spawnedKeyPair != nil else { return [] }
        return ["--curve-server-key", curve.keyPair.publicKey.z85]
    }

    /// The environment a spawned worker gets for the worker link (its secret key, never
    /// on the command line where `ps` shows it); nil: the daemon's own, unchanged.
    var spawnedWorkerEnvironment: [String: String]? {
        guard let pair = workerCurve?.spawnedKeyPair else { return nil }
        return ProcessInfo.processInfo.environment.merging([WorkerCurve.secretKeyEnvironment: pair.secretKey.z85]) {
            _,
            new in new
        }
    }
}

extension WorkerCurve {
    /// Makes the worker socket a CURVE server in the `workers` ZAP domain (before bind),
    /// when `workers.curve` is on, and logs the handshakes that fail before the ZAP handler
    /// is asked (a worker without CURVE). One call from `WorkerLinkServer.init`.
    static func secure(_ socket: ZMQSocket, _ configuration: DaemonConfiguration, logger: Logger) throws {
        guard let curve = configuration.workerCurve else { return }
        try socket.setCurveServer(secretKey: curve.keyPair.secretKey)
        try socket.setZAPDomain(zapDomain)
        // Refusals by key are logged by the ZAP handler (`DaemonAuthentication`); a worker
        // without CURVE fails before the handler is asked, so it is logged from here.
        let log = AuthenticationLog(role: .worker, logger: logger)
        try socket.reportHandshakeFailures(named: "ds-worker-auth") { failure in
            // Whichever side reads the other's greeting first drops a worker without CURVE:
            // here a mechanism mismatch, or a connection closed mid-handshake (which is
            // also what a wrong --curve-server-key looks like from this side).
            let mechanism: String
            var reason: String?
            switch failure.kind {
            case .authentication: return
            case .protocolError where failure.isMechanismMismatch: mechanism = "NULL"
            case .protocolError:
                mechanism = "CURVE"
                reason = "\(failure)"
            case .incomplete:
                mechanism = "unknown"
                reason =
                    "the connection closed during the handshake: a worker without CURVE, or with the wrong --curve-server-key"
            }
            log.record(
                ZAPAuthenticator.Decision(
                    userID: nil,
                    mechanism: mechanism,
                    clientKey: nil,
                    // libzmq names only the listening endpoint in these events, not the peer.
                    peerAddress: "unknown",
                    domain: zapDomain
                ),
                reason: reason
            )
        }
    }
}

/// The daemon's one ZAP handler: ingest's connector keys in the `ingest` domain, the
/// worker keys in the `workers` domain (libzmq asks one handler per context, so the two
/// sets are told apart by the socket's domain and never mix).
enum DaemonAuthentication {
    /// Checks the endpoints, logs what is on, and starts the handler when either CURVE is
    /// on; nil when neither is. Call before the sockets are bound, stop after they are closed.
    static func start(
        configuration: DaemonConfiguration,
        context: ZMQContext,
        logger: Logger
    ) throws
        -> ZAPAuthenticator?
    {
        try configuration.checkWorkerEndpointSecurity()
        var domains: [String: [CurveKey: String]] = [:]
        var logs: [String: AuthenticationLog] = [:]
        if let connectors = IngestCurve.prepareAuthentication(configuration: configuration, logger: logger) {
            domains[IngestCurve.zapDomain] = connectors
            logs[IngestCurve.zapDomain] = AuthenticationLog(role: .connector, logger: logger)
        }
        if let curve = configuration.workerCurve {
            warnIfReadableByOthers(curve.secretKeyFile, logger: logger)
            domains[WorkerCurve.zapDomain] = curve.allowlist
            logs[WorkerCurve.zapDomain] = AuthenticationLog(role: .worker, logger: logger)
            logger.info(
                "Worker link CURVE on",
                metadata: [
                    "workers.public_key": "\(curve.keyPair.publicKey)",
                    "workers.allowed": "\(curve.allowlist.values.sorted().joined(separator: ","))",
                ]
            )
        }
        guard !domains.isEmpty else { return nil }
        let route = logs
        return try ZAPAuthenticator(context: context, domains: domains) { decision in
            route[decision.domain]?.record(decision)
        }
    }

    /// Warns when a secret key file can be read by other users.
    static func warnIfReadableByOthers(_ path: String, logger: Logger) {
        if let mode = (try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? Int,
            mode & 0o077 != 0
        {
            logger.warning(
                "A secret key file is readable by other users (chmod 600 it)",
                metadata: ["file": "\(path)", "mode": "\(String(mode, radix: 8))"]
            )
        }
    }
}
