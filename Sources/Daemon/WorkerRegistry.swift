import DealModel
import Dispatch
import PipelineMetrics
import Wire

/// The worker sessions, which partitions each family's sessions own, and their results.
///
/// Every family's series are split into `partitionCount` partitions (`Partitioning`). A
/// partition has at most one *owner* (the session whose results are published for it)
/// and one *target* (the session that should own it). When they differ a move is under
/// way: the target is rebuilt for the partition in a lane of its own while the owner keeps
/// serving it, and a round switches ownership at one position once the target's lane has
/// reported its whole state (docs/workers.md). Pure state: the `WorkerLinkServer` sends
/// what the plans here say.
struct WorkerRegistry {
    typealias SessionID = UInt64

    /// A series a worker reported, checked: its catalog id, partition, and values or removal.
    typealias Series = SeriesChange

    struct Result {
        var logSeq: UInt64
        var series: [Series]
        /// The values of `series` (each at its `offset`, as many as its shape has fields).
        var words: [UInt64] = []

        /// Consecutive results of one session as one: each series once, in the order it
        /// first appeared, with its latest values. The one place results coalesce.
        static func merged(_ results: [Result]) -> Result {
            if results.count == 1 { return results[0] }
            var order: [UInt32] = []
            var latest: [UInt32: (result: Int, series: Int)] = [:]
            for (r, result) in results.enumerated() {
                for (i, s) in result.series.enumerated() where latest.updateValue((r, i), forKey: s.id) == nil {
                    order.append(s.id)
                }
            }
            var out = Result(logSeq: results.last!.logSeq, series: [])
            out.series.reserveCapacity(order.count)
            for id in order {
                let (r, i) = latest[id]!
                out.append(results[r].series[i], from: results[r].words)
            }
            return out
        }

        /// Appends `series` with its words from `words` (its source's).
        mutating func append(_ series: Series, from words: [UInt64]) {
            guard !series.isRemoval else {
                self.series.append(series)
                return
            }
            var s = series
            s.offset = UInt32(self.words.count)
            let start = Int(series.offset)
            self.words.append(contentsOf: words[start..<(start + Int(series.fields))])
            self.series.append(s)
        }
    }

    /// Partitions a session was given at once, rebuilt from one position.
    struct Lane {
        let id: UInt32
        var partitions: PartitionSet
        /// What the lane is rebuilt from; nil once every chunk is sent.
        var rebuild: RebuildSource?
        /// The next fact of `rebuild` to send.
        var cursor = 0
        /// When each chunk not yet acknowledged (`PROGRESS`) was sent.
        var chunksInFlight: [UInt64] = []
        /// When the lane was opened (for the catch-up time in logs).
        let opened: UInt64
        /// The position of the result that carried the lane's whole state; nil until then.
        var completeAt: UInt64?
    }

    struct Session {
        let id: SessionID
        let identity: [UInt8]
        let family: MetricFamily
        let pid: Int
        let host: String
        /// The pid of the child process this daemon spawned, proved by its token; nil for a
        /// worker started elsewhere (which is never signalled).
        let spawnedPID: Int32?
        var lastHeard: UInt64
        var lastSent: UInt64
        var stringsSent = 0
        /// Batches sent that asked for a result and are not yet covered by one: position,
        /// fact count, when sent (a worker may answer several batches with one result).
        var awaited: [(position: UInt64, facts: Int, sentAt: UInt64)] = []
        var outstanding: Int { awaited.count }
        /// The facts in `awaited`, kept as they come and go (read on every loop iteration).
        var outstandingFacts = 0
        var lanes: [UInt32: Lane] = [:]
        var nextLane: UInt32 = 0
        var results: [Result] = []
        /// Highest position reported, nil until the first result.
        var reported: UInt64?
        /// Said `BYE`: gets no new partitions, keeps serving until its own have moved.
        var leaving = false

        mutating func await(_ position: UInt64, facts: Int, at now: UInt64) {
            awaited.append((position, facts, now))
            outstandingFacts += facts
        }

        /// A result covers every batch up to its position.
        mutating func covered(upTo position: UInt64) {
            let n = awaited.prefix { $0.position <= position }.count
            outstandingFacts -= awaited.prefix(n).reduce(0) { $0 + $1.facts }
            awaited.removeFirst(n)
        }

        /// Every partition in one of its lanes.
        func held(count: Int) -> PartitionSet {
            var set = PartitionSet(count: count)
            for lane in lanes.values { for p in lane.partitions.members { set.insert(p) } }
            return set
        }

        /// The lane holding `partition`, if any.
        func lane(holding partition: Int) -> Lane? { lanes.values.first { $0.partitions.contains(partition) } }

        /// When the oldest message still waiting for an answer (batch or chunk) was sent.
        var oldestUnanswered: UInt64? {
            let chunk = lanes.values.compactMap(\.chunksInFlight.first).min()
            switch (awaited.first?.sentAt, chunk) {
            case (let a?, let c?): return min(a, c)
            case (let a?, nil): return a
            case (nil, let c): return c
            }
        }
    }

    /// Owner and target of every partition of one family.
    struct Ownership {
        var owner: [SessionID?]
        var target: [SessionID?]
        /// Whether the partition ever had an owner (a switch of one that had is a move; the
        /// first owner after a start is not).
        var everOwned: [Bool]
        init(count: Int) {
            owner = Array(repeating: nil, count: count)
            target = Array(repeating: nil, count: count)
            everOwned = Array(repeating: false, count: count)
        }
    }

    let families: [MetricFamily]
    let partitionCount: Int
    private(set) var ownership: [MetricFamily: Ownership]
    private(set) var sessions: [SessionID: Session] = [:]
    private var sessionByIdentity: [[UInt8]: SessionID] = [:]
    private var nextSessionID: SessionID = 1
    /// While some partition has no owner, no round can publish before its new owner's
    /// rebuild position, which is at least this (the position dispatched when it became
    /// vacant): results up to here may be folded together (`coalesce`).
    private(set) var vacancyFloor: UInt64?
    /// The owning sessions while every partition has an owner that is also its target (no
    /// move under way, nothing vacant): then a round's position is just their lowest
    /// report. Nil otherwise. Kept by every change of ownership, read every loop turn.
    private var steadyOwners: [SessionID]?
    /// Positions of the barriers sent and not yet behind a round, ascending: the only
    /// positions a round may publish (every owner answered each, or had nothing to).
    private(set) var barriers: [UInt64]
    var lastBarrier: UInt64 { barriers.last ?? 0 }

    /// Whether, with ownership steady, an owner has not answered the last barrier yet. The
    /// fan-out then sends no further barrier: a worker still flushing for one gains nothing
    /// from the next, so barriers (and rounds) come no faster than the workers answer
    /// them, however short the pacing's gap. (During a move or a vacancy this is false:
    /// the targets catch up at barriers.)
    var isAwaitingBarrier: Bool {
        guard let owners = steadyOwners else { return false }
        let last = lastBarrier
        return owners.contains { (sessions[$0]?.reported ?? 0) < last }
    }

    mutating func addBarrier(_ position: UInt64) {
        if barriers.last != position { barriers.append(position) }
    }

    /// The highest barrier at or below `position`.
    func barrier(atOrBelow position: UInt64) -> UInt64? {
        var lo = 0
        var hi = barriers.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if barriers[mid] <= position { lo = mid + 1 } else { hi = mid }
        }
        return lo == 0 ? nil : barriers[lo - 1]
    }

    private mutating func refreshSteadyOwners() {
        var owners = Set<SessionID>()
        for family in families {
            let own = ownership[family]!
            for p in 0..<partitionCount {
                guard let o = own.owner[p], own.target[p] == o else {
                    steadyOwners = nil
                    return
                }
                owners.insert(o)
            }
        }
        steadyOwners = owners.sorted()
    }

    /// `position`: where the state was restored; every worker is rebuilt at or after it,
    /// so it counts as the first barrier.
    init(families: [MetricFamily], partitionCount: Int, position: UInt64 = 0) {
        self.families = families
        self.partitionCount = partitionCount
        barriers = [position]
        ownership = Dictionary(uniqueKeysWithValues: families.map { ($0, Ownership(count: partitionCount)) })
    }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    func session(of identity: [UInt8]) -> SessionID? { sessionByIdentity[identity] }

    mutating func update(_ id: SessionID, _ body: (inout Session) -> Void) {
        if var s = sessions[id] {
            body(&s)
            sessions[id] = s
        }
    }

    // MARK: joining and leaving

    /// Adds a session (its partitions come from `rebalance`).
    mutating func add(
        identity: [UInt8],
        family: MetricFamily,
        pid: Int,
        host: String,
        spawnedPID: Int32?
    ) -> SessionID {
        let id = nextSessionID
        nextSessionID += 1
        let now = WorkerRegistry.now()
        sessions[id] = Session(
            id: id,
            identity: identity,
            family: family,
            pid: pid,
            host: host,
            spawnedPID: spawnedPID,
            lastHeard: now,
            lastSent: now
        )
        sessionByIdentity[identity] = id
        return id
    }

    /// Removes a session: what it owned is vacant until its new owners are rebuilt.
    /// `dispatched` is the position sent to the workers so far. Returns the session.
    @discardableResult
    mutating func remove(_ id: SessionID, dispatched: UInt64) -> Session? {
        guard let session = sessions.removeValue(forKey: id) else { return nil }
        sessionByIdentity[session.identity] = nil
        var own = ownership[session.family]!
        for p in 0..<partitionCount {
            if own.owner[p] == id {
                own.owner[p] = nil
                if vacancyFloor == nil { vacancyFloor = dispatched }
            }
            if own.target[p] == id { own.target[p] = nil }
        }
        ownership[session.family] = own
        refreshSteadyOwners()
        return session
    }

    /// What a rebalance asks the link server to do.
    struct Plan {
        /// New lanes: session, the partitions to rebuild for.
        var assign: [(SessionID, PartitionSet)] = []
        /// Partitions a session holds and should stop computing now.
        var release: [(SessionID, [Int])] = []
        /// For logs: partitions, from whom (the owner, nil if vacant), to whom.
        var moves: [(partitions: [Int], from: SessionID?, to: SessionID)] = []
    }

    /// Spreads the family's partitions evenly over its sessions that are not leaving,
    /// moving as few as it can: partitions of a gone session go to the least loaded, then
    /// one at a time from the most to the least loaded until they differ by at most one.
    mutating func rebalance(_ family: MetricFamily) -> Plan {
        var plan = Plan()
        let members = sessions.values.filter { $0.family == family }
        let live = Set(members.filter { !$0.leaving }.map(\.id))
        var own = ownership[family]!
        for p in 0..<partitionCount {
            if let t = own.target[p], live.contains(t) { continue }
            own.target[p] = own.owner[p].flatMap { live.contains($0) ? $0 : nil }
        }
        if !live.isEmpty {
            var load = Dictionary(uniqueKeysWithValues: live.map { ($0, 0) })
            for case let t? in own.target { load[t, default: 0] += 1 }
            func least() -> SessionID {
                load.min { $0.value < $1.value || ($0.value == $1.value && $0.key < $1.key) }!.key
            }
            func most() -> SessionID {
                load.max { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }!.key
            }
            for p in 0..<partitionCount where own.target[p] == nil {
                let t = least()
                own.target[p] = t
                load[t]! += 1
            }
            while load[most()]! - load[least()]! > 1 {
                let from = most()
                let to = least()
                let candidates = (0..<partitionCount).filter { own.target[$0] == from }
                // Cheapest first: back to its owner, then one `from` is still being built for.
                let p =
                    candidates.first { own.owner[$0] == to } ?? candidates.first { own.owner[$0] != from }
                    ?? candidates.last!
                own.target[p] = to
                load[from]! -= 1
                load[to]! += 1
            }
        }
        ownership[family] = own
        refreshSteadyOwners()
        for session in members {
            let held = session.held(count: partitionCount)
            var missing: [Int] = []
            var extra: [Int] = []
            for p in 0..<partitionCount {
                let wanted = own.target[p] == session.id
                if wanted && !held.contains(p) { missing.append(p) }
                if !wanted && held.contains(p) && own.owner[p] != session.id { extra.append(p) }
            }
            if !missing.isEmpty {
                plan.assign.append((session.id, PartitionSet(count: partitionCount, members: missing)))
                var byOwner: [SessionID?: [Int]] = [:]
                for p in missing { byOwner[own.owner[p], default: []].append(p) }
                for (from, ps) in byOwner.sorted(by: { ($0.key ?? 0) < ($1.key ?? 0) }) {
                    plan.moves.append((ps, from, session.id))
                }
            }
            if !extra.isEmpty {
                plan.release.append((session.id, extra))
                releaseLocally(session.id, extra)
            }
        }
        return plan
    }

    /// Opens a lane for `partitions` in session `id`, rebuilt from `source`.
    mutating func openLane(_ id: SessionID, partitions: PartitionSet, source: RebuildSource) -> UInt32? {
        guard var s = sessions[id] else { return nil }
        let lane = s.nextLane
        s.nextLane += 1
        s.lanes[lane] = Lane(id: lane, partitions: partitions, rebuild: source, opened: WorkerRegistry.now())
        sessions[id] = s
        return lane
    }

    /// Removes `partitions` from the session's lanes (after a `RELEASE` is sent).
    private mutating func releaseLocally(_ id: SessionID, _ partitions: [Int]) {
        update(id) { s in
            for (laneID, var lane) in s.lanes {
                for p in partitions { lane.partitions.remove(p) }
                s.lanes[laneID] = lane.partitions.isEmpty ? nil : lane
            }
        }
    }

    // MARK: results

    /// Stores a checked result; `complete` are the lanes whose whole state is in it.
    ///
    /// What a session's state is known at (`reported`) moves on two ways besides results:
    /// a result behind it is taken at it (the session was sent nothing since: batches
    /// without its facts are not sent, and `reported` moved on at barriers), and once
    /// nothing it was sent is unanswered, its state is known at the last barrier too (so a
    /// result after that barrier, such as a lane's first, does not hold rounds back until
    /// the next event).
    mutating func receive(_ result: Result, complete: [UInt32], from id: SessionID) {
        let lastBarrier = self.lastBarrier
        update(id) { s in
            var result = result
            result.logSeq = max(result.logSeq, s.reported ?? 0)
            for lane in complete where s.lanes[lane] != nil && s.lanes[lane]!.completeAt == nil {
                s.lanes[lane]!.completeAt = result.logSeq
            }
            s.results.append(result)
            s.covered(upTo: result.logSeq)
            s.reported = max(s.reported ?? 0, result.logSeq)
            if s.outstanding == 0 { s.reported = max(s.reported!, lastBarrier) }
        }
        coalesce(id)
    }

    /// Folds the session's results up to `vacancyFloor` into one (see `Result.merged`):
    /// keeps memory bounded by the number of series, not by how long a partition is vacant.
    private mutating func coalesce(_ id: SessionID) {
        guard let floor = vacancyFloor, var s = sessions[id] else { return }
        let n = s.results.prefix { $0.logSeq <= floor }.count
        guard n > 1 else { return }
        let folded = Result.merged(Array(s.results.prefix(n)))
        s.results.replaceSubrange(0..<n, with: [folded])
        sessions[id] = s
    }

    /// The partition of `family` that `topic` would be in if it is a series the family
    /// publishes (its metric, dimension and a key), or nil.
    func partition(ofTopic topic: [UInt8], family: MetricFamily) -> Int? {
        SeriesCatalog.partition(ofTopic: topic, family: family, count: partitionCount)
    }

    // MARK: rounds

    /// A partition to switch to its target in a round.
    struct Switch {
        var family: MetricFamily
        var partition: Int
        var from: SessionID?
        var to: SessionID
        /// Whether the partition had an owner before (a move), rather than its first.
        var isMove: Bool
    }

    /// The position the next round may publish, and the switches it makes: every
    /// partition's owner (or, for a vacant one, its target once rebuilt) must have
    /// reported it; a target whose lane is whole at or below it and that has reported it
    /// takes over there. Nil while some partition cannot be published.
    func roundPosition() -> (position: UInt64, switches: [Switch])? {
        if let owners = steadyOwners {
            var position = UInt64.max
            for o in owners {
                guard let r = sessions[o]?.reported else { return nil }
                position = min(position, r)
            }
            guard !owners.isEmpty, let at = barrier(atOrBelow: position) else { return nil }
            return (at, [])
        }
        var position = UInt64.max
        var vacantNeeds: UInt64 = 0
        for family in families {
            let own = ownership[family]!
            for p in 0..<partitionCount {
                if let o = own.owner[p] {
                    guard let r = sessions[o]?.reported else { return nil }
                    position = min(position, r)
                } else {
                    guard let t = own.target[p], let s = sessions[t], let r = s.reported,
                        let y = s.lane(holding: p)?.completeAt
                    else { return nil }
                    position = min(position, r)
                    vacantNeeds = max(vacantNeeds, y)
                }
            }
        }
        guard position != .max, let barrierPosition = barrier(atOrBelow: position), vacantNeeds <= barrierPosition
        else {
            return nil
        }
        position = barrierPosition
        var switches: [Switch] = []
        for family in families {
            let own = ownership[family]!
            for p in 0..<partitionCount {
                guard let t = own.target[p], t != own.owner[p], let s = sessions[t], let r = s.reported, r >= position,
                    let y = s.lane(holding: p)?.completeAt, y <= position
                else { continue }
                switches.append(
                    Switch(family: family, partition: p, from: own.owner[p], to: t, isMove: own.everOwned[p])
                )
            }
        }
        return (position, switches)
    }

    /// Whether a round would publish something beyond `publishedLogSeq`.
    func hasPublishableResults(after publishedLogSeq: UInt64) -> Bool {
        guard let (position, switches) = roundPosition() else { return false }
        if position > publishedLogSeq || !switches.isEmpty { return true }
        return sessions.values.contains { ($0.results.first?.logSeq).map { $0 <= position } ?? false }
    }

    /// One round's work: the position, the series to publish (values or removals, their
    /// words in `words`), and the moves it completed.
    struct Round {
        var position: UInt64
        var changes = Result(logSeq: 0, series: [])
        var switches: [Switch] = []
        /// Partitions the previous owners must stop computing.
        var release: [(SessionID, [Int])] = []
    }

    /// Takes the round at `roundPosition()`: switches, then each owning session's results
    /// up to the position, only the series of the partitions it owns. A switched
    /// partition's new owner reported its whole state: series published before and not in
    /// it are removed. `publishedTopics` gives the published series (catalog id: partition)
    /// of a family's partitions.
    mutating func takeRound(
        notBefore publishedLogSeq: UInt64,
        publishedTopics: (MetricFamily, PartitionSet) -> [UInt32: Int]
    ) -> Round? {
        guard let (position, switches) = roundPosition(), position >= publishedLogSeq else { return nil }
        barriers.removeFirst(barriers.prefix { $0 < position }.count)
        var round = Round(position: position, switches: switches)
        round.changes.logSeq = position
        var released: [SessionID: [Int]] = [:]
        var switchedTo: [SessionID: PartitionSet] = [:]
        for sw in switches {
            ownership[sw.family]!.owner[sw.partition] = sw.to
            ownership[sw.family]!.everOwned[sw.partition] = true
            switchedTo[sw.to, default: PartitionSet(count: partitionCount)].insert(sw.partition)
            if let from = sw.from, from != sw.to, sessions[from] != nil {
                released[from, default: []].append(sw.partition)
            }
        }
        if families.allSatisfy({ ownership[$0]!.owner.allSatisfy { $0 != nil } }) { vacancyFloor = nil }
        if !switches.isEmpty { refreshSteadyOwners() }
        for id in sessions.keys.sorted() {
            let session = sessions[id]!
            let own = ownership[session.family]!
            let owns = own.owner.contains(id)
            // A session that owns nothing keeps the results from its first whole lane on:
            // they are what it takes over with; earlier ones carry nothing it will publish.
            guard owns else {
                let firstWhole = session.lanes.values.compactMap(\.completeAt).min()
                update(id) { s in s.results.removeAll { $0.logSeq <= position && $0.logSeq < (firstWhole ?? .max) } }
                continue
            }
            let n = session.results.prefix { $0.logSeq <= position }.count
            let merged =
                n == 0
                ? Result(logSeq: position, series: [])
                : Result.merged(Array(session.results.prefix(n)))
            update(id) { $0.results.removeFirst(n) }
            // What a switch's new owner reported, to remove what it no longer has (only
            // collected when this session takes partitions over in this round).
            let taken = switchedTo[id]
            var fresh: Set<UInt32> = []
            for series in merged.series where own.owner[Int(series.partition)] == id {
                round.changes.append(series, from: merged.words)
                if taken != nil && !series.isRemoval { fresh.insert(series.id) }
            }
            if let taken {
                for (gone, partition) in publishedTopics(session.family, taken) where !fresh.contains(gone) {
                    round.changes.series.append(.removal(gone, partition: partition))
                }
            }
        }
        for (id, partitions) in released.sorted(by: { $0.key < $1.key }) {
            round.release.append((id, partitions))
            releaseLocally(id, partitions)
        }
        return round
    }

    // MARK: what ingest and status ask

    /// Whether any session is too far behind to send it more (ingest then waits): too
    /// many batches, or too many facts, unanswered.
    func isBackPressured(batches: Int, facts: Int) -> Bool {
        sessions.values.contains { $0.outstanding >= batches || $0.outstandingFacts >= facts }
    }

    /// The partitions `id` owns.
    func owned(by id: SessionID) -> PartitionSet {
        guard let s = sessions[id] else { return PartitionSet(count: partitionCount) }
        return PartitionSet(
            count: partitionCount,
            members: (0..<partitionCount).filter { ownership[s.family]!.owner[$0] == id }
        )
    }

    /// Partitions of `family` with no owner (rounds wait for them).
    func vacant(_ family: MetricFamily) -> Int { ownership[family]!.owner.reduce(0) { $0 + ($1 == nil ? 1 : 0) } }
}
