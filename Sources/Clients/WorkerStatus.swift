public import ZeroMQ

/// The daemon's list of worker sessions, asked for with `STATUS` on the snapshot endpoint
/// (docs/workers.md): what `dealstream workers` prints and the scale-out bench polls.
public enum WorkerStatus {
    /// Why no list came back: no answer in time, or the daemon answered something else.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// The JSON object the daemon answers, as bytes.
    public static func fetch(
        context: ZMQContext,
        endpoint: String,
        timeoutMilliseconds: Int = 5000
    ) throws -> [UInt8] {
        let socket = try ZMQSocket(context: context, type: .dealer)
        defer { socket.close() }
        try socket.connect(endpoint)
        try socket.send([[], Array("STATUS".utf8)])
        var poller = ZMQPoller()
        poller.add(socket)
        guard try poller.poll(timeoutMilliseconds: timeoutMilliseconds)[0], let frames = try socket.receive() else {
            throw Failure(
                description: "no answer from \(endpoint) within \(timeoutMilliseconds) ms (is the daemon running?)"
            )
        }
        let body = frames.first?.isEmpty == true ? Array(frames.dropFirst()) : frames
        guard body.count == 2, body[0] == Array("STATUS".utf8) else {
            let reason = body.count > 1 ? String(decoding: body.last!, as: UTF8.self) : "unexpected answer"
            throw Failure(description: "\(endpoint): \(reason)")
        }
        return body[1]
    }
}
