import CZeroMQ

/// The socket types dealstream uses.
public enum ZMQSocketType: Sendable {
    case router, dealer, req, rep, pub, sub, xpub, xsub, push, pull, pair

    var raw: Int32 {
        switch self {
        case .router: ZMQ_ROUTER
        case .dealer: ZMQ_DEALER
        case .req: ZMQ_REQ
        case .rep: ZMQ_REP
        case .pub: ZMQ_PUB
        case .sub: ZMQ_SUB
        case .xpub: ZMQ_XPUB
        case .xsub: ZMQ_XSUB
        case .push: ZMQ_PUSH
        case .pull: ZMQ_PULL
        case .pair: ZMQ_PAIR
        }
    }
}

/// Integer socket options dealstream sets (a subset of `zmq_setsockopt`'s).
public enum ZMQIntOption: Sendable {
    case linger, sendHighWaterMark, receiveHighWaterMark, routerMandatory, immediate
    case heartbeatInterval, heartbeatTimeout, heartbeatTTL, xpubNoDrop, sendTimeout, receiveTimeout
    case curveServer

    var raw: Int32 {
        switch self {
        case .linger: ZMQ_LINGER
        case .sendHighWaterMark: ZMQ_SNDHWM
        case .receiveHighWaterMark: ZMQ_RCVHWM
        case .routerMandatory: ZMQ_ROUTER_MANDATORY
        case .immediate: ZMQ_IMMEDIATE
        case .heartbeatInterval: ZMQ_HEARTBEAT_IVL
        case .heartbeatTimeout: ZMQ_HEARTBEAT_TIMEOUT
        case .heartbeatTTL: ZMQ_HEARTBEAT_TTL
        case .xpubNoDrop: ZMQ_XPUB_NODROP
        case .sendTimeout: ZMQ_SNDTIMEO
        case .receiveTimeout: ZMQ_RCVTIMEO
        case .curveServer: ZMQ_CURVE_SERVER
        }
    }
}

/// One libzmq socket, owned by exactly one thread.
///
/// ZeroMQ sockets are not thread-safe, so this type is deliberately not `Sendable`:
/// create it on the thread that will use it (a `ZMQThread`, never Swift's cooperative
/// pool) and close it there. Messages are multipart: an array of frames.
public final class ZMQSocket {
    let handle: UnsafeMutableRawPointer
    /// Keeps the context alive while the socket is open: terminating a context waits for
    /// its sockets to close.
    let context: ZMQContext
    /// Stable storage for the message being received: `zmq_msg_t` keeps small messages
    /// inline, so it must never live in a temporary.
    private let message: UnsafeMutablePointer<zmq_msg_t>
    private var closed = false

    /// Creates a socket with a finite linger (`lingerMilliseconds`), so closing the
    /// context never hangs on undelivered messages.
    public init(context: ZMQContext, type: ZMQSocketType, lingerMilliseconds: Int32 = 0) throws(ZMQError) {
        guard let handle = zmq_socket(context.handle, type.raw) else { throw ZMQError.last("zmq_socket") }
        self.handle = handle
        self.context = context
        self.message = .allocate(capacity: 1)
        try set(.linger, lingerMilliseconds)
    }

    deinit {
        close()
        message.deallocate()
    }

    /// Closes the socket; later calls fail with `ENOTSOCK`. Safe to call twice.
    public func close() {
        if !closed {
            closed = true
            zmq_close(handle)
        }
    }

    public func set(_ option: ZMQIntOption, _ value: Int32) throws(ZMQError) {
        var v = value
        if zmq_setsockopt(handle, option.raw, &v, MemoryLayout<Int32>.size) != 0 {
            throw ZMQError.last("zmq_setsockopt", context: "\(option)")
        }
    }

    /// `ZMQ_MAXMSGSIZE`: the largest inbound message accepted; a peer sending more is disconnected.
    public func setMaximumMessageSize(_ bytes: Int64) throws(ZMQError) {
        var v = bytes
        if zmq_setsockopt(handle, ZMQ_MAXMSGSIZE, &v, MemoryLayout<Int64>.size) != 0 {
            throw ZMQError.last("zmq_setsockopt", context: "ZMQ_MAXMSGSIZE")
        }
    }

    /// Sets a bytes-valued option (subscriptions, identities, CURVE keys).
    public func set(bytesOption option: Int32, _ value: [UInt8]) throws(ZMQError) {
        let rc = value.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, $0.count) }
        if rc != 0 { throw ZMQError.last("zmq_setsockopt", context: "option \(option)") }
    }

    /// SUB sockets: receive messages whose first frame starts with `prefix`.
    public func subscribe(_ prefix: [UInt8]) throws(ZMQError) {
        try set(bytesOption: ZMQ_SUBSCRIBE, prefix)
    }

    /// Sets this socket's routing identity (before connect).
    public func setIdentity(_ identity: [UInt8]) throws(ZMQError) {
        try set(bytesOption: ZMQ_ROUTING_ID, identity)
    }

    public func bind(_ endpoint: String) throws(ZMQError) {
        if zmq_bind(handle, endpoint) != 0 { throw ZMQError.last("zmq_bind", context: endpoint) }
    }

    public func connect(_ endpoint: String) throws(ZMQError) {
        if zmq_connect(handle, endpoint) != 0 { throw ZMQError.last("zmq_connect", context: endpoint) }
    }

    /// The endpoint actually bound (useful after binding `tcp://127.0.0.1:*`).
    public func lastEndpoint() throws(ZMQError) -> String {
        var buffer = [CChar](repeating: 0, count: 512)
        var size = buffer.count
        if zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buffer, &size) != 0 {
            throw ZMQError.last("zmq_getsockopt", context: "ZMQ_LAST_ENDPOINT")
        }
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Sends one multipart message. Returns `false` when `blocking` is false and the
    /// message could not be queued now (high-water mark reached, or no route).
    @discardableResult
    public func send(_ frames: [[UInt8]], blocking: Bool = true) throws(ZMQError) -> Bool {
        precondition(!frames.isEmpty, "a ZeroMQ message has at least one frame")
        let last = frames.count - 1
        for (i, frame) in frames.enumerated() {
            var flags: Int32 = i < last ? ZMQ_SNDMORE : 0
            if !blocking { flags |= ZMQ_DONTWAIT }
            while true {
                let rc = frame.withUnsafeBytes { zmq_send(handle, $0.baseAddress, $0.count, flags) }
                if rc >= 0 { break }
                let error = ZMQError.last("zmq_send")
                if error.isInterrupted { continue }
                // Only the first frame can fail with EAGAIN: later ones are queued atomically.
                if error.wouldBlock && i == 0 { return false }
                throw error
            }
        }
        return true
    }

    /// Sends a two-frame message (a topic and its payload) lent as raw bytes, never
    /// blocking: publication sends each update from the buffers it rendered into, with no
    /// array of frames, nor an array per frame. False when the first frame would block.
    @discardableResult
    public func send(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) throws(ZMQError) -> Bool {
        while zmq_send(handle, first.baseAddress, first.count, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 {
            let error = ZMQError.last("zmq_send")
            if error.isInterrupted { continue }
            if error.wouldBlock { return false }
            throw error
        }
        while zmq_send(handle, second.baseAddress, second.count, ZMQ_DONTWAIT) < 0 {
            let error = ZMQError.last("zmq_send")
            if error.isInterrupted { continue }
            throw error
        }
        return true
    }

    /// The `User-Id` of the connection the last message received came from: the name a
    /// ZAP handler gave the peer (`ZAPAuthenticator`), nil when none did.
    ///
    /// Read while the message is open (libzmq drops a message's metadata when it is
    /// closed), so it is kept here rather than asked for afterwards.
    public private(set) var lastUserID: String?

    /// Whether `receive` reads `lastUserID` (a metadata lookup and a string per message):
    /// only sockets with a ZAP handler behind them need it.
    public var recordsUserID = false

    /// Receives one multipart message; `nil` when `blocking` is false and none is waiting.
    public func receive(blocking: Bool = true) throws(ZMQError) -> [[UInt8]]? {
        var frames: [[UInt8]] = []
        while true {
            zmq_msg_init(message)
            defer { zmq_msg_close(message) }
            let rc = zmq_msg_recv(message, handle, blocking || !frames.isEmpty ? 0 : ZMQ_DONTWAIT)
            if rc < 0 {
                let error = ZMQError.last("zmq_msg_recv")
                if error.isInterrupted { continue }
                if error.wouldBlock && frames.isEmpty { return nil }
                throw error
            }
            let size = zmq_msg_size(message)
            if size == 0 {
                frames.append([])
            } else {
                let data = zmq_msg_data(message)!
                frames.append(Array(UnsafeRawBufferPointer(start: data, count: size)))
            }
            if zmq_msg_more(message) == 0 {
                if recordsUserID { lastUserID = zmq_msg_gets(message, "User-Id").map { String(cString: $0) } }
                return frames
            }
        }
    }
}

/// Waits for readiness on several sockets at once (`zmq_poll`), on the calling thread.
///
/// The DRAFT `zmq_poller_*` API is absent from Debian's libzmq, so this is built on
/// `zmq_poll` with `zmq_pollitem_t`.
public struct ZMQPoller {
    private var items: [zmq_pollitem_t] = []

    public init() {}

    /// Registers `socket` for input readiness; returns its index in `poll`'s result.
    @discardableResult
    public mutating func add(_ socket: ZMQSocket, output: Bool = false) -> Int {
        let events = Int16(ZMQ_POLLIN) | (output ? Int16(ZMQ_POLLOUT) : 0)
        items.append(zmq_pollitem_t(socket: socket.handle, fd: 0, events: events, revents: 0))
        return items.count - 1
    }

    /// Waits up to `timeoutMilliseconds` (-1: forever) and returns, per registered
    /// socket, whether it has input waiting.
    public mutating func poll(timeoutMilliseconds: Int) throws(ZMQError) -> [Bool] {
        while true {
            let rc = items.withUnsafeMutableBufferPointer {
                zmq_poll($0.baseAddress, Int32($0.count), timeoutMilliseconds)
            }
            if rc >= 0 { break }
            let error = ZMQError.last("zmq_poll")
            if error.isInterrupted { continue }
            throw error
        }
        return items.map { $0.revents & Int16(ZMQ_POLLIN) != 0 }
    }
}
