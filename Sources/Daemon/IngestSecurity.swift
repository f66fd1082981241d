import DealModel
import Foundation
import Logging
import Synchronization
public import ZeroMQ

/// CURVE authentication of connectors on the ingest endpoint: the daemon's key pair and
/// the public key of every connector allowed to send events.
///
/// Off unless the config file has `ingest.curve` (loopback needs none; anything else
/// should have it, and the daemon warns when it does not). With it, the ingest socket is
/// a CURVE server and a `ZAPAuthenticator` admits exactly the listed keys; a connector
/// with another key, or none, never gets a request through.
///
/// - Configuration keys (under `ingest.curve`):
///   - `secret_key_file` (string, required): file holding the daemon's secret key (Z85,
///     as `dealstream keygen --out` writes it); the public key is derived from it
///   - `connectors` (object, required, non-empty): connector name → its public key (Z85);
///     the name is the connector's identity in the daemon's logs
public struct IngestCurve: Sendable {
    /// The daemon's ingest key pair (its public key is every connector's `--curve-server-key`).
    public var keyPair: CurveKeyPair
    /// Where the secret key was read from (for logs).
    public var secretKeyFile: String
    /// Allowed connector public keys and their names.
    public var connectors: [CurveKey: String]

    public init(keyPair: CurveKeyPair, secretKeyFile: String, connectors: [CurveKey: String]) {
        self.keyPair = keyPair
        self.secretKeyFile = secretKeyFile
        self.connectors = connectors
    }

    /// Reads `ingest.curve` (the object `value`); `resolve` makes a relative path relative
    /// to the config file.
    static func parse(_ value: JSONValue, resolve: (String) -> String) throws(ConfigurationError) -> IngestCurve {
        let prefix = "ingest.curve"
        let members = try DaemonConfiguration.object(value, prefix)
        var secretKeyFile: String?
        var connectorMembers: [(String, JSONValue)]?
        for (key, v) in members {
            switch key {
            case "secret_key_file":
                secretKeyFile = resolve(try DaemonConfiguration.string(v, "\(prefix).secret_key_file"))
            case "connectors":
                connectorMembers = try DaemonConfiguration.object(v, "\(prefix).connectors")
            default:
                throw ConfigurationError(key: "\(prefix).\(key)", reason: "unknown key")
            }
        }
        return try make(secretKeyFile: secretKeyFile, connectors: connectorMembers)
    }

    /// Checks and loads `ingest.curve` from its two keys, wherever they were set (the file,
    /// or the environment: `DaemonConfiguration.resolve`).
    static func make(
        secretKeyFile: String?,
        connectors connectorMembers: [(String, JSONValue)]?
    )
        throws(ConfigurationError) -> IngestCurve
    {
        let prefix = "ingest.curve"
        guard let secretKeyFile else {
            throw ConfigurationError(
                key: "\(prefix).secret_key_file",
                reason: "missing: the daemon's secret key file (make one with dealstream keygen --out)"
            )
        }
        let keyPair: CurveKeyPair
        do { keyPair = try CurveKeyPair.load(secretKeyFile: secretKeyFile) } catch {
            throw ConfigurationError(key: "\(prefix).secret_key_file", reason: error.reason)
        }
        guard let connectorMembers, !connectorMembers.isEmpty else {
            throw ConfigurationError(
                key: "\(prefix).connectors",
                reason: "missing or empty: list each connector's public key, or no connector can send"
            )
        }
        var connectors: [CurveKey: String] = [:]
        var names: Set<String> = []
        for (name, v) in connectorMembers {
            let field = "\(prefix).connectors.\(name)"
            guard isValidName(name) else {
                throw ConfigurationError(
                    key: field,
                    reason: "a connector name is 1 to 64 letters, digits, '.', '_' or '-'"
                )
            }
            guard names.insert(name).inserted else { throw ConfigurationError(key: field, reason: "listed twice") }
            guard let text = v.stringValue else {
                throw ConfigurationError(key: field, reason: "not a string (a Z85 public key)")
            }
            let key: CurveKey
            do { key = try CurveKey(z85: text) } catch { throw ConfigurationError(key: field, reason: error.reason) }
            if let other = connectors[key] {
                throw ConfigurationError(key: field, reason: "same public key as \(prefix).connectors.\(other)")
            }
            if key == keyPair.secretKey {
                throw ConfigurationError(
                    key: field,
                    reason: "this is the daemon's secret key, not a connector's public key"
                )
            }
            connectors[key] = name
        }
        return IngestCurve(keyPair: keyPair, secretKeyFile: secretKeyFile, connectors: connectors)
    }

    static func isValidName(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count)
            && name.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2E
                    || c == 0x5F || c == 0x2D
            }
    }

    /// Whether only this host can reach `endpoint`: ipc and inproc, or tcp on a loopback
    /// address (`127.x.x.x`, `::1`, `localhost`, the `lo` interface). Binding `*`,
    /// `0.0.0.0` or any other address or interface is reachable from elsewhere.
    public static func isLocal(endpoint: String) -> Bool {
        if endpoint.hasPrefix("ipc://") || endpoint.hasPrefix("inproc://") { return true }
        guard endpoint.hasPrefix("tcp://") else { return false }
        var host = Substring(endpoint.dropFirst("tcp://".count))
        if let colon = host.lastIndex(of: ":") { host = host[..<colon] }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        return host == "localhost" || host == "::1" || host == "lo" || host.hasPrefix("127.")
    }
}

/// Logs the ZAP handler's decisions for one kind of peer (connectors on ingest, workers on
/// the worker endpoint): each admission, and refusals at most once a minute per client key
/// and address (a refused client reconnects every 100 ms).
final class AuthenticationLog: Sendable {
    /// Who is being authenticated, which names the log lines and the setting that lists them.
    enum Role: Sendable {
        case connector, worker

        var admitted: Logger.Message { self == .connector ? "Connector authenticated" : "Worker authenticated" }
        var refused: Logger.Message { self == .connector ? "Connector refused" : "Worker handshake refused" }
        var prefix: String { self == .connector ? "connector" : "worker" }
        var setting: String { self == .connector ? "ingest.curve.connectors" : "workers.curve.workers" }
        var domain: String { self == .connector ? IngestCurve.zapDomain : WorkerCurve.zapDomain }
    }

    private let role: Role
    private let logger: Logger
    private let refusals = Mutex<[String: (lastLogged: UInt64, suppressed: Int)]>([:])
    private let interval: UInt64 = 60_000_000_000

    init(role: Role = .connector, logger: Logger) {
        self.role = role
        self.logger = logger
    }

    /// Logs `decision`; a refusal says `reason`, by default what the decision shows (a key
    /// not listed, or no CURVE key).
    func record(_ decision: ZAPAuthenticator.Decision, reason: String? = nil) {
        let key = decision.clientKey?.z85 ?? "none"
        let address = decision.peerAddress.isEmpty ? "local" : decision.peerAddress
        if let name = decision.userID {
            logger.info(role.admitted, metadata: ["\(role.prefix)": "\(name)", "peer.address": "\(address)"])
            return
        }
        let now = DispatchTime.now().uptimeNanoseconds
        // nil: logged recently, stay quiet; else the refusals not logged since the last line.
        let suppressed: Int? = refusals.withLock { seen in
            if seen.count > 10_000 { seen.removeAll() }
            let id = key + " " + address
            if let entry = seen[id], now - entry.lastLogged < interval {
                seen[id] = (entry.lastLogged, entry.suppressed + 1)
                return nil
            }
            defer { seen[id] = (now, 0) }
            return seen[id]?.suppressed ?? 0
        }
        guard let suppressed else { return }
        let reason =
            reason
            ?? (decision.clientKey != nil
                ? "not in \(role.setting)" : "no CURVE key (\(decision.mechanism)): \(role.setting) needs one")
        logger.warning(
            role.refused,
            metadata: [
                "\(role.prefix).key": "\(key)", "\(role.prefix).mechanism": "\(decision.mechanism)",
                "peer.address": "\(address)", "zap.domain": "\(role.domain)", "reason": "\(reason)",
                "refusals.unlogged": "\(suppressed)",
            ]
        )
    }
}

/// The log of connector decisions on ingest (the name the tests and older code know).
typealias ConnectorAuthenticationLog = AuthenticationLog

extension IngestCurve {
    /// The ZAP domain of the ingest socket.
    static let zapDomain = "ingest"

    /// With `ingest.curve`, the connector keys the ZAP handler admits in the `ingest`
    /// domain (`DaemonAuthentication.start`); else nil, and a warning when the ingest
    /// endpoint is reachable from other hosts.
    static func prepareAuthentication(configuration: DaemonConfiguration, logger: Logger) -> [CurveKey: String]? {
        guard let curve = configuration.ingestCurve else {
            if !IngestCurve.isLocal(endpoint: configuration.ingestEndpoint) {
                logger.warning(
                    "Ingest endpoint is not loopback and CURVE is off: anyone who can reach it can write events (set ingest.curve, see config/README.md)",
                    metadata: ["endpoint.ingest": "\(configuration.ingestEndpoint)"]
                )
            }
            return nil
        }
        DaemonAuthentication.warnIfReadableByOthers(curve.secretKeyFile, logger: logger)
        logger.info(
            "Ingest CURVE on",
            metadata: [
                "ingest.public_key": "\(curve.keyPair.publicKey)",
                "ingest.connectors": "\(curve.connectors.values.sorted().joined(separator: ","))",
            ]
        )
        return curve.connectors
    }
}
