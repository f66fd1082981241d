public import DealModel

/// Which series a shard owns: all periods of one `(dimension, key)` live on one shard,
/// chosen by a stable hash, so shards never need each other's aggregates.
public struct ShardAssignment: Sendable, Equatable {
    public var shard: Int
    public var shards: Int

    public init(shard: Int, shards: Int) {
        precondition(shards >= 1 && shard >= 0 && shard < shards, "shard must be in 0..<shards")
        self.shard = shard
        self.shards = shards
    }

    public func owns(dimension: Dimension, key: String) -> Bool {
        shards == 1 || ShardAssignment.shard(of: dimension, key: key, shards: shards) == shard
    }

    public static func shard(of dimension: Dimension, key: String, shards: Int) -> Int {
        var bytes = Array(dimension.name.utf8)
        bytes.append(0x2F)
        bytes.append(contentsOf: key.utf8)
        return Int(StableHash.hash64(bytes) % UInt64(shards))
    }
}
