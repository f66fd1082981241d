import DealstreamTestSupport
import Testing

@testable import DealModel

struct RecordStoreTests {
    private func apply(_ store: inout RecordStore, _ text: String) throws -> Resolution {
        store.apply(try decode(text).get())
    }

    private func furthest(_ r: Resolution) -> Int16? {
        guard case .deal(_, let new?)? = r.change else { return nil }
        return new.furthest
    }

    /// The acceptance kit's ACK-count plan, request by request.
    @Test func classifiesAppliedDuplicateAndStale() throws {
        var store = RecordStore(model: testModel)
        #expect(try apply(&store, dealJSON(id: "A", version: 10)).outcome == .applied)
        #expect(try apply(&store, dealJSON(id: "B", version: 10)).outcome == .applied)
        #expect(try apply(&store, dealJSON(id: "A", version: 10)).outcome == .duplicate)
        #expect(try apply(&store, dealJSON(id: "A", version: 5)).outcome == .stale)
        #expect(try apply(&store, dealJSON(id: "A", version: 10, amount: "7")).outcome == .stale)
        #expect(try apply(&store, dealJSON(id: "B", version: 11)).outcome == .applied)
        #expect(try apply(&store, dealJSON(id: "B", version: 11)).outcome == .duplicate)
        // an identical resend of an older version is stale, not a duplicate
        #expect(try apply(&store, dealJSON(id: "B", version: 10)).outcome == .stale)
    }

    @Test func deletionsCutHistoryAndWinTies() throws {
        var store = RecordStore(model: testModel)
        let tombstone = try apply(&store, deleteJSON(id: "C", version: 20))
        #expect(tombstone.outcome == .applied && tombstone.changedState && tombstone.change == nil)
        #expect(try apply(&store, dealJSON(id: "C", version: 15)).outcome == .stale)
        let recreated = try apply(&store, dealJSON(id: "C", version: 21))
        #expect(recreated.outcome == .applied)
        #expect(furthest(recreated) == 0)
        // a deal and its deletion with the same version: the deletion wins
        _ = try apply(&store, dealJSON(id: "D", version: 5))
        let tie = try apply(&store, deleteJSON(id: "D", version: 5))
        #expect(tie.outcome == .applied)
        guard case .deal(let old?, nil)? = tie.change else {
            Issue.record("the deletion must retract the deal")
            return
        }
        #expect(old.furthest == 0)
    }

    @Test func staleEventsRaiseTheFurthestStageUntilADeletionCutsThem() throws {
        var store = RecordStore(model: testModel)
        _ = try apply(&store, dealJSON(id: "E", version: 10, stage: "lead"))
        let late = try apply(&store, dealJSON(id: "E", version: 8, stage: "proposal"))
        #expect(late.outcome == .stale)
        #expect(late.changedState)
        #expect(furthest(late) == 2)
        // a late deletion below the current version cuts the stale history entry
        let cut = try apply(&store, deleteJSON(id: "E", version: 9))
        #expect(cut.outcome == .stale)
        #expect(furthest(cut) == 0)
        // won counts as the last stage; another pipeline's history does not count
        let won = try apply(
            &store,
            dealJSON(id: "E", version: 11, stage: "lead", status: "won", closed: "2026-07-01T00:00:00Z")
        )
        #expect(furthest(won) == 3)
        let moved = try apply(&store, dealJSON(id: "E", version: 12, pipeline: "renewals", stage: "review"))
        #expect(furthest(moved) == 0)
    }

    @Test func sameVersionDifferentPayloadKeepsTheFirstButCountsForFurthest() throws {
        var store = RecordStore(model: testModel)
        _ = try apply(&store, dealJSON(id: "F", version: 3, stage: "lead", amount: "1"))
        let second = try apply(&store, dealJSON(id: "F", version: 3, stage: "negotiation", amount: "2"))
        #expect(second.outcome == .stale)
        guard case .deal(_, let new?)? = second.change else {
            Issue.record("furthest must move")
            return
        }
        #expect(new.amount == 1)
        #expect(new.furthest == 3)
    }

    @Test func replayingTheChangingEventsRebuildsTheSameFacts() throws {
        var store = RecordStore(model: testModel)
        var logged: [String] = []
        let stream = [
            dealJSON(id: "A", version: 2), dealJSON(id: "A", version: 1, stage: "proposal"),
            deleteJSON(id: "A", version: 1),
            dealJSON(id: "A", version: 2), dealJSON(id: "B", version: 1), deleteJSON(id: "B", version: 3),
            dealJSON(id: "C", version: 4, status: "lost", closed: "2026-06-05T00:00:00Z"),
        ]
        for text in stream where try apply(&store, text).changedState { logged.append(text) }
        var replayed = RecordStore(model: testModel)
        for text in logged { _ = try apply(&replayed, text) }
        let a = store.allFacts().map { "\($0)" }.sorted()
        let b = replayed.allFacts().map { "\($0)" }.sorted()
        #expect(a == b)
        #expect(a.count == 2)
    }
}

struct RecordStoreCheckpointTests {
    @Test func encodingRoundTripsEveryRecordAndKeepsResolving() throws {
        var store = RecordStore(model: testModel)
        let stream = [
            dealJSON(id: "A", version: 2, status: "won", closed: "2026-07-01T00:00:00Z"),
            dealJSON(id: "A", version: 1, stage: "proposal"), deleteJSON(id: "B", version: 4),
            dealJSON(id: "C", version: 9, owner: "null"),
            #"{"kind":"spend","source":"m","id":"s","version":2,"spend":{"amount":5,"currency":"EUR","date":"2026-06-30"}}"#,
            #"{"kind":"account","source":"crm","id":"acme","version":3,"account":{"status":"churned","changed_at":"2026-08-01T00:00:00Z"}}"#,
        ]
        for text in stream { _ = store.apply(try decode(text).get()) }
        let restored = try RecordStore(model: testModel, encoded: store.encoded())
        #expect(restored.recordCount == store.recordCount)
        let a = store.allFacts().map { "\($0.normalized(store.strings))" }.sorted()
        let b = restored.allFacts().map { "\($0.normalized(restored.strings))" }.sorted()
        #expect(a == b)
        // Duplicates and stale events are still recognised after a restore.
        var copy = restored
        #expect(copy.apply(try decode(stream[0]).get()).outcome == .duplicate)
        #expect(copy.apply(try decode(dealJSON(id: "B", version: 3)).get()).outcome == .stale)
        #expect(throws: BinaryDecodingError.self) {
            try RecordStore(model: testModel, encoded: Array(store.encoded().dropLast(3)))
        }
    }
}
