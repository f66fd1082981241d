import DealModel
import Dispatch
import EventEncoding
import Foundation
import Histogram
import Wire
import ZeroMQ

/// ACK latency and event → published update latency at a steady offered rate.
///
/// Requests carry `rate / 1000` events (at least one) and are sent evenly spaced, so
/// 100 events/s is one 1-event request every 10 ms and 10,000 events/s one 10-event
/// request every millisecond (how webhook connectors send). ACK latency is send → ACK;
/// publication latency is send → the first `_progress` whose `log_seq` covers the ACK's.
/// Both go into HdrHistograms (microseconds, three significant digits).
enum Latency {
    struct Result {
        var ack: Histogram<UInt64>
        var publish: Histogram<UInt64>
        /// Events acknowledged per second over the run: below the offered rate when the
        /// daemon is saturated.
        var achievedRate: Double
    }

    static func run(
        events: [[UInt8]],
        encoding: EventEncoding,
        modelPath: String,
        rate: Int,
        seconds: Double
    ) throws -> Result {
        let daemon = try BenchDaemon(modelPath: modelPath, shards: 1)
        defer { daemon.stop() }
        let context = try ZMQContext()
        try daemon.waitReady(context: context)
        let sub = try ZMQSocket(context: context, type: .sub)
        try sub.subscribe(Topics.progress)
        try sub.connect(daemon.updates)
        let dealer = try ZMQSocket(context: context, type: .dealer)
        try dealer.set(.sendHighWaterMark, 0)
        try dealer.connect(daemon.ingest)
        Thread.sleep(forTimeInterval: 0.3)
        let perRequest = max(1, rate / 1000)
        let requests = max(1, Int(seconds * Double(rate) / Double(perRequest)))
        let interval = UInt64(perRequest) * 1_000_000_000 / UInt64(max(rate, 1))
        let contentType = Array(encoding.contentType.utf8)
        var ack = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        var publish = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        var pendingPublish: [(logSeq: UInt64, sentAt: UInt64)] = []
        var pendingHead = 0
        var sentAt = [UInt64](repeating: 0, count: requests)
        var poller = ZMQPoller()
        poller.add(dealer)
        poller.add(sub)
        let start = DispatchTime.now().uptimeNanoseconds
        let giveUp = start + UInt64(seconds * 20 * 1e9)
        var next = 0
        var acked = 0
        var published = 0
        while published < requests && DispatchTime.now().uptimeNanoseconds < giveUp {
            let now = DispatchTime.now().uptimeNanoseconds
            while next < requests && now >= start + UInt64(next) * interval {
                let slice = (0..<perRequest).map { events[(next * perRequest + $0) % events.count] }
                try dealer.send([IngestProtocol.events, Array(String(next).utf8), contentType] + slice)
                sentAt[next] = DispatchTime.now().uptimeNanoseconds
                next += 1
            }
            let ready = try poller.poll(timeoutMilliseconds: 1)
            if ready[0] {
                while let reply = try dealer.receive(blocking: false) {
                    guard reply.count == 3, let n = Int(String(decoding: reply[1], as: UTF8.self)), n < requests,
                        let body = IngestProtocol.AckBody.decode(reply[2])
                    else { continue }
                    let at = DispatchTime.now().uptimeNanoseconds
                    _ = ack.record((at - sentAt[n]) / 1000)
                    pendingPublish.append((body.logSeq, sentAt[n]))
                    acked += 1
                }
            }
            if ready[1] {
                while let message = try sub.receive(blocking: false) {
                    guard message.count == 2, let position = (try? JSONParser.parse(message[1]))?["log_seq"]?.position
                    else { continue }
                    let at = DispatchTime.now().uptimeNanoseconds
                    while pendingHead < pendingPublish.count, pendingPublish[pendingHead].logSeq <= position {
                        _ = publish.record((at - pendingPublish[pendingHead].sentAt) / 1000)
                        pendingHead += 1
                        published += 1
                    }
                }
            }
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return Result(ack: ack, publish: publish, achievedRate: Double(acked * perRequest) / elapsed)
    }
}

extension Histogram where Count == UInt64 {
    /// The value at a percentile, in milliseconds (recorded in microseconds).
    func milliseconds(_ percentile: Double) -> Double {
        totalCount == 0 ? .nan : Double(valueAtPercentile(percentile)) / 1000
    }
}
