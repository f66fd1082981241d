import CZeroMQ
import Dispatch
import Synchronization

extension ZMQSocket {
    /// Reports this socket's failed handshakes to `report`, from a thread of its own, for as
    /// long as the socket is open.
    ///
    /// Why: a socket whose peer refused it (a CURVE key the server's ZAP handler does not
    /// list, a client without CURVE at a CURVE server) only goes silent, and its owner's
    /// loop may be code that should not grow a monitor of its own (the worker's session
    /// loop, the daemon's worker endpoint). The monitor's PAIR is made, read and closed on
    /// the watcher's thread only; the thread ends when libzmq reports the socket closed
    /// (`ZMQ_EVENT_MONITOR_STOPPED`) or the context terminates. Call before connect or
    /// bind; returns once the watcher listens, so no failure is missed.
    public func reportHandshakeFailures(
        named name: String = "ds-handshakes",
        _ report: @escaping @Sendable (ZMQHandshakeFailure) -> Void
    ) throws(ZMQError) {
        let endpoint = "inproc://dealstream-handshakes-\(HandshakeWatcher.counter.add(1, ordering: .relaxed).newValue)"
        let events =
            ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL
            | ZMQ_EVENT_MONITOR_STOPPED
        if zmq_socket_monitor(handle, endpoint, events) != 0 {
            throw ZMQError.last("zmq_socket_monitor", context: endpoint)
        }
        let context = self.context
        let listening = DispatchSemaphore(value: 0)
        let failure = Mutex<ZMQError?>(nil)
        _ = ZMQThread(name: name) {
            let pair: ZMQSocket
            do throws(ZMQError) {
                pair = try ZMQSocket(context: context, type: .pair, lingerMilliseconds: 0)
                try pair.connect(endpoint)
            } catch {
                failure.withLock { $0 = error }
                listening.signal()
                return
            }
            listening.signal()
            HandshakeWatcher.watch(pair, report: report)
            pair.close()
        }
        listening.wait()
        if let error = failure.withLock({ $0 }) { throw error }
    }
}

/// The loop of `ZMQSocket.reportHandshakeFailures`.
enum HandshakeWatcher {
    static let counter = Atomic<Int>(0)

    static func watch(_ pair: ZMQSocket, report: (ZMQHandshakeFailure) -> Void) {
        while true {
            let frames: [[UInt8]]
            do {
                // Blocking on this thread of its own; ETERM (the context is terminating)
                // ends it like the socket's close does.
                guard let message = try pair.receive(blocking: true) else { continue }
                frames = message
            } catch {
                return
            }
            // Frame 1: event (uint16) and value (uint32), native byte order; frame 2: endpoint.
            guard frames.count == 2, frames[0].count == 6 else { continue }
            let event = Int32(frames[0].withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 0, as: UInt16.self) })
            let value = frames[0].withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 2, as: UInt32.self) }
            let endpoint = String(decoding: frames[1], as: UTF8.self)
            switch event {
            case ZMQ_EVENT_MONITOR_STOPPED:
                return
            case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
                report(ZMQHandshakeFailure(kind: .authentication(status: value), endpoint: endpoint))
            case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
                report(ZMQHandshakeFailure(kind: .protocolError(code: value), endpoint: endpoint))
            case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
                report(ZMQHandshakeFailure(kind: .incomplete(errno: value), endpoint: endpoint))
            default:
                continue
            }
        }
    }
}
