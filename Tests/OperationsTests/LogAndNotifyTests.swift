import DealModel
import Foundation
import Logging
import Observability
import Synchronization
import Testing

/// JSON log lines and systemd notifications, against a real handler and a real socket.
struct LogAndNotifyTests {
    /// The fields of one JSON line, as the project's own parser reads it.
    private func fields(_ line: [UInt8]) throws -> [String: JSONValue] {
        #expect(line.last == UInt8(ascii: "\n"))
        #expect(!line.dropLast().contains(UInt8(ascii: "\n")))
        guard case .object(let members) = try JSONParser.parse(Array(line.dropLast())) else {
            Issue.record("not a JSON object: \(String(decoding: line, as: UTF8.self))")
            return [:]
        }
        return Dictionary(members, uniquingKeysWith: { a, _ in a })
    }

    @Test func aLineHasTimeLevelLabelMessageAndEachMetadataKeyAsAField() throws {
        let time = Date(timeIntervalSince1970: 1_764_583_200.125)
        let line = JSONLogHandler.line(
            time: time,
            level: .warning,
            label: "dealstream.daemon",
            message: "Worker exited, \"restarting\"\n",
            metadata: [
                "worker.pid": "4242", "worker.family": .string("revenue"), "message": "shadowed",
                "nested": .dictionary(["a": .array(["1", "2"])]),
            ]
        )
        let f = try fields(line)
        #expect(f["time"]?.stringValue == "2025-12-01T10:00:00.125Z")
        #expect(f["level"]?.stringValue == "warning")
        #expect(f["label"]?.stringValue == "dealstream.daemon")
        #expect(f["message"]?.stringValue == "Worker exited, \"restarting\"\n")
        #expect(f["worker.pid"]?.stringValue == "4242")
        #expect(f["worker.family"]?.stringValue == "revenue")
        #expect(f["metadata.message"]?.stringValue == "shadowed")
        guard case .object(let nested)? = f["nested"], case .array(let items)? = nested.first?.1 else {
            Issue.record("nested metadata not kept nested: \(String(decoding: line, as: UTF8.self))")
            return
        }
        #expect(items.map(\.stringValue) == ["1", "2"])
    }

    @Test func aLoggerWritesOneLinePerEventWithLoggerAndEventMetadata() throws {
        let lines = Mutex<[[UInt8]]>([])
        let sink = JSONLogHandler.Sink { bytes in lines.withLock { $0.append(bytes) } }
        var logger = Logger(label: "dealstream.test") { JSONLogHandler(label: $0, sink: sink) }
        logger.logLevel = .info
        logger[metadataKey: "daemon.shards"] = "3"
        logger.debug("Not written")
        logger.info("Event log replayed", metadata: ["store.records": "102"])
        let written = lines.withLock { $0 }
        #expect(written.count == 1)
        let f = try fields(try #require(written.first))
        #expect(f["message"]?.stringValue == "Event log replayed")
        #expect(f["daemon.shards"]?.stringValue == "3")
        #expect(f["store.records"]?.stringValue == "102")
        #expect(f["level"]?.stringValue == "info")
    }

    /// A datagram socket bound where `$NOTIFY_SOCKET` points, as systemd's is.
    private final class NotifySocket {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "notify-\(UUID().uuidString.prefix(8)).sock"
        ).path
        let fd: Int32

        init() throws {
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
            let status = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            #expect(status == 0)
            var timeout = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }

        func receive() -> String? {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buffer, buffer.count, 0)
            return n > 0 ? String(decoding: buffer[..<n], as: UTF8.self) : nil
        }

        deinit {
            close(fd)
            unlink(path)
        }
    }

    @Test func notificationsAreDatagramsOnTheNotifySocket() throws {
        let socket = try NotifySocket()
        let notifier = SystemdNotifier(
            environment: ["NOTIFY_SOCKET": socket.path, "WATCHDOG_USEC": "2000000"],
            pid: getpid()
        )
        #expect(notifier.isActive)
        #expect(notifier.watchdogInterval == .seconds(1))
        notifier.ready(status: "serving")
        #expect(socket.receive() == "READY=1\nSTATUS=serving")
        notifier.watchdogIfDue(nowNanoseconds: 10_000_000_000)
        #expect(socket.receive() == "WATCHDOG=1")
        // Not due again within half the watchdog interval; due after it.
        notifier.watchdogIfDue(nowNanoseconds: 10_500_000_000)
        notifier.stopping()
        #expect(socket.receive() == "STOPPING=1")
        notifier.watchdogIfDue(nowNanoseconds: 11_000_000_000)
        #expect(socket.receive() == "WATCHDOG=1")
    }

    @Test func withoutNotifySocketNothingIsSentAndAWatchdogForAnotherPIDIsIgnored() {
        #expect(!SystemdNotifier(environment: [:], pid: 1).isActive)
        let other = SystemdNotifier(
            environment: ["NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"],
            pid: 2
        )
        #expect(other.isActive)
        #expect(other.watchdogInterval == nil)
    }
}
