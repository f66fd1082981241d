import CRMWebhooks
import DealstreamTestSupport
import Foundation
import Testing

/// `dealstream connect`'s `/metrics`, `/live` and `/ready` on its own listener, over real HTTP.
@Suite(.serialized)
struct ConnectorMetricsTests {
    private let secret = "dealstream:s3cret:pass"

    @Test func webhooksByStatusSpoolDepthAndForwardLagWhileTheDaemonIsDownThenDrained() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ds-connect-metrics-\(UUID().uuidString.prefix(8))"
        )
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let vendor = Vendor.pipedrive
        let ingest = "ipc://" + directory.appendingPathComponent("ingest.sock").path
        let connector = try ConnectorProcess(
            vendor: vendor,
            ingest: ingest,
            directory: directory,
            environment: [vendor.secretName: secret]
        )
        defer { connector.terminate() }
        let base = "http://127.0.0.1:\(connector.port)"
        #expect(await HTTPScrape.waitFor(base + "/ready", status: 200, timeout: 60), "\(connector.log)")

        let mapping = try FixtureFiles.mapping(vendor)
        let sequence = try FixtureFiles.sequence(vendor)
        for (name, body) in sequence {
            let answer = try await connector.post(
                body,
                headers: credentials(vendor, secret: secret, body: body, mapping: mapping)
            )
            #expect(answer.status == 200, "\(name): \(answer.body)")
        }
        let unsigned = try await connector.post(Array("{}".utf8), headers: [:])
        #expect(unsigned.status == 401)

        // The daemon is down: everything waits in the spool, and the lag grows.
        let expected = try FixtureFiles.expected(vendor).count
        try await Task.sleep(for: .milliseconds(1100))
        var exposition = try await HTTPScrape.get(base + "/metrics").body
        var samples = HTTPScrape.samples(exposition)
        #expect(
            samples["dealstream_connect_webhooks_total{vendor=\"pipedrive\",code=\"200\"}"] == Double(sequence.count)
        )
        #expect(samples["dealstream_connect_webhooks_total{vendor=\"pipedrive\",code=\"401\"}"] == 1)
        #expect(samples["dealstream_connect_spool_events{vendor=\"pipedrive\"}"] == Double(expected))
        #expect(samples["dealstream_connect_forward_lag_seconds{vendor=\"pipedrive\"}"] ?? 0 >= 1)
        #expect(samples["dealstream_connect_forwarded_events_total{vendor=\"pipedrive\"}"] == 0)
        #expect(try HTTPScrape.undocumented(exposition) == [], "metrics missing from docs/operations.md")
        // Still ready: the spool has room, so webhooks are taken.
        #expect(try await HTTPScrape.get(base + "/ready").status == 200)
        do {
            let problems = try HTTPScrape.promtoolProblems(exposition)
            #expect(problems == nil, "promtool check metrics: \(problems ?? "")")
        } catch {
            print("SKIPPED promtool check metrics: \(error)")
        }

        let daemon = try DaemonProcess(directory: directory, shards: 1, modelJSON: try FixtureFiles.modelJSON)
        defer { _ = daemon.terminate() }
        _ = try await connector.waitDrained()
        exposition = try await HTTPScrape.get(base + "/metrics").body
        samples = HTTPScrape.samples(exposition)
        #expect(samples["dealstream_connect_spool_events{vendor=\"pipedrive\"}"] == 0)
        #expect(samples["dealstream_connect_forward_lag_seconds{vendor=\"pipedrive\"}"] == 0)
        #expect(samples["dealstream_connect_forwarded_events_total{vendor=\"pipedrive\"}"] == Double(expected))
    }
}
