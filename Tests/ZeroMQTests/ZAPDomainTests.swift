import Foundation
import Synchronization
import Testing

@testable import ZeroMQ

/// One ZAP handler, two key sets told apart by the server sockets' ZAP domains (the
/// daemon's ingest and worker endpoints share a context), and the handshake watcher that
/// reports refusals from a thread of its own; real libzmq over loopback tcp.
@Suite(.serialized)
struct ZAPDomainTests {
    /// A CURVE ROUTER in `domain` (nil: none set) on a free loopback port, and its endpoint.
    private func router(_ context: ZMQContext, _ keys: CurveKeyPair, domain: String?) throws -> (ZMQSocket, String) {
        let router = try ZMQSocket(context: context, type: .router)
        try router.setCurveServer(secretKey: keys.secretKey)
        if let domain { try router.setZAPDomain(domain) }
        router.recordsUserID = true
        try router.bind("tcp://127.0.0.1:*")
        return (router, try router.lastEndpoint())
    }

    /// Whether a DEALER with `client`'s keys gets a message through to `router` within 2 s,
    /// and the User-Id it arrived with.
    private func getsThrough(
        _ context: ZMQContext,
        _ router: ZMQSocket,
        _ endpoint: String,
        server: CurveKeyPair,
        client: CurveKeyPair
    ) throws -> (through: Bool, userID: String?) {
        let dealer = try ZMQSocket(context: context, type: .dealer)
        defer { dealer.close() }
        try dealer.set(.sendTimeout, 100)
        try dealer.setCurveClient(CurveClientKeys(serverKey: server.publicKey, keyPair: client))
        try dealer.connect(endpoint)
        _ = try dealer.send([Array("hello".utf8)], blocking: false)
        var poller = ZMQPoller()
        poller.add(router)
        guard try poller.poll(timeoutMilliseconds: 2000)[0], let message = try router.receive(blocking: false) else {
            return (false, nil)
        }
        #expect(message.last == Array("hello".utf8))
        return (true, router.lastUserID)
    }

    @Test func eachDomainAdmitsOnlyItsOwnKeys() throws {
        let context = try ZMQContext()
        let server = try CurveKeyPair.generate()
        let connector = try CurveKeyPair.generate()
        let worker = try CurveKeyPair.generate()
        let decisions = Mutex<[ZAPAuthenticator.Decision]>([])
        let zap = try ZAPAuthenticator(
            context: context,
            domains: ["ingest": [connector.publicKey: "crm"], "workers": [worker.publicKey: "remote-1"]],
            onDecision: { d in decisions.withLock { $0.append(d) } }
        )
        defer { zap.stopAndJoin() }
        let (ingest, ingestEndpoint) = try router(context, server, domain: "ingest")
        let (workers, workersEndpoint) = try router(context, server, domain: "workers")
        let (undomained, undomainedEndpoint) = try router(context, server, domain: nil)

        #expect(try getsThrough(context, ingest, ingestEndpoint, server: server, client: connector) == (true, "crm"))
        #expect(
            try getsThrough(context, workers, workersEndpoint, server: server, client: worker) == (true, "remote-1")
        )
        #expect(try getsThrough(context, ingest, ingestEndpoint, server: server, client: worker).through == false)
        #expect(try getsThrough(context, workers, workersEndpoint, server: server, client: connector).through == false)
        // A socket in no domain (or one without a list) admits nobody once domains are used.
        #expect(
            try getsThrough(context, undomained, undomainedEndpoint, server: server, client: connector).through == false
        )

        let all = decisions.withLock { $0 }
        let refused = all.filter { !$0.admitted }.map { "\($0.domain) \($0.clientKey?.z85 ?? "-")" }
        #expect(
            Set(refused)
                == [
                    "ingest \(worker.publicKey.z85)", "workers \(connector.publicKey.z85)",
                    " \(connector.publicKey.z85)",
                ],
            "\(refused)"
        )
        #expect(
            Set(all.filter(\.admitted).map { "\($0.domain) \($0.userID ?? "")" }) == ["ingest crm", "workers remote-1"]
        )
    }

    @Test func theAnswerToARequestFromAnUnlistedDomainIs400() throws {
        let key = try CurveKeyPair.generate().publicKey
        func request(domain: String) -> [[UInt8]] {
            [
                Array("1.0".utf8), Array("1".utf8), Array(domain.utf8), Array("127.0.0.1".utf8), [],
                Array("CURVE".utf8),
                key.bytes,
            ]
        }
        let allowlist = ZAPAuthenticator.Allowlist.perDomain(["workers": [key: "w"]])
        let (admitted, yes) = ZAPAuthenticator.answer(request(domain: "workers"), allowlist: allowlist)
        #expect(admitted[2] == Array("200".utf8))
        #expect(yes?.userID == "w" && yes?.domain == "workers")
        let (refused, no) = ZAPAuthenticator.answer(request(domain: "ingest"), allowlist: allowlist)
        #expect(refused[2] == Array("400".utf8))
        #expect(no?.admitted == false && no?.domain == "ingest" && no?.clientKey == key)
        // The single-list form admits the key whatever the domain (ingest before domains).
        let (anywhere, _) = ZAPAuthenticator.answer(request(domain: "ingest"), allowed: [key: "w"])
        #expect(anywhere[2] == Array("200".utf8))
    }

    /// Threads of this process named `name` (what `ZMQThread` sets, `/proc/self/task/*/comm`).
    private func threads(named name: String) -> Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.filter {
            (try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) == name
        }.count
    }

    @Test func theWatcherReportsARefusedKeyAndAMissingCurveAndEndsWhenTheSocketCloses() throws {
        let context = try ZMQContext()
        let server = try CurveKeyPair.generate()
        let zap = try ZAPAuthenticator(context: context, domains: ["workers": [:]], onDecision: { _ in })
        defer { zap.stopAndJoin() }
        let (listener, endpoint) = try router(context, server, domain: "workers")
        defer { listener.close() }
        let name = "ds-test-watch"
        #expect(threads(named: name) == 0)

        let failures = Mutex<[ZMQHandshakeFailure]>([])
        let refused = try ZMQSocket(context: context, type: .dealer)
        try refused.setCurveClient(CurveClientKeys(serverKey: server.publicKey, keyPair: try .generate()))
        try refused.reportHandshakeFailures(named: name) { f in failures.withLock { $0.append(f) } }
        try refused.connect(endpoint)
        let plainFailures = Mutex<[ZMQHandshakeFailure]>([])
        let plain = try ZMQSocket(context: context, type: .dealer)
        try plain.reportHandshakeFailures(named: name) { f in plainFailures.withLock { $0.append(f) } }
        try plain.connect(endpoint)
        #expect(threads(named: name) == 2)

        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline && (failures.withLock(\.isEmpty) || plainFailures.withLock(\.isEmpty)) {
            Thread.sleep(forTimeInterval: 0.01)
        }
        #expect(failures.withLock { $0.first?.kind } == .authentication(status: 400))
        // Whichever side reads the other's greeting first drops the connection.
        let plainFailure = try #require(plainFailures.withLock { $0.first })
        var droppedMidHandshake = false
        if case .incomplete = plainFailure.kind { droppedMidHandshake = true }
        #expect(plainFailure.isMechanismMismatch || droppedMidHandshake, "\(plainFailure)")

        // Closing the sockets ends both watcher threads (libzmq's MONITOR_STOPPED).
        refused.close()
        plain.close()
        let gone = Date().addingTimeInterval(5)
        while Date() < gone && threads(named: name) > 0 { Thread.sleep(forTimeInterval: 0.01) }
        #expect(threads(named: name) == 0)
    }
}
