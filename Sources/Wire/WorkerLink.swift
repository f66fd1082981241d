public import DealModel

/// The private protocol between the daemon and its metric workers (docs/workers.md).
///
/// Modelled on the ZeroMQ Guide's Majordomo and Paranoid Pirate patterns: a worker's
/// DEALER connects to the daemon's worker ROUTER (ipc for spawned workers, tcp with CURVE
/// for workers on other hosts), announces its metric family with `READY`, and both sides
/// send `HEARTBEAT` when otherwise idle. The daemon answers `RESET` (the model, a fresh
/// session) and gives the session partitions in *lanes*: `ASSIGN` opens a lane, rebuild
/// chunks for it follow (each acknowledged with `PROGRESS`), and live `FACTS` batches go
/// to every lane. The worker answers each batch that asks for it with `RESULT`: the series
/// it changed up to the batch's position, naming the lanes whose whole state is in it for
/// the first time. `RELEASE` takes partitions away after a move; `BYE` says a worker stops.
public enum WorkerLink {
    public static let protocolVersion = 2
    /// The lane number of a live batch: it applies to every lane.
    public static let everyLane = UInt32.max

    public enum Command: String, Sendable {
        case ready = "READY"
        case heartbeat = "HEARTBEAT"
        case reset = "RESET"
        case assign = "ASSIGN"
        case facts = "FACTS"
        case result = "RESULT"
        case progress = "PROGRESS"
        case release = "RELEASE"
        case bye = "BYE"
        case refused = "REFUSED"

        /// The command's frame.
        public var frame: [UInt8] { Array(rawValue.utf8) }
    }

    /// What a worker announces: its family, and who it is (for logs and `STATUS`; a pid a
    /// peer announces is never signalled). `token` is the secret a spawned worker got
    /// from its daemon (empty for a worker started by hand).
    public struct Ready: Sendable, Equatable {
        public var family: String
        public var pid: Int
        public var host: String
        public var token: [UInt8]

        public init(family: String, pid: Int, host: String, token: [UInt8] = []) {
            self.family = family
            self.pid = pid
            self.host = host
            self.token = token
        }

        public func encode() -> [UInt8] {
            var w = BinaryWriter()
            w.u32(UInt32(WorkerLink.protocolVersion))
            w.string(family)
            w.u64(UInt64(pid))
            w.string(host)
            w.bytes(token)
            return w.bytes
        }

        public static func decode(_ bytes: [UInt8]) throws(BinaryDecodingError) -> Ready {
            var r = BinaryReader(bytes)
            let version = try r.u32("protocol version")
            guard version == UInt32(WorkerLink.protocolVersion) else {
                throw BinaryDecodingError("worker protocol \(version) is not \(WorkerLink.protocolVersion)")
            }
            let family = try r.string("family")
            let pid = try r.u64("pid")
            // Found by fuzzing: a pid above Int.max used to trap the daemon.
            guard pid <= UInt64(Int32.max) else { throw BinaryDecodingError("pid \(pid) out of range") }
            let host = try r.string("host")
            let token = try r.bytes("token")
            guard host.utf8.count <= 255, token.count <= 64 else { throw BinaryDecodingError("host or token too long") }
            guard r.isAtEnd else { throw BinaryDecodingError("trailing bytes after READY") }
            return Ready(family: family, pid: Int(pid), host: host, token: token)
        }
    }

    /// A new lane: the partitions it computes, out of `partitionCount`, rebuilt from the
    /// facts at `logSeq` (the chunks follow).
    public struct Assign: Sendable, Equatable {
        public var lane: UInt32
        public var logSeq: UInt64
        public var partitionCount: Int
        public var partitions: [Int]

        public init(lane: UInt32, logSeq: UInt64, partitionCount: Int, partitions: [Int]) {
            self.lane = lane
            self.logSeq = logSeq
            self.partitionCount = partitionCount
            self.partitions = partitions
        }

        public func encode() -> [UInt8] {
            var w = BinaryWriter(capacity: 24 + partitions.count * 4)
            w.u32(lane)
            w.u64(logSeq)
            w.u32(UInt32(partitionCount))
            WorkerLink.writePartitions(partitions, to: &w)
            return w.bytes
        }

        public static func decode(_ bytes: [UInt8]) throws(BinaryDecodingError) -> Assign {
            var r = BinaryReader(bytes)
            let lane = try r.u32("lane")
            let logSeq = try r.u64("log_seq")
            let count = Int(try r.u32("partition count"))
            guard count >= 1, count <= 65_536 else { throw BinaryDecodingError("partition count \(count)") }
            let partitions = try WorkerLink.readPartitions(&r, count: count)
            guard r.isAtEnd else { throw BinaryDecodingError("trailing bytes after ASSIGN") }
            return Assign(lane: lane, logSeq: logSeq, partitionCount: count, partitions: partitions)
        }
    }

    /// The partitions of a `RELEASE`.
    public static func encodeRelease(_ partitions: [Int]) -> [UInt8] {
        var w = BinaryWriter(capacity: 4 + partitions.count * 4)
        writePartitions(partitions, to: &w)
        return w.bytes
    }

    public static func decodeRelease(_ bytes: [UInt8], count: Int) throws(BinaryDecodingError) -> [Int] {
        var r = BinaryReader(bytes)
        let partitions = try readPartitions(&r, count: count)
        guard r.isAtEnd else { throw BinaryDecodingError("trailing bytes after RELEASE") }
        return partitions
    }

    static func writePartitions(_ partitions: [Int], to w: inout BinaryWriter) {
        w.u32(UInt32(partitions.count))
        for p in partitions { w.u32(UInt32(p)) }
    }

    static func readPartitions(_ r: inout BinaryReader, count: Int) throws(BinaryDecodingError) -> [Int] {
        let n = Int(try r.u32("partitions"))
        guard n <= count else { throw BinaryDecodingError("\(n) partitions of \(count)") }
        var out: [Int] = []
        out.reserveCapacity(n)
        for _ in 0..<n {
            let p = Int(try r.u32("partition"))
            guard p < count else { throw BinaryDecodingError("partition \(p) of \(count)") }
            out.append(p)
        }
        return out
    }

    /// A worker's acknowledgement of a rebuild chunk: the lane, and its facts applied so far.
    public struct Progress: Sendable, Equatable {
        public var lane: UInt32
        public var facts: UInt64
        public init(lane: UInt32, facts: UInt64) {
            self.lane = lane
            self.facts = facts
        }
        public func encode() -> [UInt8] {
            var w = BinaryWriter()
            w.u32(lane)
            w.u64(facts)
            return w.bytes
        }
        public static func decode(_ bytes: [UInt8]) throws(BinaryDecodingError) -> Progress {
            var r = BinaryReader(bytes)
            let p = Progress(lane: try r.u32("lane"), facts: try r.u64("facts"))
            guard r.isAtEnd else { throw BinaryDecodingError("trailing bytes after PROGRESS") }
            return p
        }
    }

    /// A batch of fact changes, valid up to `logSeq`. Sent as two frames: a header
    /// (position, lane, new strings) that differs per worker session, and the changes,
    /// which are encoded once and sent to every worker of a family.
    public struct FactBatch: Sendable {
        /// The log position every change up to here reflects.
        public var logSeq: UInt64
        /// Whether the worker must answer with a `RESULT` (false for rebuild chunks but the last).
        public var wantsResult: Bool
        /// Whether this is the last chunk of its lane's rebuild.
        public var isLastChunk: Bool
        /// The lane a rebuild chunk is for; `WorkerLink.everyLane` for a live batch.
        public var lane: UInt32
        /// Id of the first new string; strings are sent once per session, in id order.
        public var firstStringID: UInt32
        public var strings: [String]
        public var changes: [FactChange]

        public init(
            logSeq: UInt64,
            wantsResult: Bool,
            isLastChunk: Bool = false,
            lane: UInt32 = WorkerLink.everyLane,
            firstStringID: UInt32,
            strings: [String],
            changes: [FactChange]
        ) {
            self.logSeq = logSeq
            self.wantsResult = wantsResult
            self.isLastChunk = isLastChunk
            self.lane = lane
            self.firstStringID = firstStringID
            self.strings = strings
            self.changes = changes
        }

        public static func encodeHeader(
            logSeq: UInt64,
            wantsResult: Bool,
            isLastChunk: Bool = false,
            lane: UInt32 = WorkerLink.everyLane,
            firstStringID: UInt32,
            strings: ArraySlice<String>
        ) -> [UInt8] {
            var w = BinaryWriter(capacity: 32 + strings.count * 16)
            w.u64(logSeq)
            w.u8((wantsResult ? 1 : 0) | (isLastChunk ? 2 : 0))
            w.u32(lane)
            w.u32(firstStringID)
            w.u32(UInt32(strings.count))
            for s in strings { w.string(s) }
            return w.bytes
        }

        public static func encodeChanges<C: Collection>(_ changes: C) -> [UInt8] where C.Element == FactChange {
            var w = BinaryWriter(capacity: 8 + changes.count * 80)
            w.u32(UInt32(changes.count))
            for c in changes { FactCoding.write(c, to: &w) }
            return w.bytes
        }

        /// The two frames of a `FACTS` message.
        public func encode() -> [[UInt8]] {
            [
                FactBatch.encodeHeader(
                    logSeq: logSeq,
                    wantsResult: wantsResult,
                    isLastChunk: isLastChunk,
                    lane: lane,
                    firstStringID: firstStringID,
                    strings: strings[...]
                ),
                FactBatch.encodeChanges(changes),
            ]
        }

        public static func decode(
            header: [UInt8],
            changes changeBytes: [UInt8]
        ) throws(BinaryDecodingError) -> FactBatch {
            var r = BinaryReader(header)
            let logSeq = try r.u64("log_seq")
            let flags = try r.u8("flags")
            let lane = try r.u32("lane")
            let first = try r.u32("first string id")
            let stringCount = Int(try r.u32("string count"))
            var strings: [String] = []
            strings.reserveCapacity(min(stringCount, 1 << 16))
            for _ in 0..<stringCount { strings.append(try r.string("string")) }
            guard r.isAtEnd else { throw BinaryDecodingError("trailing bytes after fact batch header") }
            var c = BinaryReader(changeBytes)
            let changeCount = Int(try c.u32("change count"))
            var changes: [FactChange] = []
            changes.reserveCapacity(min(changeCount, 1 << 16))
            for _ in 0..<changeCount { changes.append(try FactCoding.read(&c)) }
            guard c.isAtEnd else { throw BinaryDecodingError("trailing bytes after fact changes") }
            return FactBatch(
                logSeq: logSeq,
                wantsResult: flags & 1 != 0,
                isLastChunk: flags & 2 != 0,
                lane: lane,
                firstStringID: first,
                strings: strings,
                changes: changes
            )
        }
    }

    /// The header of a `RESULT`: its position, and the lanes whose whole state it carries
    /// for the first time (their first result after their rebuild). Topic/payload frame
    /// pairs follow it (an empty payload frame means the series was removed).
    public struct ResultHeader: Sendable, Equatable {
        public var logSeq: UInt64
        public var completeLanes: [UInt32]
        public init(logSeq: UInt64, completeLanes: [UInt32] = []) {
            self.logSeq = logSeq
            self.completeLanes = completeLanes
        }
        public func encode() -> [UInt8] {
            var w = BinaryWriter()
            w.u64(logSeq)
            w.u32(UInt32(completeLanes.count))
            for l in completeLanes { w.u32(l) }
            return w.bytes
        }
        public static func decode(_ bytes: [UInt8]) throws(BinaryDecodingError) -> ResultHeader {
            var r = BinaryReader(bytes)
            let logSeq = try r.u64("log_seq")
            let n = Int(try r.u32("lane count"))
            guard n <= 4096 else { throw BinaryDecodingError("\(n) complete lanes") }
            var lanes: [UInt32] = []
            for _ in 0..<n { lanes.append(try r.u32("lane")) }
            guard r.isAtEnd else { throw BinaryDecodingError("trailing bytes after RESULT header") }
            return ResultHeader(logSeq: logSeq, completeLanes: lanes)
        }
    }
}

/// Binary form of `FactChange` for the worker link.
public enum FactCoding {
    public static func write(_ change: FactChange, to w: inout BinaryWriter) {
        switch change {
        case .deal(let old, let new):
            w.u8(0 | (old != nil ? 0x10 : 0) | (new != nil ? 0x20 : 0))
            if let old { write(old, to: &w) }
            if let new { write(new, to: &w) }
        case .spend(let old, let new):
            w.u8(1 | (old != nil ? 0x10 : 0) | (new != nil ? 0x20 : 0))
            for s in [old, new].compactMap({ $0 }) {
                w.u32(s.leadSource)
                w.f64(s.amount)
                w.i128(s.date.nanoseconds)
            }
        case .account(let old, let new):
            w.u8(2 | (old != nil ? 0x10 : 0) | (new != nil ? 0x20 : 0))
            for a in [old, new].compactMap({ $0 }) {
                w.u32(a.source)
                w.u32(a.account)
                w.u8(a.churnedAt == nil ? 0 : 1)
                if let c = a.churnedAt { w.i128(c.nanoseconds) }
            }
        }
    }

    static func write(_ d: DealFacts, to w: inout BinaryWriter) {
        w.u32(d.source)
        w.u32(d.pipeline)
        w.u32(d.owner)
        w.u32(d.team)
        w.u32(d.leadSource)
        w.u32(d.account)
        w.u8(d.status.rawValue)
        w.u16(d.pipelineIndex)
        w.u16(UInt16(bitPattern: d.furthest))
        w.f64(d.amount)
        w.i128(d.createdAt.nanoseconds)
        w.u8(d.closedAt == nil ? 0 : 1)
        if let c = d.closedAt { w.i128(c.nanoseconds) }
    }

    public static func read(_ r: inout BinaryReader) throws(BinaryDecodingError) -> FactChange {
        let tag = try r.u8("change tag")
        let hasOld = tag & 0x10 != 0
        let hasNew = tag & 0x20 != 0
        switch tag & 0x0F {
        case 0:
            let old = hasOld ? try readDeal(&r) : nil
            let new = hasNew ? try readDeal(&r) : nil
            return .deal(old: old, new: new)
        case 1:
            let old = hasOld ? try readSpend(&r) : nil
            let new = hasNew ? try readSpend(&r) : nil
            return .spend(old: old, new: new)
        case 2:
            let old = hasOld ? try readAccount(&r) : nil
            let new = hasNew ? try readAccount(&r) : nil
            return .account(old: old, new: new)
        default:
            throw BinaryDecodingError("unknown change tag \(tag)")
        }
    }

    static func readDeal(_ r: inout BinaryReader) throws(BinaryDecodingError) -> DealFacts {
        let source = try r.u32()
        let pipeline = try r.u32()
        let owner = try r.u32()
        let team = try r.u32()
        let leadSource = try r.u32()
        let account = try r.u32()
        guard let status = DealStatus(rawValue: try r.u8("status")) else {
            throw BinaryDecodingError("bad deal status")
        }
        let pipelineIndex = try r.u16()
        let furthest = Int16(bitPattern: try r.u16())
        let amount = try r.f64()
        let created = Instant(nanoseconds: try r.i128())
        let closed = try r.u8() == 0 ? nil : Instant(nanoseconds: try r.i128())
        return DealFacts(
            source: source,
            pipeline: pipeline,
            owner: owner,
            team: team,
            leadSource: leadSource,
            account: account,
            status: status,
            pipelineIndex: pipelineIndex,
            furthest: furthest,
            amount: amount,
            createdAt: created,
            closedAt: closed
        )
    }

    static func readSpend(_ r: inout BinaryReader) throws(BinaryDecodingError) -> SpendFacts {
        SpendFacts(leadSource: try r.u32(), amount: try r.f64(), date: Instant(nanoseconds: try r.i128()))
    }

    static func readAccount(_ r: inout BinaryReader) throws(BinaryDecodingError) -> AccountFacts {
        let source = try r.u32()
        let account = try r.u32()
        let churned = try r.u8() == 0 ? nil : Instant(nanoseconds: try r.i128())
        return AccountFacts(source: source, account: account, churnedAt: churned)
    }
}
