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

    /// The `FACTS` message of one rebuild chunk of `lane`: up to `count` facts from
    /// `start` as `projection`'s family sees them, with the strings the session has not
    /// been sent yet (`stringsSent` of them it has), and where the next chunk starts. The
    /// last chunk asks for a result: the lane's whole state.
    func message(
        lane: UInt32,
        from start: Int,
        count: Int,
        stringsSent: Int,
        projection: FamilyProjection
    ) -> (message: [[UInt8]], end: Int) {
        let end = min(start + count, facts.count)
        let projected = facts[start..<end].compactMap(projection.project)
        let newStrings = stringsSent < strings.count ? strings[stringsSent...] : []
        let header = WorkerLink.FactBatch.encodeHeader(
            logSeq: logSeq,
            wantsResult: end == facts.count,
            isLastChunk: end == facts.count,
            lane: lane,
            firstStringID: UInt32(stringsSent),
            strings: newStrings
        )
        return ([WorkerLink.Command.facts.frame, header, WorkerLink.FactBatch.encodeChanges(projected)], end)
    }
}
