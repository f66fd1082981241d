public import Foundation
import FramedLog

/// The connector's durable queue of dealstream events not yet acknowledged by the daemon.
///
/// Why: a webhook is answered 2xx only once its events cannot be lost; writing them here
/// (one `fdatasync` per request) makes that true whether the daemon is up or not, and the
/// `Forwarder` drains the spool in order when it is. Files in the data directory:
/// `spool.log`, a `FramedLog.RecordLog` of events (one record each), and `spool.cursor`,
/// the number of records already acknowledged (rewritten atomically). A fully drained
/// spool is emptied. Resending after a crash is harmless: versions make it a duplicate.
///
/// Thread-safe: the HTTP handlers append, the forwarder's thread takes and acknowledges.
public final class Spool: @unchecked Sendable {
    private let lock = NSCondition()
    private let directory: URL
    private var log: RecordLog
    /// Records of the log before `pending` (acknowledged).
    private var forwarded: UInt64
    private var pending: [[UInt8]] = []
    private var closed = false
    /// Events the spool holds at most (they are kept in memory too): beyond it requests
    /// are refused with 503, and the vendors retry later.
    public let capacity: Int

    /// The spool is full: the daemon has been unreachable for a long time.
    public struct Full: Error, CustomStringConvertible {
        public var capacity: Int
        public var description: String { "spool full (\(capacity) events waiting for the daemon)" }
    }

    public init(directory: URL, capacity: Int = 1_000_000) throws {
        self.directory = directory
        self.capacity = capacity
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var records: [[UInt8]] = []
        log = try RecordLog(path: directory.appendingPathComponent("spool.log").path) { records.append($0) }
        let cursorText =
            (try? String(contentsOf: directory.appendingPathComponent("spool.cursor"), encoding: .utf8)) ?? "0"
        let cursor = min(UInt64(cursorText.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0, UInt64(records.count))
        forwarded = cursor
        pending = Array(records[Int(cursor)...])
    }

    /// Events waiting for the daemon.
    public var pendingCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return pending.count
    }

    /// Throws `Full` unless `count` more events fit.
    public func ensureRoom(for count: Int) throws {
        lock.lock()
        defer { lock.unlock() }
        if pending.count + count > capacity { throw Full(capacity: capacity) }
    }

    /// Appends events and syncs them to disk; when this returns they survive a crash.
    public func append(_ events: [[UInt8]]) throws {
        guard !events.isEmpty else { return }
        lock.lock()
        defer { lock.unlock() }
        for event in events { log.append(event) }
        try log.commit()
        pending += events
        lock.broadcast()
    }

    /// Up to `limit` of the oldest pending events, waiting up to `timeout` seconds for some.
    public func next(limit: Int, timeout: Double) -> [[UInt8]] {
        lock.lock()
        defer { lock.unlock() }
        if pending.isEmpty && !closed { _ = lock.wait(until: Date().addingTimeInterval(timeout)) }
        return Array(pending.prefix(limit))
    }

    /// Marks the oldest `count` pending events as acknowledged.
    public func acknowledge(_ count: Int) throws {
        lock.lock()
        defer { lock.unlock() }
        let n = min(count, pending.count)
        pending.removeFirst(n)
        forwarded += UInt64(n)
        if pending.isEmpty {
            // Everything is delivered: start an empty spool. A crash between the two steps
            // at worst sends delivered events again, which the daemon counts as duplicates.
            try writeCursor(0)
            try FileManager.default.removeItem(at: directory.appendingPathComponent("spool.log"))
            log = try RecordLog(path: directory.appendingPathComponent("spool.log").path) { _ in }
            forwarded = 0
        } else {
            try writeCursor(forwarded)
        }
    }

    /// Wakes a waiting `next` for shutdown.
    public func close() {
        lock.lock()
        closed = true
        lock.broadcast()
        lock.unlock()
    }

    private func writeCursor(_ value: UInt64) throws {
        let url = directory.appendingPathComponent("spool.cursor")
        try AtomicFile.write(url.path, [Array("\(value)\n".utf8)])
    }
}
