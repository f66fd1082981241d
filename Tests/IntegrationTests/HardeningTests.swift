import DealModel
import DealstreamTestSupport
import Foundation
import Testing
import Wire
import ZeroMQ

/// The daemon against an unlucky operator and a hostile client, as real processes on real
/// files (issue 14): one data directory one daemon, a corrupt log is never silently cut,
/// duplicate JSON keys and oversized snapshot requests are answered, not applied or dropped.
@Suite(.serialized)
struct HardeningTests {
    /// Runs `dealstream` with `arguments` to its exit (SIGKILL after `timeout` s): status and stderr.
    static func run(
        _ arguments: [String],
        timeout: Double = 30
    ) throws
        -> (status: Int32, killed: Bool, stdout: String, stderr: String)
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: DaemonProcess.binary)
        process.arguments = arguments
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ds-run-\(UUID().uuidString.prefix(8))"
        )
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let out = directory.appendingPathComponent("out")
        let err = directory.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        let killed = process.isRunning
        if killed { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return (
            process.terminationStatus, killed, (try? String(contentsOf: out, encoding: .utf8)) ?? "",
            (try? String(contentsOf: err, encoding: .utf8)) ?? ""
        )
    }

    /// Waits until `daemon` exits (it is expected to refuse to start); false after `timeout` s.
    static func waitForExit(_ daemon: DaemonProcess, timeout: Double = 30) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while daemon.process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        return !daemon.process.isRunning
    }

    /// Start offsets of the records of a framed log (`length · crc · payload`).
    static func recordOffsets(_ bytes: [UInt8]) -> [Int] {
        var offsets: [Int] = []
        var o = 0
        while o + 8 <= bytes.count {
            let length = Int(bytes[o]) | Int(bytes[o + 1]) << 8 | Int(bytes[o + 2]) << 16 | Int(bytes[o + 3]) << 24
            guard length > 0, o + 8 + length <= bytes.count else { break }
            offsets.append(o)
            o += 8 + length
        }
        return offsets
    }

    static func events(_ n: Int, from: Int = 0) -> [String] {
        (from..<(from + n)).map { deal("deal-\($0)", v: 1, amount: Double(100 + $0), created: "2026-11-02T09:00:00Z") }
    }

    @Test func aSecondDaemonOnTheSameDataDirectoryRefusesToStartNamingTheFirst() throws {
        let first = try DaemonProcess(shards: 1, modelJSON: harnessModelJSON)
        defer { if first.process.isRunning { _ = first.terminate() } }
        #expect(try first.send(HardeningTests.events(3)).applied == 3)
        let elsewhere = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ds-second-\(UUID().uuidString.prefix(8))"
        )
        try FileManager.default.createDirectory(at: elsewhere, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: elsewhere) }
        // Other endpoints, same --data-dir: before the lock both ran and lost each other's events.
        let second = try HardeningTests.run(
            [
                "daemon", "--model", first.directory.appendingPathComponent("model.json").path,
                "--data-dir", first.directory.appendingPathComponent("data").path, "--shards", "1",
                "--ingest", "ipc://\(elsewhere.path)/ingest.sock", "--updates", "ipc://\(elsewhere.path)/updates.sock",
                "--snapshot", "ipc://\(elsewhere.path)/snapshot.sock", "--workers",
                "ipc://\(elsewhere.path)/workers.sock",
            ],
            timeout: 20
        )
        #expect(
            second.status != 0 && !second.killed,
            "a second daemon ran on a locked data directory: \(second.stderr.suffix(2000))"
        )
        #expect(second.stderr.contains("in use by process \(first.process.processIdentifier)"), "\(second.stderr)")
        // The first is untouched and still acknowledges.
        #expect(try first.send(HardeningTests.events(2, from: 3)).logSeq == 5)
        // kill -9: the kernel releases the lock, so a restart is never blocked by a stale file.
        first.kill9()
        let again = try DaemonProcess(directory: first.directory, shards: 1, modelJSON: harnessModelJSON)
        defer { _ = again.terminate() }
        #expect(try again.send(HardeningTests.events(1, from: 5)).logSeq == 6, "\(again.log)")
    }

    @Test func aCorruptRecordMidLogStopsTheDaemonUntouchedAndRepairCutsItKeepingACopy() throws {
        let daemon = try DaemonProcess(shards: 1, modelJSON: harnessModelJSON)
        defer { if daemon.process.isRunning { daemon.kill9() } }
        let logSeq = try daemon.sendAll(HardeningTests.events(1000), batch: 100)
        #expect(logSeq == 1000)
        daemon.kill9()
        let data = daemon.directory.appendingPathComponent("data")
        let names = try FileManager.default.contentsOfDirectory(atPath: data.path).filter {
            $0.hasPrefix("events-") && $0.hasSuffix(".log")
        }
        let name = try #require(names.sorted().last)
        let logURL = data.appendingPathComponent(name)
        var bytes = Array(try Data(contentsOf: logURL))
        let offsets = HardeningTests.recordOffsets(bytes)
        #expect(offsets.count == 1000)
        // One flipped byte inside the record at 50 % of the file.
        let bad = try #require(offsets.last { $0 <= bytes.count / 2 })
        let kept = try #require(offsets.firstIndex(of: bad))
        bytes[bad + 8 + 3] ^= 0x01
        try Data(bytes).write(to: logURL)

        let refused = try DaemonProcess(directory: daemon.directory, shards: 1, modelJSON: harnessModelJSON)
        defer { if refused.process.isRunning { refused.kill9() } }
        try #require(
            HardeningTests.waitForExit(refused),
            "the daemon started on a corrupt log: \(refused.log.suffix(3000))"
        )
        #expect(refused.process.terminationStatus != 0)
        #expect(refused.log.contains("\(name): corrupt record at byte \(bad)"), "\(refused.log)")
        #expect(Array(try Data(contentsOf: logURL)) == bytes, "the refused start changed the log")

        let repair = try HardeningTests.run(["repair", "--data-dir", data.path])
        #expect(repair.status == 0, "\(repair.stderr)")
        let copy = logURL.path + ".cut-\(bad)"
        #expect(repair.stdout.contains("cut at byte \(bad)") && repair.stdout.contains(copy), "\(repair.stdout)")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: copy))) == Array(bytes[bad...]))
        #expect(Array(try Data(contentsOf: logURL)) == Array(bytes[..<bad]))

        // Back at the position before the bad record: its event applies again as the next one.
        let again = try DaemonProcess(directory: daemon.directory, shards: 1, modelJSON: harnessModelJSON)
        defer { _ = again.terminate() }
        // The log keeps binary event records, not the frames: the record after the bad
        // one (the first intact one cut away) is the (kept + 1)th event sent.
        let firstCut = HardeningTests.events(1000)[kept + 1]
        let ack = try again.send([firstCut])
        #expect(ack.applied == 1 && ack.logSeq == UInt64(kept) + 1, "\(ack) \(again.log)")
    }

    @Test func anEventWithADuplicateKeyIsRejectedNamingTheKey() throws {
        let daemon = try DaemonProcess(shards: 1, modelJSON: harnessModelJSON)
        defer { _ = daemon.terminate() }
        let event = deal("dup-1", amount: 100, created: "2026-11-02T09:00:00Z")
        let duplicated = event.replacingOccurrences(
            of: #""amount":100.0,"#,
            with: #""amount":100.0,"amount":5000000.0,"#
        )
        #expect(duplicated != event)
        let ack = try daemon.send([duplicated, deal("dup-2", amount: 7, created: "2026-11-02T09:00:00Z")])
        #expect(ack.applied == 1)
        #expect(ack.rejected.count == 1 && ack.rejected.first?.index == 0)
        #expect(ack.rejected.first?.error.contains(#"duplicate key "amount""#) == true, "\(ack.rejected)")
    }

    @Test func aSnapshotRequestOver64KiBGetsERRNamingTheLimit() throws {
        let daemon = try DaemonProcess(shards: 1, modelJSON: harnessModelJSON)
        defer { _ = daemon.terminate() }
        let logSeq = try daemon.send(HardeningTests.events(2)).logSeq
        _ = try daemon.waitUntilPublished(logSeq)
        try daemon.snapshots.send([IngestProtocol.snapshot, [UInt8](repeating: UInt8(ascii: "a"), count: 1 << 20)])
        var poller = ZMQPoller()
        poller.add(daemon.snapshots)
        #expect(try poller.poll(timeoutMilliseconds: 5000)[0], "no answer to a 1 MiB snapshot prefix")
        let reply = try #require(try daemon.snapshots.receive(blocking: false))
        #expect(reply.first == IngestProtocol.err)
        let reason = String(decoding: reply.last ?? [], as: UTF8.self)
        #expect(reason.contains("65536"), "\(reason)")
        // The same client is still served.
        #expect(try daemon.snapshot().logSeq == logSeq)
    }
}
