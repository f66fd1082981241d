#if canImport(Glibc)
import Glibc
#endif

/// An exclusive lock on a data directory, held for the life of the process.
///
/// Why: two processes appending to the same logs (two daemons on one `--data-dir`, two
/// connectors on one spool) each acknowledge events the other then overwrites or cuts, so
/// acknowledged events are lost. As PostgreSQL's `postmaster.pid` and Kafka's `.lock`,
/// the directory holds a lock file, `dealstream.lock`, locked with `flock(LOCK_EX)`: the
/// kernel releases it when the process exits, however it exits (`kill -9` included), so a
/// stale file never blocks a restart. The file holds the holder's pid, which the refusal
/// names. The descriptor is close-on-exec: spawned workers never inherit the lock.
public final class DataDirectoryLock {
    /// The directory is locked by another process (or the lock file cannot be used).
    public struct Refused: Error, CustomStringConvertible {
        /// The data directory.
        public var directory: String
        /// The pid written by the process holding the lock, when it could be read.
        public var holder: Int32?
        /// errno of the failing call, when the lock file itself could not be used.
        public var code: Int32?
        public var description: String {
            if let code {
                let reason = String(cString: strerror(code))
                return "\(directory)/\(DataDirectoryLock.fileName): cannot lock: \(reason) (errno \(code))"
            }
            let who = holder.map { "process \($0)" } ?? "another process"
            return "\(directory) is in use by \(who) (lock \(directory)/\(DataDirectoryLock.fileName)); "
                + "one data directory serves one process: stop it first or choose another --data-dir"
        }
    }

    /// The lock file's name inside the data directory.
    public static let fileName = "dealstream.lock"

    public let directory: String
    private let fd: Int32

    /// Takes the lock on `directory` (which must exist) or throws `Refused` at once,
    /// without waiting.
    public init(directory: String) throws(Refused) {
        self.directory = directory
        let path = "\(directory)/\(DataDirectoryLock.fileName)"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Refused(directory: directory, holder: nil, code: errno) }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            if code == EINTR { continue }
            let holder = DataDirectoryLock.readPID(fd)
            close(fd)
            if code == EWOULDBLOCK { throw Refused(directory: directory, holder: holder, code: nil) }
            throw Refused(directory: directory, holder: nil, code: code)
        }
        // Ours: record who holds it, for the message a second process prints.
        let text = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        self.fd = fd
    }

    /// The pid recorded in a lock file, if it holds one.
    private static func readPID(_ fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return nil }
        let text = String(decoding: buffer[0..<n], as: UTF8.self).filter { !$0.isWhitespace }
        return Int32(text)
    }

    /// Releases the lock (the kernel also does at exit).
    deinit { close(fd) }
}
