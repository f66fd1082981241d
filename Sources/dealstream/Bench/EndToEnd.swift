import Clients
import Dispatch
import EventEncoding
import Foundation
import Synchronization
import Wire
import ZeroMQ

/// End-to-end ingest: from the first send until the published `log_seq` covers the last
/// ACK, with `connectors` clients sending pre-encoded batches in parallel.
enum EndToEnd {
    static func run(
        events: [[UInt8]],
        encoding: EventEncoding,
        modelPath: String,
        shards: Int,
        connectors: Int,
        batch: Int,
        window: Int,
        config: String? = nil,
        afterRun: ((BenchDaemon) -> Void)? = nil
    ) throws -> Double {
        let daemon = try BenchDaemon(modelPath: modelPath, shards: shards, config: config)
        defer { daemon.stop() }
        let context = try ZMQContext()
        try daemon.waitReady(context: context)
        let highest = LockedMax()
        let endpoint = daemon.ingest
        let contentType = encoding.contentType
        let started = DispatchTime.now().uptimeNanoseconds
        var threads: [ZMQThread] = []
        for c in 0..<connectors {
            let mine = stride(from: c, to: events.count, by: connectors).map { events[$0] }
            let batches = stride(from: 0, to: mine.count, by: batch).map {
                Array(mine[$0..<min($0 + batch, mine.count)])
            }
            threads.append(
                ZMQThread(name: "bench-connector-\(c)") {
                    guard let client = try? IngestClient(context: context, endpoint: endpoint, window: window) else {
                        return
                    }
                    try? client.send(batches: batches, contentType: contentType) { highest.record($0.body.logSeq) }
                }
            )
        }
        for t in threads { t.join() }
        try SnapshotProbe(context: context, endpoint: daemon.snapshot).waitUntilPublished(
            highest.value,
            timeoutMilliseconds: 300_000
        )
        let rate = Double(events.count) / (Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
        afterRun?(daemon)
        return rate
    }
}

/// The highest value recorded from several threads.
final class LockedMax: Sendable {
    private let highest = Atomic<UInt64>(0)
    func record(_ v: UInt64) { highest.max(v, ordering: .relaxed) }
    var value: UInt64 { highest.load(ordering: .relaxed) }
}
