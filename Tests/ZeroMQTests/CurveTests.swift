import Foundation
import Synchronization
import Testing

@testable import ZeroMQ

/// CURVE keys and the ZAP handler against the real libzmq over tcp (inproc has no
/// handshake, so no security mechanism runs there).
struct CurveTests {
    /// The decisions a `ZAPAuthenticator` reported, gathered from its thread.
    final class Decisions: Sendable {
        private let items = Mutex<[ZAPAuthenticator.Decision]>([])
        func record(_ d: ZAPAuthenticator.Decision) { items.withLock { $0.append(d) } }
        var all: [ZAPAuthenticator.Decision] { items.withLock { $0 } }

        /// Waits up to `seconds` for a decision matching `predicate`.
        func wait(seconds: Double = 5, for predicate: (ZAPAuthenticator.Decision) -> Bool) -> ZAPAuthenticator.Decision?
        {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if let d = all.first(where: predicate) { return d }
                Thread.sleep(forTimeInterval: 0.01)
            }
            return nil
        }
    }

    /// One message within `milliseconds`, or nil.
    private func receive(_ socket: ZMQSocket, within milliseconds: Int) throws -> [[UInt8]]? {
        var poller = ZMQPoller()
        poller.add(socket)
        guard try poller.poll(timeoutMilliseconds: milliseconds)[0] else { return nil }
        return try socket.receive(blocking: false)
    }

    /// A CURVE ROUTER on a free loopback port, and its endpoint.
    private func curveRouter(_ context: ZMQContext, serverKeys: CurveKeyPair) throws -> (ZMQSocket, String) {
        let router = try ZMQSocket(context: context, type: .router)
        try router.setCurveServer(secretKey: serverKeys.secretKey)
        router.recordsUserID = true
        try router.bind("tcp://127.0.0.1:*")
        return (router, try router.lastEndpoint())
    }

    private func dealer(_ context: ZMQContext, _ endpoint: String, keys: CurveClientKeys?) throws -> ZMQSocket {
        let dealer = try ZMQSocket(context: context, type: .dealer)
        if let keys { try dealer.setCurveClient(keys) }
        try dealer.connect(endpoint)
        return dealer
    }

    @Test func libzmqHereHasCurve() {
        #expect(Curve.isAvailable)
    }

    @Test func aKeyPairsPublicKeyIsDerivedFromItsSecretKey() throws {
        let pair = try CurveKeyPair.generate()
        #expect(pair.publicKey.z85.count == 40)
        #expect(pair.secretKey.z85.count == 40)
        #expect(pair.publicKey != pair.secretKey)
        let derived = try CurveKeyPair(secretKey: CurveKey(z85: pair.secretKey.z85 + "\n"))
        #expect(derived.publicKey == pair.publicKey)
        #expect(try CurveKey(bytes: pair.publicKey.bytes) == pair.publicKey)
        #expect(try CurveKeyPair.generate().publicKey != pair.publicKey)
        // Printing a pair, or something holding one, never shows the secret key.
        struct Holder { var keys: CurveKeyPair }
        for text in [
            "\(pair)", String(reflecting: pair), "\(Holder(keys: pair))", String(reflecting: Holder(keys: pair)),
        ] {
            #expect(text.contains(pair.publicKey.z85) && !text.contains(pair.secretKey.z85), "\(text)")
        }
    }

    @Test func badKeysSayWhatIsWrong() throws {
        #expect(throws: CurveKeyError(reason: "not a 40-character Z85 key (5 characters)")) {
            try CurveKey(z85: "short")
        }
        let comma = String(repeating: "a", count: 39) + ","
        #expect(throws: CurveKeyError(reason: "not a 40-character Z85 key (\",\" is not a Z85 character)")) {
            try CurveKey(z85: comma)
        }
        #expect(throws: CurveKeyError.self) { try CurveKey(bytes: [1, 2, 3]) }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("curve-bad-\(getpid()).key").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        try Data("not a key\n".utf8).write(to: URL(fileURLWithPath: file))
        #expect(throws: CurveKeyError(reason: "\(file): not a 40-character Z85 key (9 characters)")) {
            try CurveKeyPair.load(secretKeyFile: file)
        }
        #expect(throws: CurveKeyError(reason: "cannot read \(file).missing")) {
            try CurveKeyPair.load(secretKeyFile: file + ".missing")
        }
    }

    @Test func aConfiguredKeyIsAdmittedAndItsNameArrivesAsUserID() throws {
        let context = try ZMQContext()
        let server = try CurveKeyPair.generate()
        let client = try CurveKeyPair.generate()
        let decisions = Decisions()
        let zap = try ZAPAuthenticator(
            context: context,
            allowed: [client.publicKey: "hubspot-eu"],
            onDecision: decisions.record
        )
        defer { zap.stopAndJoin() }
        let (router, endpoint) = try curveRouter(context, serverKeys: server)
        let dealer = try dealer(context, endpoint, keys: CurveClientKeys(serverKey: server.publicKey, keyPair: client))
        try dealer.send([Array("PING".utf8)])
        let request = try #require(try receive(router, within: 5000))
        #expect(request.last == Array("PING".utf8))
        #expect(router.lastUserID == "hubspot-eu")
        try router.send([request[0], Array("PONG".utf8)])
        #expect(try receive(dealer, within: 5000) == [Array("PONG".utf8)])
        let admitted = try #require(decisions.wait { $0.admitted })
        #expect(admitted.userID == "hubspot-eu")
        #expect(admitted.mechanism == "CURVE")
        #expect(admitted.clientKey == client.publicKey)
        #expect(admitted.peerAddress == "127.0.0.1")
    }

    @Test func anUnknownKeyAndAPlainClientAreRefusedWhileAConfiguredOneIsServed() throws {
        let context = try ZMQContext()
        let server = try CurveKeyPair.generate()
        let known = try CurveKeyPair.generate()
        let stranger = try CurveKeyPair.generate()
        let decisions = Decisions()
        let zap = try ZAPAuthenticator(
            context: context,
            allowed: [known.publicKey: "known"],
            onDecision: decisions.record
        )
        defer { zap.stopAndJoin() }
        let (router, endpoint) = try curveRouter(context, serverKeys: server)
        let refused = try dealer(
            context,
            endpoint,
            keys: CurveClientKeys(serverKey: server.publicKey, keyPair: stranger)
        )
        let plain = try dealer(context, endpoint, keys: nil)
        try refused.send([Array("from stranger".utf8)])
        try plain.send([Array("from plain".utf8)])
        let refusal = try #require(decisions.wait { !$0.admitted })
        #expect(refusal.clientKey == stranger.publicKey)
        #expect(refusal.mechanism == "CURVE")
        #expect(refusal.peerAddress == "127.0.0.1")
        // The server is up and serves the configured key...
        let served = try dealer(context, endpoint, keys: CurveClientKeys(serverKey: server.publicKey, keyPair: known))
        try served.send([Array("from known".utf8)])
        let request = try #require(try receive(router, within: 5000))
        #expect(request.last == Array("from known".utf8))
        #expect(router.lastUserID == "known")
        try router.send([request[0], Array("reply".utf8)])
        #expect(try receive(served, within: 5000) == [Array("reply".utf8)])
        // ...and nothing of the other two ever arrives, nor any reply to them.
        #expect(try receive(router, within: 1000) == nil)
        #expect(try receive(refused, within: 100) == nil)
        #expect(try receive(plain, within: 100) == nil)
        // A plain client fails the mechanism check before ZAP is asked.
        #expect(!decisions.all.contains { $0.mechanism == "NULL" })
    }

    @Test func aRefusedClientsMonitorReportsZAPStatus400() throws {
        let context = try ZMQContext()
        let server = try CurveKeyPair.generate()
        let zap = try ZAPAuthenticator(
            context: context,
            allowed: [try CurveKeyPair.generate().publicKey: "someone"],
            onDecision: { _ in }
        )
        defer { zap.stopAndJoin() }
        let (router, endpoint) = try curveRouter(context, serverKeys: server)
        let client = try ZMQSocket(context: context, type: .dealer)
        try client.setCurveClient(CurveClientKeys(serverKey: server.publicKey, keyPair: try .generate()))
        let monitor = try client.monitorHandshakeFailures()
        try client.connect(endpoint)
        var failure: ZMQHandshakeFailure?
        let deadline = Date().addingTimeInterval(5)
        while failure == nil && Date() < deadline {
            failure = try monitor.nextFailure()
            Thread.sleep(forTimeInterval: 0.01)
        }
        #expect(failure == ZMQHandshakeFailure(kind: .authentication(status: 400), endpoint: endpoint))
        #expect(try receive(router, within: 100) == nil)
    }

    @Test func aPlainClientsMonitorReportsTheMechanismMismatch() throws {
        let context = try ZMQContext()
        let zap = try ZAPAuthenticator(context: context, allowed: [:], onDecision: { _ in })
        defer { zap.stopAndJoin() }
        let (router, endpoint) = try curveRouter(context, serverKeys: try .generate())
        let client = try ZMQSocket(context: context, type: .dealer)
        let monitor = try client.monitorHandshakeFailures()
        try client.connect(endpoint)
        var failure: ZMQHandshakeFailure?
        let deadline = Date().addingTimeInterval(5)
        while failure == nil && Date() < deadline {
            failure = try monitor.nextFailure()
            Thread.sleep(forTimeInterval: 0.01)
        }
        #expect(failure?.isMechanismMismatch == true, "\(String(describing: failure))")
        #expect(try receive(router, within: 100) == nil)
    }

    @Test func anAdmittedClientsMonitorReportsNothing() throws {
        let context = try ZMQContext()
        let server = try CurveKeyPair.generate()
        let keys = try CurveKeyPair.generate()
        let zap = try ZAPAuthenticator(context: context, allowed: [keys.publicKey: "k"], onDecision: { _ in })
        defer { zap.stopAndJoin() }
        let (router, endpoint) = try curveRouter(context, serverKeys: server)
        let client = try ZMQSocket(context: context, type: .dealer)
        try client.setCurveClient(CurveClientKeys(serverKey: server.publicKey, keyPair: keys))
        let monitor = try client.monitorHandshakeFailures()
        try client.connect(endpoint)
        try client.send([[1]])
        #expect(try receive(router, within: 5000)?.last == [1])
        #expect(try monitor.nextFailure() == nil)
    }

    @Test func plainSocketsOfTheSameContextAreNotAskedAbout() throws {
        let context = try ZMQContext()
        let decisions = Decisions()
        let zap = try ZAPAuthenticator(context: context, allowed: [:], onDecision: decisions.record)
        defer { zap.stopAndJoin() }
        let router = try ZMQSocket(context: context, type: .router)
        router.recordsUserID = true
        try router.bind("tcp://127.0.0.1:*")
        let dealer = try dealer(context, try router.lastEndpoint(), keys: nil)
        try dealer.send([Array("hello".utf8)])
        let request = try #require(try receive(router, within: 5000))
        #expect(request.last == Array("hello".utf8))
        #expect(router.lastUserID == nil)
        #expect(decisions.all.isEmpty)
    }

    /// Why the daemon binds the handler before its CURVE socket: without one, libzmq
    /// (4.3, no DRAFT `ZMQ_ZAP_ENFORCE_DOMAIN`) admits every client key.
    @Test func withoutAHandlerCurveAdmitsAnyKey() throws {
        let context = try ZMQContext()
        let server = try CurveKeyPair.generate()
        let (router, endpoint) = try curveRouter(context, serverKeys: server)
        let anyone = try dealer(
            context,
            endpoint,
            keys: CurveClientKeys(serverKey: server.publicKey, keyPair: try .generate())
        )
        try anyone.send([Array("in".utf8)])
        #expect(try receive(router, within: 5000)?.last == Array("in".utf8))
        #expect(router.lastUserID == nil)
    }

    @Test func malformedZAPRequestsAreAnsweredWith500AndNoDecision() throws {
        let (reply, decision) = ZAPAuthenticator.answer([Array("0.9".utf8), Array("7".utf8)], allowed: [:])
        #expect(decision == nil)
        #expect(reply.count == 6)
        #expect(reply[1] == Array("7".utf8))
        #expect(reply[2] == Array("500".utf8))
    }

    @Test func aSecondHandlerOnTheSameContextCannotBind() throws {
        let context = try ZMQContext()
        let first = try ZAPAuthenticator(context: context, allowed: [:], onDecision: { _ in })
        defer { first.stopAndJoin() }
        #expect(throws: ZMQError.self) { try ZAPAuthenticator(context: context, allowed: [:], onDecision: { _ in }) }
    }
}
