import DealModel
import Dispatch
import Foundation
public import Wire
public import ZeroMQ

/// A connector's side of the ingest endpoint: batched `EVENTS` requests with a window of
/// requests in flight, ACKs matched by request id, and resends of what was not
/// acknowledged in time (versions make a resend harmless).
///
/// Blocking: run it on a `ZMQThread`, never on the cooperative pool.
public final class IngestClient {
    /// The outcome of one acknowledged request, handed to the caller's tally.
    public struct Acknowledged {
        public var requestNumber: Int
        public var body: IngestProtocol.AckBody
    }

    /// A request the daemon answered with `ERR`, or never answered.
    public struct RequestFailure: Error, CustomStringConvertible {
        public var requestNumber: Int
        public var reason: String
        public var description: String { "request \(requestNumber): \(reason)" }
    }

    /// The daemon refused this connector at the handshake: nothing it sends will be read,
    /// so waiting for an ACK is pointless (and libzmq will not reconnect).
    public struct Refused: Error, CustomStringConvertible {
        public var failure: ZMQHandshakeFailure
        /// The connector's CURVE public key, when it has one.
        public var publicKey: CurveKey?
        public var description: String {
            switch failure.kind {
            case .authentication(let status):
                return
                    "the daemon at \(failure.endpoint) refused this connector's CURVE key \(publicKey.map { "\($0)" } ?? "") "
                    + "(ZAP status \(status)): it is not in the daemon's ingest.curve.connectors"
            case .protocolError where failure.isMechanismMismatch && publicKey == nil:
                return "the daemon at \(failure.endpoint) requires CURVE: give --curve-server-key and --curve-key-file"
            case .protocolError where failure.isMechanismMismatch:
                return "the daemon at \(failure.endpoint) does not have CURVE on: leave out the --curve-* options"
            case .protocolError, .incomplete:
                return "\(failure)"
            }
        }
    }

    /// The caller stopped the client while it waited for the daemon (see `isCancelled`).
    public struct Cancelled: Error, CustomStringConvertible {
        public var description: String { "stopped while waiting for the daemon" }
    }

    /// Asked about every 100 ms while `send` or `ping` waits for the daemon: once it answers
    /// true they throw `Cancelled` instead of waiting out their timeouts and resends (a stop
    /// must not wait on a daemon that is not there). Unanswered requests are then simply
    /// not acknowledged.
    public var isCancelled: @Sendable () -> Bool = { false }

    let socket: ZMQSocket
    /// Reports a refused handshake, so a refused connector fails at once.
    private let handshakes: ZMQSocketMonitor
    private let publicKey: CurveKey?
    let endpoint: String
    let timeoutMilliseconds: Int
    let retries: Int
    let window: Int
    private let idPrefix: String
    /// Request ids stay unique across `send` calls, so a late ACK of an earlier call is never
    /// taken for one of a later call.
    private var requestsSent = 0

    /// Connects to the ingest `endpoint`; with `curve`, as a CURVE client (the daemon's
    /// `ingest.curve` must list `curve.keyPair.publicKey`, or no request is ever answered).
    public init(
        context: ZMQContext,
        endpoint: String,
        curve: CurveClientKeys? = nil,
        window: Int = 4,
        timeoutMilliseconds: Int = 10_000,
        retries: Int = 5
    ) throws {
        socket = try ZMQSocket(context: context, type: .dealer)
        try socket.set(.sendHighWaterMark, 0)
        try socket.set(.receiveHighWaterMark, 0)
        if let curve { try socket.setCurveClient(curve) }
        publicKey = curve?.keyPair.publicKey
        handshakes = try socket.monitorHandshakeFailures()
        try socket.connect(endpoint)
        self.endpoint = endpoint
        self.window = max(1, window)
        self.timeoutMilliseconds = timeoutMilliseconds
        self.retries = retries
        idPrefix = "send-\(getpid())-\(DispatchTime.now().uptimeNanoseconds % 1_000_000)-"
    }

    /// Sends every batch, keeping up to `window` in flight, and calls `onAck` for each
    /// ACK (in completion order). Throws on an `ERR` or when a request stays unanswered
    /// after `retries` resends.
    public func send(
        batches: [[[UInt8]]],
        contentType: String = IngestProtocol.jsonContentType,
        eventsPerSecond: Double? = nil,
        onAck: (Acknowledged) -> Void,
        onTick: () -> Void = {}
    ) throws {
        var iterator = batches.makeIterator()
        try send(
            nextBatch: { iterator.next() },
            contentType: contentType,
            eventsPerSecond: eventsPerSecond,
            onAck: onAck,
            onTick: onTick
        )
    }

    /// Like `send(batches:…)`, pulling batches from `nextBatch` (nil: no more) so a
    /// stream of any length is sent with only the requests in flight held in memory.
    public func send(
        nextBatch: () throws -> [[UInt8]]?,
        contentType: String = IngestProtocol.jsonContentType,
        eventsPerSecond: Double? = nil,
        onAck: (Acknowledged) -> Void,
        onTick: () -> Void = {}
    ) throws {
        let started = DispatchTime.now().uptimeNanoseconds
        var eventsSent = 0
        struct InFlight {
            var frames: [[UInt8]]
            var sentAt: UInt64
            var attempts: Int
        }
        var inFlight: [[UInt8]: (number: Int, request: InFlight)] = [:]
        var next = 0
        var pending = try nextBatch()
        var poller = ZMQPoller()
        poller.add(socket)
        let timeout = UInt64(timeoutMilliseconds) * 1_000_000
        while pending != nil || !inFlight.isEmpty {
            // Before every send: after a failed handshake libzmq drops the connection for
            // good, and a DEALER's blocking send would then wait forever.
            try throwIfRefused()
            while inFlight.count < window, let batch = pending {
                if let eventsPerSecond {
                    let due = started + UInt64(Double(eventsSent) / eventsPerSecond * 1e9)
                    if DispatchTime.now().uptimeNanoseconds < due { break }
                }
                eventsSent += batch.count
                let id = Array((idPrefix + String(requestsSent)).utf8)
                requestsSent += 1
                let frames = [IngestProtocol.events, id, Array(contentType.utf8)] + batch
                pending = try nextBatch()
                try socket.send(frames)
                inFlight[id] = (
                    next, InFlight(frames: frames, sentAt: DispatchTime.now().uptimeNanoseconds, attempts: 1)
                )
                next += 1
            }
            if try poller.poll(timeoutMilliseconds: 100)[0] {
                while let reply = try socket.receive(blocking: false) {
                    let frames = IngestProtocol.withoutDelimiter(reply)
                    guard frames.count == 3, let entry = inFlight[frames[1]] else { continue }
                    inFlight[frames[1]] = nil
                    if frames[0] == IngestProtocol.err {
                        throw RequestFailure(
                            requestNumber: entry.number,
                            reason: "ERR: " + String(decoding: frames[2], as: UTF8.self)
                        )
                    }
                    guard frames[0] == IngestProtocol.ack, let body = IngestProtocol.AckBody.decode(frames[2]) else {
                        throw RequestFailure(requestNumber: entry.number, reason: "unreadable reply")
                    }
                    onAck(Acknowledged(requestNumber: entry.number, body: body))
                }
            }
            try throwIfRefused()
            if isCancelled() { throw Cancelled() }
            let now = DispatchTime.now().uptimeNanoseconds
            for (id, entry) in inFlight where now - entry.request.sentAt > timeout {
                guard entry.request.attempts <= retries else {
                    throw RequestFailure(
                        requestNumber: entry.number,
                        reason: "no ACK from \(endpoint) after \(entry.request.attempts) attempts"
                    )
                }
                try socket.send(entry.request.frames)
                inFlight[id] = (
                    entry.number,
                    InFlight(frames: entry.request.frames, sentAt: now, attempts: entry.request.attempts + 1)
                )
            }
            onTick()
        }
    }

    /// Throws `Refused` once a handshake with the daemon has failed.
    private func throwIfRefused() throws {
        guard let failure = try handshakes.nextFailure() else { return }
        throw Refused(failure: failure, publicKey: publicKey)
    }

    /// `PING` → `PONG`: whether the daemon answers within the timeout.
    public func ping() throws -> Bool {
        let id = Array((idPrefix + "ping").utf8)
        try socket.send([IngestProtocol.ping, id])
        var poller = ZMQPoller()
        poller.add(socket)
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(timeoutMilliseconds) * 1_000_000
        while DispatchTime.now().uptimeNanoseconds < deadline {
            if try poller.poll(timeoutMilliseconds: 100)[0], let reply = try socket.receive(blocking: false) {
                if reply.count == 2 && reply[0] == IngestProtocol.pong && reply[1] == id { return true }
            }
            try throwIfRefused()
            if isCancelled() { throw Cancelled() }
        }
        return false
    }
}

/// Asks the snapshot endpoint for its position only (a prefix no topic has), to learn
/// when the published state reflects an acknowledged `log_seq`.
public final class SnapshotProbe {
    let socket: ZMQSocket

    public init(context: ZMQContext, endpoint: String) throws {
        socket = try ZMQSocket(context: context, type: .dealer)
        try socket.connect(endpoint)
    }

    public struct Timeout: Error, CustomStringConvertible {
        public var description: String
    }

    /// The published `log_seq` now.
    public func publishedLogSeq(timeoutMilliseconds: Int) throws -> UInt64 {
        try socket.send([IngestProtocol.snapshot, Array("_".utf8)])
        var poller = ZMQPoller()
        poller.add(socket)
        while try poller.poll(timeoutMilliseconds: timeoutMilliseconds)[0] {
            guard let frames = try socket.receive() else { continue }
            if frames.count == 2 && frames[0] == IngestProtocol.end, let position = try? JSONParser.parse(frames[1]),
                let logSeq = position["log_seq"]?.position
            {
                return logSeq
            }
        }
        throw Timeout(description: "no snapshot reply within \(timeoutMilliseconds) ms")
    }

    /// Polls until the published `log_seq` reaches `logSeq`.
    public func waitUntilPublished(_ logSeq: UInt64, timeoutMilliseconds: Int) throws {
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(timeoutMilliseconds) * 1_000_000
        while try publishedLogSeq(timeoutMilliseconds: timeoutMilliseconds) < logSeq {
            guard DispatchTime.now().uptimeNanoseconds < deadline else {
                throw Timeout(description: "published log_seq did not reach \(logSeq) within \(timeoutMilliseconds) ms")
            }
            Thread.sleep(forTimeInterval: 0.002)
        }
    }
}
