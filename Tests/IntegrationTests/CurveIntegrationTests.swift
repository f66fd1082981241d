import DealModel
import DealstreamTestSupport
import Foundation
import Testing
import Wire
import ZeroMQ

/// The daemon with `ingest.curve` on, as a process: a configured connector's events are
/// acknowledged; a connector whose key is not configured, or that has no key, is refused
/// by the daemon and nothing it sends reaches the log.
@Suite(.serialized)
struct CurveIntegrationTests {
    /// One message within `milliseconds`, or nil.
    private func receive(_ socket: ZMQSocket, within milliseconds: Int) throws -> [[UInt8]]? {
        var poller = ZMQPoller()
        poller.add(socket)
        guard try poller.poll(timeoutMilliseconds: milliseconds)[0] else { return nil }
        return try socket.receive(blocking: false)
    }

    @Test func aConnectorWhoseKeyIsNotConfiguredIsRefusedByTheDaemon() throws {
        let directory = temporaryDirectory("it-curve")
        try? FileManager.default.removeItem(at: directory)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let daemonKeys = try CurveKeyPair.generate()
        try Data((daemonKeys.secretKey.z85 + "\n").utf8).write(to: directory.appendingPathComponent("ingest.key"))
        let connector = try CurveKeyPair.generate()
        let stranger = try CurveKeyPair.generate()
        let config = """
            {"ingest": {"curve": {"secret_key_file": "ingest.key", "connectors": {"hubspot-eu": "\(connector.publicKey)"}}}}
            """
        let daemon = try DaemonProcess(
            directory: directory,
            shards: 1,
            modelJSON: harnessModelJSON,
            configJSON: config,
            ingestCurve: CurveClientKeys(serverKey: daemonKeys.publicKey, keyPair: connector)
        )
        let events = Scenario.events(seed: 17, deals: 40)
        try #require(events.count >= 100)

        // The configured connector: acknowledged, published.
        let first = try daemon.send(Array(events[0..<50]))
        #expect(first.applied > 0)
        _ = try daemon.waitUntilPublished(first.logSeq)

        // A connector with a key the daemon does not list, and one with no key at all.
        let context = try ZMQContext()
        let refused = try ZMQSocket(context: context, type: .dealer)
        try refused.setCurveClient(CurveClientKeys(serverKey: daemonKeys.publicKey, keyPair: stranger))
        try refused.connect(daemon.ingestEndpoint)
        let plain = try ZMQSocket(context: context, type: .dealer)
        try plain.connect(daemon.ingestEndpoint)
        let strangerEvents =
            [IngestProtocol.events, Array("stranger-1".utf8), Array("application/json".utf8)]
            + events[50..<100].map { Array($0.utf8) }
        try refused.send(strangerEvents)
        try plain.send(strangerEvents)
        try plain.send([IngestProtocol.ping, Array("plain-ping".utf8)])
        #expect(
            try receive(refused, within: 3000) == nil,
            "the daemon answered a connector whose key is not configured"
        )
        #expect(try receive(plain, within: 100) == nil, "the daemon answered a connector without CURVE")

        // Nothing of theirs reached the log: the published position has not moved, and the
        // configured connector resending its own events (all duplicates) learns the log's
        // position, which is still that of its first ACK.
        #expect(try daemon.snapshot().logSeq == first.logSeq)
        let again = try daemon.send(Array(events[0..<50]))
        #expect(again.applied == 0)
        #expect(again.logSeq == first.logSeq)

        // The daemon names who it let in and whom it refused.
        let log = daemon.log
        #expect(log.contains("Connector authenticated") && log.contains("connector=hubspot-eu"), "\(log)")
        #expect(log.contains("Connector refused") && log.contains(stranger.publicKey.z85), "\(log)")
        #expect(!log.contains(daemonKeys.secretKey.z85), "the daemon logged its secret key")
        #expect(log.contains("ingest.curve=on, 1 connectors"))

        // The configured connector is still served after the refusals.
        let last = try daemon.send(Array(events[50..<100]))
        #expect(last.applied > 0)
        #expect(last.logSeq > first.logSeq)

        // `dealstream send` with the flags: the configured key gets its events in, an
        // unknown key fails at once (status 2) saying why, without waiting out its retries.
        let eventsFile = directory.appendingPathComponent("events.ndjson")
        try Data(events[100...].joined(separator: "\n").utf8).write(to: eventsFile)
        try Data((connector.secretKey.z85 + "\n").utf8).write(to: directory.appendingPathComponent("hubspot-eu.key"))
        try Data((stranger.secretKey.z85 + "\n").utf8).write(to: directory.appendingPathComponent("stranger.key"))
        func send(keyFile: String?, extra: [String] = []) throws -> (status: Int32, output: String, seconds: Double) {
            let started = Date()
            let curve =
                keyFile.map {
                    [
                        "--curve-server-key", daemonKeys.publicKey.z85, "--curve-key-file",
                        directory.appendingPathComponent($0).path,
                    ]
                } ?? []
            let result = try run(
                DaemonProcess.binary,
                ["send", "--ingest", daemon.ingestEndpoint, "--json", eventsFile.path] + curve + extra
            )
            return (result.status, result.output, Date().timeIntervalSince(started))
        }
        let admitted = try send(keyFile: "hubspot-eu.key")
        #expect(admitted.status == 0, "\(admitted.output)")
        #expect(admitted.output.contains("\"rejected\":0"), "\(admitted.output)")
        let refusedSend = try send(keyFile: "stranger.key")
        #expect(refusedSend.status == 2, "\(refusedSend.output)")
        #expect(
            refusedSend.output.contains("refused this connector's CURVE key \(stranger.publicKey.z85)"),
            "\(refusedSend.output)"
        )
        #expect(refusedSend.seconds < 8, "send waited for ACKs instead of failing on the refusal")
        // Without CURVE, whichever side reads the other's greeting first drops the
        // connection: send hears "requires CURVE" from its monitor, or no ACK ever comes.
        let plainSend = try send(keyFile: nil, extra: ["--timeout-ms", "500", "--retries", "1"])
        #expect(plainSend.status == 2, "\(plainSend.output)")
        #expect(plainSend.output.contains("\"acknowledged\":0"), "\(plainSend.output)")
        #expect(
            plainSend.output.contains("requires CURVE: give --curve-server-key and --curve-key-file")
                || plainSend.output.contains("no ACK from"),
            "\(plainSend.output)"
        )
        #expect(daemon.terminate() == 0)
    }

    /// Runs `executable` to its end; its status and its stdout and stderr together.
    private func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }
}
