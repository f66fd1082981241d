import DealModel
public import Foundation
public import Logging
import Synchronization

/// A swift-log handler that writes one JSON object per line: `time`, `level`, `label`,
/// `message`, then every metadata key as a field of its own.
///
/// Why: Loki, Vector, journald and every log pipeline index JSON lines without a parser of
/// ours; the text format stays the default for a terminal (`--log-format json`, or
/// `log.format` in the config, turns this on). Nested metadata (dictionaries, arrays) stays
/// nested; a metadata key equal to one of the four fixed fields is written as
/// `metadata.<key>` so it never hides them. Each line goes out in one `write(2)` under a
/// lock, so lines from several threads never interleave.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public var logLevel: Logger.Level = .info
    private let label: String
    private let sink: Sink

    /// Where the lines go: a file descriptor (standard error by default) or, for tests, a
    /// closure that gets each line.
    public final class Sink: Sendable {
        private let lock = Mutex<Void>(())
        private let write: @Sendable ([UInt8]) -> Void

        public init(write: @escaping @Sendable ([UInt8]) -> Void) { self.write = write }

        /// Writes to `descriptor` (default 2, standard error).
        public static func fileDescriptor(_ descriptor: Int32 = 2) -> Sink {
            Sink { bytes in
                bytes.withUnsafeBytes { raw in
                    var offset = 0
                    while offset < raw.count {
                        let n = Foundation.write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                        if n <= 0 { if n < 0 && errno == EINTR { continue } else { return } }
                        offset += n
                    }
                }
            }
        }

        func emit(_ line: [UInt8]) { lock.withLock { _ in write(line) } }
    }

    public init(label: String, sink: Sink = .fileDescriptor(), metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.sink = sink
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let provided = metadataProvider?.get() { fields.merge(provided) { _, new in new } }
        if let explicit = event.metadata { fields.merge(explicit) { _, new in new } }
        sink.emit(
            Self.line(
                time: Date(),
                level: event.level,
                label: label,
                message: "\(event.message)",
                metadata: fields
            )
        )
    }

    /// The JSON line (with its `\n`) for one log event; metadata keys in sorted order.
    public static func line(
        time: Date,
        level: Logger.Level,
        label: String,
        message: String,
        metadata: Logger.Metadata
    ) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128 + message.utf8.count)
        let nanoseconds = Int128((time.timeIntervalSince1970 * 1000).rounded(.down)) * 1_000_000
        out.append(contentsOf: #"{"time":"#.utf8)
        JSONWriter.appendString(Timestamp.formatRFC3339(Instant(nanoseconds: nanoseconds)), to: &out)
        out.append(contentsOf: #","level":"#.utf8)
        JSONWriter.appendString(level.rawValue, to: &out)
        out.append(contentsOf: #","label":"#.utf8)
        JSONWriter.appendString(label, to: &out)
        out.append(contentsOf: #","message":"#.utf8)
        JSONWriter.appendString(message, to: &out)
        for key in metadata.keys.sorted() {
            out.append(UInt8(ascii: ","))
            let reserved = key == "time" || key == "level" || key == "label" || key == "message"
            JSONWriter.appendString(reserved ? "metadata." + key : key, to: &out)
            out.append(UInt8(ascii: ":"))
            append(metadata[key]!, to: &out)
        }
        out.append(contentsOf: "}\n".utf8)
        return out
    }

    private static func append(_ value: Logger.Metadata.Value, to out: inout [UInt8]) {
        switch value {
        case .string(let s): JSONWriter.appendString(s, to: &out)
        case .stringConvertible(let c): JSONWriter.appendString(c.description, to: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                append(item, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .dictionary(let members):
            out.append(UInt8(ascii: "{"))
            for (i, key) in members.keys.sorted().enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONWriter.appendString(key, to: &out)
                out.append(UInt8(ascii: ":"))
                append(members[key]!, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }
}

/// How log lines look: `text` (swift-log's stream format, the default) or `json`
/// (`JSONLogHandler`).
public enum LogFormat: String, CaseIterable, Sendable {
    case text
    case json
}

/// The process's loggers: one place that picks the handler for a label, level and format,
/// so the daemon, its spawned workers and `connect` log alike.
public enum ProcessLogging {
    /// A logger writing to standard error.
    public static func logger(_ label: String, level: Logger.Level, format: LogFormat) -> Logger {
        var logger: Logger
        switch format {
        case .text: logger = Logger(label: label) { StreamLogHandler.standardError(label: $0) }
        case .json: logger = Logger(label: label) { JSONLogHandler(label: $0) }
        }
        logger.logLevel = level
        return logger
    }
}
