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

/// The compact store (dense slots, a history pool that moves and compacts blocks, keys in
/// an arena) against METRICS.md §1 computed from scratch per deal.
struct RecordStoreCompactTests {
    /// What §1 says a deal's facts are, from every event it got: the current event is the
    /// highest version (a deletion beats a deal at equal versions, otherwise the first
    /// received stays); the history is every deal event above the highest deletion; the
    /// furthest stage is the maximum reached over the history in the current pipeline.
    private struct ReferenceDeal {
        var events: [(version: Int64, deletion: Bool, pipeline: Int, reached: Int, amount: Int)] = []

        var expected: (pipeline: Int, furthest: Int, amount: Int)? {
            guard var current = events.first else { return nil }
            for e in events.dropFirst()
            where e.version > current.version || (e.version == current.version && e.deletion && !current.deletion) {
                current = e
            }
            let boundary = events.filter(\.deletion).map(\.version).max() ?? -1
            guard !current.deletion, current.version > boundary else { return nil }
            let furthest = events.filter { !$0.deletion && $0.version > boundary && $0.pipeline == current.pipeline }
                .map(\.reached).max()!
            return (current.pipeline, furthest, current.amount)
        }
    }

    @Test func manyDealsMatchTheDefinitionThroughHistoryMovesCompactionAndACheckpoint() throws {
        var rng = SplitMix64(state: 11)
        let pipelines = [
            ("default", ["lead", "qualified", "proposal", "negotiation"]), ("renewals", ["review", "quote"]),
        ]
        var store = RecordStore(model: testModel)
        store.historyCompactionMinimumHoles = 64
        var reference: [String: ReferenceDeal] = [:]
        var texts: [String] = []
        let dealCount = 3_000
        for n in 0..<dealCount * 8 {
            let id = "deal-\(Int.random(in: 0..<dealCount, using: &rng))"
            let version = Int64.random(in: 1...12, using: &rng)
            if Int.random(in: 0..<25, using: &rng) == 0 {
                texts.append(deleteJSON(id: id, version: version))
                reference[id, default: ReferenceDeal()].events.append((version, true, 0, 0, 0))
                continue
            }
            // Mostly the default pipeline, so frontiers grow past one entry and move.
            let p = Int.random(in: 0..<10, using: &rng) == 0 ? 1 : 0
            let stage = Int.random(in: 0..<pipelines[p].1.count, using: &rng)
            let won = Int.random(in: 0..<6, using: &rng) == 0
            let amount = n % 1000 + 1
            texts.append(
                dealJSON(
                    id: id,
                    version: version,
                    pipeline: pipelines[p].0,
                    stage: pipelines[p].1[stage],
                    status: won ? "won" : "open",
                    amount: "\(amount)",
                    closed: won ? "2026-07-01T00:00:00Z" : nil,
                    owner: "\"\(id)\""
                )
            )
            let reached = won ? pipelines[p].1.count - 1 : stage
            // Resends of an identical event are duplicates: the reference ignores them.
            let isResend =
                reference[id]?.events.contains {
                    !$0.deletion && $0.version == version && $0.pipeline == p && $0.reached == reached
                        && $0.amount == amount
                } ?? false
            if !isResend { reference[id, default: ReferenceDeal()].events.append((version, false, p, reached, amount)) }
        }
        let decoder = EventDecoder(model: testModel)
        let events = try texts.map { try decoder.decode(json: Array($0.utf8)).get() }
        for event in events { _ = store.apply(event) }

        func actual(_ store: RecordStore) -> [String: (pipeline: Int, furthest: Int, amount: Int)] {
            var out: [String: (Int, Int, Int)] = [:]
            for case .deal(nil, let f?) in store.allFacts() {
                out[store.strings[f.owner]] = (Int(f.pipelineIndex), Int(f.furthest), Int(f.amount))
            }
            return out
        }
        func check(_ store: RecordStore, _ label: String) {
            let got = actual(store)
            var live = 0
            for (id, deal) in reference {
                let want = deal.expected
                if want != nil { live += 1 }
                let have = got[id]
                #expect(
                    have?.pipeline == want?.pipeline && have?.furthest == want?.furthest
                        && have?.amount == want?.amount,
                    "\(label): \(id) is \(String(describing: have)), expected \(String(describing: want))"
                )
            }
            #expect(got.count == live, "\(label)")
            #expect(store.liveDealCount == live, "\(label)")
        }
        check(store, "applied")
        #expect(store.historyCompactions > 0, "the stream must make the history pool compact at least once")

        let restored = try RecordStore(model: testModel, encoded: store.encoded())
        check(restored, "restored from a checkpoint")
        #expect(restored.recordCount == store.recordCount)
        // Resolving goes on the same from the restored copy: every event again is a
        // duplicate or stale, and changes nothing.
        var copy = restored
        for event in events.suffix(2000) { #expect(copy.apply(event).change == nil) }
        check(copy, "after resends")
    }
}
