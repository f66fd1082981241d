public import DealModel

/// How a family's series are split between worker processes: into a fixed number of
/// partitions (`workers.partitions`, fixed for a data directory) by a stable hash of
/// `(dimension, key)`. All periods of one key live in one partition, so a partition never
/// needs another's aggregates, and the answers never depend on which process owns which.
public enum Partitioning {
    /// The partition of the series of `key` in `dimension`, out of `count`.
    public static func partition(of dimension: Dimension, key: String, count: Int) -> Int {
        partition(of: dimension, keyBytes: key.utf8, count: count)
    }

    /// `partition(of:key:count:)` of a key given as its UTF-8 bytes.
    /// The hashed bytes are `<dimension>/<key>`, written on the stack (no array per call).
    public static func partition<C: Collection<UInt8>>(of dimension: Dimension, keyBytes: C, count: Int) -> Int {
        var name = dimension.name
        return name.withUTF8 { prefix in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: prefix.count + 1 + keyBytes.count) { buffer in
                _ = buffer.initialize(fromContentsOf: prefix)
                buffer[prefix.count] = 0x2F
                _ = UnsafeMutableBufferPointer(rebasing: buffer[(prefix.count + 1)...]).initialize(
                    fromContentsOf: keyBytes
                )
                return Int(StableHash.hash64(UnsafeRawBufferPointer(buffer)) % UInt64(count))
            }
        }
    }
}

/// A set of partitions out of `count`: what one worker lane computes.
public struct PartitionSet: Sendable, Equatable, CustomStringConvertible {
    public let count: Int
    private var bits: [UInt64]

    /// The empty set out of `count` partitions.
    public init(count: Int) {
        precondition(count >= 1, "at least one partition")
        self.count = count
        bits = [UInt64](repeating: 0, count: (count + 63) / 64)
    }

    /// `members` out of `count`; members outside `0..<count` are ignored.
    public init<S: Sequence>(count: Int, members: S) where S.Element == Int {
        self.init(count: count)
        for p in members where p >= 0 && p < count { insert(p) }
    }

    /// Every partition of `count`.
    public static func all(count: Int) -> PartitionSet { PartitionSet(count: count, members: 0..<count) }

    @inline(__always)
    public func contains(_ p: Int) -> Bool { p >= 0 && p < count && bits[p >> 6] & (1 << UInt64(p & 63)) != 0 }

    public mutating func insert(_ p: Int) { bits[p >> 6] |= 1 << UInt64(p & 63) }
    public mutating func remove(_ p: Int) { bits[p >> 6] &= ~(1 << UInt64(p & 63)) }

    public var isEmpty: Bool { bits.allSatisfy { $0 == 0 } }
    public var members: [Int] { (0..<count).filter(contains) }
    public var memberCount: Int { bits.reduce(0) { $0 + $1.nonzeroBitCount } }

    /// Whether this set holds the series of `key` in `dimension`.
    public func owns(dimension: Dimension, key: String) -> Bool {
        contains(Partitioning.partition(of: dimension, key: key, count: count))
    }

    /// Members as ranges, for logs: `0-15,32,40-47`.
    public var description: String {
        var parts: [String] = []
        var start: Int?
        for p in 0...count {
            if p < count && contains(p) {
                if start == nil { start = p }
            } else if let s = start {
                parts.append(s == p - 1 ? "\(s)" : "\(s)-\(p - 1)")
                start = nil
            }
        }
        return parts.isEmpty ? "none" : parts.joined(separator: ",")
    }
}
