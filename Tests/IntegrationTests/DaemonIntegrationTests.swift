import DealModel
import DealstreamTestSupport
import EventEncoding
import Foundation
import Testing
import Wire
import ZeroMQ

/// The whole product as processes: a real daemon, real worker processes, real signals.
///
/// Its reference is the in-process pipeline of the test support (record store → engines
/// → topics) over the same events: the multi-process system must publish exactly that.
@Suite(.serialized)
struct DaemonIntegrationTests {
    static let modelJSON = harnessModelJSON

    private func differences(_ expected: [String: String], _ actual: [String: String]) -> [String] {
        let keys = Set(expected.keys).union(actual.keys)
        return keys.filter { expected[$0] != actual[$0] }.sorted().map {
            "\($0): expected \(expected[$0] ?? "absent"), got \(actual[$0] ?? "absent")"
        }
    }

    @Test func workerKilledMidStreamIsRebuiltAndTheStateIsExact() throws {
        let events = Scenario.events(seed: 7, deals: 400)
        let daemon = try DaemonProcess(shards: 2, modelJSON: DaemonIntegrationTests.modelJSON)
        defer { _ = daemon.terminate() }
        var lastLogSeq: UInt64 = 0
        let half = events.count / 2
        lastLogSeq = try daemon.sendAll(events[..<half], batch: 50)
        // Wait until all 20 workers (10 families × 2 shards) run, then kill one mid-stream.
        let deadline = Date().addingTimeInterval(20)
        while daemon.workerPIDs.count < 20 && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        let before = daemon.workerPIDs
        #expect(before.count == 20)
        let victim = try #require(before.first)
        kill(victim, SIGKILL)
        lastLogSeq = try daemon.sendAll(events[half...], batch: 50)
        let published = try daemon.waitUntilPublished(lastLogSeq)
        let expected = publishedState(events, model: try Model.parse(Array(DaemonIntegrationTests.modelJSON.utf8)))
        #expect(published.count == expected.count)
        let diff = differences(expected, published)
        #expect(diff.isEmpty, "\(diff.count) differences, e.g. \(diff.prefix(3))")
        var after = daemon.workerPIDs
        let restartDeadline = Date().addingTimeInterval(10)
        while after.count < 20 && Date() < restartDeadline {
            Thread.sleep(forTimeInterval: 0.05)
            after = daemon.workerPIDs
        }
        #expect(after.count == 20)
        #expect(!after.contains(victim))
    }

    @Test func daemonKilledWithSIGKILLComesBackToTheSamePublishedState() throws {
        let events = Scenario.events(seed: 11, deals: 200)
        let directory = temporaryDirectory("it-restart")
        try? FileManager.default.removeItem(at: directory)
        defer { try? FileManager.default.removeItem(at: directory) }
        var lastLogSeq: UInt64 = 0
        var published: [String: String] = [:]
        do {
            let daemon = try DaemonProcess(directory: directory, shards: 1, modelJSON: DaemonIntegrationTests.modelJSON)
            lastLogSeq = try daemon.sendAll(events, batch: 100)
            published = try daemon.waitUntilPublished(lastLogSeq)
            daemon.kill9()
            // Workers follow their daemon (parent-death signal), none may linger.
            let deadline = Date().addingTimeInterval(10)
            while !daemon.strayWorkers.isEmpty && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
            #expect(daemon.strayWorkers.isEmpty)
        }
        let restarted = try DaemonProcess(directory: directory, shards: 3, modelJSON: DaemonIntegrationTests.modelJSON)
        let again = try restarted.waitUntilPublished(lastLogSeq)
        let diff = differences(published, again)
        #expect(diff.isEmpty, "\(diff.count) differences after restart, e.g. \(diff.prefix(3))")
        // Resending everything changes nothing.
        let ack = try restarted.send(Array(events.prefix(500)))
        #expect(ack.applied == 0)
        #expect(ack.logSeq == lastLogSeq)
        #expect(restarted.terminate() == 0)
        #expect(restarted.strayWorkers.isEmpty)
    }

    @Test func gracefulRestartServesThePublishedStateBeforeAnyWorkerIsBack() throws {
        let events = Scenario.events(seed: 13, deals: 150)
        let directory = temporaryDirectory("it-published")
        try? FileManager.default.removeItem(at: directory)
        defer { try? FileManager.default.removeItem(at: directory) }
        var lastLogSeq: UInt64 = 0
        var before: [String: String] = [:]
        do {
            let daemon = try DaemonProcess(directory: directory, shards: 2, modelJSON: DaemonIntegrationTests.modelJSON)
            lastLogSeq = try daemon.sendAll(events, batch: 100)
            before = try daemon.waitUntilPublished(lastLogSeq)
            #expect(daemon.terminate() == 0)
        }
        // No workers at all: the snapshot can only come from the saved published state.
        let restarted = try DaemonProcess(
            directory: directory,
            shards: 2,
            modelJSON: DaemonIntegrationTests.modelJSON,
            extraArguments: ["--no-spawn"]
        )
        let (after, position) = try restarted.snapshot()
        #expect(position == lastLogSeq)
        let diff = differences(before, after)
        #expect(diff.isEmpty, "\(diff.count) differences, e.g. \(diff.prefix(3))")
        #expect(restarted.terminate() == 0)
        // Another number of workers per family serves the same state: the saved state is kept
        // by partition, and which worker owns a partition does not matter.
        let rescaled = try DaemonProcess(
            directory: directory,
            shards: 3,
            modelJSON: DaemonIntegrationTests.modelJSON,
            extraArguments: ["--no-spawn"]
        )
        let (rescaledState, rescaledPosition) = try rescaled.snapshot()
        #expect(rescaledPosition == lastLogSeq)
        #expect(differences(before, rescaledState).isEmpty)
        #expect(rescaled.terminate() == 0)
        // Another partition count for this data directory is refused, naming the setting.
        let repartitioned = try DaemonProcess(
            directory: directory,
            shards: 1,
            modelJSON: DaemonIntegrationTests.modelJSON,
            extraArguments: ["--no-spawn", "--partitions", "16"]
        )
        repartitioned.process.waitUntilExit()
        #expect(repartitioned.process.terminationStatus != 0)
        #expect(repartitioned.log.contains("workers.partitions"), "\(repartitioned.log)")
    }

    @Test func malformedRequestsGetErrAndChangeNothing() throws {
        let daemon = try DaemonProcess(shards: 1, modelJSON: DaemonIntegrationTests.modelJSON)
        defer { _ = daemon.terminate() }
        let valid = Array(deal("x1", created: "2026-01-01T00:00:00Z").utf8)
        let requests: [[[UInt8]]] = [
            [Array("EVENTZ".utf8), Array("r1".utf8), Array("application/json".utf8), valid],
            [Array("EVENTS".utf8), Array("r2".utf8), Array("application/json".utf8)],
            [Array("EVENTS".utf8), Array("r3".utf8), Array("text/csv".utf8), valid],
            [Array("EVENTS".utf8), [UInt8](repeating: 65, count: 65), Array("application/json".utf8), valid],
            [
                Array("EVENTS".utf8), Array("r5".utf8), Array("application/json".utf8),
                [UInt8](repeating: 32, count: 2 << 20),
            ],
        ]
        for frames in requests {
            try daemon.ingest.send(frames)
            var poller = ZMQPoller()
            poller.add(daemon.ingest)
            #expect(try poller.poll(timeoutMilliseconds: 5000)[0])
            let reply = try #require(try daemon.ingest.receive())
            #expect(reply.count == 3)
            #expect(reply[0] == Array("ERR".utf8))
            #expect(!reply[2].isEmpty && !reply[2].contains(UInt8(ascii: "\n")))
        }
        let ack = try daemon.send([deal("x2", created: "2026-01-01T00:00:00Z")])
        #expect(ack.applied == 1)
        #expect(ack.logSeq == 1)
        let state = try daemon.waitUntilPublished(1)
        #expect(state["new_opportunities/all/%2A/all"]?.contains("\"value\":1}") == true)
    }

    /// Requests in the protobuf content type, mixed with JSON ones, publish exactly what
    /// the same events as JSON do, also after a restart replays a log holding both.
    @Test func protobufEventsPublishTheSameStateAndSurviveARestart() throws {
        let events = Scenario.events(seed: 13, deals: 300)
        let model = try Model.parse(Array(DaemonIntegrationTests.modelJSON.utf8))
        let directory = temporaryDirectory("it-protobuf")
        try? FileManager.default.removeItem(at: directory)
        defer { try? FileManager.default.removeItem(at: directory) }
        let expected = publishedState(events, model: model)
        var lastLogSeq: UInt64 = 0
        do {
            let daemon = try DaemonProcess(directory: directory, shards: 2, modelJSON: DaemonIntegrationTests.modelJSON)
            var rest = events[...]
            var binary = true
            while !rest.isEmpty {
                let batch = Array(rest.prefix(40))
                rest = rest.dropFirst(40)
                if binary {
                    let frames = try batch.map { try ProtobufEvent.encode(json: try JSONParser.parse(Array($0.utf8))) }
                    let ack = try daemon.send(frames: frames, contentType: EventEncoding.protobuf.contentType)
                    #expect(ack.rejected.isEmpty, "\(ack.rejected.prefix(2))")
                    lastLogSeq = ack.logSeq
                } else {
                    lastLogSeq = try daemon.send(batch).logSeq
                }
                binary.toggle()
            }
            let published = try daemon.waitUntilPublished(lastLogSeq)
            let diff = differences(expected, published)
            #expect(diff.isEmpty, "\(diff.count) differences, e.g. \(diff.prefix(3))")
            daemon.kill9()
        }
        let restarted = try DaemonProcess(directory: directory, shards: 1, modelJSON: DaemonIntegrationTests.modelJSON)
        let again = try restarted.waitUntilPublished(lastLogSeq)
        let diff = differences(expected, again)
        #expect(diff.isEmpty, "\(diff.count) differences after replay, e.g. \(diff.prefix(3))")
        // A bad protobuf frame is rejected by index, the good one beside it applied.
        let good = try ProtobufEvent.encode(json: try JSONParser.parse(Array(events[0].utf8)))
        let ack = try restarted.send(frames: [[0xFF, 0x01], good], contentType: EventEncoding.protobuf.contentType)
        #expect(ack.rejected.map(\.index) == [0])
        #expect(ack.applied == 0 && ack.duplicate + ack.stale == 1)
        #expect(restarted.terminate() == 0)
    }
}
