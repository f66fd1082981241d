import Dashboard
import DealModel
import Foundation
import Synchronization
import Testing

/// One server-sent event as a browser's EventSource would see it.
struct SSEEvent: Equatable {
    var name: String
    var data: String
}

func parseSSE(_ bytes: [UInt8]) -> [SSEEvent] {
    String(decoding: bytes, as: UTF8.self).components(separatedBy: "\n\n").compactMap { block in
        var name = ""
        var data = ""
        for line in block.split(separator: "\n") {
            if line.hasPrefix("event: ") { name = String(line.dropFirst(7)) }
            if line.hasPrefix("data: ") { data = String(line.dropFirst(6)) }
        }
        return name.isEmpty ? nil : SSEEvent(name: name, data: data)
    }
}

/// The series in a drained `series` event: topic → payload (nil: removed).
func seriesIn(_ events: [SSEEvent]) throws -> [String: JSONValue?] {
    var out: [String: JSONValue?] = [:]
    for event in events where event.name == "series" {
        guard case .array(let items) = try JSONParser.parse(Array(event.data.utf8)) else { continue }
        for item in items {
            let payload = item["p"]
            out[item["t"]!.stringValue!] = payload == .null ? .some(nil) : payload
        }
    }
    return out
}

func payload(_ value: Int, key: String = "EMEA") -> [UInt8] {
    Array(
        ("{\"metric\":\"new_opportunities\",\"dimension\":\"team\",\"key\":\"\(key)\",\"period\":\"all\","
            + "\"value\":\(value)}").utf8
    )
}

/// Drains a client completely, as its writer would.
func drainAll(_ hub: DashboardHub, _ id: UInt64) -> [SSEEvent] {
    var events: [SSEEvent] = []
    while let drained = hub.drain(id), !drained.bytes.isEmpty {
        events += parseSSE(drained.bytes)
        if drained.complete { break }
    }
    return events
}

final class CloseCounter: Sendable {
    let count = Atomic<Int>(0)
    func close() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}

struct DashboardHubTests {
    @Test func aNewClientGetsTheFullStateThenOnlyChanges() throws {
        let hub = DashboardHub()
        hub.replace(series: ["a": payload(1, key: "a"), "b": payload(2, key: "b")], seq: 2, logSeq: 10)
        let client = hub.register(close: {})
        let first = drainAll(hub, client.id)
        #expect(first.first?.name == "reset")
        #expect(try seriesIn(first).keys.sorted() == ["a", "b"])
        let position = try JSONParser.parse(Array(first.last!.data.utf8))
        #expect(first.last?.name == "position" && position["log_seq"] == .int(10))

        hub.commit(changes: ["b": payload(3, key: "b")], seq: 3, logSeq: 11)
        let next = drainAll(hub, client.id)
        #expect(!next.contains { $0.name == "reset" })
        let changed = try seriesIn(next)
        #expect(changed.keys.sorted() == ["b"])
        #expect(changed["b"]??["value"] == .int(3))
    }

    @Test func changesCoalescePerSeriesIntoTheLatestRound() throws {
        let hub = DashboardHub()
        hub.replace(series: [:], seq: 0, logSeq: 0)
        let client = hub.register(close: {})
        _ = drainAll(hub, client.id)
        // Five rounds while the browser was busy: one series changes in each, another once, a third is removed.
        hub.commit(changes: ["gone": payload(9)], seq: 1, logSeq: 1)
        for round in 1...5 {
            hub.commit(changes: ["x": payload(round)], seq: UInt64(1 + round), logSeq: UInt64(1 + round))
        }
        let last: [String: [UInt8]?] = ["y": payload(7), "gone": .none]
        hub.commit(changes: last, seq: 8, logSeq: 8)
        let events = drainAll(hub, client.id)
        let series = try seriesIn(events)
        #expect(series.count == 3)
        #expect(series["x"]??["value"] == .int(5))
        #expect(series["y"]??["value"] == .int(7))
        #expect(series["gone"] == .some(nil))
        let position = try JSONParser.parse(Array(events.last!.data.utf8))
        #expect(position["log_seq"] == .int(8))
    }

    @Test func theBacklogNeverExceedsTheSeriesCount() throws {
        let hub = DashboardHub(seriesPerMessage: 100)
        hub.replace(series: [:], seq: 0, logSeq: 0)
        let client = hub.register(close: {})
        _ = drainAll(hub, client.id)
        // 50 rounds over the same 1,000 series: the backlog is those 1,000, sent in messages of 100.
        for round in 1...50 {
            var changes: [String: [UInt8]?] = [:]
            for i in 0..<1000 { changes["s\(i)"] = payload(round, key: "s\(i)") }
            hub.commit(changes: changes, seq: UInt64(round * 1000), logSeq: UInt64(round))
        }
        var messages = 0
        var seen: [String: JSONValue?] = [:]
        while let drained = hub.drain(client.id), !drained.bytes.isEmpty {
            let events = parseSSE(drained.bytes)
            messages += events.filter { $0.name == "series" }.count
            seen.merge(try seriesIn(events)) { _, new in new }
            if drained.complete { break }
        }
        #expect(messages == 10)
        #expect(seen.count == 1000)
        #expect(seen.values.allSatisfy { $0?["value"] == .int(50) })
    }

    @Test func aGapRepairSnapshotSendsOnlyWhatDiffers() throws {
        let hub = DashboardHub()
        hub.replace(
            series: ["a": payload(1, key: "a"), "b": payload(2, key: "b"), "gone": payload(3)],
            seq: 3,
            logSeq: 3
        )
        let client = hub.register(close: {})
        _ = drainAll(hub, client.id)
        hub.replace(
            series: ["a": payload(1, key: "a"), "b": payload(5, key: "b"), "new": payload(6)],
            seq: 9,
            logSeq: 9
        )
        let events = drainAll(hub, client.id)
        #expect(!events.contains { $0.name == "reset" })
        let series = try seriesIn(events)
        #expect(series.keys.sorted() == ["b", "gone", "new"])
        #expect(series["b"]??["value"] == .int(5) && series["gone"] == .some(nil))
        // A browser that connects now gets the full state.
        let late = hub.register(close: {})
        let first = drainAll(hub, late.id)
        #expect(first.first?.name == "reset")
        #expect(try seriesIn(first).keys.sorted() == ["a", "b", "new"])
    }

    @Test func aClientStuckInAWriteIsDroppedAndTheOthersAreNot() async throws {
        let hub = DashboardHub(slowClientSeconds: 0.05)
        hub.replace(series: ["a": payload(1)], seq: 1, logSeq: 1)
        let slowClosed = CloseCounter()
        let fastClosed = CloseCounter()
        let slow = hub.register(close: { slowClosed.close() })
        let fast = hub.register(close: { fastClosed.close() })
        _ = drainAll(hub, slow.id)
        _ = drainAll(hub, fast.id)
        hub.writing(slow.id, true)  // never completes
        try await Task.sleep(for: .milliseconds(120))
        #expect(hub.sweep() == [slow.id])
        #expect(slowClosed.value == 1 && fastClosed.value == 0)
        #expect(hub.drain(slow.id) == nil)
        #expect(hub.statistics.clientsDropped == 1 && hub.statistics.clients == 1)
        // The slow client's stream is finished, so its writer loop ends.
        var wakes = 0
        for await _ in slow.wakes { wakes += 1 }
        #expect(wakes <= 1)
        hub.commit(changes: ["a": payload(2)], seq: 2, logSeq: 2)
        #expect(try seriesIn(drainAll(hub, fast.id))["a"]??["value"] == .int(2))
    }

    @Test func aLateWriteOnAConnectionThatStillTakesDataIsNotDropped() async throws {
        let hub = DashboardHub(slowClientSeconds: 0.05)
        let client = hub.register(close: {}, congested: { false })
        hub.writing(client.id, true)
        try await Task.sleep(for: .milliseconds(120))
        #expect(hub.sweep().isEmpty)
        #expect(hub.statistics.clients == 1)
    }

    @Test func aHeartbeatCarriesThePositionWhenNothingChanged() async throws {
        let hub = DashboardHub(heartbeatSeconds: 0.05)
        hub.replace(series: [:], seq: 0, logSeq: 4)
        let client = hub.register(close: {})
        _ = drainAll(hub, client.id)
        #expect(hub.drain(client.id)?.bytes.isEmpty == true)
        try await Task.sleep(for: .milliseconds(80))
        let events = drainAll(hub, client.id)
        #expect(events.map(\.name) == ["position"])
    }
}

struct WebConfigurationTests {
    @Test func basicAuthAdmitsOnlyTheConfiguredCredentials() throws {
        let credentials = try BasicAuthCredentials(userAndPassword: "manager:s3cret")
        #expect(credentials.admits("Basic " + Data("manager:s3cret".utf8).base64EncodedString()))
        #expect(credentials.admits("basic " + Data("manager:s3cret".utf8).base64EncodedString()))
        #expect(!credentials.admits("Basic " + Data("manager:s3creT".utf8).base64EncodedString()))
        #expect(!credentials.admits("Basic " + Data("manager:s3cret2".utf8).base64EncodedString()))
        #expect(!credentials.admits("Bearer abc"))
        #expect(!credentials.admits(nil))
        #expect(throws: BasicAuthCredentials.Failure.self) { try BasicAuthCredentials(userAndPassword: "no-colon") }
        #expect(throws: BasicAuthCredentials.Failure.self) { try BasicAuthCredentials(userAndPassword: "user:") }
    }

    @Test func theConfigFileSharedWithTheDaemonIsRead() throws {
        let folder = FileManager.default.temporaryDirectory
            .appendingPathComponent("ds-web-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("dealstream.json")
        try Data(
            """
            {"model": "model.json", "data_dir": "/var/lib/dealstream",
             "endpoints": {"ingest": "tcp://127.0.0.1:7701", "updates": "tcp://10.0.0.5:7702",
                           "snapshot": "tcp://10.0.0.5:7703"},
             "workers": {"shards": 3},
             "web": {"listen": "0.0.0.0:8443", "basic_auth": "web-auth"}}
            """.utf8
        ).write(to: file)
        let c = try WebConfiguration.load(file: file.path)
        #expect(c.listen == "0.0.0.0:8443")
        #expect(c.listenAddress?.host == "0.0.0.0" && c.listenAddress?.port == 8443)
        #expect(c.updatesEndpoint == "tcp://10.0.0.5:7702" && c.snapshotEndpoint == "tcp://10.0.0.5:7703")
        #expect(c.basicAuthFile == folder.appendingPathComponent("web-auth").path)
        #expect(c.modelPath == folder.appendingPathComponent("model.json").path)
        try Data(#"{"web": {"listen": "127.0.0.1:1", "basic_auth_file": "x"}}"#.utf8).write(to: file)
        #expect {
            try WebConfiguration.load(file: file.path)
        } throws: { error in
            (error as? WebConfiguration.Failure)?.key == "web.basic_auth_file"
        }
        #expect(WebConfiguration.isLoopback("127.0.0.1") && WebConfiguration.isLoopback("::1"))
        #expect(!WebConfiguration.isLoopback("0.0.0.0") && !WebConfiguration.isLoopback("192.0.2.1"))
    }
}
