public import DealModel

/// The private protocol between the daemon and its metric workers.
///
/// Modelled on the ZeroMQ Guide's Majordomo and Paranoid Pirate patterns: a worker's
/// DEALER connects to the daemon's worker ROUTER (ipc for spawned workers, tcp for
/// workers on other hosts), announces the metric family and shard it serves with
/// `READY`, and both sides send `HEARTBEAT` when otherwise idle. The daemon answers
/// `RESET` (the model, and a fresh session), streams `FACTS` batches, and the worker
/// answers each batch that asks for it with `RESULT`: the series it changed, up to the
/// batch's log position.
public enum WorkerLink {
    public static let protocolVersion = 1

    public enum Command: String, Sendable {
        case ready = "READY"
        case heartbeat = "HEARTBEAT"
        case reset = "RESET"
        case facts = "FACTS"
        case result = "RESULT"
        case refused = "REFUSED"
    }

    /// What a worker announces.
    public struct Ready: Sendable, Equatable {
        public var family: String
        public var shard: Int
        public var shards: Int
        public var pid: Int

        public init(family: String, shard: Int, shards: Int, pid: Int) {
            self.family = family
            self.shard = shard
            self.shards = shards
            self.pid = pid
        }

        public func encode() -> [UInt8] {
            var w = BinaryWriter()
            w.u32(UInt32(WorkerLink.protocolVersion))
            w.string(family)
            w.u32(UInt32(shard))
            w.u32(UInt32(shards))
            w.u64(UInt64(pid))
            return w.bytes
        }

        public static func decode(_ bytes: [UInt8]) throws(BinaryDecodingError) -> Ready {
            var r = BinaryReader(bytes)
            let version = try r.u32("protocol version")
            guard version == UInt32(WorkerLink.protocolVersion) else {
                throw BinaryDecodingError("worker protocol \(version) is not \(WorkerLink.protocolVersion)")
            }
            let family = try r.string("family")
            let shard = Int(try r.u32("shard"))
            let shards = Int(try r.u32("shards"))
            let pid = try r.u64("pid")
            // Found by fuzzing: a pid above Int.max used to trap the daemon.
            guard pid <= UInt64(Int32.max) else { throw BinaryDecodingError("pid \(pid) out of range") }
            guard shards >= 1, shard < shards else {
                throw BinaryDecodingError("shard \(shard) of \(shards) out of range")
            }
            return Ready(family: family, shard: shard, shards: shards, pid: Int(pid))
        }
    }

    /// A batch of fact changes, valid up to `logSeq`. Sent as two frames: a header
    /// (position, new strings) that differs per worker session, and the changes, which
    /// are encoded once and sent to every worker.
    public struct FactBatch: Sendable {
        /// The log position every change up to here reflects.
        public var logSeq: UInt64
        /// Whether the worker must answer with a `RESULT` (false for rebuild chunks).
        public var wantsResult: Bool
        /// Id of the first new string; strings are sent once per session, in id order.
        public var firstStringID: UInt32
        public var strings: [String]
        public var changes: [FactChange]

        public init(logSeq: UInt64, wantsResult: Bool, firstStringID: UInt32, strings: [String], changes: [FactChange])
        {
            self.logSeq = logSeq
            self.wantsResult = wantsResult
            self.firstStringID = firstStringID
            self.strings = strings
            self.changes = changes
        }

        public static func encodeHeader(
            logSeq: UInt64,
            wantsResult: Bool,
            firstStringID: UInt32,
            strings: ArraySlice<String>
        ) -> [UInt8] {
            var w = BinaryWriter(capacity: 32 + strings.count * 16)
            w.u64(logSeq)
            w.u8(wantsResult ? 1 : 0)
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
            let wants = try r.u8("wants_result") != 0
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
                wantsResult: wants,
                firstStringID: first,
                strings: strings,
                changes: changes
            )
        }
    }

    /// The header of a `RESULT`; topic/payload frame pairs follow it (an empty payload
    /// frame means the series was removed).
    public struct ResultHeader: Sendable, Equatable {
        public var logSeq: UInt64
        public init(logSeq: UInt64) { self.logSeq = logSeq }
        public func encode() -> [UInt8] {
            var w = BinaryWriter()
            w.u64(logSeq)
            return w.bytes
        }
        public static func decode(_ bytes: [UInt8]) throws(BinaryDecodingError) -> ResultHeader {
            var r = BinaryReader(bytes)
            return ResultHeader(logSeq: try r.u64("log_seq"))
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
