import CRMWebhooks
import DealModel
import DealstreamTestSupport
import Foundation
import Hummingbird
import Logging
import Testing

/// The connectors as processes: a real `dealstream connect` receiving vendor-shaped
/// webhooks over HTTP and feeding a real daemon, whose published metrics must equal the
/// acceptance kit's reference for the translated events (`expected.ndjson`).
@Suite(.serialized)
struct ConnectorIntegrationTests {
    static let secrets: [Vendor: String] = [
        .hubspot: "7e2a3c1d-5b4f-4c9a-8e6d-2f1b0a9c8d7e", .pipedrive: "dealstream:s3cret:pass",
        .salesforce: "relay-token-91",
    ]

    private func environment(_ vendor: Vendor) -> [String: String] { [vendor.secretName: Self.secrets[vendor]!] }

    /// Posts every request of the vendor's sequence, each answered 200.
    private func postSequence(_ vendor: Vendor, to connector: ConnectorProcess) async throws {
        let mapping = try FixtureFiles.mapping(vendor)
        for (name, body) in try FixtureFiles.sequence(vendor) {
            let answer = try await connector.post(
                body,
                headers: credentials(vendor, secret: Self.secrets[vendor]!, body: body, mapping: mapping)
            )
            #expect(answer.status == 200, "\(name): \(answer.status) \(answer.body)")
        }
    }

    @Test(arguments: Vendor.allCases)
    func sequenceThroughTheReceiverEqualsTheReference(_ vendor: Vendor) async throws {
        let directory = temporaryDirectory(vendor.rawValue)
        defer { try? FileManager.default.removeItem(at: directory) }
        let daemon = try DaemonProcess(directory: directory, shards: 1, modelJSON: try FixtureFiles.modelJSON)
        defer { _ = daemon.terminate() }
        // A HubSpot fetch for a held-back deal must not leave the machine: a closed local port.
        let connector = try ConnectorProcess(
            vendor: vendor,
            ingest: daemon.ingestEndpoint,
            directory: directory,
            environment: environment(vendor),
            extraArguments: ["--api-base-url", "http://127.0.0.1:9"]
        )
        defer { connector.terminate() }
        try await postSequence(vendor, to: connector)
        let health = try await connector.waitDrained()
        let expected = try FixtureFiles.expected(vendor)
        #expect(health.forwarded == expected.count)
        let published = try daemon.waitUntilPublished(health.logSeq)
        #expect(!published.isEmpty)
        let report = try compareWithReference(events: expected, published: published, directory: directory)
        #expect(report == nil, "\(report ?? "")")

        // A request with wrong credentials: 401, and nothing changes.
        let body = try FixtureFiles.sequence(vendor)[0].body
        var headers = credentials(
            vendor,
            secret: Self.secrets[vendor]! + "-wrong",
            body: body,
            mapping: try FixtureFiles.mapping(vendor)
        )
        let refused = try await connector.post(body, headers: headers)
        #expect(refused.status == 401)
        headers = [:]
        #expect(try await connector.post(body, headers: headers).status == 401)
        // Authenticated but not JSON: 400 naming the body; nothing changes either.
        let broken = Array("[{\"objectId\":".utf8)
        let notJSON = try await connector.post(
            broken,
            headers: credentials(
                vendor,
                secret: Self.secrets[vendor]!,
                body: broken,
                mapping: try FixtureFiles.mapping(vendor)
            )
        )
        #expect(notJSON.status == 400 && notJSON.body.contains("body: not JSON"), "\(notJSON.body)")
        let after = try await connector.health()
        #expect(after.forwarded == health.forwarded && after.pending == 0 && after.logSeq == health.logSeq)
        #expect(try daemon.snapshot().logSeq == health.logSeq)
        #expect(connector.terminate() == 0)
    }

    @Test func hubSpotDealStatesSurviveAConnectorRestart() async throws {
        let directory = temporaryDirectory("restart")
        defer { try? FileManager.default.removeItem(at: directory) }
        let daemon = try DaemonProcess(directory: directory, shards: 1, modelJSON: try FixtureFiles.modelJSON)
        defer { _ = daemon.terminate() }
        let mapping = try FixtureFiles.mapping(.hubspot)
        let sequence = try FixtureFiles.sequence(.hubspot)
        var connector = try ConnectorProcess(
            vendor: .hubspot,
            ingest: daemon.ingestEndpoint,
            directory: directory,
            environment: environment(.hubspot),
            extraArguments: ["--api-base-url", "http://127.0.0.1:9"]
        )
        for (index, (name, body)) in sequence.enumerated() {
            if index == 3 {
                // Stage, amount and won arrive one property at a time: the restarted connector
                // must still know the rest of each deal.
                #expect(connector.terminate() == 0)
                connector = try ConnectorProcess(
                    vendor: .hubspot,
                    ingest: daemon.ingestEndpoint,
                    directory: directory,
                    environment: environment(.hubspot),
                    extraArguments: ["--api-base-url", "http://127.0.0.1:9"]
                )
            }
            let answer = try await connector.post(
                body,
                headers: credentials(.hubspot, secret: Self.secrets[.hubspot]!, body: body, mapping: mapping)
            )
            #expect(answer.status == 200, "\(name): \(answer.body)")
        }
        defer { connector.terminate() }
        let health = try await connector.waitDrained()
        let published = try daemon.waitUntilPublished(health.logSeq)
        let report = try compareWithReference(
            events: try FixtureFiles.expected(.hubspot),
            published: published,
            directory: directory
        )
        #expect(report == nil, "\(report ?? "")")
    }

    @Test func anEventTheDaemonRefusesWholeIsDroppedAndTheRestDelivered() async throws {
        let directory = temporaryDirectory("err")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let config = directory.appendingPathComponent("small-frames.json")
        try Data(#"{"limits":{"max_frame_bytes":1024}}"#.utf8).write(to: config)
        let daemon = try DaemonProcess(
            directory: directory,
            shards: 1,
            modelJSON: try FixtureFiles.modelJSON,
            extraArguments: ["--config", config.path]
        )
        defer { _ = daemon.terminate() }
        let connector = try ConnectorProcess(
            vendor: .salesforce,
            ingest: daemon.ingestEndpoint,
            directory: directory,
            environment: environment(.salesforce)
        )
        defer { connector.terminate() }
        // Three CREATEs in one request; the second's LeadSource makes its event over 1 KiB.
        var text = String(decoding: try FixtureFiles.file(.salesforce, "01-create.json"), as: UTF8.self)
        text = text.replacingOccurrences(
            of: "\"Partner Referral\"",
            with: "\"" + String(repeating: "x", count: 1500) + "\""
        )
        let body = Array(text.utf8)
        let answer = try await connector.post(
            body,
            headers: credentials(
                .salesforce,
                secret: Self.secrets[.salesforce]!,
                body: body,
                mapping: try FixtureFiles.mapping(.salesforce)
            )
        )
        #expect(answer.status == 200)
        let health = try await connector.waitDrained()
        #expect(health.forwarded == 2)
        let published = try daemon.waitUntilPublished(health.logSeq)
        #expect(
            published["new_opportunities/all/%2A/all"]?.contains("\"value\":2") == true,
            "\(published["new_opportunities/all/%2A/all"] ?? "absent")"
        )
        #expect(connector.log.contains("Daemon refused an event; dropped"))
    }

    @Test func connectorRefusesToStartWithoutItsSecret() throws {
        let directory = temporaryDirectory("nosecret")
        defer { try? FileManager.default.removeItem(at: directory) }
        var environment = ProcessInfo.processInfo.environment
        environment["DEALSTREAM_PIPEDRIVE_BASIC_AUTH"] = nil
        #expect(throws: (any Error).self) {
            _ = try ConnectorProcess(
                vendor: .pipedrive,
                ingest: "ipc://" + directory.appendingPathComponent("none.sock").path,
                directory: directory,
                environment: [:]
            )
        }
        let log =
            (try? String(
                contentsOfFile: directory.appendingPathComponent("connect-pipedrive.log").path,
                encoding: .utf8
            )) ?? ""
        #expect(log.contains("DEALSTREAM_PIPEDRIVE_BASIC_AUTH is not set"))
    }

    @Test func whileTheDaemonIsDownTheSpoolFillsAndDrainsWhenItReturns() async throws {
        let directory = temporaryDirectory("down")
        defer { try? FileManager.default.removeItem(at: directory) }
        let vendor = Vendor.pipedrive
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let ingest = "ipc://" + directory.appendingPathComponent("ingest.sock").path
        let connector = try ConnectorProcess(
            vendor: vendor,
            ingest: ingest,
            directory: directory,
            environment: environment(vendor)
        )
        defer { connector.terminate() }
        try await postSequence(vendor, to: connector)
        let expected = try FixtureFiles.expected(vendor)
        var health = try await connector.health()
        #expect(health.pending == expected.count)
        #expect(health.forwarded == 0)
        // The connector restarts with a full spool: nothing is lost.
        #expect(connector.terminate() == 0)
        let restarted = try ConnectorProcess(
            vendor: vendor,
            ingest: ingest,
            directory: directory,
            environment: environment(vendor)
        )
        defer { restarted.terminate() }
        #expect(try await restarted.health().pending == expected.count)
        let daemon = try DaemonProcess(directory: directory, shards: 1, modelJSON: try FixtureFiles.modelJSON)
        defer { _ = daemon.terminate() }
        health = try await restarted.waitDrained()
        #expect(health.forwarded == expected.count)
        let published = try daemon.waitUntilPublished(health.logSeq)
        let report = try compareWithReference(events: expected, published: published, directory: directory)
        #expect(report == nil, "\(report ?? "")")
    }

    @Test func hubSpotFetchesMissingPropertiesFromTheCRMAPI() async throws {
        let directory = temporaryDirectory("fetch")
        defer { try? FileManager.default.removeItem(at: directory) }
        let dealResponse = try FixtureFiles.file(.hubspot, "fetch-response-9077.json")
        let requests = RequestLog()
        // A local stand-in for HubSpot's CRM API, answering in its documented shape.
        let router = Router()
        router.get("/crm/v3/objects/deals/:id") { request, context -> Response in
            requests.append("\(request.uri.string) \(request.headers[.authorization] ?? "")")
            guard request.headers[.authorization] == "Bearer pat-test-1", context.parameters.get("id") == "9077" else {
                return Response(status: .unauthorized)
            }
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            return Response(
                status: .ok,
                headers: headers,
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: dealResponse))
            )
        }
        let (portStream, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let api = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { portContinuation.yield($0.localAddress?.port ?? 0) },
            logger: Logger(label: "hubspot-api-stand-in")
        )
        let server = Task { try await api.run() }
        defer { server.cancel() }
        var iterator = portStream.makeAsyncIterator()
        let apiPort = try #require(await iterator.next())

        let daemon = try DaemonProcess(directory: directory, shards: 1, modelJSON: try FixtureFiles.modelJSON)
        defer { _ = daemon.terminate() }
        var env = environment(.hubspot)
        env["DEALSTREAM_HUBSPOT_ACCESS_TOKEN"] = "pat-test-1"
        let connector = try ConnectorProcess(
            vendor: .hubspot,
            ingest: daemon.ingestEndpoint,
            directory: directory,
            environment: env,
            extraArguments: ["--api-base-url", "http://127.0.0.1:\(apiPort)"]
        )
        defer { connector.terminate() }
        let body = try FixtureFiles.file(.hubspot, "fetch-webhook.json")
        let answer = try await connector.post(
            body,
            headers: credentials(
                .hubspot,
                secret: Self.secrets[.hubspot]!,
                body: body,
                mapping: try FixtureFiles.mapping(.hubspot)
            )
        )
        #expect(answer.status == 200)
        #expect(answer.body.contains("\"events\":1") && answer.body.contains("\"held_back\":[]"), "\(answer.body)")
        #expect(requests.entries.count == 1)
        #expect(requests.entries.first?.hasPrefix("/crm/v3/objects/deals/9077?properties=") == true)
        #expect(requests.entries.first?.contains("dealstage") == true)
        let health = try await connector.waitDrained()
        let published = try daemon.waitUntilPublished(health.logSeq)
        let report = try compareWithReference(
            events: try FixtureFiles.expected(.hubspot, "fetch-expected.ndjson"),
            published: published,
            directory: directory
        )
        #expect(report == nil, "\(report ?? "")")
    }
}

/// Requests seen by the API stand-in (written from its handlers, read by the test).
final class RequestLog: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func append(_ s: String) { lock.withLock { items.append(s) } }
    var entries: [String] { lock.withLock { items } }
}
