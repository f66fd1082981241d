/// Interns strings to dense `UInt32` ids.
///
/// The daemon interns every dimension key (team, owner, source, …) once and sends the
/// workers only ids; the workers receive the same table, entry by entry, so an id means
/// the same string in every process. Ids are never reused.
///
/// The reverse map (string → id) is only built for the strings `intern` has to look at:
/// a worker only appends entries and reads them by id, and with a million deals' accounts
/// in the table that map would cost each worker about 10 MB it never reads.
public struct StringTable: Sendable {
    public private(set) var strings: [String] = []
    private var ids: [String: UInt32] = [:]
    /// How many of `strings` are in `ids` (entries appended since are added by `intern`).
    private var indexed = 0

    public init() {}

    public var count: Int { strings.count }

    /// The id of `s`, adding it if new.
    public mutating func intern(_ s: String) -> UInt32 {
        if indexed < strings.count { indexAppended() }
        if let id = ids[s] { return id }
        let id = UInt32(strings.count)
        strings.append(s)
        ids[s] = id
        indexed = strings.count
        return id
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
