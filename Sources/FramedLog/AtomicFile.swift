#if canImport(Glibc)
import Glibc
#endif

/// Replaces a whole file so that a crash or power cut leaves either the old file or the
/// new one, never a mix or nothing: the one way this project writes a file whole (the
/// daemon's checkpoint and published state, a connector's spool cursor and its compacted
/// deal states).
///
/// The order is what makes it durable: write a temporary beside the file, `fsync` it,
/// `rename` it over the file, `fsync` the directory (without the last step the rename
/// itself may be lost, and with it the acknowledged state).
public enum AtomicFile {
    /// Writes `parts`, in order, as the new content of `path` (via `path.tmp`).
    public static func write(_ path: String, _ parts: [[UInt8]]) throws(RecordLog.Failure) {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw RecordLog.Failure(operation: "open", path: temporary, code: errno) }
        defer { close(fd) }
        for part in parts {
            var written = 0
            while written < part.count {
                let n = part.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw RecordLog.Failure(operation: "write", path: temporary, code: errno)
                }
                written += n
            }
        }
        guard fsync(fd) == 0 else { throw RecordLog.Failure(operation: "fsync", path: temporary, code: errno) }
        try install(temporary, as: path)
    }

    /// Renames `temporary`, already synced by the caller, over `path` and syncs the
    /// directory: the last two steps of `write`, for a file written another way (a
    /// compacted `RecordLog`).
    public static func install(_ temporary: String, as path: String) throws(RecordLog.Failure) {
        guard rename(temporary, path) == 0 else {
            throw RecordLog.Failure(operation: "rename", path: temporary, code: errno)
        }
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let dir = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dir >= 0 else { throw RecordLog.Failure(operation: "open", path: directory, code: errno) }
        defer { close(dir) }
        guard fsync(dir) == 0 else { throw RecordLog.Failure(operation: "fsync", path: directory, code: errno) }
    }
}
