#if canImport(Glibc)
import Glibc
#endif

/// Interns strings to dense `UInt32` ids.
///
/// The daemon interns every dimension key (team, owner, source, …) once and sends the
/// workers only ids; the workers receive the same table, entry by entry, so an id means
/// the same string in every process. Ids are never reused.
///
/// The reverse map (string → id) is only built for the strings `intern` has to look at:
/// a worker only appends entries and reads them by id, and with a million deals' accounts
/// in the table that map would cost each worker about 10 MB it never reads.
///
/// Two reverse maps, one meaning: `ids` is keyed by `String` (canonical equivalence, so
/// `"\u{212A}"`, the Kelvin sign, and `"K"` are one entry, as `String ==` says), and
/// `bytes` is a cache in front of it keyed by the exact UTF-8 bytes that were interned.
/// Equal bytes are always equal strings, so a hit in the cache is the id `ids` would give;
/// a miss asks `ids` and remembers the bytes. The cache is what a replay interns through
/// (`intern(utf8:)`, from the record's bytes, with no `String` made and no `Hasher` run).
public struct StringTable: Sendable {
    public private(set) var strings: [String] = []
    private var ids: [String: UInt32] = [:]
    /// How many of `strings` are in `ids` (entries appended since are added by `intern`).
    private var indexed = 0
    /// Open addressing over (32 bits of hash, id + 1); empty until something is interned.
    private var byteSlots: [UInt64] = []
    private var byteCount = 0
    private let seed = UInt64.random(in: 1...UInt64.max)

    public init() {}

    public var count: Int { strings.count }

    /// The id of `s`, adding it if new.
    public mutating func intern(_ s: String) -> UInt32 {
        var bytes = s
        return bytes.withUTF8 { intern(utf8: UnsafeRawBufferPointer($0), string: s) }
    }

    /// The id of the string whose UTF-8 bytes are `utf8` (which must be valid UTF-8),
    /// adding it if new; the same id `intern(String(decoding: utf8, as: UTF8.self))` gives.
    public mutating func intern(utf8: UnsafeRawBufferPointer) -> UInt32 {
        intern(utf8: utf8, string: nil)
    }

    private mutating func intern(utf8: UnsafeRawBufferPointer, string: String?) -> UInt32 {
        if byteSlots.isEmpty { byteSlots = [UInt64](repeating: 0, count: 64) }
        let h = StableHash.hash64(utf8, seed: seed)
        let tag = h >> 32
        let mask = byteSlots.count - 1
        var i = Int(truncatingIfNeeded: h) & mask
        while true {
            let slot = byteSlots[i]
            if slot == 0 { break }
            if slot >> 32 == tag {
                let id = UInt32(truncatingIfNeeded: slot) - 1
                if StringTable.equal(strings[Int(id)], utf8) { return id }
            }
            i = (i + 1) & mask
        }
        let id = internByString(string ?? String(decoding: utf8, as: UTF8.self))
        // Only bytes that are the entry's own can ever hit (a hit compares with the
        // entry): another spelling of it is asked of `ids` each time.
        guard StringTable.equal(strings[Int(id)], utf8) else { return id }
        byteSlots[i] = tag << 32 | UInt64(id + 1)
        byteCount += 1
        if byteCount * 4 > byteSlots.count * 3 { growByteSlots() }
        return id
    }

    private mutating func internByString(_ s: String) -> UInt32 {
        if indexed < strings.count { indexAppended() }
        if let id = ids[s] { return id }
        let id = UInt32(strings.count)
        strings.append(s)
        ids[s] = id
        indexed = strings.count
        return id
    }

    /// Whether `s` is exactly the bytes `utf8`.
    @inline(__always)
    static func equal(_ s: String, _ utf8: UnsafeRawBufferPointer) -> Bool {
        if let same = s.utf8.withContiguousStorageIfAvailable({ stored in
            stored.count == utf8.count
                && (utf8.isEmpty || memcmp(stored.baseAddress!, utf8.baseAddress!, utf8.count) == 0)
        }) {
            return same
        }
        return s.utf8.elementsEqual(utf8)
    }

    /// Doubles the byte cache; every slot holds an entry's own bytes, so each is rehashed
    /// from its string.
    private mutating func growByteSlots() {
        let old = byteSlots
        byteSlots = [UInt64](repeating: 0, count: old.count * 2)
        let mask = byteSlots.count - 1
        for slot in old where slot != 0 {
            var s = strings[Int(UInt32(truncatingIfNeeded: slot) - 1)]
            let h = s.withUTF8 { StableHash.hash64(UnsafeRawBufferPointer($0), seed: seed) }
            var i = Int(truncatingIfNeeded: h) & mask
            while byteSlots[i] != 0 { i = (i + 1) & mask }
            byteSlots[i] = slot
        }
    }

    private mutating func indexAppended() {
        for i in indexed..<strings.count where ids[strings[i]] == nil { ids[strings[i]] = UInt32(i) }
        indexed = strings.count
    }

    /// Appends an entry received from the daemon; its id must be the next one.
    public mutating func append(_ s: String) {
        strings.append(s)
    }

    public subscript(id: UInt32) -> String { strings[Int(id)] }
}
