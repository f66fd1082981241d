import Clients
import DealModel
import DealstreamTestSupport
import Foundation
import Testing
import Wire
import ZeroMQ

/// The protocol clients `send` and `tail` are built on, against a real daemon.
struct ClientsTests {
    /// A payload without its stamps, for comparing with the in-process reference.
    private func unstamped(_ value: JSONValue) -> JSONValue {
        guard case .object(let members) = value else { return value }
        return .object(members.filter { $0.0 != "seq" && $0.0 != "log_seq" })
    }

    @Test func ingestClientAndFollowerSeeEveryEventPublishedAsTheReferenceComputesIt() throws {
        let daemon = try DaemonProcess(shards: 1, modelJSON: harnessModelJSON)
        defer {
            _ = daemon.terminate()
            try? FileManager.default.removeItem(at: daemon.directory)
        }
        let follower = try UpdatesFollower(
            context: daemon.context,
            updatesEndpoint: daemon.updatesEndpoint,
            snapshotEndpoint: daemon.snapshotEndpoint,
            prefix: ""
        )
        _ = try follower.takeSnapshot()

        let events = Scenario.events(seed: 7, deals: 150)
        let client = try IngestClient(context: daemon.context, endpoint: daemon.ingestEndpoint, window: 3)
        var acknowledged = 0
        var lastLogSeq: UInt64 = 0
        let batches = stride(from: 0, to: events.count, by: 40).map { start in
            events[start..<min(start + 40, events.count)].map { Array($0.utf8) }
        }
        try client.send(batches: batches) { ack in
            acknowledged += ack.body.applied + ack.body.duplicate + ack.body.stale + ack.body.rejected.count
            lastLogSeq = max(lastLogSeq, ack.body.logSeq)
        }
        #expect(acknowledged == events.count)

        let deadline = Date().addingTimeInterval(30)
        var gaps = 0
        while follower.logSeq < lastLogSeq && Date() < deadline {
            for event in try follower.poll(milliseconds: 200) {
                if case .gap = event { gaps += 1 }
            }
        }
        #expect(follower.logSeq == lastLogSeq)
        #expect(gaps == 0)
        let expected = publishedState(events)
        #expect(follower.state.count == expected.count)
        for (topic, payload) in expected {
            let got = try #require(follower.state[topic], "\(topic) missing")
            #expect(unstamped(got.payload) == (try JSONParser.parse(Array(payload.utf8))), "\(topic)")
        }
    }

    @Test func anIngestClientWithNoDaemonFailsNamingTheRequest() throws {
        let context = try ZMQContext()
        let endpoint = "ipc://" + temporaryDirectory("no-daemon").path + ".sock"
        let client = try IngestClient(
            context: context,
            endpoint: endpoint,
            window: 1,
            timeoutMilliseconds: 200,
            retries: 1
        )
        #expect(throws: IngestClient.RequestFailure.self) {
            try client.send(batches: [[Array("{}".utf8)]]) { _ in }
        }
    }
}
