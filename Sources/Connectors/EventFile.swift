import DealModel
import Foundation

/// One event ready to send, and where it came from (for rejection reports).
public struct SourcedEvent: Sendable {
    public var json: [UInt8]
    /// `file:line`.
    public var origin: String
    public init(json: [UInt8], origin: String) {
        self.json = json
        self.origin = origin
    }
}

/// A file that cannot be read as events, naming the file and line.
public struct EventFileError: Error, CustomStringConvertible {
    public var origin: String
    public var reason: String
    public var description: String { "\(origin): \(reason)" }
}

/// Reads event files for `dealstream send`.
///
/// `.csv` files are read as the Maven Analytics CRM export (see `MavenCRMExport`); any
/// other file as NDJSON, one JSON event per line (blank lines skipped). NDJSON lines are
/// sent as they are: the daemon validates them and reports rejections by line.
public enum EventFile {
    public static func read(path: String, options: MavenCRMExport.Options) throws -> [SourcedEvent] {
        if path.lowercased().hasSuffix(".csv") {
            return try MavenCRMExport(options: options).events(pipelineFile: path)
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw EventFileError(origin: path, reason: "cannot read the file")
        }
        var events: [SourcedEvent] = []
        var line = 0
        for raw in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            line += 1
            var bytes = Array(raw)
            if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
            if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            events.append(SourcedEvent(json: bytes, origin: "\(path):\(line)"))
        }
        return events
    }
}
