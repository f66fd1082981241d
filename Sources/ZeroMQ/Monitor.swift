import CZeroMQ
import Synchronization

/// A handshake a socket's peer refused, reported by `zmq_socket_monitor`.
public struct ZMQHandshakeFailure: Sendable, Equatable {
    /// The ZAP status code the server answered (400: the client's key is not admitted).
    public var status: UInt32
    /// The endpoint the handshake was with.
    public var endpoint: String
}

/// Reports the authentication failures of one socket's handshakes.
///
/// A CURVE client whose key the server's ZAP handler refuses is told so in the handshake,
/// but libzmq only reconnects and retries; without this, the client sees nothing but
/// silence. Made with `ZMQSocket.monitorAuthenticationFailures()`, it lives on the same
/// thread as that socket and is read without blocking.
public final class ZMQSocketMonitor {
    private let pair: ZMQSocket
    private static let counter = Atomic<Int>(0)

    init(monitoring socket: ZMQSocket) throws(ZMQError) {
        let endpoint = "inproc://dealstream-monitor-\(ZMQSocketMonitor.counter.add(1, ordering: .relaxed).newValue)"
        if zmq_socket_monitor(socket.handle, endpoint, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0 {
            throw ZMQError.last("zmq_socket_monitor", context: endpoint)
        }
        pair = try ZMQSocket(context: socket.context, type: .pair)
        try pair.connect(endpoint)
    }

    /// The next authentication failure reported, or nil when none is waiting.
    public func nextFailure() throws(ZMQError) -> ZMQHandshakeFailure? {
        while let frames = try pair.receive(blocking: false) {
            // Frame 1: event (uint16) and value (uint32), native byte order; frame 2: endpoint.
            guard frames.count == 2, frames[0].count == 6 else { continue }
            let event = frames[0].withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 0, as: UInt16.self) }
            let value = frames[0].withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 2, as: UInt32.self) }
            if Int32(event) == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH {
                return ZMQHandshakeFailure(status: value, endpoint: String(decoding: frames[1], as: UTF8.self))
            }
        }
        return nil
    }
}

extension ZMQSocket {
    /// Starts reporting this socket's failed authentications (before connect).
    public func monitorAuthenticationFailures() throws(ZMQError) -> ZMQSocketMonitor {
        try ZMQSocketMonitor(monitoring: self)
    }
}
