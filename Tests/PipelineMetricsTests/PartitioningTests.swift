import DealModel
import Testing

@testable import PipelineMetrics

/// A series' partition is the stable hash of `<dimension>/<key>` modulo the count: the
/// definition every process (daemon, workers, any host) must agree on, here computed from
/// the bytes spelled out.
struct PartitioningTests {
    @Test func aPartitionIsTheStableHashOfDimensionSlashKey() {
        let keys = ["rep-17", "EMEA North", "Verhandlung ü", "", String(repeating: "k", count: 300), "*"]
        for dimension in Dimension.allCases {
            for key in keys {
                for count in [1, 7, 64, 1024] {
                    let spelled = Array("\(dimension.name)/\(key)".utf8)
                    let expected = Int(StableHash.hash64(spelled) % UInt64(count))
                    #expect(Partitioning.partition(of: dimension, key: key, count: count) == expected)
                    #expect(Partitioning.partition(of: dimension, keyBytes: Array(key.utf8), count: count) == expected)
                }
            }
        }
    }
}
