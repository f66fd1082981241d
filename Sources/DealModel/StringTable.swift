/// Interns strings to dense `UInt32` ids.
///
/// The daemon interns every dimension key (team, owner, source, …) once and sends the
/// workers only ids; the workers receive the same table, entry by entry, so an id means
/// the same string in every process. Ids are never reused.
public struct StringTable: Sendable {
    public private(set) var strings: [String] = []
    private var ids: [String: UInt32] = [:]

    public init() {}

    public var count: Int { strings.count }

    /// The id of `s`, adding it if new.
    public mutating func intern(_ s: String) -> UInt32 {
        if let id = ids[s] { return id }
        let id = UInt32(strings.count)
        strings.append(s)
        ids[s] = id
        return id
    }

    /// Appends an entry received from the daemon; its id must be the next one.
    public mutating func append(_ s: String) {
        ids[s] = UInt32(strings.count)
        strings.append(s)
    }

    public subscript(id: UInt32) -> String { strings[Int(id)] }
}
