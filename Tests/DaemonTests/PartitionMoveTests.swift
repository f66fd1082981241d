import DealModel
import PipelineMetrics
import Testing
import Wire

@testable import Daemon

/// The registry's side of live scale-out: fair shares, a move that keeps the old owner
/// publishing until the newcomer's lane is whole, one switch position, removals only of
/// what the new owner's whole state lacks, and a death leaving partitions vacant. (Every
/// position results are reported at here is a barrier, as the link server makes them.)
struct PartitionMoveTests {
    private static let count = 8
    /// An owner key per partition: `keys[p]` hashes to partition p.
    private static let keys: [String] = {
        var found = [String?](repeating: nil, count: count)
        var i = 0
        while found.contains(where: { $0 == nil }) {
            let key = "rep-\(i)"
            let p = Partitioning.partition(of: .owner, key: key, count: count)
            if found[p] == nil { found[p] = key }
            i += 1
        }
        return found.map { $0! }
    }()

    private let catalog = SeriesCatalog(partitionCount: Self.count)

    /// The catalog id of partition p's series.
    private func id(_ p: Int) -> UInt32 {
        catalog.series(topic: Array("revenue/owner/\(Self.keys[p])/all".utf8), family: .revenue)!
    }

    /// A result: for each (partition, value), its series with that value (one word).
    private func result(_ logSeq: UInt64, _ values: [(Int, Int)]) -> WorkerRegistry.Result {
        var r = WorkerRegistry.Result(logSeq: logSeq, series: [])
        for (p, value) in values {
            r.series.append(.init(id: id(p), partition: p, shape: 0, fields: 1, offset: r.words.count))
            r.words.append(FieldWord.count(value))
        }
        return r
    }

    private func value(_ change: WorkerRegistry.Series, in round: WorkerRegistry.Round) -> Int? {
        change.isRemoval ? nil : Int(Int64(bitPattern: round.changes.words[Int(change.offset)]))
    }

    private let empty = RebuildSource(logSeq: 0, strings: [], facts: [])

    /// Opens the lanes a plan asks for.
    private func carryOut(_ plan: WorkerRegistry.Plan, in registry: inout WorkerRegistry) {
        for (id, partitions) in plan.assign { _ = registry.openLane(id, partitions: partitions, source: empty) }
    }

    private func join(_ registry: inout WorkerRegistry, _ name: String) -> WorkerRegistry.SessionID {
        let id = registry.add(identity: Array(name.utf8), family: .revenue, pid: 1, host: name, spawnedPID: nil)
        carryOut(registry.rebalance(.revenue), in: &registry)
        return id
    }

    @Test func aJoinMovesAFairShareAndSwitchesAtOnePosition() throws {
        var registry = WorkerRegistry(families: [.revenue], partitionCount: Self.count)
        let a = join(&registry, "a")
        #expect(registry.roundPosition() == nil, "nothing is published before a's lane is whole")
        registry.addBarrier(5)
        registry.receive(result(5, (0..<8).map { ($0, 1) }), complete: [0], from: a)
        var published: [UInt32: Int] = [:]
        func take() throws -> WorkerRegistry.Round {
            let round = try #require(
                registry.takeRound(notBefore: 0) { family, partitions in
                    family == .revenue ? published.filter { partitions.contains($0.value) } : [:]
                }
            )
            for change in round.changes.series {
                published[change.id] = change.isRemoval ? nil : Int(change.partition)
            }
            return round
        }
        let first = try take()
        #expect(first.position == 5 && first.changes.series.count == 8 && first.switches.count == 8)
        #expect(first.switches.allSatisfy { !$0.isMove }, "the first owners after a start are no move")
        #expect(registry.owned(by: a).memberCount == 8)

        let b = join(&registry, "b")
        let target = registry.ownership[.revenue]!.target
        #expect(target.filter { $0 == b }.count == 4 && target.filter { $0 == a }.count == 4)
        #expect(registry.owned(by: b).isEmpty, "b owns nothing until its lane is whole")
        let moving = (0..<8).filter { target[$0] == b }
        let kept = (0..<8).filter { target[$0] == a }

        // a keeps publishing everything while b is rebuilt; b's results are held.
        registry.addBarrier(7)
        registry.receive(result(7, (0..<8).map { ($0, 2) }), complete: [], from: a)
        registry.addBarrier(7)
        registry.receive(result(7, []), complete: [], from: b)
        let during = try take()
        #expect(during.position == 7 && during.changes.series.count == 8 && during.switches.isEmpty)

        // b's lane is whole at 9 (one of its series gone there); a is at 9 too. One round switches.
        let bSeries = moving.dropFirst().map { ($0, 3) }
        registry.addBarrier(9)
        registry.receive(result(9, bSeries), complete: [0], from: b)
        registry.addBarrier(9)
        registry.receive(result(9, (0..<8).map { ($0, 4) }), complete: [], from: a)
        let switching = try take()
        #expect(switching.position == 9)
        #expect(Set(switching.switches.map(\.partition)) == Set(moving))
        #expect(switching.switches.allSatisfy { $0.isMove && $0.from == a && $0.to == b })
        #expect(switching.release.count == 1 && switching.release[0].0 == a)
        #expect(Set(switching.release[0].1) == Set(moving))
        // Each series once: a's values for the partitions it kept, b's for those it took,
        // and a removal for the one b's whole state does not hold.
        var byID: [UInt32: Int?] = [:]
        for change in switching.changes.series {
            #expect(
                byID.updateValue(value(change, in: switching), forKey: change.id) == nil,
                "two values for one series"
            )
        }
        for p in kept { #expect(byID[id(p)] == .some(4)) }
        for p in moving.dropFirst() { #expect(byID[id(p)] == .some(3)) }
        #expect(byID[id(moving[0])] == .some(nil), "gone at the switch position: removed once")
        #expect(registry.owned(by: b).members == moving && registry.owned(by: a).members == kept)

        // After the switch, a's results for what it gave away are ignored.
        registry.addBarrier(11)
        registry.receive(result(11, moving.map { ($0, 99) }), complete: [], from: a)
        registry.addBarrier(11)
        registry.receive(result(11, []), complete: [], from: b)
        #expect(try take().changes.series.isEmpty)
    }

    @Test func aDeathLeavesPartitionsVacantUntilTheirNewOwnerIsWhole() throws {
        var registry = WorkerRegistry(families: [.revenue], partitionCount: Self.count)
        let a = join(&registry, "a")
        let b = join(&registry, "b")
        registry.addBarrier(3)
        registry.receive(result(3, []), complete: [0], from: a)
        registry.addBarrier(3)
        registry.receive(result(3, []), complete: [0], from: b)
        _ = try #require(registry.takeRound(notBefore: 0) { _, _ in [:] })
        #expect(registry.owned(by: a).memberCount == 4 && registry.owned(by: b).memberCount == 4)
        registry.remove(b, dispatched: 4)
        #expect(registry.vacant(.revenue) == 4)
        let plan = registry.rebalance(.revenue)
        #expect(plan.assign.count == 1 && plan.assign[0].0 == a && plan.assign[0].1.memberCount == 4)
        carryOut(plan, in: &registry)
        registry.addBarrier(5)
        registry.receive(result(5, []), complete: [], from: a)
        #expect(registry.roundPosition() == nil, "rounds wait while partitions have no whole owner")
        registry.addBarrier(6)
        registry.receive(result(6, []), complete: [1], from: a)
        let round = try #require(registry.takeRound(notBefore: 3) { _, _ in [:] })
        #expect(round.position == 6 && round.switches.count == 4 && round.switches.allSatisfy(\.isMove))
        #expect(registry.owned(by: a).memberCount == 8 && registry.vacant(.revenue) == 0)
    }

    @Test func sharesStayWithinOneAsSessionsComeAndGo() {
        var registry = WorkerRegistry(families: [.revenue], partitionCount: 64)
        var ids: [WorkerRegistry.SessionID] = []
        for n in 0..<5 {
            ids.append(join(&registry, "w\(n)"))
            let loads = ids.map { id in registry.ownership[.revenue]!.target.filter { $0 == id }.count }
            #expect(loads.reduce(0, +) == 64 && loads.max()! - loads.min()! <= 1, "\(loads)")
        }
        registry.update(ids[0]) { $0.leaving = true }
        _ = registry.rebalance(.revenue)
        #expect(!registry.ownership[.revenue]!.target.contains(ids[0]), "a leaving session is given nothing")
    }

    @Test func topicsOfAnotherFamilyOrNoSeriesHaveNoPartition() {
        let registry = WorkerRegistry(families: [.revenue, .winRate], partitionCount: 64)
        #expect(registry.partition(ofTopic: Array("revenue/all/%2A/all".utf8), family: .revenue) != nil)
        #expect(registry.partition(ofTopic: Array("deal_size/team/x/2024".utf8), family: .revenue) != nil)
        #expect(registry.partition(ofTopic: Array("win_rate/all/%2A/all".utf8), family: .revenue) == nil)
        #expect(registry.partition(ofTopic: Array("zzz/injected".utf8), family: .revenue) == nil)
        #expect(registry.partition(ofTopic: Array("roi/owner/x/all".utf8), family: .roi) == nil)
    }
}

extension PartitionMoveTests {
    /// Rounds publish only at barriers: an owner that reported past a barrier without one
    /// in between has its state known only at the barrier, never at a position in between.
    @Test func roundsPublishOnlyAtBarriers() throws {
        var registry = WorkerRegistry(families: [.revenue], partitionCount: Self.count)
        let a = join(&registry, "a")
        let b = join(&registry, "b")
        registry.addBarrier(5)
        registry.receive(result(5, []), complete: [0], from: a)
        registry.receive(result(5, []), complete: [0], from: b)
        #expect(try #require(registry.takeRound(notBefore: 0) { _, _ in [:] }).position == 5)
        // a answers a barrier at 9; b's last report is at 7 (the last chunk of a lane, or
        // an old result): the round can only be at 5 again, never at 7.
        registry.addBarrier(9)
        registry.update(b) { $0.await(9, facts: 1, at: 0) }  // b has the barrier at 9 still to answer
        registry.receive(result(9, [(0, 1)]), complete: [], from: a)
        registry.receive(result(7, []), complete: [], from: b)
        #expect(registry.roundPosition()?.position == 5)
        registry.receive(result(9, []), complete: [], from: b)
        #expect(registry.roundPosition()?.position == 9)
    }
}
