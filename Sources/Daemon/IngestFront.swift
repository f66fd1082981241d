import DealModel
import Dispatch
import EventEncoding
import Logging
import Synchronization
import Wire
import ZeroMQ

/// The ingest endpoint's own thread: everything about a request that needs no state.
///
/// It owns the ROUTER socket, reads requests, parses their frames and decodes and
/// validates every event (the per-event cost that needs no record store), and answers by
/// itself what needs no state (`PING`, malformed requests). Decoded requests go to the
/// loop thread, which resolves them against the store in order, commits and hands back
/// the replies, which this thread sends. So the loop spends nothing on JSON or protobuf.
///
/// The two threads share two queues under a mutex; a one-byte message on an inproc PAIR
/// wakes the other side. Bounded: the front stops reading while `maxQueued` requests wait
/// for the loop (the ROUTER's receive high-water mark then pushes back on the clients).
final class IngestFront: Sendable {
    /// One decoded `EVENTS` request.
    struct Request: Sendable {
        var envelope: [[UInt8]]
        var requestID: [UInt8]
        var encoding: EventEncoding
        /// The event frames as received (what the log keeps) and their decoding.
        var frames: [[UInt8]]
        var decoded: [Result<Event, EventRejection>]
        /// When the front read it (`DispatchTime` uptime ns), for the ACK latency.
        var received: UInt64 = 0
    }

    private let requests = Mutex<[Request]>([])
    private let replies = Mutex<[[[UInt8]]]>([])
    private let maxQueued = 512
    private let thread: Mutex<ZMQThread?> = Mutex(nil)
    /// Set by the loop after its last group: the front sends what is left and ends.
    private let loopFinished = Atomic<Bool>(false)
    static let wakeEndpoint = "inproc://dealstream-ingest-front"
    private let metrics: DaemonMetrics?

    /// Starts the thread, which binds `endpoint`; returns once it is bound (or throws why not).
    init(
        context: ZMQContext,
        endpoint: String,
        configuration: DaemonConfiguration,
        model: Model,
        logger: Logger,
        stop: StopFlag,
        metrics: DaemonMetrics? = nil
    ) throws {
        self.metrics = metrics
        let bound = DispatchSemaphore(value: 0)
        let bindError = Mutex<(any Error)?>(nil)
        let decoder = EventDecoder(model: model)
        thread.withLock {
            $0 = ZMQThread(name: "ds-ingest") { [self] in
                _ = ThreadSlice.request()
                var didBind = false
                do {
                    let router = try ZMQSocket(context: context, type: .router, lingerMilliseconds: 1000)
                    try router.set(.receiveHighWaterMark, 10_000)
                    try router.set(.sendHighWaterMark, 0)
                    // libzmq checks this per frame: frames up to 8× the limit are read and
                    // answered with ERR; a peer sending a bigger one is disconnected first.
                    try router.setMaximumMessageSize(Int64(configuration.maxFrameBytes) * 8)
                    if let curve = configuration.ingestCurve {
                        try router.setCurveServer(secretKey: curve.keyPair.secretKey)
                        try router.setZAPDomain(IngestCurve.zapDomain)
                        router.recordsUserID = true
                    }
                    try router.bind(endpoint)
                    let wake = try ZMQSocket(context: context, type: .pair, lingerMilliseconds: 0)
                    try wake.connect(IngestFront.wakeEndpoint)
                    defer {
                        router.close()
                        wake.close()
                    }
                    didBind = true
                    bound.signal()
                    try serve(
                        router: router,
                        wake: wake,
                        decoder: decoder,
                        configuration: configuration,
                        logger: logger,
                        stop: stop
                    )
                } catch {
                    guard didBind else {
                        bindError.withLock { $0 = error }
                        bound.signal()
                        return
                    }
                    logger.error("Ingest thread stopped", metadata: ["error": "\(error)"])
                    stop.set()
                    loopFinished.store(true, ordering: .releasing)
                }
            }
        }
        bound.wait()
        if let error = bindError.withLock({ $0 }) { throw error }
    }

    /// Called by the loop once it takes no more requests: the replies handed over so far
    /// are sent, then the thread ends. Waits for that.
    func finish(wake: ZMQSocket) {
        loopFinished.store(true, ordering: .releasing)
        _ = try? wake.send([[1]], blocking: false)
        thread.withLock { $0 }?.join()
    }

    /// Takes up to `limit` requests (and about `eventLimit` events) for the loop.
    func take(limit: Int, eventLimit: Int) -> [Request] {
        requests.withLock { queue in
            var n = 0
            var events = 0
            while n < queue.count && n < limit && events < eventLimit {
                events += queue[n].frames.count
                n += 1
            }
            defer { queue.removeFirst(n) }
            return Array(queue.prefix(n))
        }
    }

    var hasRequests: Bool { requests.withLock { !$0.isEmpty } }

    /// Hands replies (envelope + frames) to the front thread and wakes it.
    func send(_ messages: [[[UInt8]]], wake: ZMQSocket) throws {
        guard !messages.isEmpty else { return }
        replies.withLock { $0.append(contentsOf: messages) }
        _ = try wake.send([[1]], blocking: false)
    }

    private func serve(
        router: ZMQSocket,
        wake: ZMQSocket,
        decoder: EventDecoder,
        configuration: DaemonConfiguration,
        logger: Logger,
        stop: StopFlag
    ) throws {
        func sendReplies() throws {
            for message in replies.withLock({ r in
                defer { r.removeAll() }
                return r
            }) {
                try router.send(message, blocking: false)
            }
        }
        while !loopFinished.load(ordering: .acquiring) {
            // After a stop request nothing new is read: what was read gets its reply.
            let reading = !stop.isSet && requests.withLock { $0.count } < maxQueued
            var poller = ZMQPoller()
            poller.add(wake)
            if reading { poller.add(router) }
            let ready = try poller.poll(timeoutMilliseconds: 100)
            if ready[0] {
                while try wake.receive(blocking: false) != nil {}
                try sendReplies()
            }
            guard reading, ready.count > 1, ready[1] else { continue }
            var decoded: [Request] = []
            while decoded.count < 64, let frames = try router.receive(blocking: false) {
                let readAt = DispatchTime.now().uptimeNanoseconds
                let (envelope, body) = IngestProtocol.splitEnvelope(frames)
                logger.debug(
                    "Ingest request",
                    metadata: [
                        "connector": "\(router.lastUserID ?? "unauthenticated")", "request.frames": "\(body.count)",
                    ]
                )
                switch IngestProtocol.parse(
                    body,
                    maxBatchEvents: configuration.maxBatchEvents,
                    maxFrameBytes: configuration.maxFrameBytes,
                    contentTypes: EventEncoding.contentTypes
                ) {
                case .failure(let error):
                    metrics?.malformed()
                    try router.send(
                        envelope + [IngestProtocol.err, error.requestID, Array(error.reason.utf8)],
                        blocking: false
                    )
                case .success(.ping(let requestID)):
                    metrics?.requestReceived("ping")
                    try router.send(envelope + [IngestProtocol.pong, requestID], blocking: false)
                case .success(.events(let requestID, let contentType, let events)):
                    metrics?.requestReceived("events")
                    let encoding = EventEncoding(contentType: contentType) ?? .json
                    decoded.append(
                        Request(
                            envelope: envelope,
                            requestID: requestID,
                            encoding: encoding,
                            frames: Array(events),
                            decoded: events.map { encoding.decode($0, with: decoder) },
                            received: readAt
                        )
                    )
                }
            }
            if !decoded.isEmpty {
                requests.withLock { $0.append(contentsOf: decoded) }
                _ = try wake.send([[1]], blocking: false)
            }
        }
        try sendReplies()
    }
}
