import Foundation
import FramedLog

/// The partition count a data directory was created with (`<data_dir>/partitions`).
///
/// Which partition a series is in depends on the count, and the saved published state is
/// kept by partition, so the count is fixed for a data directory: written at its first
/// start, read at every other. A configured count that differs is an error naming
/// `workers.partitions`; none configured takes the directory's.
enum PartitionCountFile {
    static let defaultCount = 64

    /// The count to run with: the directory's, or the configured (or default) one for a
    /// new directory, which is then recorded.
    static func settle(_ configuration: DaemonConfiguration) throws -> Int {
        let path = URL(fileURLWithPath: configuration.dataDirectory).appendingPathComponent("partitions").path
        if let data = FileManager.default.contents(atPath: path) {
            let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard let recorded = Int(text), recorded >= 1 else {
                throw ConfigurationError(key: "workers.partitions", reason: "\(path) does not hold a partition count")
            }
            if let configured = configuration.partitionSetting, configured != recorded {
                throw ConfigurationError(
                    key: "workers.partitions",
                    reason: "\(configured) configured, but \(configuration.dataDirectory) was created with \(recorded) "
                        + "(the count is fixed for a data directory; remove the setting or use another directory)"
                )
            }
            return recorded
        }
        let count = configuration.partitions
        try AtomicFile.write(path, [Array("\(count)\n".utf8)])
        return count
    }
}
