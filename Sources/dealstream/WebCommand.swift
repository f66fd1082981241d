import ArgumentParser
import Dashboard
import DealModel
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// `dealstream web`: the live dashboard for sales managers.
struct WebCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "web",
        abstract: "Serve a live dashboard of the metrics over HTTP (server-sent events, no polling).",
        discussion: """
            A subscriber like `dealstream tail` (subscribe to --updates, take a snapshot from \
            --snapshot, then apply live updates; a gap is repaired by a fresh snapshot), so it can \
            run on another host than the daemon. It serves one page on --listen: the ten metrics \
            for everyone, a team, a rep, a pipeline, a lead source or a CRM source and any period \
            with data, the stage funnel, rep and team leaderboards and a trend chart, updated by \
            server-sent events from GET /events as each publication round arrives. Every asset is \
            in the binary (no CDN). The page only reads: the server answers GET and HEAD only and \
            holds no ingest socket. --model gives the reporting currency and the stage order.

            Listens on loopback by default. On any other address give --basic-auth-file (or \
            web.basic_auth in --config): a file with one user:password line; without it a warning \
            is logged. A browser whose connection does not take its writes within \
            --slow-client-seconds is dropped; the others never wait for it.
            """
    )

    @Option(help: "HOST:PORT to serve HTTP on (default 127.0.0.1:8090).")
    var listen: String?

    @Option(help: "Updates endpoint of the daemon (default tcp://127.0.0.1:7702).")
    var updates: String?

    @Option(help: "Snapshot endpoint of the daemon (default tcp://127.0.0.1:7703).")
    var snapshot: String?

    @Option(help: "The daemon's model file: reporting currency and the stage order of each pipeline.")
    var model: String?

    @Option(help: "A JSON config file: model, endpoints.updates, endpoints.snapshot and web.listen, web.basic_auth.")
    var config: String?

    @Option(
        name: .customLong("basic-auth-file"),
        help: "Secret file with one user:password line; every request must carry them (HTTP Basic)."
    )
    var basicAuthFile: String?

    @Option(
        name: .customLong("push-interval-ms"),
        help: "A browser is written to at most once per this many milliseconds; changes in between coalesce."
    )
    var pushInterval = 50

    @Option(
        name: .customLong("slow-client-seconds"),
        help: "A browser whose write is pending this long while its connection takes no data is dropped."
    )
    var slowClientSeconds = 5.0

    @OptionGroup(title: "Logging")
    var logging: LoggingOptions

    func validate() throws {
        guard pushInterval >= 1 && pushInterval <= 10_000 else {
            throw ValidationError("--push-interval-ms must be in 1…10000")
        }
        guard slowClientSeconds > 0 else { throw ValidationError("--slow-client-seconds must be positive") }
    }

    func run() async throws {
        let logger = logging.logger("dealstream.web")
        func fail(_ message: String) -> ExitCode {
            FileHandle.standardError.write(Data("error: \(message)\n".utf8))
            return ExitCode(1)
        }
        var settings = WebConfiguration()
        if let config {
            do { settings = try WebConfiguration.load(file: config) } catch { throw fail("\(error)") }
        }
        if let listen { settings.listen = listen }
        if let updates { settings.updatesEndpoint = updates }
        if let snapshot { settings.snapshotEndpoint = snapshot }
        if let model { settings.modelPath = model }
        if let basicAuthFile { settings.basicAuthFile = basicAuthFile }
        guard let address = settings.listenAddress else {
            throw fail("--listen: expected HOST:PORT, got \"\(settings.listen)\"")
        }

        var pageModel: Model?
        if let path = settings.modelPath {
            guard let bytes = FileManager.default.contents(atPath: path) else {
                throw fail("--model: cannot read \(path)")
            }
            do { pageModel = try Model.parse(Array(bytes)) } catch { throw fail("\(path): \(error)") }
        }
        var credentials: BasicAuthCredentials?
        if let path = settings.basicAuthFile {
            do { credentials = try BasicAuthCredentials(file: path) } catch { throw fail("\(error)") }
            if credentials!.looselyProtected {
                logger.warning("Basic auth file readable by others", metadata: ["web.basic_auth": "\(path)"])
            }
        }
        if !WebConfiguration.isLoopback(address.host) && credentials == nil {
            logger.warning(
                "Dashboard is not on loopback and has no basic auth",
                metadata: [
                    "web.listen": "\(settings.listen)",
                    "web.hint": "give --basic-auth-file or put it behind a reverse proxy that authenticates",
                ]
            )
        }

        let hub = DashboardHub(slowClientSeconds: slowClientSeconds)
        let follower = DashboardFollower(
            updatesEndpoint: settings.updatesEndpoint,
            snapshotEndpoint: settings.snapshotEndpoint,
            hub: hub,
            logger: logger
        )
        var options = DashboardServer.StreamOptions()
        options.pushIntervalMilliseconds = pushInterval
        let display = address.host.contains(":") ? "[\(address.host)]" : address.host
        let updatesEndpoint = settings.updatesEndpoint
        let auth = credentials == nil ? "none" : "basic"
        let app = DashboardServer.application(
            hub: hub,
            settings: DashboardServer.PageSettings(model: pageModel),
            credentials: credentials,
            host: address.host,
            port: address.port,
            options: options,
            logger: logger
        ) { port in
            logger.notice(
                "Dashboard listening",
                metadata: [
                    "web.url": "http://\(display):\(port)/", "web.updates": "\(updatesEndpoint)", "web.auth": "\(auth)",
                ]
            )
        }
        let sweeper = DashboardSweeper(hub: hub, logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: follower), .init(service: app), .init(service: sweeper)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
    }
}
