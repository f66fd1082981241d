/// An open-addressing hash table from a packed cell key to its dense index.
///
/// The cell lookup runs about 36 times per fact change (old and new facts × 6 dimensions ×
/// 3 periods) in every worker; a `Dictionary` pays for a seeded SipHash each time, this
/// pays for one multiply.
struct CellTable: Sendable {
    private var keys: [UInt64] = [UInt64](repeating: CellTable.empty, count: 1024)
    private var values: [Int32] = [Int32](repeating: 0, count: 1024)
    private var count = 0
    private static let empty = UInt64.max

    /// Fibonacci hashing: the *high* bits of the product depend on every bit of the key
    /// (the low bits would ignore the key's upper half, and so the string id).
    @inline(__always)
    private func slot(_ key: UInt64, mask: Int) -> Int {
        let mixed = (key ^ (key >> 29)) &* 0x9E37_79B9_7F4A_7C15
        return Int(truncatingIfNeeded: mixed >> UInt64(64 - (mask + 1).trailingZeroBitCount)) & mask
    }

    func find(_ key: UInt64) -> Int? {
        let mask = keys.count - 1
        var i = slot(key, mask: mask)
        while true {
            let k = keys[i]
            if k == key { return Int(values[i]) }
            if k == CellTable.empty { return nil }
            i = (i + 1) & mask
        }
    }

    mutating func insert(_ key: UInt64, _ value: Int) {
        if (count + 1) * 4 > keys.count * 3 { grow() }
        let mask = keys.count - 1
        var i = slot(key, mask: mask)
        while keys[i] != CellTable.empty && keys[i] != key { i = (i + 1) & mask }
        if keys[i] == CellTable.empty { count += 1 }
        keys[i] = key
        values[i] = Int32(value)
    }

    private mutating func grow() {
        let oldKeys = keys
        let oldValues = values
        keys = [UInt64](repeating: CellTable.empty, count: oldKeys.count * 2)
        values = [Int32](repeating: 0, count: oldKeys.count * 2)
        count = 0
        for (i, k) in oldKeys.enumerated() where k != CellTable.empty { insert(k, Int(oldValues[i])) }
    }
}
