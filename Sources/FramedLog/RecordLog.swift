#if canImport(Glibc)
import Glibc
#endif

/// An append-only file of records with a checksum per record: the daemon's event log,
/// a connector's spool and deal-state file.
///
/// Why a log and not an embedded database: every write is an append, every read is a
/// replay in order, and durability is one `fdatasync` per group of requests (group
/// commit), so an ACK costs one sync however many events it covers. Each record is
/// `length (u32 LE, > 0) · CRC-32 (u32 LE) · record bytes`. (The daemon logs only events
/// that changed state, so its log's record count is its input position, `log_seq`.)
///
/// On open, records are replayed up to the first bad one (a length of zero or past the end
/// of the file, or a checksum mismatch). What follows decides what it is:
/// - nothing valid (a partial last record, or garbage to the end): a torn tail, the trace
///   of a crash mid-write, never acknowledged. It is cut off.
/// - a valid record: corruption in the middle of acknowledged data. Cutting there would
///   silently drop acknowledged records and reuse their positions, so opening throws
///   `Corruption` naming the file and offset, and changes nothing on disk (as etcd's WAL
///   refuses a CRC mismatch). `RecordLog.repair(path:)` (`dealstream repair`) cuts such a
///   log, keeping a copy of what it cuts; docs/recovery.md says when to use it.
public final class RecordLog {
    /// An I/O failure of the log, with the call and errno.
    public struct Failure: Error, CustomStringConvertible {
        public var operation: String
        public var path: String
        public var code: Int32
        public init(operation: String, path: String, code: Int32) {
            self.operation = operation
            self.path = path
            self.code = code
        }
        public var description: String { "\(operation) \(path): \(String(cString: strerror(code))) (errno \(code))" }
    }

    /// A bad record with valid records after it: the log is corrupt, not torn, and was not
    /// opened (nothing on disk was changed).
    public struct Corruption: Error, CustomStringConvertible {
        /// The log file.
        public var path: String
        /// Byte offset of the first bad record (everything before it is intact).
        public var offset: Int
        /// Why the record at `offset` is bad.
        public var reason: String
        /// Byte offset of the first valid record after it; nil when the bad tail itself is
        /// refused (a log that must not have a torn tail, see `init`).
        public var nextValidOffset: Int?
        public var description: String {
            let after =
                nextValidOffset.map { "valid records follow (the next at byte \($0))" }
                ?? "this log is followed by later ones, so it cannot have a torn tail"
            return "\(path): corrupt record at byte \(offset) (\(reason)), and \(after); "
                + "not opened, nothing changed on disk. Recover with `dealstream repair --data-dir <its directory>` "
                + "(cuts the log at byte \(offset), keeping a copy of what it cuts) or from a backup: docs/recovery.md"
        }
    }

    public let path: String
    private let fd: Int32
    private var pending: [UInt8] = []
    /// Records durable on disk.
    public private(set) var durableCount: UInt64 = 0
    /// Records appended, durable or not.
    public private(set) var count: UInt64 = 0
    /// Bytes of the valid log.
    public private(set) var size: Int = 0

    /// Opens (creating if needed) the log at `path`, replaying every valid record into
    /// `replay` in order and cutting off a torn tail. Throws `Corruption` (and changes
    /// nothing) when valid records follow a bad one, or when the log has a bad tail at all
    /// and `tailMayBeTorn` is false (a log that later logs follow, which no crash can tear).
    public convenience init(path: String, tailMayBeTorn: Bool = true, replay: ([UInt8]) throws -> Void) throws {
        try self.init(opening: path, tailMayBeTorn: tailMayBeTorn) { try replay(Array($0)) }
    }

    /// Opens the log as `init(path:tailMayBeTorn:replay:)` does, handing `replay` each
    /// record's bytes in place, valid only during the call: a replay of millions of records
    /// then makes no array per record.
    public init(
        opening path: String,
        tailMayBeTorn: Bool,
        inPlace replay: (UnsafeRawBufferPointer) throws -> Void
    )
        throws
    {
        self.path = path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Failure(operation: "open", path: path, code: errno) }
        var handedOver = false
        defer { if !handedOver { close(fd) } }
        let scan = try RecordLog.scan(fd: fd, path: path, replay: replay)
        if let bad = scan.bad {
            let next = try RecordLog.firstValidRecord(fd: fd, path: path, after: scan.validEnd, fileSize: scan.fileSize)
            if next != nil || !tailMayBeTorn {
                throw Corruption(path: path, offset: scan.validEnd, reason: bad, nextValidOffset: next)
            }
            guard ftruncate(fd, off_t(scan.validEnd)) == 0 else {
                throw Failure(operation: "ftruncate", path: path, code: errno)
            }
        }
        guard lseek(fd, off_t(scan.validEnd), SEEK_SET) >= 0 else {
            throw Failure(operation: "lseek", path: path, code: errno)
        }
        self.fd = fd
        handedOver = true
        size = scan.validEnd
        count = scan.records
        durableCount = scan.records
        truncatedBytes = scan.fileSize - scan.validEnd
    }

    /// What reading a log found: its valid records, where they end, and why the record
    /// there (if any) is bad.
    private struct Scan {
        var records: UInt64 = 0
        var validEnd = 0
        var fileSize = 0
        var bad: String?
    }

    /// Reads the log from the start, replaying valid records, up to the first bad one.
    /// Streamed in 1 MiB reads: memory stays one buffer (plus one record), whatever the size.
    private static func scan(fd: Int32, path: String, replay: (UnsafeRawBufferPointer) throws -> Void) throws -> Scan {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw Failure(operation: "fstat", path: path, code: errno) }
        var result = Scan()
        result.fileSize = Int(st.st_size)
        guard lseek(fd, 0, SEEK_SET) >= 0 else { throw Failure(operation: "lseek", path: path, code: errno) }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var consumed = 0  // bytes of the buffer already replayed
        var readTotal = 0
        reading: while readTotal < result.fileSize {
            let wanted = min(chunk.count, result.fileSize - readTotal)
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, wanted) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(operation: "read", path: path, code: errno)
            }
            if n == 0 { break }
            readTotal += n
            if consumed > 0 {
                buffer.removeFirst(consumed)
                consumed = 0
            }
            buffer.append(contentsOf: chunk[0..<n])
            while consumed + 8 <= buffer.count {
                let length = Int(RecordLog.u32(buffer, consumed))
                if length == 0 {
                    result.bad = "zero length"
                    break reading
                }
                if result.validEnd + 8 + length > result.fileSize {
                    result.bad = "length \(length) runs past the end of the file"
                    break reading
                }
                guard consumed + 8 + length <= buffer.count else { continue reading }
                let crc = RecordLog.u32(buffer, consumed + 4)
                let start = consumed + 8
                let valid = try buffer.withUnsafeBytes { bytes in
                    let payload = UnsafeRawBufferPointer(rebasing: bytes[start..<(start + length)])
                    guard CRC32.checksum(payload) == crc else { return false }
                    try replay(payload)
                    return true
                }
                guard valid else {
                    result.bad = "checksum mismatch"
                    break reading
                }
                consumed += 8 + length
                result.validEnd += 8 + length
                result.records += 1
            }
        }
        if result.bad == nil && result.validEnd < result.fileSize {
            result.bad = "partial record header (\(result.fileSize - result.validEnd) bytes)"
        }
        return result
    }

    /// The offset of the first complete, valid record (length > 0, checksum matching)
    /// starting at any byte after `offset`, or nil. Only read after a bad record, so it may
    /// look at every offset; the file is mapped, not read into memory.
    private static func firstValidRecord(fd: Int32, path: String, after offset: Int, fileSize: Int) throws -> Int? {
        guard fileSize - offset > 9 else { return nil }
        let mapped = mmap(nil, fileSize, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let base = mapped, base != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw Failure(operation: "mmap", path: path, code: errno)
        }
        defer { munmap(base, fileSize) }
        let bytes = UnsafeRawBufferPointer(start: base, count: fileSize)
        var o = offset + 1
        while o + 9 <= fileSize {
            let length = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt32.self)))
            if length > 0 && length <= fileSize - o - 8 {
                let crc = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: o + 4, as: UInt32.self))
                let payload = UnsafeRawBufferPointer(rebasing: bytes[(o + 8)..<(o + 8 + length)])
                if CRC32.checksum(payload) == crc { return o }
            }
            o += 1
        }
        return nil
    }

    /// What `repair(path:)` cut from a log.
    public struct Repair: Sendable, CustomStringConvertible {
        public var path: String
        /// Where the log now ends: the offset of its first bad record.
        public var offset: Int
        /// Bytes cut off (all kept in `copyPath`).
        public var bytes: Int
        /// Valid records kept before the cut.
        public var recordsKept: UInt64
        /// The file beside the log holding exactly the bytes cut off.
        public var copyPath: String
        /// Why the record at `offset` was bad.
        public var reason: String
        /// Whether valid records were among what was cut (corruption, not a torn tail).
        public var cutValidRecords: Bool
        public var description: String {
            "\(path): cut at byte \(offset) (\(reason)); \(recordsKept) records kept, \(bytes) bytes "
                + (cutValidRecords ? "cut, valid records among them, " : "of torn tail cut, ") + "copied to \(copyPath)"
        }
    }

    /// Cuts the log at `path` at its first bad record, after copying (and syncing) every
    /// byte from there to the end into `<path>.cut-<offset>` beside it. nil when the log is
    /// intact (nothing is written). The caller must hold the directory's lock.
    public static func repair(path: String) throws -> Repair? {
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(operation: "open", path: path, code: errno) }
        defer { close(fd) }
        let scan = try RecordLog.scan(fd: fd, path: path) { _ in }
        guard let bad = scan.bad else { return nil }
        let valid = try firstValidRecord(fd: fd, path: path, after: scan.validEnd, fileSize: scan.fileSize) != nil
        var copyPath = "\(path).cut-\(scan.validEnd)"
        var n = 1
        while access(copyPath, F_OK) == 0 {
            n += 1
            copyPath = "\(path).cut-\(scan.validEnd).\(n)"
        }
        let out = open(copyPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard out >= 0 else { throw Failure(operation: "open", path: copyPath, code: errno) }
        defer { close(out) }
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var at = scan.validEnd
        while at < scan.fileSize {
            let wanted = min(chunk.count, scan.fileSize - at)
            let r = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress, wanted, off_t(at)) }
            if r < 0 && errno == EINTR { continue }
            guard r > 0 else { throw Failure(operation: "pread", path: path, code: r < 0 ? errno : EIO) }
            var written = 0
            while written < r {
                let w = chunk.withUnsafeBytes { write(out, $0.baseAddress! + written, r - written) }
                if w < 0 && errno == EINTR { continue }
                guard w > 0 else { throw Failure(operation: "write", path: copyPath, code: errno) }
                written += w
            }
            at += r
        }
        guard fsync(out) == 0 else { throw Failure(operation: "fsync", path: copyPath, code: errno) }
        try syncDirectory(of: copyPath)
        // Only once the copy is durable is anything cut.
        guard ftruncate(fd, off_t(scan.validEnd)) == 0 else {
            throw Failure(operation: "ftruncate", path: path, code: errno)
        }
        guard fsync(fd) == 0 else { throw Failure(operation: "fsync", path: path, code: errno) }
        return Repair(
            path: path,
            offset: scan.validEnd,
            bytes: scan.fileSize - scan.validEnd,
            recordsKept: scan.records,
            copyPath: copyPath,
            reason: bad,
            cutValidRecords: valid
        )
    }

    private static func syncDirectory(of path: String) throws {
        let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let dfd = open(directory.isEmpty ? "/" : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { throw Failure(operation: "open", path: directory, code: errno) }
        defer { close(dfd) }
        guard fsync(dfd) == 0 else { throw Failure(operation: "fsync", path: directory, code: errno) }
    }

    /// Bytes of torn or corrupt tail cut off when the log was opened.
    public private(set) var truncatedBytes = 0

    deinit { close(fd) }

    private static func u32(_ d: [UInt8], _ o: Int) -> UInt32 {
        UInt32(d[o]) | UInt32(d[o + 1]) << 8 | UInt32(d[o + 2]) << 16 | UInt32(d[o + 3]) << 24
    }

    /// Appends a record to the pending group; it is durable after the next `commit`.
    public func append(_ payload: [UInt8]) {
        // A zero length marks no record (a hole of zeros after a crash is a torn tail).
        precondition(!payload.isEmpty, "RecordLog records are never empty")
        var header = [UInt8](repeating: 0, count: 8)
        let length = UInt32(payload.count)
        let crc = CRC32.checksum(payload)
        for i in 0..<4 {
            header[i] = UInt8(truncatingIfNeeded: length >> (8 * UInt32(i)))
            header[4 + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i)))
        }
        pending.append(contentsOf: header)
        pending.append(contentsOf: payload)
        count += 1
    }

    /// Writes and syncs the pending group (group commit). On failure nothing of the
    /// group counts as durable and the file is cut back to its last durable size.
    public func commit() throws {
        guard !pending.isEmpty else { return }
        var written = 0
        while written < pending.count {
            let n = pending.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                let code = errno
                rollBack()
                throw Failure(operation: "write", path: path, code: code)
            }
            written += n
        }
        if fdatasync(fd) != 0 {
            let code = errno
            rollBack()
            throw Failure(operation: "fdatasync", path: path, code: code)
        }
        size += pending.count
        pending.removeAll(keepingCapacity: true)
        durableCount = count
    }

    private func rollBack() {
        _ = ftruncate(fd, off_t(size))
        _ = lseek(fd, off_t(size), SEEK_SET)
        pending.removeAll(keepingCapacity: true)
        count = durableCount
    }
}

/// CRC-32 (IEEE 802.3, reflected, as zlib computes it), eight bytes per step
/// ("slicing-by-8").
public enum CRC32 {
    /// The eight tables of slicing-by-8, one after the other (table k at `k * 256`), in
    /// memory that is never freed or written after it is filled. A plain pointer, not eight
    /// arrays: a replay checks a million records of ~150 bytes, and eight array retains,
    /// releases and bounds checks per call were a third of the checksum's time.
    nonisolated(unsafe) private static let table: UnsafePointer<UInt32> = {
        let t = UnsafeMutablePointer<UInt32>.allocate(capacity: 8 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            t[i] = c
        }
        for k in 1..<8 {
            for i in 0..<256 { t[k * 256 + i] = (t[(k - 1) * 256 + i] >> 8) ^ t[Int(t[(k - 1) * 256 + i] & 0xFF)] }
        }
        return UnsafePointer(t)
    }()

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    public static func checksum(_ raw: UnsafeRawBufferPointer) -> UInt32 {
        let t = table
        var c: UInt32 = 0xFFFF_FFFF
        var i = 0
        let n = raw.count
        while i + 8 <= n {
            let lo = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt32.self)) ^ c
            let hi = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self))
            c =
                t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)] ^ t[5 * 256 + Int((lo >> 16) & 0xFF)]
                ^ t[4 * 256 + Int(lo >> 24)] ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                ^ t[256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
            i += 8
        }
        while i < n {
            c = t[Int((c ^ UInt32(raw[i])) & 0xFF)] ^ (c >> 8)
            i += 1
        }
        return c ^ 0xFFFF_FFFF
    }
}
