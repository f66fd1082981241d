import DealModel
import DealstreamTestSupport
import EventEncoding
import Foundation
import FramedLog
import Logging
import Testing

@testable import Daemon

/// Checkpoints and log generations on real files: a restart loads the checkpoint and
/// replays only what came after it, and every crash point in between loses nothing.
struct DurableStoreTests {
    private func directory() throws -> String {
        let path = temporaryDirectory("durable-store").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Every other event arrives as protobuf, so the log holds both record kinds.
    private func feed(_ store: DurableStore, _ events: ArraySlice<String>) throws {
        let decoder = EventDecoder(model: harnessModel)
        for (n, text) in zip(events.indices, events) {
            let encoding: EventEncoding = n % 2 == 0 ? .json : .protobuf
            let frame =
                encoding == .json
                ? Array(text.utf8) : try ProtobufEvent.encode(json: try JSONParser.parse(Array(text.utf8)))
            guard case .success(let event) = encoding.decode(frame, with: decoder) else { continue }
            if store.apply(event).changedState { store.append(event) }
        }
        try store.commit()
    }

    private func facts(_ store: DurableStore) -> [String] {
        store.store.allFacts().map { $0.normalized(store.store.strings) }.sorted()
    }

    @Test func restartFromCheckpointReplaysOnlyTheTail() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let logger = Logger(label: "test")
        let events = Scenario.events(seed: 5, deals: 300)
        let expectedFacts: [String]
        let position: UInt64
        do {
            let store = try DurableStore(directory: dir, model: harnessModel, logger: logger)
            try feed(store, events[..<600])
            try store.checkpoint(wait: true)
            try feed(store, events[600...])
            expectedFacts = facts(store)
            position = store.position
        }
        let reopened = try DurableStore(directory: dir, model: harnessModel, logger: logger)
        #expect(reopened.position == position)
        #expect(reopened.lastReplay.fromCheckpoint)
        #expect(reopened.lastReplay.records == position - reopened.checkpointPosition)
        #expect(reopened.lastReplay.records < position)
        #expect(facts(reopened) == expectedFacts, "facts differ after restart")
        // Only the current generation's log is left.
        let logs = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("events-") }
        #expect(logs.count == 1)
    }

    @Test func aCheckpointThatNeverLandedLosesNothing() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let logger = Logger(label: "test")
        let events = Scenario.events(seed: 6, deals: 200)
        let expectedFacts: [String]
        let position: UInt64
        do {
            let store = try DurableStore(directory: dir, model: harnessModel, logger: logger)
            try feed(store, events[..<300])
            try store.checkpoint(wait: true)
            try feed(store, events[300..<500])
            // The process dies after starting generation 2, before its checkpoint lands.
            try store.checkpoint(wait: true, dropWrite: true)
            try feed(store, events[500...])
            expectedFacts = facts(store)
            position = store.position
        }
        let reopened = try DurableStore(directory: dir, model: harnessModel, logger: logger)
        #expect(reopened.position == position)
        #expect(facts(reopened) == expectedFacts, "facts differ after restart")
        #expect(reopened.lastReplay.fromCheckpoint)
        // The next checkpoint lands and removes every older generation.
        try reopened.checkpoint(wait: true)
        let logs = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("events-") }
        #expect(logs.count == 1)
        let again = try DurableStore(directory: dir, model: harnessModel, logger: logger)
        #expect(again.lastReplay.records == 0)
        #expect(facts(again) == expectedFacts, "facts differ after the second restart")
    }

    @Test func corruptCheckpointIsAnErrorNotSilentLoss() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let logger = Logger(label: "test")
        do {
            let store = try DurableStore(directory: dir, model: harnessModel, logger: logger)
            try feed(store, Scenario.events(seed: 8, deals: 50)[...])
            try store.checkpoint(wait: true)
        }
        var data = try Data(contentsOf: URL(fileURLWithPath: DurableStore.checkpointPath(dir)))
        data[data.count / 2] ^= 0x55
        try data.write(to: URL(fileURLWithPath: DurableStore.checkpointPath(dir)))
        #expect(throws: RecordLog.Failure.self) {
            try DurableStore(directory: dir, model: harnessModel, logger: logger)
        }
    }

    /// A data directory written before the log held `EventRecord`s (JSON frames as
    /// received, protobuf frames behind a zero byte, as main wrote them) still starts, and
    /// the log then goes on with records: one log holding all three kinds replays to the
    /// same facts as resolving the events directly.
    @Test func aLogOfFramesFromBeforeEventRecordsStillReplays() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let logger = Logger(label: "test")
        let decoder = EventDecoder(model: harnessModel)
        let events = Scenario.events(seed: 9, deals: 200)
        var reference = RecordStore(model: harnessModel)
        var logged: UInt64 = 0
        do {
            let log = try RecordLog(path: DurableStore.logPath(dir, 0)) { _ in }
            for (n, text) in events[..<500].enumerated() {
                let json = Array(text.utf8)
                let frame = n % 2 == 0 ? json : [0] + (try ProtobufEvent.encode(json: try JSONParser.parse(json)))
                guard case .success(let event) = decoder.decode(json: json) else { continue }
                if reference.apply(event).changedState {
                    log.append(frame)
                    logged += 1
                }
            }
            try log.commit()
        }
        let referenceFacts = { (store: RecordStore) in store.allFacts().map { $0.normalized(store.strings) }.sorted() }
        do {
            let store = try DurableStore(directory: dir, model: harnessModel, logger: logger)
            #expect(store.position == logged)
            #expect(facts(store) == referenceFacts(reference), "facts differ after replaying main's frames")
            try feed(store, events[500...])
        }
        for text in events[500...] {
            if case .success(let event) = decoder.decode(json: Array(text.utf8)) { _ = reference.apply(event) }
        }
        let reopened = try DurableStore(directory: dir, model: harnessModel, logger: logger)
        #expect(!reopened.lastReplay.fromCheckpoint)
        #expect(reopened.position > logged)
        #expect(facts(reopened) == referenceFacts(reference), "facts differ after replaying frames and records")
    }
}
