import Clients
import DealModel
import DealstreamTestSupport
import Foundation
import Testing
import Wire
import ZeroMQ

/// dealstream under faults, with real processes and real signals. Every scenario ends by
/// comparing the final snapshot with the acceptance kit's reference implementation
/// (`../shared/acceptance/reference.py`) over the same events.
@Suite(.serialized)
struct FaultInjectionTests {
    static let modelJSON = harnessModelJSON
    /// Fast failure detection for tests: 100 ms heartbeats, dropped after 10 silent ones.
    static let fastHeartbeats = #"{"workers":{"heartbeat_ms":100,"liveness":10}}"#

    private func configFile(_ directory: URL, _ json: String) throws -> String {
        let path = directory.appendingPathComponent("config.json").path
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Data(json.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Three connectors stream with resends while the daemon is killed with SIGKILL again
    /// and again and restarted on the same data directory.
    @Test func daemonKilledRepeatedlyDuringAHeavyStreamLosesNothing() throws {
        let directory = temporaryDirectory("kill")
        defer { try? FileManager.default.removeItem(at: directory) }
        let events = Scenario.events(seed: 21, deals: 1500)
        let config = try configFile(directory, #"{"checkpoint":{"every_records":1500}}"#)
        var daemon = try DaemonProcess(
            directory: directory,
            shards: 2,
            modelJSON: FaultInjectionTests.modelJSON,
            extraArguments: ["--config", config]
        )
        let context = try ZMQContext()
        let endpoint = daemon.ingestEndpoint
        let connectors = 3
        let outcome = ConnectorOutcome()
        var threads: [ZMQThread] = []
        for c in 0..<connectors {
            let mine = stride(from: c, to: events.count, by: connectors).map { events[$0] }
            let batches = stride(from: 0, to: mine.count, by: 40).map {
                Array(mine[$0..<min($0 + 40, mine.count)]).map { Array($0.utf8) }
            }
            threads.append(
                ZMQThread(name: "connector-\(c)") {
                    do {
                        let client = try IngestClient(
                            context: context,
                            endpoint: endpoint,
                            window: 2,
                            timeoutMilliseconds: 700,
                            retries: 1000
                        )
                        try client.send(batches: batches, eventsPerSecond: 2500) { ack in outcome.record(ack.body) }
                    } catch {
                        outcome.fail("\(error)")
                    }
                }
            )
        }
        var kills = 0
        for _ in 0..<6 {
            Thread.sleep(forTimeInterval: Double.random(in: 0.4...0.9))
            daemon.kill9()
            kills += 1
            daemon = try DaemonProcess(
                directory: directory,
                shards: 2,
                modelJSON: FaultInjectionTests.modelJSON,
                extraArguments: ["--config", config]
            )
        }
        for t in threads { t.join() }
        #expect(outcome.failure == nil, "\(outcome.failure ?? "")")
        let published = try daemon.waitUntilPublished(outcome.highestLogSeq, timeout: 120)
        let report = try referenceDisagreement(
            events: events,
            published: published,
            model: directory.appendingPathComponent("model.json"),
            directory: directory
        )
        #expect(report == nil, "\(report ?? "")")
        #expect(kills == 6)
        // Every event was acknowledged at least once; resends only add duplicates and stale.
        #expect(outcome.acknowledged >= events.count)
        #expect(daemon.terminate() == 0)
        #expect(daemon.strayWorkers.isEmpty)
    }

    /// A worker that stops answering (SIGSTOP) is detected by heartbeats, killed,
    /// restarted and rebuilt; publication waits for it and the state is exact.
    @Test func hungWorkerIsKilledRestartedAndRebuilt() throws {
        let directory = temporaryDirectory("hung")
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = try configFile(directory, FaultInjectionTests.fastHeartbeats)
        let daemon = try DaemonProcess(
            directory: directory,
            shards: 1,
            modelJSON: FaultInjectionTests.modelJSON,
            extraArguments: ["--config", config]
        )
        defer { _ = daemon.terminate() }
        let events = Scenario.events(seed: 22, deals: 300)
        var last: UInt64 = 0
        last = try daemon.sendAll(events[..<(events.count / 2)], batch: 50)
        _ = try daemon.waitUntilPublished(last)
        let victim = try #require(daemon.workerPIDs.first)
        kill(victim, SIGSTOP)
        last = try daemon.sendAll(events[(events.count / 2)...], batch: 50)
        let published = try daemon.waitUntilPublished(last, timeout: 60)
        #expect(!daemon.workerPIDs.contains(victim), "the hung worker must have been killed")
        kill(victim, SIGCONT)
        let report = try referenceDisagreement(
            events: events,
            published: published,
            model: directory.appendingPathComponent("model.json"),
            directory: directory
        )
        #expect(report == nil, "\(report ?? "")")
        #expect(daemon.log.contains("Killing hung worker"))
    }

    /// A subscriber that never reads does not slow ingest; once it reads, the dropped
    /// updates show as a seq gap and a fresh snapshot repairs its view.
    @Test func stuckSubscriberNeverSlowsIngestAndRecoversBySnapshot() throws {
        let directory = temporaryDirectory("slow-sub")
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = try configFile(directory, #"{"publish":{"subscriber_hwm":50}}"#)
        let daemon = try DaemonProcess(
            directory: directory,
            shards: 1,
            modelJSON: FaultInjectionTests.modelJSON,
            extraArguments: ["--config", config]
        )
        defer { _ = daemon.terminate() }
        let context = try ZMQContext()
        let follower = try UpdatesFollower(
            context: context,
            updatesEndpoint: daemon.updatesEndpoint,
            snapshotEndpoint: daemon.snapshotEndpoint,
            prefix: ""
        )
        Thread.sleep(forTimeInterval: 0.3)
        _ = try follower.takeSnapshot()
        // The follower does not read while thousands of updates are published.
        let events = Scenario.events(seed: 23, deals: 600)
        var last: UInt64 = 0
        let started = Date()
        last = try daemon.sendAll(events, batch: 100)
        let ingestSeconds = Date().timeIntervalSince(started)
        let published = try daemon.waitUntilPublished(last)
        #expect(ingestSeconds < 30)
        var gaps = 0
        var deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            for event in try follower.poll(milliseconds: 100) {
                if case .gap = event { gaps += 1 }
            }
            if follower.logSeq >= last && follower.state.count == published.count { deadline = .distantPast }
        }
        #expect(gaps > 0, "a subscriber over its high-water mark must see a gap")
        var repaired: [String: String] = [:]
        for (topic, series) in follower.state {
            var payload = String(decoding: series.raw, as: UTF8.self)
            if let cut = payload.range(of: ",\"seq\":", options: .backwards) {
                payload = String(payload[..<cut.lowerBound]) + "}"
            }
            repaired[topic] = payload
        }
        #expect(repaired == published, "after the repair the follower must hold the published state")
    }

    /// Malformed input on every endpoint gets a clear answer or is dropped, and the
    /// daemon keeps serving everyone else.
    @Test func badInputOnEveryEndpointChangesNothing() throws {
        let directory = temporaryDirectory("bad-input")
        defer { try? FileManager.default.removeItem(at: directory) }
        let daemon = try DaemonProcess(directory: directory, shards: 1, modelJSON: FaultInjectionTests.modelJSON)
        defer { _ = daemon.terminate() }
        let context = try ZMQContext()
        func ask(_ endpoint: String, _ frames: [[UInt8]], type: ZMQSocketType = .dealer) throws -> [[UInt8]]? {
            let socket = try ZMQSocket(context: context, type: type)
            try socket.connect(endpoint)
            try socket.send(frames)
            var poller = ZMQPoller()
            poller.add(socket)
            guard try poller.poll(timeoutMilliseconds: 2000)[0], let reply = try socket.receive() else { return nil }
            // An empty first frame looks like a REQ envelope and is echoed back as one.
            return IngestProtocol.withoutDelimiter(reply)
        }
        let ingest = daemon.ingestEndpoint
        let valid = Array(deal("bad-1", created: "2026-01-01T00:00:00Z").utf8)
        let json = Array("application/json".utf8)
        let events = Array("EVENTS".utf8)
        // Ingest: every malformed request gets ERR with one line.
        for frames in [
            [[UInt8]()], [Array("PING".utf8), [UInt8](repeating: 1, count: 65)],
            [events, Array("r".utf8), json] + [[UInt8]](repeating: valid, count: 10_001),
            [events, Array("r".utf8), Array("application/x-msgpack".utf8), valid],
        ] {
            let reply = try #require(try ask(ingest, frames))
            #expect(reply.first == Array("ERR".utf8))
        }
        // Ingest: broken events are rejected one by one, the rest of the batch applies.
        let broken: [[UInt8]] = [
            [0xFF, 0xFE], Array("{\"kind\":\"deal\"".utf8), Array(String(repeating: "[", count: 10_000).utf8),
            Array("{\"kind\":\"deal\",\"source\":\"s\",\"id\":\"i\",\"version\":NaN}".utf8),
            Array(deal("bad-2", amount: .infinity, created: "2026-01-01T00:00:00Z").utf8), valid,
        ]
        let reply = try #require(try ask(ingest, [events, Array("r2".utf8), json] + broken))
        let ack = try #require(IngestProtocol.AckBody.decode(reply[2]))
        #expect(ack.applied == 1)
        #expect(ack.rejected.map(\.index) == [0, 1, 2, 3, 4])
        // A frame over ZMQ_MAXMSGSIZE gets the connection dropped, not the daemon.
        _ = try ask(ingest, [events, Array("r3".utf8), json, [UInt8](repeating: 32, count: 20 << 20)])
        // Snapshot: unknown command and extra frames get ERR.
        #expect(try ask(daemon.snapshotEndpoint, [Array("SNAPSHOTS".utf8)])?.first == Array("ERR".utf8))
        #expect(try ask(daemon.snapshotEndpoint, [Array("SNAPSHOT".utf8), [], []])?.first == Array("ERR".utf8))
        // Worker endpoint: garbage and bad READYs are refused.
        let workers = "ipc://" + directory.appendingPathComponent("data/workers.sock").path
        #expect(try ask(workers, [Array("READY".utf8), [1, 2, 3]])?.first == Array("REFUSED".utf8))
        #expect(try ask(workers, [Array("HEARTBEAT".utf8)])?.first == Array("REFUSED".utf8))
        _ = try ask(workers, [Array("RESULT".utf8), [0, 1]])
        // Updates endpoint: junk subscription frames from an XSUB are ignored.
        let xsub = try ZMQSocket(context: context, type: .xsub)
        try xsub.connect(daemon.updatesEndpoint)
        try xsub.send([[7, 7, 7]])
        try xsub.send([[]])
        // A client that disconnects mid-request: the reply goes nowhere, nothing breaks.
        do {
            let gone = try ZMQSocket(context: context, type: .dealer)
            try gone.connect(ingest)
            try gone.send([
                events, Array("gone".utf8), json, Array(deal("bad-3", created: "2026-01-01T00:00:00Z").utf8),
            ])
            gone.close()
        }
        // The daemon still serves: a valid request is applied and published.
        let after = try daemon.send([deal("bad-4", created: "2026-01-01T00:00:00Z")])
        #expect(after.applied == 1)
        let published = try daemon.waitUntilPublished(after.logSeq)
        #expect(published["new_opportunities/source/crm/all"] != nil)
        #expect(published["new_opportunities/owner/rep-a/all"] != nil)
    }

    /// SIGTERM drains and exits 0; a second signal during shutdown exits at once.
    @Test func secondSignalExitsAtOnce() throws {
        let directory = temporaryDirectory("signals")
        defer { try? FileManager.default.removeItem(at: directory) }
        let daemon = try DaemonProcess(directory: directory, shards: 1, modelJSON: FaultInjectionTests.modelJSON)
        let events = Scenario.events(seed: 24, deals: 2000)
        _ = try daemon.send(Array(events.prefix(3000)))
        kill(daemon.process.processIdentifier, SIGTERM)
        Thread.sleep(forTimeInterval: 0.05)
        kill(daemon.process.processIdentifier, SIGTERM)
        let started = Date()
        daemon.process.waitUntilExit()
        #expect(Date().timeIntervalSince(started) < 5)
        let status = daemon.process.terminationStatus
        // Either the graceful stop won the race (0) or the second signal ended it (1).
        #expect(status == 0 || status == 1)
        let deadline = Date().addingTimeInterval(5)
        while !daemon.strayWorkers.isEmpty && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        #expect(daemon.strayWorkers.isEmpty)
    }

    /// A full disk: ingest answers ERR naming the reason, acknowledges nothing it could
    /// not store, and takes events again once there is space.
    @Test(.enabled(if: getuid() == 0, "needs root to mount a small tmpfs as the data directory (skipped, not failed)"))
    func diskFullAnswersErrAndRecovers() throws {
        let directory = temporaryDirectory("disk-full")
        defer {
            _ = try? Process.run(
                URL(fileURLWithPath: "/bin/umount"),
                arguments: [directory.appendingPathComponent("data").path]
            ).waitUntilExit()
            try? FileManager.default.removeItem(at: directory)
        }
        let data = directory.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        let mount = try Process.run(
            URL(fileURLWithPath: "/bin/mount"),
            arguments: ["-t", "tmpfs", "-o", "size=256k", "tmpfs", data.path]
        )
        mount.waitUntilExit()
        try #require(mount.terminationStatus == 0, "this test needs root to mount a small tmpfs as the data directory")
        let daemon = try DaemonProcess(directory: directory, shards: 1, modelJSON: FaultInjectionTests.modelJSON)
        defer { _ = daemon.terminate() }
        let events = Scenario.events(seed: 25, deals: 2000)
        var acknowledged: [String] = []
        var refusals = 0
        var reason = ""
        for start in stride(from: 0, to: events.count, by: 100) {
            let batch = Array(events[start..<min(start + 100, events.count)])
            let id = Array("df-\(start)".utf8)
            try daemon.ingest.send(
                [IngestProtocol.events, id, Array("application/json".utf8)] + batch.map { Array($0.utf8) }
            )
            var poller = ZMQPoller()
            poller.add(daemon.ingest)
            #expect(try poller.poll(timeoutMilliseconds: 10_000)[0])
            let reply = try #require(try daemon.ingest.receive())
            if reply[0] == IngestProtocol.ack {
                acknowledged += batch
            } else {
                refusals += 1
                reason = String(decoding: reply[2], as: UTF8.self)
            }
        }
        #expect(refusals > 0, "256 KiB cannot hold every event")
        #expect(reason.contains("No space left on device"), "ERR reason: \(reason)")
        // Space returns: everything refused is taken now.
        let remount = try Process.run(
            URL(fileURLWithPath: "/bin/mount"),
            arguments: ["-o", "remount,size=64m", data.path]
        )
        remount.waitUntilExit()
        var last: UInt64 = 0
        last = try daemon.sendAll(events, batch: 100)
        let published = try daemon.waitUntilPublished(last)
        let report = try referenceDisagreement(
            events: events,
            published: published,
            model: directory.appendingPathComponent("model.json"),
            directory: directory
        )
        #expect(report == nil, "\(report ?? "")")
    }
}

/// What the connectors of a test saw.
final class ConnectorOutcome: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var acknowledged = 0
    private(set) var highestLogSeq: UInt64 = 0
    private(set) var failure: String?

    func record(_ ack: IngestProtocol.AckBody) {
        lock.withLock {
            acknowledged += ack.applied + ack.duplicate + ack.stale + ack.rejected.count
            highestLogSeq = max(highestLogSeq, ack.logSeq)
        }
    }

    func fail(_ reason: String) { lock.withLock { failure = reason } }
}
