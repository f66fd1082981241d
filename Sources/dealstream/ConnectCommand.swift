import ArgumentParser
import CRMWebhooks
import DealModel
import Foundation
import FramedLog
import Logging
import Observability
import ServiceLifecycle
import UnixSignals
import WebhookReceiver

/// `dealstream connect`: a CRM webhook receiver that feeds the daemon.
struct ConnectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connect",
        abstract: "Receive a CRM's deal webhooks over HTTP and send them to the daemon as dealstream events.",
        discussion: """
            Serves POST /webhooks/<vendor> on --listen (and GET /health, /metrics, /live, /ready: \
            docs/operations.md). Each request is \
            authenticated, translated with the --mapping file (config/README.md, examples in \
            config/mapping-*.json) into dealstream deal and deal_deleted events, and answered 2xx \
            only once its events are synced to a local spool in --data-dir; a forwarder sends the \
            spool to the daemon in order and removes what the daemon acknowledged, so while the \
            daemon is down the spool fills and it drains when the daemon returns. Vendor retries \
            are harmless (same vendor version → a duplicate at the daemon).

            hubspot: webhooks v3 (the JSON array of deal.creation/propertyChange/deletion/restore \
            events), signature X-HubSpot-Signature-v3 checked with DEALSTREAM_HUBSPOT_CLIENT_SECRET \
            (requests whose X-HubSpot-Request-Timestamp is more than 5 minutes from now, past or \
            future, refused). Deals are assembled from their property \
            changes (kept durably in --data-dir) and held back until pipeline, dealstage, amount, \
            createdate (and closedate when won/lost) are known; with the mapping's api_base_url \
            the missing properties are fetched from GET /crm/v3/objects/deals/{id} \
            (DEALSTREAM_HUBSPOT_ACCESS_TOKEN as bearer token when set). The signed URL is the \
            mapping's public_url (or http://<Host header>) plus the request path.

            pipedrive: webhooks v1 (meta/current/previous) and v2 (meta/data/previous), deal \
            added/updated/deleted (v2 create/change/delete), HTTP Basic credentials checked \
            against DEALSTREAM_PIPEDRIVE_BASIC_AUTH (user:password).

            salesforce: Change Data Capture OpportunityChangeEvent as JSON (the payload, \
            CometD's {"data":{"payload":…}}, or an array of them), Authorization: Bearer \
            DEALSTREAM_SALESFORCE_TOKEN. GAP_* events are logged as warnings with a resync hint.

            Secrets come from the environment, else from the JSON file the mapping's secrets_file \
            names ({"DEALSTREAM_…": "…"}). Without its secret the connector refuses to start unless \
            --insecure is given. Answers: 200 with {"events":n,"held_back":[…],…}; 401 for a bad \
            signature or credentials; 400 for a body that is not JSON; 422 for a field that is wrong \
            or not in the mapping (the answer names it); 503 when the spool cannot be written or is full (--spool-capacity). GET /health answers \
            {"spool_pending":n,"forwarded":n,"log_seq":n}. Event versions are the vendor's version \
            (HubSpot occurredAt, Pipedrive meta.timestamp in ms, Salesforce commitNumber) × 1000 plus \
            a count of late, out-of-order changes (config/README.md).

            Slow clients: headers must arrive within --header-timeout, a body within --body-timeout \
            (408), at most --max-connections connections are served at once. A JSON body with a \
            repeated key is refused (400, naming the key). --data-dir is locked (dealstream.lock) \
            while the connector runs: a second connector on it refuses to start, naming the first \
            one's pid. A corrupt record in the middle of the spool or deal states stops the \
            connector from starting (nothing is changed): see `dealstream repair` and docs/recovery.md.
            """
    )

    @Argument(help: "The CRM.")
    var vendor: Vendor

    @Option(help: "HOST:PORT to serve HTTP on.")
    var listen = "127.0.0.1:8080"

    @Option(help: "The mapping file (JSON): source id, pipelines and stages, owners, default currency.")
    var mapping: String

    @Option(help: "Ingest endpoint of the daemon.")
    var ingest = "tcp://127.0.0.1:7701"

    @Option(
        name: .customLong("data-dir"),
        help: "Directory of the spool and the deal states (default: ./connect-<vendor>)."
    )
    var dataDirectory: String?

    @Option(
        help:
            "The daemon's model file: when given, every pipeline, stage and currency of the mapping is checked against it."
    )
    var model: String?

    @Option(
        name: .customLong("api-base-url"),
        help: "HubSpot: base URL of the CRM API for fetching missing properties (overrides the mapping's api_base_url)."
    )
    var apiBaseURL: String?

    @Option(name: .customLong("batch"), help: "Events per request to the daemon.")
    var batchSize = 1000

    @Option(name: .customLong("timeout-ms"), help: "Milliseconds to wait for the daemon's ACK before resending.")
    var timeout = 5000

    @Option(
        name: .customLong("spool-capacity"),
        help:
            "Events the spool holds while the daemon is unreachable; beyond it webhooks get 503 and the vendor retries later."
    )
    var spoolCapacity = 1_000_000

    @Option(
        name: .customLong("header-timeout"),
        help: ArgumentHelp(
            "Seconds a client has to send a request's headers (from connecting or the last answer); "
                + "then the connection is closed. Also the keep-alive idle time."
        )
    )
    var headerTimeout = 10.0

    @Option(
        name: .customLong("body-timeout"),
        help: "Seconds a client has to send a request's whole body; then it gets 408 and the connection is closed."
    )
    var bodyTimeout = 5.0

    @Option(
        name: .customLong("max-connections"),
        help: "Open HTTP connections at most; more wait in the listen backlog."
    )
    var maxConnections = 256

    @OptionGroup(title: "CURVE (when the daemon has ingest.curve on)")
    var curve: CurveClientOptions

    @Flag(help: "Accept requests without checking signatures or credentials (tests, local relays only).")
    var insecure = false

    @OptionGroup(title: "Logging")
    var logging: LoggingOptions

    func validate() throws {
        guard listenAddress != nil else { throw ValidationError("--listen: expected HOST:PORT, got \"\(listen)\"") }
        guard batchSize >= 1 && batchSize <= 10_000 else { throw ValidationError("--batch must be in 1…10000") }
        guard headerTimeout > 0 && headerTimeout <= 3600 else {
            throw ValidationError("--header-timeout must be in (0, 3600] seconds")
        }
        guard bodyTimeout > 0 && bodyTimeout <= 3600 else {
            throw ValidationError("--body-timeout must be in (0, 3600] seconds")
        }
        guard maxConnections >= 1 else { throw ValidationError("--max-connections must be at least 1") }
    }

    var listenAddress: (host: String, port: Int)? {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        return (String(listen[..<colon]), port)
    }

    func run() async throws {
        let logger = logging.logger("dealstream.connect.\(vendor.rawValue)")
        func fail(_ message: String) -> ExitCode {
            FileHandle.standardError.write(Data("error: \(message)\n".utf8))
            return ExitCode(1)
        }
        guard let bytes = FileManager.default.contents(atPath: mapping) else {
            throw fail("--mapping: cannot read \(mapping)")
        }
        var map: Mapping
        do { map = try Mapping.parse(Array(bytes)) } catch { throw fail("\(mapping): \(error)") }
        if let apiBaseURL { map.apiBaseURL = apiBaseURL }
        if let model {
            guard let modelBytes = FileManager.default.contents(atPath: model) else {
                throw fail("--model: cannot read \(model)")
            }
            do { try map.validate(against: try Model.parse(Array(modelBytes))) } catch {
                throw fail("\(mapping): \(error)")
            }
        }
        let secrets = try Secrets(mappingFile: mapping, secretsFile: map.secretsFile)
        if let unreadable = secrets.unreadableFiles([vendor.secretName]).first { throw fail(unreadable) }
        let secret = secrets[vendor.secretName]
        if secret == nil && !insecure {
            throw fail(
                "\(vendor.secretName) is not set (environment or the mapping's secrets_file); refusing to start without it (--insecure to accept unauthenticated requests)"
            )
        }
        if insecure { logger.warning("Requests are not authenticated (--insecure)") }
        let fetcher =
            vendor == .hubspot
            ? map.apiBaseURL.map {
                HubSpotFetcher(
                    baseURL: $0,
                    accessToken: secrets["DEALSTREAM_HUBSPOT_ACCESS_TOKEN"],
                    properties: HubSpotWebhook.requestedProperties(map)
                )
            } : nil
        let directory = URL(fileURLWithPath: dataDirectory ?? "connect-\(vendor.rawValue)")
        // One spool, one connector: held until this process exits (see DataDirectoryLock).
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let lock: DataDirectoryLock
        do { lock = try DataDirectoryLock(directory: directory.path) } catch { throw fail("--data-dir: \(error)") }
        defer { withExtendedLifetime(lock) {} }
        let processor = try WebhookProcessor(
            vendor: vendor,
            mapping: map,
            secret: insecure ? nil : secret,
            dataDirectory: directory,
            fetcher: fetcher,
            logger: logger,
            spoolCapacity: spoolCapacity
        )
        var options = ForwarderOptions(endpoint: ingest)
        options.batchSize = batchSize
        options.timeoutMilliseconds = timeout
        options.curve = try curve.keys()
        let forwarder = Forwarder(spool: processor.spool, options: options, logger: logger)
        let notifier = SystemdNotifier.fromEnvironment()
        let metrics = ConnectMetrics(
            vendor: vendor.rawValue,
            spool: processor.spool,
            forwarder: forwarder,
            notifier: notifier
        )
        metrics.exposition.bootstrapSwiftMetrics()
        forwarder.onTurn = { metrics.forwarderTurn(spoolEmpty: $0) }
        metrics.probe.markRestored()
        let stopping = StoppingNotice(notifier: notifier, probe: metrics.probe)
        let address = listenAddress!
        let source = map.source
        var limits = WebhookServer.Limits()
        limits.headerTimeout = .milliseconds(Int64(headerTimeout * 1000))
        limits.bodyTimeout = .milliseconds(Int64(bodyTimeout * 1000))
        limits.maximumConnections = maxConnections
        let app = WebhookServer.application(
            processor: processor,
            forwarder: forwarder,
            host: address.host,
            port: address.port,
            publicURL: map.publicURL,
            limits: limits,
            logger: logger,
            metrics: metrics
        ) { port in
            notifier.ready(status: "listening on port \(port)")
            logger.notice(
                "Connector listening",
                metadata: [
                    "connect.url": "http://\(address.host):\(port)/webhooks/\(vendor.rawValue)",
                    "connect.source": "\(source)",
                    "spool.pending": "\(processor.spool.pendingCount)",
                ]
            )
        }
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: app)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
        stopping.cancel()
    }
}

/// On SIGTERM or SIGINT: `STOPPING=1` to systemd and `/ready` false, beside the
/// ServiceGroup's own handling of the signal.
final class StoppingNotice: @unchecked Sendable {
    private let sources: [any DispatchSourceSignal]

    init(notifier: SystemdNotifier, probe: ProbeState) {
        sources = [SIGTERM, SIGINT].map { number in
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                probe.markStopping()
                notifier.stopping()
            }
            source.resume()
            return source
        }
    }

    func cancel() { for source in sources { source.cancel() } }
}
