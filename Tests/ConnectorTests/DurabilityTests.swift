import CRMWebhooks
import DealstreamTestSupport
import Foundation
import Testing
import WebhookReceiver

/// The spool and the deal states on real files: what was synced is there after a reopen.
struct DurabilityTests {
    private func directory() -> URL { temporaryDirectory("durable") }

    @Test func spoolKeepsWhatTheDaemonHasNotAcknowledged() throws {
        let dir = directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let events = (1...5).map { Array("{\"n\":\($0)}".utf8) }
        do {
            let spool = try Spool(directory: dir)
            try spool.append(Array(events[0..<3]))
            try spool.append(Array(events[3...]))
            #expect(spool.next(limit: 2, timeout: 0) == Array(events[0..<2]))
            try spool.acknowledge(2)
        }
        do {
            let spool = try Spool(directory: dir)
            #expect(spool.pendingCount == 3)
            #expect(spool.next(limit: 10, timeout: 0) == Array(events[2...]))
            try spool.acknowledge(3)
            #expect(spool.pendingCount == 0)
            try spool.append([events[0]])
        }
        let spool = try Spool(directory: dir)
        #expect(spool.next(limit: 10, timeout: 0) == [events[0]])
    }

    /// A spool that holds `capacity` events refuses more (the receiver answers 503 and the
    /// vendor retries) until the daemon has acknowledged some.
    @Test func aFullSpoolRefusesUntilTheDaemonCatchesUp() throws {
        let dir = directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let spool = try Spool(directory: dir, capacity: 3)
        try spool.ensureRoom(for: 3)
        #expect(throws: Spool.Full.self) { try spool.ensureRoom(for: 4) }
        try spool.append([Array("{}".utf8), Array("{}".utf8)])
        #expect(throws: Spool.Full.self) { try spool.ensureRoom(for: 2) }
        try spool.acknowledge(2)
        try spool.ensureRoom(for: 3)
    }

    @Test func dealStatesSurviveAReopenAndCompaction() throws {
        let dir = directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var a = DealState()
        a.fields[.stage] = .init(value: "qualifiedtobuy", version: 5)
        a.fields[.amount] = .init(value: nil, version: 3)
        a.lastOpenStage = .init(value: "qualifiedtobuy", version: 5)
        a.aliveVersion = 5
        a.sentBase = 5
        a.sentLate = 2
        var b = DealState()
        b.deletedVersion = 9
        b.fields[.owner] = .init(value: "x\"y", version: 1)
        do {
            let store = try DealStateStore(directory: dir)
            try store.save(["1": a])
            try store.save(["2": b])
            a.sentLate = 3
            try store.save(["1": a])
        }
        _ = try DealStateStore(directory: dir)  // compacts
        let store = try DealStateStore(directory: dir)
        #expect(store.states == ["1": a, "2": b])
    }
}
