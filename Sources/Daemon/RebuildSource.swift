import DealModel
import PipelineMetrics
import Wire

/// Every current fact at one input position, with the string table then: what a joining
/// worker is rebuilt from. Shared (a reference) by the sessions rebuilt at that position;
/// each projects and encodes its chunks only as they are sent, so a rebuild never holds
/// an encoded copy per family.
final class RebuildSource {
    let logSeq: UInt64
    let strings: [String]
    let facts: [FactChange]
    init(logSeq: UInt64, strings: [String], facts: [FactChange]) {
        self.logSeq = logSeq
        self.strings = strings
        self.facts = facts
    }

    /// The `FACTS` message of one rebuild chunk: up to `count` facts from `start` as
    /// `projection`'s family sees them (the first chunk also carries every string), and
    /// where the next chunk starts.
    func message(from start: Int, count: Int, projection: FamilyProjection) -> (message: [[UInt8]], end: Int) {
        let end = min(start + count, facts.count)
        let projected = facts[start..<end].compactMap(projection.project)
        let header = WorkerLink.FactBatch.encodeHeader(
            logSeq: logSeq,
            wantsResult: end == facts.count,
            firstStringID: start == 0 ? 0 : UInt32(strings.count),
            strings: start == 0 ? strings[...] : strings[strings.count...]
        )
        return (
            [Array(WorkerLink.Command.facts.rawValue.utf8), header, WorkerLink.FactBatch.encodeChanges(projected)], end
        )
    }
}
