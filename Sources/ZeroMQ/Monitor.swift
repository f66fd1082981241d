import CZeroMQ
import Synchronization

/// A handshake that failed, reported by `zmq_socket_monitor`.
public struct ZMQHandshakeFailure: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The server's ZAP handler refused the client (status 400: its key is not admitted).
        case authentication(status: UInt32)
        /// The peers could not agree: a `ZMQ_PROTOCOL_ERROR_*` code (e.g. one side has
        /// CURVE and the other not: `ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH`).
        case protocolError(code: UInt32)
        /// The connection closed before the handshake finished, without a reason
        /// (`ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL`, with an errno): what a client without
        /// CURVE usually sees when a CURVE server drops it. Only
        /// `ZMQSocket.reportHandshakeFailures` reports it.
        case incomplete(errno: UInt32)
    }

    public var kind: Kind
    /// The endpoint the handshake was with.
    public var endpoint: String

    /// One side has a security mechanism (CURVE) and the other has another or none.
    public var isMechanismMismatch: Bool {
        kind == .protocolError(code: UInt32(ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH))
    }

    public var description: String {
        switch kind {
        case .authentication(let status): "handshake with \(endpoint) refused (ZAP status \(status))"
        case .protocolError(let code): "handshake with \(endpoint) failed (protocol error 0x\(String(code, radix: 16)))"
        case .incomplete(let errno): "handshake with \(endpoint) closed before it finished (errno \(errno))"
        }
    }
}

/// Reports the failed handshakes of one socket.
///
/// When a handshake fails (a CURVE key the server's ZAP handler refuses, or a client
/// without CURVE at a CURVE server), libzmq tells the client's monitor and then drops
/// the connection for good; the socket itself only goes silent (and a blocking send on a
/// DEALER then waits forever). Made with `ZMQSocket.monitorHandshakeFailures()`, this
/// lives on the same thread as that socket and is read without blocking.
public final class ZMQSocketMonitor {
    private let pair: ZMQSocket
    private static let counter = Atomic<Int>(0)

    init(monitoring socket: ZMQSocket) throws(ZMQError) {
        let endpoint = "inproc://dealstream-monitor-\(ZMQSocketMonitor.counter.add(1, ordering: .relaxed).newValue)"
        let events = ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
        if zmq_socket_monitor(socket.handle, endpoint, events) != 0 {
            throw ZMQError.last("zmq_socket_monitor", context: endpoint)
        }
        pair = try ZMQSocket(context: socket.context, type: .pair)
        try pair.connect(endpoint)
    }

    /// The next failed handshake reported, or nil when none is waiting.
    public func nextFailure() throws(ZMQError) -> ZMQHandshakeFailure? {
        while let frames = try pair.receive(blocking: false) {
            // Frame 1: event (uint16) and value (uint32), native byte order; frame 2: endpoint.
            guard frames.count == 2, frames[0].count == 6 else { continue }
            let event = Int32(frames[0].withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 0, as: UInt16.self) })
            let value = frames[0].withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 2, as: UInt32.self) }
            let endpoint = String(decoding: frames[1], as: UTF8.self)
            switch event {
            case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
                return ZMQHandshakeFailure(kind: .authentication(status: value), endpoint: endpoint)
            case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
                return ZMQHandshakeFailure(kind: .protocolError(code: value), endpoint: endpoint)
            default:
                continue
            }
        }
        return nil
    }
}

extension ZMQSocket {
    /// Starts reporting this socket's failed handshakes (call before connect).
    public func monitorHandshakeFailures() throws(ZMQError) -> ZMQSocketMonitor {
        try ZMQSocketMonitor(monitoring: self)
    }
}

/// Counts the peers connected to one socket (a bound XPUB: the subscribers), from
/// `zmq_socket_monitor`'s handshake-succeeded and disconnected events.
///
/// Why: libzmq keeps its connections to itself; an operator wants to know how many
/// consumers follow the updates. Lives on the thread of the socket it watches and is
/// drained without blocking, once per turn of that thread's loop.
public final class ZMQConnectionMonitor {
    private let pair: ZMQSocket
    /// Peers whose handshake succeeded and that have not disconnected since.
    public private(set) var connected = 0
    private static let counter = Atomic<Int>(0)

    init(monitoring socket: ZMQSocket) throws(ZMQError) {
        let endpoint =
            "inproc://dealstream-connections-\(ZMQConnectionMonitor.counter.add(1, ordering: .relaxed).newValue)"
        if zmq_socket_monitor(socket.handle, endpoint, ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED) != 0 {
            throw ZMQError.last("zmq_socket_monitor", context: endpoint)
        }
        pair = try ZMQSocket(context: socket.context, type: .pair, lingerMilliseconds: 0)
        try pair.connect(endpoint)
    }

    /// Reads the events waiting and returns the connected count.
    @discardableResult
    public func drain() -> Int {
        while let frames = try? pair.receive(blocking: false) {
            guard frames.count == 2, frames[0].count == 6 else { continue }
            let event = Int32(frames[0].withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 0, as: UInt16.self) })
            if event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED { connected += 1 }
            if event == ZMQ_EVENT_DISCONNECTED { connected = max(0, connected - 1) }
        }
        return connected
    }

    public func close() {
        pair.close()
    }
}

extension ZMQSocket {
    /// Starts counting this socket's connected peers (call before bind).
    public func monitorConnections() throws(ZMQError) -> ZMQConnectionMonitor {
        try ZMQConnectionMonitor(monitoring: self)
    }
}
