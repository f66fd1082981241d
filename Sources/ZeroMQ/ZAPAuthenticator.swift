import CZeroMQ
import Dispatch
import Synchronization

/// The ZAP handler (ZeroMQ RFC 27) of a context: admits CURVE clients whose public key is
/// in an allowed set, and refuses every other handshake.
///
/// libzmq has one ZAP handler per context, so sockets that need different key sets (the
/// daemon's ingest and worker endpoints) tell the handler apart by their ZAP domain
/// (`ZMQ_ZAP_DOMAIN`, `ZMQSocket.setZAPDomain`): made with `domains:`, the handler keeps one
/// allowlist per domain and refuses a handshake from a domain it has no list for, so a key
/// listed for one socket is never admitted on another.
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
        /// The ZAP domain of the server socket (empty when it sets none).
        public var domain: String
        public var admitted: Bool { userID != nil }

        public init(userID: String?, mechanism: String, clientKey: CurveKey?, peerAddress: String, domain: String = "")
        {
            self.userID = userID
            self.mechanism = mechanism
            self.clientKey = clientKey
            self.peerAddress = peerAddress
            self.domain = domain
        }
    }

    /// Which keys are admitted where.
    public enum Allowlist: Sendable {
        /// The same keys on every socket of the context, whatever its domain.
        case everyDomain([CurveKey: String])
        /// One set per ZAP domain; a domain not listed admits nobody.
        case perDomain([String: [CurveKey: String]])

        /// The keys admitted in `domain` (nil: the domain has no list).
        func keys(in domain: String) -> [CurveKey: String]? {
            switch self {
            case .everyDomain(let keys): keys
            case .perDomain(let domains): domains[domain]
            }
        }
    }

    private let stop = StopFlag()
    private let thread: ZMQThread

    /// Binds the handler on `context` and starts answering, with the same keys for every socket.
    ///
    /// - Parameters:
    ///   - allowed: client public key → the name given as `User-Id`.
    ///   - onDecision: called on the handler's thread for every handshake answered.
    public convenience init(
        context: ZMQContext,
        allowed: [CurveKey: String],
        onDecision: @escaping @Sendable (Decision) -> Void
    ) throws(ZMQError) {
        try self.init(context: context, allowlist: .everyDomain(allowed), onDecision: onDecision)
    }

    /// Binds the handler on `context` and starts answering, with one key set per ZAP domain.
    ///
    /// - Parameters:
    ///   - domains: ZAP domain → (client public key → the name given as `User-Id`).
    ///   - onDecision: called on the handler's thread for every handshake answered.
    public convenience init(
        context: ZMQContext,
        domains: [String: [CurveKey: String]],
        onDecision: @escaping @Sendable (Decision) -> Void
    ) throws(ZMQError) {
        try self.init(context: context, allowlist: .perDomain(domains), onDecision: onDecision)
    }

    /// Binds the handler on `context` and starts answering.
    public init(
        context: ZMQContext,
        allowlist allowed: Allowlist,
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
        allowed: Allowlist,
        stop: StopFlag,
        onDecision: (Decision) -> Void
    ) {
        var poller = ZMQPoller()
        poller.add(socket)
        while !stop.isSet {
            do {
                guard try poller.poll(timeoutMilliseconds: 100)[0], let request = try socket.receive(blocking: false)
                else { continue }
                let (reply, decision) = answer(request, allowlist: allowed)
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
    /// request was not a readable ZAP 1.0 request), with the same keys in every domain.
    static func answer(_ request: [[UInt8]], allowed: [CurveKey: String]) -> (reply: [[UInt8]], decision: Decision?) {
        answer(request, allowlist: .everyDomain(allowed))
    }

    /// The reply frames to one ZAP request, and the decision to report (nil when the
    /// request was not a readable ZAP 1.0 request).
    static func answer(_ request: [[UInt8]], allowlist: Allowlist) -> (reply: [[UInt8]], decision: Decision?) {
        let version = Array("1.0".utf8)
        func reply(_ id: [UInt8], _ code: String, _ text: String, userID: String = "") -> [[UInt8]] {
            [version, id, Array(code.utf8), Array(text.utf8), Array(userID.utf8), []]
        }
        // version, request id, domain, address, routing id, mechanism, credentials…
        guard request.count >= 6, request[0] == version else {
            return (reply(request.count > 1 ? request[1] : [], "500", "not a ZAP 1.0 request"), nil)
        }
        let text = { (frame: [UInt8]) in String(decoding: frame, as: UTF8.self) }
        var decision = Decision(
            userID: nil,
            mechanism: text(request[5]),
            clientKey: nil,
            peerAddress: text(request[3]),
            domain: text(request[2])
        )
        guard decision.mechanism == "CURVE", request.count == 7, let key = try? CurveKey(bytes: request[6]) else {
            return (reply(request[1], "400", "CURVE with a configured key required"), decision)
        }
        decision.clientKey = key
        guard let allowed = allowlist.keys(in: decision.domain) else {
            return (reply(request[1], "400", "no keys for this ZAP domain"), decision)
        }
        guard let name = allowed[key] else {
            return (reply(request[1], "400", "client key not configured"), decision)
        }
        decision.userID = name
        return (reply(request[1], "200", "OK", userID: name), decision)
    }
}
