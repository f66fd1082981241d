public import CRMWebhooks
import DealModel
import Dispatch
public import Foundation
public import Logging

/// One webhook request, stripped of HTTP: what the processor needs to check and translate it.
public struct WebhookRequest: Sendable {
    public var method: String
    /// The URL the vendor called, as it signs it (HubSpot: scheme, host, path and query).
    public var url: String
    /// Header values by lower-case name.
    public var headers: [String: String]
    public var body: [UInt8]
    public init(method: String, url: String, headers: [String: String], body: [UInt8]) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
    }

    /// A request as the HTTP route receives it: the URL is the mapping's `publicURL` (or
    /// `http://` and the request's authority, its `Host` header, or the listen address)
    /// plus the request target; header names are made lower case (the last of repeated
    /// names wins). The route and the fuzz target both build requests this way.
    public init(
        method: String,
        authority: String?,
        path: String,
        headers: [(name: String, value: String)],
        body: [UInt8],
        publicURL: String?,
        listenAddress: String
    ) {
        var byName: [String: String] = [:]
        for (name, value) in headers { byName[name.lowercased()] = value }
        let base = publicURL ?? "http://\(authority ?? byName["host"] ?? listenAddress)"
        self.init(method: method, url: base + path, headers: byName, body: body)
    }
}

/// The answer to a webhook: an HTTP status and a JSON body saying why.
public struct WebhookResponse: Sendable, Equatable {
    public var status: Int
    public var body: String
}

/// A connector's core, independent of the HTTP server: authenticates a request,
/// translates it, updates the durable deal states and spools the resulting events.
///
/// Why it exists apart from the server: every step that decides what happens to a
/// webhook is here, so tests can drive it directly and the HTTP layer stays a thin
/// adapter. Requests are serialised (deal states are read-modify-write); the answer is
/// 2xx only after the deal states and the events are synced to disk.
public final class WebhookProcessor: @unchecked Sendable {
    public let vendor: Vendor
    public let mapping: Mapping
    let assembler: DealAssembler
    /// nil: `--insecure`, no authentication.
    let secret: String?
    let store: DealStateStore
    public let spool: Spool
    let fetcher: HubSpotFetcher?
    let logger: Logger
    /// Serialises the read-modify-write of deal states and keeps the blocking `fdatasync`
    /// calls off Swift's cooperative thread pool.
    private let queue = DispatchQueue(label: "dealstream.connect.apply")
    /// Requests waiting for the next group commit, and whether `queue` is draining them.
    private let lock = NSLock()
    private var waiting: [(changes: [DealChange], continuation: CheckedContinuation<Applied, any Error>)] = []
    private var draining = false
    /// Clock for the HubSpot timestamp check (injectable for tests).
    let now: @Sendable () -> Int64

    public init(
        vendor: Vendor,
        mapping: Mapping,
        secret: String?,
        dataDirectory: URL,
        fetcher: HubSpotFetcher?,
        logger: Logger,
        spoolCapacity: Int = 1_000_000,
        now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }
    ) throws {
        self.vendor = vendor
        self.mapping = mapping
        self.assembler = DealAssembler(mapping: mapping)
        self.secret = secret
        // The spool first: opening it changes nothing unless it is torn, while the deal
        // states are compacted on open, so a corrupt spool leaves both files as they were.
        self.spool = try Spool(directory: dataDirectory, capacity: spoolCapacity)
        self.store = try DealStateStore(directory: dataDirectory)
        self.fetcher = fetcher
        self.logger = logger
        self.now = now
    }

    /// Handles one request end to end.
    public func handle(_ request: WebhookRequest) async -> WebhookResponse {
        do {
            try authenticate(request)
        } catch {
            logger.warning("Webhook refused", metadata: ["webhook.vendor": "\(vendor)", "webhook.reason": "\(error)"])
            return WebhookResponse(status: 401, body: Self.json(["error": .string(error.description)]))
        }
        let translation: Translation
        do {
            translation = try vendor.translate(request.body, mapping: mapping)
        } catch {
            logger.warning(
                "Webhook payload refused",
                metadata: ["webhook.vendor": "\(vendor)", "webhook.reason": "\(error)"]
            )
            return WebhookResponse(
                status: error.field == "body" ? 400 : 422,
                body: Self.json(["error": .string(error.description)])
            )
        }
        for warning in translation.warnings {
            logger.warning(
                "Change events were lost upstream",
                metadata: ["webhook.vendor": "\(vendor)", "webhook.hint": "\(warning)"]
            )
        }
        var result: Applied
        do {
            result = try await applyOnQueue(translation.changes)
        } catch let error as PayloadError {
            return WebhookResponse(status: 422, body: Self.json(["error": .string(error.description)]))
        } catch {
            logger.error("Spool or deal state not written", metadata: ["webhook.error": "\(error)"])
            return WebhookResponse(status: 503, body: Self.json(["error": .string("not stored: \(error)")]))
        }
        if let fetcher, !result.heldBack.isEmpty {
            for id in result.heldBack.keys.sorted() {
                do {
                    let change = try HubSpotWebhook.translateDeal(try await fetcher.fetchDeal(id: id), mapping: mapping)
                    let more = try await applyOnQueue([change])
                    result.events += more.events
                    result.heldBack[id] = more.heldBack[id]
                } catch {
                    logger.warning(
                        "Deal properties not fetched",
                        metadata: ["deal.id": "\(id)", "webhook.error": "\(error)"]
                    )
                }
            }
        }
        let held = result.heldBack.sorted { $0.key < $1.key }.map {
            JSONValue.string("\($0.key): missing \($0.value.joined(separator: ", "))")
        }
        return WebhookResponse(
            status: 200,
            body: Self.json([
                "events": .int(Int64(result.events)), "held_back": .array(held),
                "ignored": .int(Int64(translation.ignored)),
                "warnings": .array(translation.warnings.map { .string($0) }),
            ])
        )
    }

    func authenticate(_ request: WebhookRequest) throws(AuthenticationError) {
        guard let secret else { return }
        switch vendor {
        case .hubspot:
            try HubSpotSignature.verify(
                secret: secret,
                method: request.method,
                uri: request.url,
                body: request.body,
                timestamp: request.headers["x-hubspot-request-timestamp"],
                signature: request.headers["x-hubspot-signature-v3"],
                nowMilliseconds: now()
            )
        case .pipedrive:
            try SharedSecret.verifyBasic(authorization: request.headers["authorization"], credentials: secret)
        case .salesforce:
            try SharedSecret.verifyBearer(authorization: request.headers["authorization"], token: secret)
        }
    }

    struct Applied: Sendable {
        var events = 0
        var heldBack: [String: [String]] = [:]
    }

    /// Applies one request's changes together with those of the requests waiting at the
    /// same time (group commit: one `fdatasync` of the deal states and one of the spool per
    /// group, however many requests it holds). A request whose changes are invalid fails
    /// alone; a failed sync fails the whole group (the vendors retry).
    func applyOnQueue(_ changes: [DealChange]) async throws -> Applied {
        try await withCheckedThrowingContinuation { continuation in
            let start = lock.withLock {
                waiting.append((changes, continuation))
                defer { draining = true }
                return !draining
            }
            if start { queue.async { self.drain() } }
        }
    }

    private func drain() {
        while true {
            let group = lock.withLock {
                let group = waiting
                waiting = []
                if group.isEmpty { draining = false }
                return group
            }
            if group.isEmpty { return }
            var changed: [String: DealState] = [:]
            var events: [[UInt8]] = []
            var results: [Result<Applied, any Error>] = []
            for request in group {
                var local = changed
                var localEvents: [[UInt8]] = []
                var applied = Applied()
                do {
                    for change in request.changes {
                        var state = local[change.recordID] ?? store.states[change.recordID] ?? DealState()
                        switch try assembler.apply(change, to: &state) {
                        case .event(let event):
                            localEvents.append(event)
                            applied.heldBack[change.recordID] = nil
                        case .heldBack(let missing): applied.heldBack[change.recordID] = missing
                        case .nothing: break
                        }
                        local[change.recordID] = state
                    }
                    applied.events = localEvents.count
                    changed = local
                    events += localEvents
                    results.append(.success(applied))
                } catch {
                    results.append(.failure(error))
                }
            }
            do {
                // Checked before the deal states are saved: a request refused for a full
                // spool leaves nothing behind, so the vendor's retry redoes all of it.
                try spool.ensureRoom(for: events.count)
                try store.save(changed)
                try spool.append(events)
            } catch {
                for request in group { request.continuation.resume(throwing: error) }
                continue
            }
            for (request, result) in zip(group, results) { request.continuation.resume(with: result) }
        }
    }

    /// A reply body: a JSON object with its keys sorted.
    static func json(_ members: [String: JSONValue]) -> String {
        var out: [UInt8] = []
        JSONWriter.append(.object(members.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }), to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}
