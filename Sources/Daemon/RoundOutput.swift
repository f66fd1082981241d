import PipelineMetrics
import Wire

/// One round as subscribers receive it, made by `PublishedState.apply` on the loop thread
/// and rendered and sent by the `UpdatesPublisher` on its own thread.
///
/// Exists so that rendering and sending (most of what a round costs) run beside the loop
/// instead of in it: the loop only stores the round's values and copies out what is sent.
/// It owns everything it needs (each update's topic and labels, its values, the shapes'
/// renderings), so the other thread shares nothing with the loop.
struct RoundOutput: Sendable {
    /// One message: its topic and labels at `text[start...]` (`topicCount` then
    /// `labelCount` bytes), its shape (< 0: a removal), its values at `words[offset...]`
    /// and its `seq`.
    struct Update: Sendable {
        var start: UInt32
        var topicCount: UInt32
        var labelCount: UInt32
        var shape: Int32
        var offset: UInt32
        var seq: UInt64
    }

    /// The position of the round: every update's `log_seq`, and `_progress`'s.
    var logSeq: UInt64
    /// The `seq` `_progress` carries: that of the last update published.
    var seq: UInt64
    var updates: [Update] = []
    var text: [UInt8] = []
    var words: [UInt64] = []
    /// The catalog's renderings by shape id.
    var fields: [Topics.PayloadFields] = []

    /// Renders each update into one reused buffer and hands it to `send` with its topic
    /// (both lent for the call), then `_progress`.
    func render(
        _ send: (_ topic: UnsafeBufferPointer<UInt8>, _ payload: UnsafeBufferPointer<UInt8>) throws -> Void
    )
        throws
    {
        var out: [UInt8] = []
        out.reserveCapacity(512)
        try text.withUnsafeBufferPointer { text in
            try words.withUnsafeBufferPointer { words in
                try fields.withUnsafeBufferPointer { fields in
                    for update in updates {
                        let topicEnd = Int(update.start) + Int(update.topicCount)
                        out.removeAll(keepingCapacity: true)
                        out.append(
                            contentsOf: UnsafeBufferPointer(
                                rebasing: text[topicEnd..<(topicEnd + Int(update.labelCount))]
                            )
                        )
                        if update.shape < 0 {
                            Topics.appendRemoval(seq: update.seq, logSeq: logSeq, to: &out)
                        } else {
                            let shape = fields[Int(update.shape)]
                            let start = Int(update.offset)
                            Topics.appendValues(
                                shape,
                                UnsafeBufferPointer(rebasing: words[start..<(start + shape.count)]),
                                seq: update.seq,
                                logSeq: logSeq,
                                to: &out
                            )
                        }
                        try out.withUnsafeBufferPointer { payload in
                            try send(UnsafeBufferPointer(rebasing: text[Int(update.start)..<topicEnd]), payload)
                        }
                    }
                }
            }
        }
        let progress = Topics.position(seq: seq, logSeq: logSeq)
        try Topics.progress.withUnsafeBufferPointer { topic in
            try progress.withUnsafeBufferPointer { try send(topic, $0) }
        }
    }
}
