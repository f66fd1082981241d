import DealModel
import DealstreamTestSupport
import Foundation
import PipelineMetrics
import Testing
import Wire
import ZeroMQ

/// The daemon with `workers.curve` on a loopback tcp worker endpoint, as real processes:
/// a worker with an unknown key, one without CURVE and one with a connector's key get
/// nothing back and change nothing; an allowlisted key is served; the workers the daemon
/// spawns join with their ephemeral key; a worker key gets nothing in on ingest; a worker
/// endpoint other hosts can reach refuses to start without `workers.curve`.
@Suite(.serialized)
struct WorkerLinkSecurityTests {
    /// Key files and the config of a daemon with CURVE on both ingest and the worker link.
    struct Keys {
        let directory: URL
        let ingest = try! CurveKeyPair.generate()
        let workerLink = try! CurveKeyPair.generate()
        let connector = try! CurveKeyPair.generate()
        let worker = try! CurveKeyPair.generate()
        let stranger = try! CurveKeyPair.generate()

        init(_ name: String) throws {
            directory = temporaryDirectory(name)
            try? FileManager.default.removeItem(at: directory)
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            for (file, pair) in [
                ("ingest.key", ingest), ("workers.key", workerLink), ("remote-1.key", worker),
                ("stranger.key", stranger),
            ] {
                try Data((pair.secretKey.z85 + "\n").utf8).write(to: directory.appendingPathComponent(file))
                _ = chmod(directory.appendingPathComponent(file).path, 0o600)
            }
        }

        func config(families: [String]) -> String {
            """
            {"workers": {"families": [\(families.map { "\"\($0)\"" }.joined(separator: ","))],
                         "curve": {"secret_key_file": "workers.key", "workers": {"remote-1": "\(worker.publicKey)"}}},
             "ingest": {"curve": {"secret_key_file": "ingest.key", "connectors": {"crm": "\(connector.publicKey)"}}}}
            """
        }

        func path(_ file: String) -> String { directory.appendingPathComponent(file).path }

        func cleanUp() { try? FileManager.default.removeItem(at: directory) }
    }

    /// A loopback tcp endpoint on a port that was free a moment ago.
    static func freeLoopbackEndpoint() throws -> String {
        let context = try ZMQContext()
        let probe = try ZMQSocket(context: context, type: .router)
        try probe.bind("tcp://127.0.0.1:*")
        let endpoint = try probe.lastEndpoint()
        probe.close()
        return endpoint
    }

    /// A fake worker: a DEALER on the worker endpoint with `keys` (nil: no CURVE).
    static func fakeWorker(_ context: ZMQContext, _ endpoint: String, keys: CurveClientKeys?) throws -> ZMQSocket {
        let socket = try ZMQSocket(context: context, type: .dealer)
        // A refused DEALER has no connection and would block in send forever.
        try socket.set(.sendTimeout, 100)
        if let keys { try socket.setCurveClient(keys) }
        try socket.connect(endpoint)
        return socket
    }

    /// `READY` for `family`, then a forged `RESULT` far ahead of the log.
    static func attack(_ socket: ZMQSocket, family: String) throws {
        let ready = WorkerLink.Ready(family: family, pid: Int(getpid()), host: "fake")
        _ = try socket.send([Array(WorkerLink.Command.ready.rawValue.utf8), ready.encode()], blocking: false)
        var body = WorkerLink.ResultWriter()
        body.shape(0, MetricName.revenue.shape)
        body.series(0, shape: 0, topic: Array("revenue/all/%2A/all".utf8))
        body.values(0, [FieldWord.number(-999_999_999), FieldWord.count(1)])
        _ = try socket.send(
            [
                Array(WorkerLink.Command.result.rawValue.utf8), WorkerLink.ResultHeader(logSeq: 1_000_000).encode(),
                body.bytes,
            ],
            blocking: false
        )
    }

    /// Every message each of `sockets` receives within `milliseconds` (all listened to at once).
    static func messages(_ sockets: [ZMQSocket], within milliseconds: Int) throws -> [[[[UInt8]]]] {
        var received: [[[[UInt8]]]] = Array(repeating: [], count: sockets.count)
        let deadline = Date().addingTimeInterval(Double(milliseconds) / 1000)
        var poller = ZMQPoller()
        for socket in sockets { poller.add(socket) }
        while Date() < deadline {
            let ready = try poller.poll(timeoutMilliseconds: max(1, Int(deadline.timeIntervalSinceNow * 1000)))
            for (i, socket) in sockets.enumerated() where ready[i] {
                while let frames = try socket.receive(blocking: false) { received[i].append(frames) }
            }
        }
        return received
    }

    /// Every message `socket` receives within `milliseconds`.
    static func messages(_ socket: ZMQSocket, within milliseconds: Int) throws -> [[[UInt8]]] {
        try messages([socket], within: milliseconds)[0]
    }

    /// The commands of `messages` (first frames), for failure messages.
    static func commands(_ messages: [[[UInt8]]]) -> [String] {
        messages.map { String(decoding: $0.first ?? [], as: UTF8.self) }
    }

    /// Polls `text()` until it contains every one of `needles`; false after `timeout` s.
    static func eventually(_ text: () -> String, contains needles: [String], timeout: Double = 10) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let t = text()
            if needles.allSatisfy({ t.contains($0) }) { return true }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return false
    }

    @Test func unknownPlainAndConnectorKeysGetNothingAndChangeNothingWhileSpawnedWorkersAreServed() throws {
        let keys = try Keys("it-wauth-a")
        defer { keys.cleanUp() }
        let endpoint = try Self.freeLoopbackEndpoint()
        let daemon = try DaemonProcess(
            directory: keys.directory,
            shards: 1,
            modelJSON: harnessModelJSON,
            configJSON: keys.config(families: ["revenue", "win_rate"]),
            ingestCurve: CurveClientKeys(serverKey: keys.ingest.publicKey, keyPair: keys.connector),
            extraArguments: ["--workers", endpoint]
        )
        let events = Scenario.events(seed: 23, deals: 40)
        try #require(events.count >= 100)

        // The spawned workers joined over tcp with CURVE (their ephemeral key, admitted as
        // "spawned"), so what the connector sends is published.
        let first = try daemon.send(Array(events[0..<60]))
        #expect(first.applied > 0)
        let before = try daemon.waitUntilPublished(first.logSeq)
        #expect(before.keys.contains { $0.hasPrefix("revenue/") }, "\(before.keys.sorted().prefix(5))")
        #expect(before.keys.contains { $0.hasPrefix("win_rate/") })
        #expect(daemon.log.contains("Worker authenticated") && daemon.log.contains("worker=spawned"), "\(daemon.log)")
        #expect(daemon.log.contains("workers.curve=on, 2 keys"))
        #expect(!daemon.log.contains(keys.workerLink.secretKey.z85), "the daemon logged its worker-link secret key")
        let spawnedCommandLines = daemon.workerPIDs.compactMap {
            try? String(decoding: Data(contentsOf: URL(fileURLWithPath: "/proc/\($0)/cmdline")), as: UTF8.self)
        }
        #expect(spawnedCommandLines.count == 2)
        #expect(spawnedCommandLines.allSatisfy { $0.contains(keys.workerLink.publicKey.z85) })

        // (a) an unknown key, (b) no CURVE, (c) the connector's key: READY and a forged
        // RESULT each, and nothing comes back (no RESET, no REFUSED, no heartbeat).
        let context = try ZMQContext()
        let unknown = try Self.fakeWorker(
            context,
            endpoint,
            keys: CurveClientKeys(serverKey: keys.workerLink.publicKey, keyPair: keys.stranger)
        )
        let plain = try Self.fakeWorker(context, endpoint, keys: nil)
        let connectorKey = try Self.fakeWorker(
            context,
            endpoint,
            keys: CurveClientKeys(serverKey: keys.workerLink.publicKey, keyPair: keys.connector)
        )
        // And the other way round: a worker's key on ingest gets no event in.
        let workerOnIngest = try ZMQSocket(context: context, type: .dealer)
        try workerOnIngest.set(.sendTimeout, 100)
        try workerOnIngest.setCurveClient(CurveClientKeys(serverKey: keys.ingest.publicKey, keyPair: keys.worker))
        try workerOnIngest.connect(daemon.ingestEndpoint)
        for socket in [unknown, plain, connectorKey] {
            // Two families: a vacant slot would not change the answer, none is vacant here.
            try Self.attack(socket, family: "revenue")
            try Self.attack(socket, family: "win_rate")
        }
        _ = try workerOnIngest.send(
            [IngestProtocol.events, Array("worker-1".utf8), Array("application/json".utf8)]
                + events[60..<100].map { Array($0.utf8) },
            blocking: false
        )
        let heard = try Self.messages([unknown, plain, connectorKey, workerOnIngest], within: 3000)
        #expect(heard[0].isEmpty, "an unknown worker key got \(Self.commands(heard[0]))")
        #expect(heard[1].isEmpty, "a worker without CURVE got \(Self.commands(heard[1]))")
        #expect(heard[2].isEmpty, "a connector's key on the worker endpoint got \(Self.commands(heard[2]))")
        #expect(heard[3].isEmpty, "a worker's key on ingest got \(Self.commands(heard[3]))")

        // Nothing changed: the same published state at the same position, and the
        // connector's own events are still acknowledged and published.
        let after = try daemon.snapshot()
        #expect(after.logSeq == first.logSeq)
        #expect(after.series == before)
        let second = try daemon.send(Array(events[60..<100]))
        #expect(second.applied > 0)
        #expect(second.logSeq > first.logSeq)
        _ = try daemon.waitUntilPublished(second.logSeq)

        // One line each on the daemon: domain, key, and why.
        let workerRefusals = [keys.stranger.publicKey.z85, keys.connector.publicKey.z85].map { "worker.key=\($0)" }
        #expect(
            Self.eventually({ daemon.log }, contains: workerRefusals + ["worker.key=none"]),
            "\(daemon.log)"
        )
        let lines = daemon.log.split(separator: "\n")
        for key in workerRefusals {
            let line = lines.filter { $0.contains(key) }
            #expect(line.count == 1, "\(line)")
            #expect(line.first.map { $0.contains("Worker handshake refused") } == true)
            #expect(line.first.map { $0.contains("zap.domain=workers") } == true)
            #expect(line.first.map { $0.contains("reason=not in workers.curve.workers") } == true)
        }
        let ingestRefusal = lines.filter { $0.contains("connector.key=\(keys.worker.publicKey.z85)") }
        #expect(ingestRefusal.count == 1, "\(daemon.log)")
        #expect(
            ingestRefusal.first.map { $0.contains("Connector refused") && $0.contains("zap.domain=ingest") } == true
        )
        #expect(daemon.terminate() == 0)
        #expect(daemon.strayWorkers.isEmpty)
    }

    @Test func anAllowlistedKeyIsServedAndARealWorkerSaysWhyItWasRefused() throws {
        let keys = try Keys("it-wauth-d")
        defer { keys.cleanUp() }
        let endpoint = try Self.freeLoopbackEndpoint()
        let daemon = try DaemonProcess(
            directory: keys.directory,
            shards: 1,
            modelJSON: harnessModelJSON,
            configJSON: keys.config(families: ["revenue", "win_rate"]),
            ingestCurve: CurveClientKeys(serverKey: keys.ingest.publicKey, keyPair: keys.connector),
            extraArguments: ["--workers", endpoint, "--no-spawn"]
        )
        let events = Scenario.events(seed: 29, deals: 20)
        _ = try daemon.send(Array(events.prefix(40)))

        // (d) The allowlisted key: READY is answered with RESET (a new session).
        let context = try ZMQContext()
        let allowed = try Self.fakeWorker(
            context,
            endpoint,
            keys: CurveClientKeys(serverKey: keys.workerLink.publicKey, keyPair: keys.worker)
        )
        let ready = WorkerLink.Ready(family: "revenue", pid: Int(getpid()), host: "allowed")
        _ = try allowed.send([Array(WorkerLink.Command.ready.rawValue.utf8), ready.encode()], blocking: false)
        let answers = try Self.messages(allowed, within: 3000)
        #expect(
            answers.contains { $0.first == Array(WorkerLink.Command.reset.rawValue.utf8) },
            "an allowlisted worker got \(Self.commands(answers))"
        )
        #expect(
            Self.eventually({ daemon.log }, contains: ["Worker authenticated", "worker=remote-1"]),
            "\(daemon.log)"
        )

        // `dealstream worker` with an unknown key says so in its own log; with the
        // allowlisted key file it starts a session.
        func worker(keyFile: String?, log: String) throws -> Process {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: DaemonProcess.binary)
            process.arguments =
                ["worker", "--family", "win_rate", "--connect", endpoint]
                + (keyFile.map {
                    ["--curve-server-key", keys.workerLink.publicKey.z85, "--curve-secret-key-file", keys.path($0)]
                } ?? [])
            _ = FileManager.default.createFile(atPath: keys.path(log), contents: nil)
            process.standardError = FileHandle(forWritingAtPath: keys.path(log))
            process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
            try process.run()
            return process
        }
        func text(_ log: String) -> String { (try? String(contentsOfFile: keys.path(log), encoding: .utf8)) ?? "" }
        let refused = try worker(keyFile: "stranger.key", log: "stranger.log")
        let plain = try worker(keyFile: nil, log: "plain.log")
        #expect(
            Self.eventually(
                { text("stranger.log") },
                contains: [
                    "Worker link refused by the daemon", "worker.key=\(keys.stranger.publicKey.z85)",
                    "not in the daemon's workers.curve.workers",
                ]
            ),
            "\(text("stranger.log"))"
        )
        #expect(
            Self.eventually({ text("plain.log") }, contains: ["Worker link refused by the daemon", "requires CURVE"]),
            "\(text("plain.log"))"
        )
        #expect(!text("stranger.log").contains("Session started"))
        #expect(!text("plain.log").contains("Session started"))
        // SIGTERM still stops a refused worker (its session does not hang in a send).
        for process in [refused, plain] {
            process.terminate()
            process.waitUntilExit()
        }
        let admitted = try worker(keyFile: "remote-1.key", log: "remote-1.log")
        #expect(Self.eventually({ text("remote-1.log") }, contains: ["Session started"]), "\(text("remote-1.log"))")
        admitted.terminate()
        admitted.waitUntilExit()
        #expect(daemon.terminate() == 0)
    }

    @Test func aWorkerEndpointOtherHostsCanReachNeedsWorkersCurve() throws {
        let directory = temporaryDirectory("it-wauth-e")
        try? FileManager.default.removeItem(at: directory)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = directory.appendingPathComponent("model.json")
        try Data(harnessModelJSON.utf8).write(to: model)
        let common = [
            "daemon", "--model", model.path, "--data-dir", directory.appendingPathComponent("data").path,
            "--ingest", "ipc://\(directory.path)/ingest.sock", "--updates", "ipc://\(directory.path)/updates.sock",
            "--snapshot", "ipc://\(directory.path)/snapshot.sock", "--http", "127.0.0.1:0",
        ]
        for exposed in ["tcp://0.0.0.0:7999", "tcp://*:7999"] {
            let run = try HardeningTests.run(common + ["--workers", exposed], timeout: 20)
            #expect(run.status != 0 && !run.killed, "a daemon ran with \(exposed) and no workers.curve")
            #expect(run.stderr.contains("config: workers.curve: required"), "\(run.stderr)")
            #expect(run.stderr.contains(exposed))
        }
        // The same endpoint from the environment is refused the same way.
        let fromEnvironment = try DaemonProcess(
            directory: directory.appendingPathComponent("env"),
            shards: 1,
            modelJSON: harnessModelJSON,
            environment: ["DEALSTREAM_ENDPOINTS_WORKERS": "tcp://0.0.0.0:7999"]
        )
        #expect(HardeningTests.waitForExit(fromEnvironment, timeout: 20))
        #expect(fromEnvironment.process.terminationStatus != 0)
        #expect(fromEnvironment.log.contains("config: workers.curve: required"), "\(fromEnvironment.log)")
    }

    @Test func badWorkersCurveSettingsStopTheDaemonNamingTheField() throws {
        let keys = try Keys("it-wauth-f")
        defer { keys.cleanUp() }
        let model = keys.directory.appendingPathComponent("model.json")
        try Data(harnessModelJSON.utf8).write(to: model)
        let worker = keys.worker.publicKey.z85
        let cases: [(curve: String, expected: String)] = [
            (#"{"workers": {"a": "\#(worker)"}}"#, "config: workers.curve.secret_key_file: missing"),
            (
                #"{"secret_key_file": "nope.key", "workers": {"a": "\#(worker)"}}"#,
                "config: workers.curve.secret_key_file: cannot read"
            ),
            (#"{"secret_key_file": "workers.key", "workers": {}}"#, "config: workers.curve.workers: missing or empty"),
            (#"{"secret_key_file": "workers.key"}"#, "config: workers.curve.workers: missing or empty"),
            (
                #"{"secret_key_file": "workers.key", "workers": {"eu-1": "short"}}"#,
                "config: workers.curve.workers.eu-1: not a 40-character Z85 key"
            ),
            (
                #"{"secret_key_file": "workers.key", "workers": {"spawned": "\#(worker)"}}"#,
                "config: workers.curve.workers.spawned: \"spawned\" is reserved"
            ),
            (
                #"{"secret_key_file": "workers.key", "workers": {"a": "\#(worker)", "b": "\#(worker)"}}"#,
                "config: workers.curve.workers.b: same public key as workers.curve.workers.a"
            ),
            (
                #"{"secret_key_file": "workers.key", "workers": {"a": "\#(worker)"}, "allow": true}"#,
                "config: workers.curve.allow: unknown key"
            ),
            (#""on""#, "config: workers.curve: not an object"),
        ]
        for (n, c) in cases.enumerated() {
            let config = keys.directory.appendingPathComponent("config-\(n).json")
            try Data(#"{"workers": {"curve": \#(c.curve)}}"#.utf8).write(to: config)
            let run = try HardeningTests.run(
                [
                    "daemon", "--config", config.path, "--model", model.path, "--data-dir", keys.path("data"),
                    "--http", "127.0.0.1:0",
                ],
                timeout: 20
            )
            #expect(run.status != 0 && !run.killed, "\(c.curve) was accepted")
            #expect(run.stderr.contains(c.expected), "\(c.curve): \(run.stderr)")
        }
    }
}
