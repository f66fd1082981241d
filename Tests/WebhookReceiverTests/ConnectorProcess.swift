import CRMWebhooks
import DealModel
import DealstreamTestSupport
import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A real `dealstream connect` process on an ephemeral port, driven over real HTTP.
final class ConnectorProcess {
    let process = Process()
    let vendor: Vendor
    let logPath: String
    private(set) var port = 0

    /// Starts the connector with `environment` added to the test's and waits until it listens.
    init(
        vendor: Vendor,
        ingest: String,
        directory: URL,
        environment: [String: String],
        extraArguments: [String] = []
    ) throws {
        self.vendor = vendor
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        logPath = directory.appendingPathComponent("connect-\(vendor.rawValue).log").path
        if !FileManager.default.fileExists(atPath: logPath) {
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        }
        let log = FileHandle(forWritingAtPath: logPath)
        log?.seekToEndOfFile()
        let start = log?.offsetInFile ?? 0
        process.executableURL = URL(fileURLWithPath: DaemonProcess.binary)
        process.arguments =
            [
                "connect", vendor.rawValue, "--mapping",
                FixtureFiles.repository.appendingPathComponent("config/mapping-\(vendor.rawValue).json").path,
                "--model", FixtureFiles.repository.appendingPathComponent("config/model.json").path,
                "--listen", "127.0.0.1:0", "--ingest", ingest, "--data-dir",
                directory.appendingPathComponent("connect-\(vendor.rawValue)").path,
                "--timeout-ms", "1000",
            ] + extraArguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        process.standardError = log
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let text = String(
                decoding: (try? Data(contentsOf: URL(fileURLWithPath: logPath)))?.dropFirst(Int(start)) ?? Data(),
                as: UTF8.self
            )
            if let range = text.range(of: "connect.url=http://127.0.0.1:") {
                let digits = text[range.upperBound...].prefix { $0.isNumber }
                if let p = Int(digits) {
                    port = p
                    return
                }
            }
            guard process.isRunning else { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw DaemonProcess.Failure(description: "connector did not start: \(log_)")
    }

    private var log_: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    var log: String { log_ }

    var url: String { "http://127.0.0.1:\(port)/webhooks/\(vendor.rawValue)" }

    /// POSTs `body` with `headers`; the status and the answer.
    func post(_ body: [UInt8], headers: [String: String]) async throws -> (status: Int, body: String) {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = "POST"
        request.httpBody = Data(body)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }

    struct Health {
        var pending: Int
        var forwarded: Int
        var logSeq: UInt64
    }

    func health() async throws -> Health {
        let (data, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/health")!)
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any],
            let pending = object["spool_pending"] as? Int, let forwarded = object["forwarded"] as? Int,
            let logSeq = object["log_seq"] as? Int
        else { throw DaemonProcess.Failure(description: "bad /health answer \(String(decoding: data, as: UTF8.self))") }
        return Health(pending: pending, forwarded: forwarded, logSeq: UInt64(logSeq))
    }

    /// Waits until the spool is empty (everything acknowledged by the daemon; see `poll`).
    func waitDrained(timeout: Double = 60) async throws -> Health {
        let drained = try await poll(timeout: timeout) {
            let h = try await health()
            return h.pending == 0 ? h : nil
        }
        guard let drained else {
            throw DaemonProcess.Failure(description: "spool not drained within \(timeout) s: \(log)")
        }
        return drained
    }

    /// Stops with SIGTERM; the exit status.
    @discardableResult
    func terminate() -> Int32 {
        guard process.isRunning else { return process.terminationStatus }
        process.terminate()
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// The authentication headers a vendor sends with `body`, for `secret`.
func credentials(_ vendor: Vendor, secret: String, body: [UInt8], mapping: Mapping) -> [String: String] {
    switch vendor {
    case .hubspot:
        let timestamp = String(Int64(Date().timeIntervalSince1970 * 1000))
        let url = (mapping.publicURL ?? "") + "/webhooks/hubspot"
        return [
            "X-HubSpot-Signature-v3": HubSpotSignature.sign(
                secret: secret,
                method: "POST",
                uri: url,
                body: body,
                timestamp: timestamp
            ),
            "X-HubSpot-Request-Timestamp": timestamp,
        ]
    case .pipedrive: return ["Authorization": "Basic " + Base64.encode(Array(secret.utf8))]
    case .salesforce: return ["Authorization": "Bearer " + secret]
    }
}

/// Compares the daemon's published state with the acceptance kit's reference for `events`
/// under config/model.json; nil when they agree, else its report.
func compareWithReference(events: [String], published: [String: String], directory: URL) throws -> String? {
    try referenceDisagreement(
        events: events,
        published: published,
        model: FixtureFiles.repository.appendingPathComponent("config/model.json"),
        directory: directory
    )
}
