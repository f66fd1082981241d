// libFuzzer entry point for the webhook receivers: every input is one HTTP request to one
// vendor route (`POST /webhooks/<vendor>`) with fuzzed headers and body, built with
// `WebhookRequest(method:authority:path:headers:body:publicURL:listenAddress:)` and answered
// by `WebhookProcessor.handle`, exactly what `WebhookServer`'s route does with what
// Hummingbird parsed, so authentication, translation, deal assembly, deal states and the
// spool all run, on real files (in /dev/shm). Built by scripts/fuzz from the DealModel,
// CRMWebhooks, FramedLog and WebhookReceiver sources (no imports), linked against the
// package's swift-crypto and swift-log builds.
//
// Input: byte 0 chooses the vendor (low two bits, mod 3) and whether the request is sent
// with valid credentials (bit 3: HubSpot's v3 signature over the fuzzed body and the fuzzed
// or a current timestamp, Pipedrive's Basic, Salesforce's bearer token); then header lines
// `name:value` up to an empty line (a first line starting with `?` is the query string);
// the rest is the body.
//
// Checked besides "no crash": every answer is 200, 400, 401, 422 or 503, and a request
// without valid credentials is never answered 200.

import Dispatch
import Foundation
import Logging

let fuzzSecrets: [Vendor: String] = [
    .hubspot: "fuzz-hubspot-secret", .pipedrive: "fuzz:password", .salesforce: "fuzz-token",
]
/// The receivers' clock: fixed, so a crash replays. HubSpot timestamps near it pass.
let fuzzNow: Int64 = 1_793_610_000_000

let fuzzMappings: [Vendor: Mapping] = {
    let model = try! Model.parse(Array(FileManager.default.contents(atPath: "config/model.json")!))
    var out: [Vendor: Mapping] = [:]
    for vendor in Vendor.allCases {
        var mapping = try! Mapping.parse(
            Array(FileManager.default.contents(atPath: "config/mapping-\(vendor.rawValue).json")!)
        )
        try! mapping.validate(against: model)
        out[vendor] = mapping
    }
    return out
}()

let fuzzRoot: String = {
    let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
    return "\(base)/dealstream-webhook-fuzz-\(getpid())"
}()

/// The processors of one generation: replaced (with fresh files) every few thousand
/// requests so the spool and the deal states stay small.
final class FuzzProcessors {
    nonisolated(unsafe) static var current = FuzzProcessors(generation: 0)
    nonisolated(unsafe) static var requests = 0

    let generation: Int
    let directory: String
    let processors: [Vendor: WebhookProcessor]

    init(generation: Int) {
        self.generation = generation
        directory = "\(fuzzRoot)/\(generation)"
        try? FileManager.default.removeItem(atPath: directory)
        var logger = Logger(label: "fuzz")
        logger.logLevel = .critical
        var processors: [Vendor: WebhookProcessor] = [:]
        for vendor in Vendor.allCases {
            processors[vendor] = try! WebhookProcessor(
                vendor: vendor,
                mapping: fuzzMappings[vendor]!,
                secret: fuzzSecrets[vendor]!,
                dataDirectory: URL(fileURLWithPath: "\(directory)/\(vendor.rawValue)"),
                fetcher: nil,
                logger: logger,
                spoolCapacity: 50_000,
                now: { fuzzNow }
            )
        }
        self.processors = processors
    }

    static func next() -> FuzzProcessors {
        requests += 1
        if requests % 5000 == 0 {
            let old = current.directory
            current = FuzzProcessors(generation: current.generation + 1)
            try? FileManager.default.removeItem(atPath: old)
        }
        return current
    }
}

final class FuzzAnswer: @unchecked Sendable {
    var response: WebhookResponse?
}

/// Runs the async handler to completion from libFuzzer's (non-cooperative) thread.
func fuzzHandle(_ processor: WebhookProcessor, _ request: WebhookRequest) -> WebhookResponse {
    let answer = FuzzAnswer()
    let done = DispatchSemaphore(value: 0)
    Task {
        answer.response = await processor.handle(request)
        done.signal()
    }
    done.wait()
    return answer.response!
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWebhooks(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let vendor = Vendor.allCases[Int(bytes[0] & 3) % 3]
    let signed = bytes[0] & 8 != 0
    // Header block up to the first empty line; the rest is the body.
    var rest = bytes[1...]
    var headers: [(name: String, value: String)] = []
    var query = ""
    if let end = rest.indices.first(where: { i in rest[i] == 10 && i + 1 < rest.endIndex && rest[i + 1] == 10 }) {
        let block = String(decoding: rest[rest.startIndex..<end], as: UTF8.self)
        for (n, line) in block.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if n == 0 && line.hasPrefix("?") {
                query = String(line)
            } else if let colon = line.firstIndex(of: ":") {
                headers.append((String(line[..<colon]), String(line[line.index(after: colon)...])))
            }
        }
        rest = rest[(end + 2)...]
    }
    let body = Array(rest)
    let mapping = fuzzMappings[vendor]!
    let secret = fuzzSecrets[vendor]!
    var request = WebhookRequest(
        method: "POST",
        authority: nil,
        path: "/webhooks/\(vendor.rawValue)\(query)",
        headers: headers,
        body: body,
        publicURL: mapping.publicURL,
        listenAddress: "127.0.0.1:8080"
    )
    if signed {
        switch vendor {
        case .hubspot:
            let timestamp = request.headers["x-hubspot-request-timestamp"] ?? String(fuzzNow)
            request.headers["x-hubspot-request-timestamp"] = timestamp
            request.headers["x-hubspot-signature-v3"] = HubSpotSignature.sign(
                secret: secret,
                method: "POST",
                uri: request.url,
                body: body,
                timestamp: timestamp
            )
        case .pipedrive: request.headers["authorization"] = "Basic " + Base64.encode(Array(secret.utf8))
        case .salesforce: request.headers["authorization"] = "Bearer " + secret
        }
    }
    let processors = FuzzProcessors.next()
    let response = fuzzHandle(processors.processors[vendor]!, request)
    guard [200, 400, 401, 422, 503].contains(response.status) else {
        fatalError("unexpected status \(response.status): \(response.body)")
    }
    if response.status == 200 && !signed {
        // Only a request that carries the right credentials by itself may pass.
        let authorized: Bool
        switch vendor {
        case .hubspot:
            let t = request.headers["x-hubspot-request-timestamp"] ?? ""
            authorized =
                request.headers["x-hubspot-signature-v3"]
                == HubSpotSignature.sign(secret: secret, method: "POST", uri: request.url, body: body, timestamp: t)
        case .pipedrive: authorized = request.headers["authorization"] == "Basic " + Base64.encode(Array(secret.utf8))
        case .salesforce: authorized = request.headers["authorization"] == "Bearer " + secret
        }
        if !authorized { fatalError("authentication bypassed: \(vendor) answered 200 without credentials") }
    }
    return 0
}
