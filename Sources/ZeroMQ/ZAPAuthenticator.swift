import CZeroMQ
import Dispatch
import Synchronization

/// The ZAP handler (ZeroMQ RFC 27) of a context: admits CURVE clients whose public key is
/// in an allowed set, and refuses every other handshake.
///
/// CURVE alone encrypts but admits any client key. libzmq asks the ZAP handler bound at
/// `inproc://zeromq.zap.01` in the socket's context about every handshake on a CURVE
/// server socket; this handler answers 200 with the key's name as `User-Id` (which then
/// arrives with each message, see `ZMQSocket.lastUserID`) or 400.
///
/// Start it before binding the server socket and stop it after closing that socket:
/// this libzmq (no DRAFT `ZMQ_ZAP_ENFORCE_DOMAIN`) lets every CURVE client in while no
/// handler is bound. It runs on a `ZMQThread` of its own; `init` blocks the calling
/// thread (never a cooperative one) until the handler is bound.
public final class ZAPAuthenticator: Sendable {
    /// The endpoint libzmq sends ZAP requests to (RFC 27).
    public static let endpoint = "inproc://zeromq.zap.01"

    /// One answered handshake, for the owner to log.
    public struct Decision: Sendable {
        /// The name of the admitted key, or nil when refused.
        public var userID: String?
        /// The mechanism the client used (`CURVE`, or `NULL` for a client without keys).
        public var mechanism: String
        /// The client's public key, for a CURVE handshake.
        public var clientKey: CurveKey?
        /// The peer's address as libzmq reports it (IP for tcp, empty for ipc).
        public var peerAddress: String
        public var admitted: Bool { userID != nil }

        public init(userID: String?, mechanism: String, clientKey: CurveKey?, peerAddress: String) {
            self.userID = userID
            self.mechanism = mechanism
            self.clientKey = clientKey
            self.peerAddress = peerAddress
        }
    }

    private let stop = StopFlag()
    private let thread: ZMQThread

    /// Binds the handler on `context` and starts answering.
    ///
    /// - Parameters:
    ///   - allowed: client public key → the name given as `User-Id`.
    ///   - onDecision: called on the handler's thread for every handshake answered.
    public init(
        context: ZMQContext,
        allowed: [CurveKey: String],
        onDecision: @escaping @Sendable (Decision) -> Void
    ) throws(ZMQError) {
        let started = DispatchSemaphore(value: 0)
        let failure = Mutex<ZMQError?>(nil)
        let stop = self.stop
        thread = ZMQThread(name: "ds-zap") {
            let socket: ZMQSocket
            do throws(ZMQError) {
                socket = try ZMQSocket(context: context, type: .rep, lingerMilliseconds: 0)
                try socket.bind(ZAPAuthenticator.endpoint)
            } catch {
                failure.withLock { $0 = error }
                started.signal()
                return
            }
            started.signal()
            ZAPAuthenticator.serve(socket, allowed: allowed, stop: stop, onDecision: onDecision)
            socket.close()
        }
        started.wait()
        if let error = failure.withLock({ $0 }) {
            thread.join()
            throw error
        }
    }

    /// Stops answering and waits for the handler's thread to close its socket.
    public func stopAndJoin() {
        stop.set()
        thread.join()
    }

    private static func serve(
        _ socket: ZMQSocket,
        allowed: [CurveKey: String],
        stop: StopFlag,
        onDecision: (Decision) -> Void
    ) {
        var poller = ZMQPoller()
        poller.add(socket)
        while !stop.isSet {
            do {
                guard try poller.poll(timeoutMilliseconds: 100)[0], let request = try socket.receive(blocking: false)
                else { continue }
                let (reply, decision) = answer(request, allowed: allowed)
                try socket.send(reply)
                if let decision { onDecision(decision) }
            } catch {
                // ETERM: the context is shutting down. Anything else on an inproc REP
                // socket is a bug; stop rather than spin.
                return
            }
        }
    }

    /// The reply frames to one ZAP request, and the decision to report (nil when the
    /// request was not a readable ZAP 1.0 request).
    static func answer(_ request: [[UInt8]], allowed: [CurveKey: String]) -> (reply: [[UInt8]], decision: Decision?) {
        let version = Array("1.0".utf8)
        func reply(_ id: [UInt8], _ code: String, _ text: String, userID: String = "") -> [[UInt8]] {
            [version, id, Array(code.utf8), Array(text.utf8), Array(userID.utf8), []]
        }
        // version, request id, domain, address, routing id, mechanism, credentials…
        guard request.count >= 6, request[0] == version else {
            return (reply(request.count > 1 ? request[1] : [], "500", "not a ZAP 1.0 request"), nil)
        }
        let text = { (frame: [UInt8]) in String(decoding: frame, as: UTF8.self) }
        var decision = Decision(userID: nil, mechanism: text(request[5]), clientKey: nil, peerAddress: text(request[3]))
        guard decision.mechanism == "CURVE", request.count == 7, let key = try? CurveKey(bytes: request[6]) else {
            return (reply(request[1], "400", "CURVE with a configured key required"), decision)
        }
        decision.clientKey = key
        guard let name = allowed[key] else {
            return (reply(request[1], "400", "client key not configured"), decision)
        }
        decision.userID = name
        return (reply(request[1], "200", "OK", userID: name), decision)
    }
}
