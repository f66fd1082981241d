import Foundation
import Testing

@testable import ZeroMQ

/// The ZeroMQ layer against the real libzmq: sockets, multipart messages, the poller,
/// errors, and threads that own their sockets.
struct ZeroMQTests {
    @Test func dealerRouterRoundTripKeepsFramesAndEnvelope() throws {
        let context = try ZMQContext()
        let router = try ZMQSocket(context: context, type: .router)
        try router.bind("inproc://round-trip")
        let dealer = try ZMQSocket(context: context, type: .dealer)
        try dealer.setIdentity(Array("client-1".utf8))
        try dealer.connect("inproc://round-trip")
        let big = [UInt8](repeating: 7, count: 100_000)
        try dealer.send([Array("EVENTS".utf8), [], [1, 2, 3], big])
        let received = try #require(try router.receive())
        #expect(received.count == 5)
        #expect(received[0] == Array("client-1".utf8))
        #expect(received[1] == Array("EVENTS".utf8))
        #expect(received[2] == [])
        #expect(received[4] == big)
        try router.send([received[0], Array("ACK".utf8)])
        #expect(try dealer.receive() == [Array("ACK".utf8)])
    }

    @Test func nonBlockingReceiveReturnsNilWhenEmpty() throws {
        let context = try ZMQContext()
        let pull = try ZMQSocket(context: context, type: .pull)
        try pull.bind("inproc://empty")
        #expect(try pull.receive(blocking: false) == nil)
    }

    @Test func pollerReportsReadinessPerSocket() throws {
        let context = try ZMQContext()
        let a = try ZMQSocket(context: context, type: .pull)
        try a.bind("inproc://poll-a")
        let b = try ZMQSocket(context: context, type: .pull)
        try b.bind("inproc://poll-b")
        let push = try ZMQSocket(context: context, type: .push)
        try push.connect("inproc://poll-b")
        try push.send([[42]])
        var poller = ZMQPoller()
        poller.add(a)
        poller.add(b)
        #expect(try poller.poll(timeoutMilliseconds: 1000) == [false, true])
        _ = try b.receive()
        #expect(try poller.poll(timeoutMilliseconds: 10) == [false, false])
    }

    @Test func errorsNameTheCallAndEndpoint() throws {
        let context = try ZMQContext()
        let socket = try ZMQSocket(context: context, type: .router)
        do {
            try socket.bind("nonsense://here")
            Issue.record("bind to a bad endpoint must fail")
        } catch {
            #expect(error.function == "zmq_bind")
            #expect(error.context == "nonsense://here")
            #expect(error.description.contains("zmq_bind(nonsense://here)"))
        }
    }

    @Test func routerMandatoryReportsAnUnknownPeer() throws {
        let context = try ZMQContext()
        let router = try ZMQSocket(context: context, type: .router)
        try router.set(.routerMandatory, 1)
        try router.bind("inproc://mandatory")
        #expect(throws: ZMQError.self) { try router.send([Array("nobody".utf8), [1]], blocking: false) }
    }

    @Test func publisherReachesPrefixSubscribersOverIPC() throws {
        let context = try ZMQContext()
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("zmq-test-\(getpid()).sock").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let pub = try ZMQSocket(context: context, type: .xpub)
        try pub.bind("ipc://" + path)
        let sub = try ZMQSocket(context: context, type: .sub)
        try sub.subscribe(Array("win_rate/".utf8))
        try sub.connect("ipc://" + path)
        // XPUB sees the subscription: the slow-joiner problem is over once it arrives.
        let subscription = try #require(try pub.receive())
        #expect(subscription[0] == [1] + Array("win_rate/".utf8))
        try pub.send([Array("revenue/all".utf8), [1]])
        try pub.send([Array("win_rate/all".utf8), [2]])
        #expect(try sub.receive() == [Array("win_rate/all".utf8), [2]])
    }

    @Test func socketThreadsOwnTheirSocketsAndStopOnTheirFlag() async throws {
        let context = try ZMQContext()
        let stop = StopFlag()
        let endpoint = "inproc://threads"
        let server = try ZMQSocket(context: context, type: .router)
        try server.bind(endpoint)
        let thread = ZMQThread(name: "test-client") {
            guard let client = try? ZMQSocket(context: context, type: .dealer), (try? client.connect(endpoint)) != nil
            else { return }
            var n = 0
            while !stop.isSet && n < 3 {
                _ = try? client.send([[UInt8(n)]])
                n += 1
            }
        }
        var got: [[UInt8]] = []
        for _ in 0..<3 { got.append(try #require(try server.receive())[1]) }
        stop.set()
        await thread.joined()
        #expect(got == [[0], [1], [2]])
    }
}
