import DealModel
import Foundation
public import Logging
public import ServiceLifecycle
import Synchronization

/// The published state as the dashboard last saw it, and every connected browser's backlog.
///
/// Why it exists: one subscriber (the follower thread) feeds many browsers, and a browser
/// that reads slowly must neither slow the others nor make memory grow. So a browser's
/// backlog holds no payloads: it is the set of series (topics) that changed since that
/// browser was last written to. When its writer drains it, the *current* payload of each
/// topic is read from the shared state, so repeated changes of a series coalesce into its
/// latest value, and the backlog can never be larger than the number of series. The state
/// changes only at round boundaries (`commit` after the daemon's `_progress`), so what a
/// browser gets after a drain is one consistent round, the latest. A commit only appends the
/// round's topics to a bounded journal, so the follower's cost does not grow with the number
/// of browsers; each client folds the rounds it has not seen into its backlog when drained.
///
/// A browser whose writes do not complete within `slowClientSeconds` is dropped (its
/// connection closed) by `sweep`, which the server calls once a second.
public final class DashboardHub: Sendable {
    /// Where the dashboard stands: the latest round it has, and when it got it.
    public struct Position: Sendable, Equatable {
        public var seq: UInt64 = 0
        public var logSeq: UInt64 = 0
        /// Wall-clock time (seconds since 1970) of the last `_progress` from the daemon; 0: never.
        public var lastRoundAt: Double = 0
        /// Whether the last snapshot request succeeded and nothing failed since.
        public var connected = false
    }

    /// What `drain` hands a client's writer: SSE bytes, and whether the backlog is now empty.
    public struct Drained: Sendable {
        public var bytes: [UInt8]
        public var complete: Bool
    }

    /// Counters for `/health` and the load check.
    public struct Statistics: Sendable {
        public var series: Int
        public var clients: Int
        public var clientsDropped: UInt64
        public var snapshots: UInt64
        public var rounds: UInt64
        public var position: Position
    }

    struct Client {
        var dirty: Set<String> = []
        var reset = true
        var wake: AsyncStream<Void>.Continuation
        var close: @Sendable () -> Void
        var congested: @Sendable () -> Bool
        var sentLogSeq: UInt64 = .max
        var sentAt: Double = 0
        var writeStartedAt: Double?
        /// The journal position up to which `dirty` includes the changes.
        var cursor: UInt64 = 0
    }

    struct State {
        var series: [String: [UInt8]] = [:]
        var position = Position()
        var clients: [UInt64: Client] = [:]
        var nextClient: UInt64 = 1
        var dropped: UInt64 = 0
        var snapshots: UInt64 = 0
        var rounds: UInt64 = 0
        var closed = false
        /// The topics each round changed, oldest first: `journal[i]` is round `journalStart + i`.
        /// A commit only appends here (its cost does not grow with the number of browsers); a
        /// client folds the rounds it has not seen into its backlog when it is drained.
        var journal: [[String]] = []
        var journalStart: UInt64 = 0
        var journalTopics = 0
        var journalEnd: UInt64 { journalStart + UInt64(journal.count) }

        /// Appends a round's topics to the journal, dropping the rounds every client has folded
        /// in, and the oldest ones beyond `limit` topics.
        mutating func record(_ topics: [String], limit: Int) {
            journal.append(topics)
            journalTopics += topics.count
            // Rounds every client has folded in are not needed any more.
            let oldest = clients.values.lazy.filter { !$0.reset }.map(\.cursor).min() ?? journalEnd
            var dropped = 0
            while journal.count - dropped > 1 && (journalStart + UInt64(dropped) < oldest || journalTopics > limit) {
                journalTopics -= journal[dropped].count
                dropped += 1
            }
            if dropped > 0 {
                journal.removeFirst(dropped)
                journalStart += UInt64(dropped)
            }
        }
    }

    private let state = Mutex(State())
    /// Series per SSE message while draining (bounds one write).
    let seriesPerMessage: Int
    /// A client whose write has not completed for this long is dropped.
    public let slowClientSeconds: Double
    /// Without other news, a client gets the position at least this often (the page's heartbeat).
    let heartbeatSeconds: Double

    /// Topics kept in the journal at most (beyond it, the oldest rounds go, and a client that
    /// had not seen them starts over from the full state); at least twice the series count.
    let journalLimit: Int

    public init(
        seriesPerMessage: Int = 500,
        slowClientSeconds: Double = 5,
        heartbeatSeconds: Double = 1,
        journalLimit: Int = 500_000
    ) {
        self.journalLimit = journalLimit
        self.seriesPerMessage = seriesPerMessage
        self.slowClientSeconds = slowClientSeconds
        self.heartbeatSeconds = heartbeatSeconds
    }

    static func now() -> Double { Date().timeIntervalSince1970 }

    // MARK: - The follower's side

    /// A fresh snapshot replaced everything. The first one, or one after the journal was
    /// lost, starts every client over from the full state; later ones (gap repairs) reach the
    /// clients as one round of just the series that differ from what the hub had, so a gap
    /// costs the browsers no more than the changes they missed.
    public func replace(series: [String: [UInt8]], seq: UInt64, logSeq: UInt64) {
        let wakes = state.withLock { s -> [AsyncStream<Void>.Continuation] in
            if s.snapshots > 0 {
                var differing: [String] = []
                for (topic, raw) in series where s.series[topic] != raw { differing.append(topic) }
                for topic in s.series.keys where series[topic] == nil { differing.append(topic) }
                s.series = series
                s.position.seq = seq
                s.position.logSeq = logSeq
                s.position.connected = true
                s.snapshots += 1
                if !differing.isEmpty { s.record(differing, limit: max(journalLimit, 2 * s.series.count)) }
                return s.clients.values.map(\.wake)
            }
            s.series = series
            s.position.seq = seq
            s.position.logSeq = logSeq
            s.position.connected = true
            if s.position.lastRoundAt == 0 { s.position.lastRoundAt = Self.now() }
            s.snapshots += 1
            s.journalStart = s.journalEnd
            s.journal = []
            s.journalTopics = 0
            for id in s.clients.keys {
                s.clients[id]!.reset = true
                s.clients[id]!.dirty = []
            }
            return s.clients.values.map(\.wake)
        }
        for wake in wakes { wake.yield() }
    }

    /// One round of the daemon: the series it changed (nil: removed) and its position.
    public func commit(changes: [String: [UInt8]?], seq: UInt64, logSeq: UInt64) {
        let at = Self.now()
        let wakes = state.withLock { s -> [AsyncStream<Void>.Continuation] in
            for (topic, raw) in changes { s.series[topic] = raw }
            let moved = logSeq != s.position.logSeq
            s.position.seq = max(s.position.seq, seq)
            s.position.logSeq = logSeq
            s.position.lastRoundAt = at
            s.position.connected = true
            s.rounds += 1
            guard !changes.isEmpty || moved else { return [] }
            if !changes.isEmpty { s.record(Array(changes.keys), limit: max(journalLimit, 2 * s.series.count)) }
            return s.clients.values.map(\.wake)
        }
        for wake in wakes { wake.yield() }
    }

    /// The daemon could not be reached (snapshot timed out); the page shows it.
    public func disconnected() {
        state.withLock { $0.position.connected = false }
    }

    public var position: Position { state.withLock { $0.position } }

    public var statistics: Statistics {
        state.withLock {
            Statistics(
                series: $0.series.count,
                clients: $0.clients.count,
                clientsDropped: $0.dropped,
                snapshots: $0.snapshots,
                rounds: $0.rounds,
                position: $0.position
            )
        }
    }

    // MARK: - The browsers' side

    /// Registers a browser; `close` ends its connection (used when it is dropped); `congested`
    /// tells whether its connection has stopped taking data (the channel is not writable), so
    /// that a server merely short of CPU does not mistake its readers for slow ones.
    public func register(
        close: @escaping @Sendable () -> Void,
        congested: @escaping @Sendable () -> Bool = { true }
    )
        -> (id: UInt64, wakes: AsyncStream<Void>)
    {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        continuation.yield()  // the full state goes out at once
        let id = state.withLock { s -> UInt64 in
            let id = s.nextClient
            s.nextClient += 1
            if !s.closed {
                s.clients[id] = Client(wake: continuation, close: close, congested: congested, cursor: s.journalEnd)
            }
            return id
        }
        if state.withLock({ $0.closed }) { continuation.finish() }
        return (id, stream)
    }

    /// Ends every stream (graceful shutdown): the writers return and the responses complete.
    public func closeAll() {
        let clients = state.withLock { s -> [Client] in
            s.closed = true
            defer { s.clients = [:] }
            return Array(s.clients.values)
        }
        for client in clients { client.wake.finish() }
    }

    public func unregister(_ id: UInt64) {
        let client = state.withLock { $0.clients.removeValue(forKey: id) }
        client?.wake.finish()
    }

    /// Marks the start or the end of a write to the client (what `sweep` watches).
    public func writing(_ id: UInt64, _ started: Bool) {
        state.withLock { $0.clients[id]?.writeStartedAt = started ? Self.now() : nil }
    }

    /// Drops every client whose write has been pending longer than `slowClientSeconds` while
    /// its connection took no more data, and wakes the others so that they send their
    /// heartbeat. Returns the dropped ids.
    @discardableResult
    public func sweep() -> [UInt64] {
        let now = Self.now()
        let (dropped, wakes) = state.withLock { s -> ([(UInt64, Client)], [AsyncStream<Void>.Continuation]) in
            var dropped: [(UInt64, Client)] = []
            for (id, client) in s.clients {
                if let started = client.writeStartedAt, now - started > slowClientSeconds, client.congested() {
                    dropped.append((id, client))
                }
            }
            for (id, _) in dropped { s.clients[id] = nil }
            s.dropped += UInt64(dropped.count)
            return (dropped, s.clients.values.map(\.wake))
        }
        for (_, client) in dropped {
            client.wake.finish()
            client.close()
        }
        for wake in wakes { wake.yield() }
        return dropped.map(\.0)
    }

    /// The next SSE bytes for a client: a reset marker after a (re)snapshot, at most
    /// `seriesPerMessage` changed series as one `series` event, and the `position` event
    /// once the backlog is empty (or as a heartbeat). Nil when there is nothing to send
    /// or the client is gone.
    public func drain(_ id: UInt64) -> Drained? {
        let now = Self.now()
        struct Taken {
            var reset: Bool
            var series: [(String, [UInt8]?)]
            var position: Position?
            var complete: Bool
        }
        let taken = state.withLock { s -> Taken? in
            guard var client = s.clients[id] else { return nil }
            if !client.reset {
                if client.cursor < s.journalStart {
                    client.reset = true  // fell behind the journal: start over from the full state
                } else {
                    for round in Int(client.cursor - s.journalStart)..<s.journal.count {
                        client.dirty.formUnion(s.journal[round])
                    }
                }
            }
            client.cursor = s.journalEnd
            var reset = false
            if client.reset {
                reset = true
                client.reset = false
                client.dirty = Set(s.series.keys)
            }
            var series: [(String, [UInt8]?)] = []
            series.reserveCapacity(min(client.dirty.count, seriesPerMessage))
            while series.count < seriesPerMessage, let topic = client.dirty.popFirst() {
                series.append((topic, s.series[topic]))
            }
            let complete = client.dirty.isEmpty
            var position: Position?
            if complete
                && (reset || !series.isEmpty || client.sentLogSeq != s.position.logSeq
                    || now - client.sentAt >= heartbeatSeconds)
            {
                position = s.position
                client.sentLogSeq = s.position.logSeq
                client.sentAt = now
            }
            s.clients[id] = client
            if !reset && series.isEmpty && position == nil {
                return Taken(reset: false, series: [], position: nil, complete: true)
            }
            return Taken(reset: reset, series: series, position: position, complete: complete)
        }
        guard let taken else { return nil }
        var out: [UInt8] = []
        if taken.reset { out.append(contentsOf: Array("event: reset\ndata: {}\n\n".utf8)) }
        if !taken.series.isEmpty {
            out.reserveCapacity(taken.series.count * 300)
            out.append(contentsOf: Array("event: series\ndata: [".utf8))
            for (index, (topic, raw)) in taken.series.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                out.append(contentsOf: Array("{\"t\":".utf8))
                JSONWriter.appendString(topic, to: &out)
                out.append(contentsOf: Array(",\"p\":".utf8))
                if let raw {
                    if raw.contains(where: { $0 == 10 || $0 == 13 }) {
                        // A payload is one JSON object; a line break (JSON whitespace) would end the SSE line.
                        out.append(contentsOf: raw.map { $0 == 10 || $0 == 13 ? 32 : $0 })
                    } else {
                        out.append(contentsOf: raw)
                    }
                } else {
                    out.append(contentsOf: Array("null".utf8))
                }
                out.append(UInt8(ascii: "}"))
            }
            out.append(contentsOf: Array("]\n\n".utf8))
        }
        if let p = taken.position {
            let age = p.lastRoundAt == 0 ? -1 : Int(((now - p.lastRoundAt) * 1000).rounded())
            out.append(
                contentsOf: Array(
                    ("event: position\ndata: {\"seq\":\(p.seq),\"log_seq\":\(p.logSeq),"
                        + "\"last_round_ms\":\(Int((p.lastRoundAt * 1000).rounded())),\"round_age_ms\":\(age),"
                        + "\"connected\":\(p.connected)}\n\n").utf8
                )
            )
        }
        return Drained(bytes: out, complete: taken.complete)
    }
}

/// Once a second: drops the browsers that stopped taking their writes (`DashboardHub.sweep`)
/// and wakes the rest for their heartbeat, which keeps the page's freshness line honest.
///
/// On graceful shutdown it ends every event stream first, so the HTTP server, which waits
/// for its open responses, can stop.
public struct DashboardSweeper: Service {
    public var hub: DashboardHub
    public var logger: Logger

    public init(hub: DashboardHub, logger: Logger) {
        self.hub = hub
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                for id in hub.sweep() {
                    logger.notice(
                        "Slow browser dropped",
                        metadata: [
                            "client.id": "\(id)", "client.limit_s": "\(hub.slowClientSeconds)",
                        ]
                    )
                }
            }
        }
        hub.closeAll()
    }
}
