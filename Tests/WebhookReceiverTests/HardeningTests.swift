import CRMWebhooks
import DealModel
import DealstreamTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `dealstream connect` against a hostile HTTP client and an unlucky operator, as a real
/// process over real HTTP and real files (issue 14): no peer number crashes it, HubSpot's
/// timestamp tolerance holds both ways, slow clients are cut off, one data directory one
/// connector, a corrupt spool is refused, and a stop never waits on a daemon that is down.
@Suite(.serialized)
struct ConnectorHardeningTests {
    static let secrets = ConnectorIntegrationTests.secrets
    /// Nothing listens on the discard port: the daemon is down.
    static let downDaemon = "tcp://127.0.0.1:9"

    private func temporaryDirectory(_ name: String) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent(
            "ds-harden-\(name)-\(UUID().uuidString.prefix(8))"
        )
    }

    private func start(_ vendor: Vendor, _ directory: URL, _ extra: [String] = []) throws -> ConnectorProcess {
        try ConnectorProcess(
            vendor: vendor,
            ingest: Self.downDaemon,
            directory: directory,
            environment: [vendor.secretName: Self.secrets[vendor]!],
            extraArguments: extra
        )
    }

    private func signed(_ vendor: Vendor, _ body: [UInt8]) throws -> [String: String] {
        credentials(vendor, secret: Self.secrets[vendor]!, body: body, mapping: try FixtureFiles.mapping(vendor))
    }

    /// HubSpot headers for `body` signed with the right secret at `timestamp`.
    private func hubSpotHeaders(_ body: [UInt8], timestamp: String) throws -> [String: String] {
        let url = (try FixtureFiles.mapping(.hubspot).publicURL ?? "") + "/webhooks/hubspot"
        return [
            "X-HubSpot-Signature-v3": HubSpotSignature.sign(
                secret: Self.secrets[.hubspot]!,
                method: "POST",
                uri: url,
                body: body,
                timestamp: timestamp
            ),
            "X-HubSpot-Request-Timestamp": timestamp,
        ]
    }

    // MARK: peer numbers

    /// Requests whose numbers overflowed an arithmetic before: each must get a 4xx and leave
    /// the process running.
    private func hostileRequests(_ vendor: Vendor) throws -> [(name: String, body: [UInt8], headers: [String: String])]
    {
        let min = "-9223372036854775808"
        let max = "9223372036854775807"
        let huge = "18446744073709551615"
        switch vendor {
        case .hubspot:
            func event(_ fields: String) -> [UInt8] {
                Array(#"[{"eventId":1,"subscriptionType":"deal.propertyChange","objectId":9041,\#(fields)}]"#.utf8)
            }
            let created = event(#""occurredAt":1793610000000,"propertyName":"createdate","propertyValue":"#)
            var out: [(String, [UInt8], [String: String])] = []
            for timestamp in [min, max, "-1", "0", "99999999999999999999", "1e3"] {
                out.append(
                    (
                        "timestamp \(timestamp), bogus signature", Array("[]".utf8),
                        ["X-HubSpot-Signature-v3": "bogus", "X-HubSpot-Request-Timestamp": timestamp]
                    )
                )
            }
            for body in [
                event(#""occurredAt":"\#(huge)","propertyName":"amount","propertyValue":"5""#),
                event(#""occurredAt":\#(max),"propertyName":"amount","propertyValue":"5""#),
                created + Array("\(min)}]".utf8), created + Array("1e300}]".utf8), created + Array("-1e300}]".utf8),
            ] {
                out.append(("signed body \(String(decoding: body, as: UTF8.self))", body, try signed(.hubspot, body)))
            }
            return out
        case .pipedrive:
            func body(meta: String, current: String = "") -> [UInt8] {
                Array(
                    #"{"meta":{"action":"added","object":"deal","id":501,\#(meta)},"current":{"id":501,"stage_id":1,"pipeline_id":1,"status":"open","value":5,"add_time":\#(current.isEmpty ? "\"2026-11-03 10:00:00\"" : current)}}"#
                        .utf8
                )
            }
            return try [
                body(meta: #""timestamp":"\#(huge)""#), body(meta: #""timestamp":"18446744073709552""#),
                body(meta: #""timestamp":\#(max)"#), body(meta: #""timestamp_micro":"\#(huge)""#),
                body(meta: #""timestamp":1793700000"#, current: min),
                body(meta: #""timestamp":1793700000"#, current: "1e300"),
            ].map { ("signed body \(String(decoding: $0, as: UTF8.self))", $0, try signed(.pipedrive, $0)) }
        case .salesforce:
            func body(_ commit: String, created: String = "\"2026-11-03T10:00:00Z\"") -> [UInt8] {
                Array(
                    #"{"ChangeEventHeader":{"entityName":"Opportunity","changeType":"CREATE","recordIds":["006A"],"commitNumber":\#(commit),"commitTimestamp":1793700000000},"StageName":"Prospecting","Amount":5,"CreatedDate":\#(created)}"#
                        .utf8
                )
            }
            return try [body("\"\(huge)\""), body(max), body("1", created: min), body("1", created: "1e300")]
                .map { ("signed body \(String(decoding: $0, as: UTF8.self))", $0, try signed(.salesforce, $0)) }
        }
    }

    @Test(arguments: Vendor.allCases)
    func peerNumbersThatOverflowGet4xxAndTheReceiverKeepsRunning(_ vendor: Vendor) async throws {
        let directory = temporaryDirectory("numbers-\(vendor.rawValue)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let connector = try start(vendor, directory)
        defer { connector.terminate() }
        for request in try hostileRequests(vendor) {
            let answer = try? await connector.post(request.body, headers: request.headers)
            #expect(connector.process.isRunning, "\(vendor) died on \(request.name): \(connector.log.suffix(2000))")
            guard connector.process.isRunning else { return }
            #expect(
                (400..<500).contains(answer?.status ?? 0),
                "\(request.name): \(answer.map { "\($0.status) \($0.body)" } ?? "no answer")"
            )
        }
        #expect(try await connector.health().pending == 0)
    }

    @Test func hubSpotTimestampToleranceHoldsInBothDirections() async throws {
        let directory = temporaryDirectory("tolerance")
        defer { try? FileManager.default.removeItem(at: directory) }
        let connector = try start(.hubspot, directory)
        defer { connector.terminate() }
        let body = Array("[]".utf8)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let minute: Int64 = 60_000
        for (timestamp, expected) in [
            (now + 365 * 24 * 60 * minute, "in the future"), (Int64.max, "in the future"),
            (now + 6 * minute, "in the future"),
            (now - 6 * minute, "older than 5 minutes"), (Int64.min, "older than 5 minutes"),
        ] {
            let answer = try await connector.post(body, headers: try hubSpotHeaders(body, timestamp: String(timestamp)))
            #expect(
                answer.status == 401 && answer.body.contains(expected),
                "\(timestamp): \(answer.status) \(answer.body)"
            )
        }
        for timestamp in [now, now + 4 * minute, now - 4 * minute] {
            let answer = try await connector.post(body, headers: try hubSpotHeaders(body, timestamp: String(timestamp)))
            #expect(answer.status == 200, "\(timestamp): \(answer.status) \(answer.body)")
        }
    }

    @Test func aWebhookBodyWithADuplicateKeyIsRefusedNamingIt() async throws {
        let directory = temporaryDirectory("dupkey")
        defer { try? FileManager.default.removeItem(at: directory) }
        let connector = try start(.pipedrive, directory)
        defer { connector.terminate() }
        let original = String(decoding: try FixtureFiles.file(.pipedrive, "01-v1-added.json"), as: UTF8.self)
        let body = Array(
            original.replacingOccurrences(of: #""value": 5000,"#, with: #""value": 100, "value": 5000000,"#).utf8
        )
        #expect(body != Array(original.utf8))
        let answer = try await connector.post(body, headers: try signed(.pipedrive, body))
        #expect(
            answer.status == 400 && answer.body.contains(#"duplicate key \"value\""#),
            "\(answer.status) \(answer.body)"
        )
        #expect(try await connector.health().pending == 0)
    }

    // MARK: the data directory

    @Test func aSecondConnectorOnTheSameDataDirectoryRefusesToStartNamingTheFirst() async throws {
        let directory = temporaryDirectory("lock")
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = try start(.pipedrive, directory)
        defer { first.terminate() }
        let dataDirectory = directory.appendingPathComponent("connect-pipedrive").path
        let other = temporaryDirectory("lock-second")
        defer { try? FileManager.default.removeItem(at: other) }
        #expect(throws: (any Error).self) { _ = try start(.pipedrive, other, ["--data-dir", dataDirectory]) }
        let log =
            (try? String(contentsOfFile: other.appendingPathComponent("connect-pipedrive.log").path, encoding: .utf8))
            ?? ""
        #expect(log.contains("in use by process \(first.process.processIdentifier)"), "\(log)")
        // The first still serves; after kill -9 the lock is free again.
        #expect(try await first.health().pending == 0)
        kill(first.process.processIdentifier, SIGKILL)
        first.process.waitUntilExit()
        let again = try start(.pipedrive, other, ["--data-dir", dataDirectory])
        defer { again.terminate() }
        #expect(try await again.health().pending == 0)
    }

    @Test func sigtermWhileTheDaemonIsDownExitsPromptlyKeepingTheSpool() async throws {
        let directory = temporaryDirectory("stop")
        defer { try? FileManager.default.removeItem(at: directory) }
        let connector = try start(.pipedrive, directory, ["--timeout-ms", "5000"])
        let body = try FixtureFiles.file(.pipedrive, "01-v1-added.json")
        #expect(try await connector.post(body, headers: try signed(.pipedrive, body)).status == 200)
        // The forwarder is now waiting for an ACK that will not come.
        try await Task.sleep(for: .milliseconds(500))
        let started = Date()
        let status = connector.terminate()
        let seconds = Date().timeIntervalSince(started)
        #expect(seconds < 2.5, "SIGTERM took \(seconds) s with the daemon down")
        #expect(status == 0)
        let restarted = try start(.pipedrive, directory)
        defer { restarted.terminate() }
        #expect(try await restarted.health().pending == 1)
    }

    @Test func aCorruptSpoolRecordStopsTheConnectorUntouchedAndRepairCutsIt() async throws {
        let directory = temporaryDirectory("corrupt")
        defer { try? FileManager.default.removeItem(at: directory) }
        let connector = try start(.pipedrive, directory)
        for name in ["01-v1-added.json", "02-v1-stage-2.json", "03-v1-stage-3.json", "05-v1-value.json"] {
            let body = try FixtureFiles.file(.pipedrive, name)
            #expect(try await connector.post(body, headers: try signed(.pipedrive, body)).status == 200)
        }
        #expect(try await connector.health().pending == 4)
        #expect(connector.terminate() == 0)
        let data = directory.appendingPathComponent("connect-pipedrive")
        let spool = data.appendingPathComponent("spool.log")
        var bytes = Array(try Data(contentsOf: spool))
        let second = 8 + Int(bytes[0]) + Int(bytes[1]) << 8  // the second record's offset
        bytes[second + 20] ^= 0x01
        try Data(bytes).write(to: spool)
        let deals = Array(try Data(contentsOf: data.appendingPathComponent("deals.log")))

        #expect(throws: (any Error).self) { _ = try start(.pipedrive, directory) }
        let log =
            (try? String(
                contentsOfFile: directory.appendingPathComponent("connect-pipedrive.log").path,
                encoding: .utf8
            )) ?? ""
        #expect(log.contains("spool.log: corrupt record at byte \(second)"), "\(log.suffix(2000))")
        #expect(Array(try Data(contentsOf: spool)) == bytes, "the refused start changed the spool")
        #expect(Array(try Data(contentsOf: data.appendingPathComponent("deals.log"))) == deals)

        let repair = Process()
        repair.executableURL = URL(fileURLWithPath: DaemonProcess.binary)
        repair.arguments = ["repair", "--data-dir", data.path]
        let output = Pipe()
        repair.standardOutput = output
        try repair.run()
        repair.waitUntilExit()
        let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(repair.terminationStatus == 0)
        #expect(
            printed.contains("spool.log: cut at byte \(second)") && printed.contains("spool.log.cut-\(second)"),
            "\(printed)"
        )
        #expect(
            Array(try Data(contentsOf: URL(fileURLWithPath: spool.path + ".cut-\(second)"))) == Array(bytes[second...])
        )
        let restarted = try start(.pipedrive, directory)
        defer { restarted.terminate() }
        #expect(try await restarted.health().pending == 1)
    }

    @Test func aCorruptDealStateRecordStopsTheConnectorUntouched() async throws {
        let directory = temporaryDirectory("corrupt-deals")
        defer { try? FileManager.default.removeItem(at: directory) }
        let connector = try start(.hubspot, directory)
        let mapping = try FixtureFiles.mapping(.hubspot)
        // Partial HubSpot deals: their states are kept in deals.log, one record per change.
        for (_, body) in try FixtureFiles.sequence(.hubspot).prefix(3) {
            let answer = try await connector.post(
                body,
                headers: credentials(
                    .hubspot,
                    secret: Self.secrets[.hubspot]!,
                    body: body,
                    mapping: mapping
                )
            )
            #expect(answer.status == 200, "\(answer.body)")
        }
        #expect(connector.terminate() == 0)
        let data = directory.appendingPathComponent("connect-hubspot")
        let deals = data.appendingPathComponent("deals.log")
        var bytes = Array(try Data(contentsOf: deals))
        #expect(bytes.count > 2 * (8 + Int(bytes[0]) + Int(bytes[1]) << 8), "deals.log holds one record only")
        bytes[8 + 5] ^= 0x01  // inside the first record, others follow
        try Data(bytes).write(to: deals)
        let spool = Array(try Data(contentsOf: data.appendingPathComponent("spool.log")))
        #expect(throws: (any Error).self) { _ = try start(.hubspot, directory) }
        let log =
            (try? String(contentsOfFile: directory.appendingPathComponent("connect-hubspot.log").path, encoding: .utf8))
            ?? ""
        #expect(log.contains("deals.log: corrupt record at byte 0"), "\(log.suffix(2000))")
        #expect(Array(try Data(contentsOf: deals)) == bytes, "the refused start changed the deal states")
        #expect(Array(try Data(contentsOf: data.appendingPathComponent("spool.log"))) == spool)
    }

    // MARK: slow clients

    /// A raw TCP connection to the connector, for clients no HTTP library would be.
    final class RawConnection {
        let fd: Int32
        init(port: Int) throws {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard result == 0 else { throw DaemonProcess.Failure(description: "connect: errno \(errno)") }
        }
        func send(_ text: String) {
            _ = Array(text.utf8).withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
        /// What the server sent until it closed the connection, or nil if it is still open after `timeout` s.
        func readUntilClosed(timeout: Double) -> String? {
            var received: [UInt8] = []
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                var poll = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard Glibc.poll(&poll, 1, 100) > 0 else { continue }
                var buffer = [UInt8](repeating: 0, count: 4096)
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n <= 0 { return String(decoding: received, as: UTF8.self) }
                received += buffer[0..<n]
            }
            return nil
        }
        deinit { close(fd) }
    }

    @Test func slowHeadersAndBodiesAreCutOff() async throws {
        let directory = temporaryDirectory("slow")
        defer { try? FileManager.default.removeItem(at: directory) }
        let connector = try start(.pipedrive, directory, ["--header-timeout", "2", "--body-timeout", "1"])
        defer { connector.terminate() }
        // Headers at a byte a second: closed after the header timeout, not held.
        let slowHeaders = try RawConnection(port: connector.port)
        let started = Date()
        let request = "POST /webhooks/pipedrive HTTP/1.1\r\nHost: x\r\n"
        var closed: String?
        for ch in request {
            slowHeaders.send(String(ch))
            closed = slowHeaders.readUntilClosed(timeout: 1)
            if closed != nil { break }
        }
        #expect(closed != nil, "a client sending headers at 1 byte/s was never cut off")
        #expect(Date().timeIntervalSince(started) < 6)
        // A declared 100 MB body with 3 bytes sent: 408 within the body timeout, then closed.
        let slowBody = try RawConnection(port: connector.port)
        slowBody.send("POST /webhooks/pipedrive HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\nabc")
        let answer = slowBody.readUntilClosed(timeout: 6)
        #expect(answer?.hasPrefix("HTTP/1.1 408") == true, "\(answer ?? "no answer within 6 s")")
        #expect(connector.process.isRunning)
    }

    @Test func connectionsBeyondTheLimitWaitUntilOneCloses() async throws {
        let directory = temporaryDirectory("limit")
        defer { try? FileManager.default.removeItem(at: directory) }
        let connector = try start(.pipedrive, directory, ["--header-timeout", "60", "--max-connections", "4"])
        defer { connector.terminate() }
        // With 4 idle connections open, a fifth gets no answer until one of them goes.
        var idle = try (0..<4).map { _ in try RawConnection(port: connector.port) }
        try await Task.sleep(for: .milliseconds(300))
        let waiting = try RawConnection(port: connector.port)
        waiting.send("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(waiting.readUntilClosed(timeout: 1) == nil, "a connection over the limit was served")
        idle.removeFirst()
        let served = waiting.readUntilClosed(timeout: 5)
        #expect(served?.hasPrefix("HTTP/1.1 200") == true, "\(served ?? "not served after a slot was freed")")
        idle.removeAll()
        #expect(connector.process.isRunning)
    }
}
