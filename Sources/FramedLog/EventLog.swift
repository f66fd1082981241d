#if canImport(Glibc)
import Glibc
#endif

/// An append-only file of records with a checksum per record: the daemon's event log,
/// a connector's spool and deal-state file.
///
/// (Originally the daemon's durable store of accepted events.)
///
/// Why a log and not an embedded database: every write is an append, every read is a
/// replay in order, and durability is one `fdatasync` per group of requests (group
/// commit), so an ACK costs one sync however many events it covers. Each record is
/// `length (u32 LE) · CRC-32 (u32 LE) · event bytes`; on open, a torn or corrupt tail
/// (a crash mid-write) is detected by length or checksum and cut off, and everything
/// before it is replayed. Only events that changed state are written, so the log's
/// record count is the daemon's input position, `log_seq`.
public final class EventLog {
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
    /// `replay` in order and cutting off a torn tail.
    public init(path: String, replay: ([UInt8]) throws -> Void) throws {
        self.path = path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Failure(operation: "open", path: path, code: errno) }
        self.fd = fd
        // Streamed in 1 MiB reads: memory stays one buffer, whatever the log's size.
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var consumed = 0  // bytes of the buffer already replayed
        var offset = 0  // file offset of the end of the last valid record
        var fileSize = 0
        var records: UInt64 = 0
        var corrupt = false
        reading: while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(operation: "read", path: path, code: errno)
            }
            if n == 0 { break }
            fileSize += n
            if corrupt { continue }
            if consumed > 0 {
                buffer.removeFirst(consumed)
                consumed = 0
            }
            buffer.append(contentsOf: chunk[0..<n])
            while consumed + 8 <= buffer.count {
                let length = Int(EventLog.u32(buffer, consumed))
                guard consumed + 8 + length <= buffer.count else { continue reading }
                let crc = EventLog.u32(buffer, consumed + 4)
                let payload = Array(buffer[(consumed + 8)..<(consumed + 8 + length)])
                guard CRC32.checksum(payload) == crc else {
                    corrupt = true
                    continue reading
                }
                try replay(payload)
                consumed += 8 + length
                offset += 8 + length
                records += 1
            }
        }
        if offset != fileSize {
            guard ftruncate(fd, off_t(offset)) == 0 else { throw Failure(operation: "ftruncate", path: path, code: errno) }
        }
        guard lseek(fd, off_t(offset), SEEK_SET) >= 0 else { throw Failure(operation: "lseek", path: path, code: errno) }
        size = offset
        count = records
        durableCount = records
        truncatedBytes = fileSize - offset
    }

    /// Bytes of torn or corrupt tail cut off when the log was opened.
    public private(set) var truncatedBytes = 0

    deinit { close(fd) }

    private static func u32(_ d: [UInt8], _ o: Int) -> UInt32 {
        UInt32(d[o]) | UInt32(d[o + 1]) << 8 | UInt32(d[o + 2]) << 16 | UInt32(d[o + 3]) << 24
    }

    /// Appends a record to the pending group; it is durable after the next `commit`.
    public func append(_ payload: [UInt8]) {
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
    static let tables: [[UInt32]] = {
        var t = [[UInt32]](repeating: [UInt32](repeating: 0, count: 256), count: 8)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            t[0][i] = c
        }
        for i in 0..<256 {
            for k in 1..<8 { t[k][i] = (t[k - 1][i] >> 8) ^ t[0][Int(t[k - 1][i] & 0xFF)] }
        }
        return t
    }()

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        let t = tables
        return t.withUnsafeBufferPointer { _ in
            bytes.withUnsafeBytes { raw -> UInt32 in
                var c: UInt32 = 0xFFFF_FFFF
                var i = 0
                let n = raw.count
                let t0 = t[0], t1 = t[1], t2 = t[2], t3 = t[3], t4 = t[4], t5 = t[5], t6 = t[6], t7 = t[7]
                while i + 8 <= n {
                    let lo = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt32.self)) ^ c
                    let hi = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self))
                    c = t7[Int(lo & 0xFF)] ^ t6[Int((lo >> 8) & 0xFF)] ^ t5[Int((lo >> 16) & 0xFF)] ^ t4[Int(lo >> 24)]
                        ^ t3[Int(hi & 0xFF)] ^ t2[Int((hi >> 8) & 0xFF)] ^ t1[Int((hi >> 16) & 0xFF)] ^ t0[Int(hi >> 24)]
                    i += 8
                }
                while i < n {
                    c = t0[Int((c ^ UInt32(raw[i])) & 0xFF)] ^ (c >> 8)
                    i += 1
                }
                return c ^ 0xFFFF_FFFF
            }
        }
    }
}
