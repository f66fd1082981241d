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

/// Reads event files for `dealstream send`, as a stream of batches.
///
/// `.csv` files are read as the Maven Analytics CRM export (see `MavenCRMExport`); any
/// other file — or `-`, standard input — as NDJSON, one JSON event per line (blank lines
/// skipped), read in chunks so a file of any size streams in constant memory. NDJSON
/// lines are sent as they are: the daemon validates them and reports rejections by line.
public final class EventStream {
    private var paths: [String]
    private let options: MavenCRMExport.Options
    private var pendingCSV: [SourcedEvent] = []
    private var handle: FileHandle?
    private var currentPath = ""
    private var line = 0
    private var buffer: [UInt8] = []
    private var bufferStart = 0
    private var atEndOfFile = false

    public init(paths: [String], options: MavenCRMExport.Options) {
        self.paths = paths
        self.options = options
    }

    /// Up to `count` more events; nil when every file is exhausted.
    public func next(_ count: Int) throws -> [SourcedEvent]? {
        var out: [SourcedEvent] = []
        out.reserveCapacity(count)
        while out.count < count {
            if !pendingCSV.isEmpty {
                let take = min(count - out.count, pendingCSV.count)
                out.append(contentsOf: pendingCSV.prefix(take))
                pendingCSV.removeFirst(take)
                continue
            }
            if handle != nil {
                if let event = try nextLine() {
                    out.append(event)
                    continue
                }
                handle = nil
                continue
            }
            guard !paths.isEmpty else { break }
            let path = paths.removeFirst()
            if path.lowercased().hasSuffix(".csv") {
                pendingCSV = try MavenCRMExport(options: options).events(pipelineFile: path)
            } else {
                guard let h = path == "-" ? FileHandle.standardInput : FileHandle(forReadingAtPath: path) else {
                    throw EventFileError(origin: path, reason: "cannot read the file")
                }
                handle = h
                currentPath = path == "-" ? "stdin" : path
                line = 0
                buffer = []
                bufferStart = 0
                atEndOfFile = false
            }
        }
        return out.isEmpty ? nil : out
    }

    private func nextLine() throws -> SourcedEvent? {
        while true {
            if let newline = buffer[bufferStart...].firstIndex(of: UInt8(ascii: "\n")) {
                let event = makeEvent(buffer[bufferStart..<newline])
                bufferStart = newline + 1
                if let event { return event }
                continue
            }
            if atEndOfFile {
                guard bufferStart < buffer.count else { return nil }
                let event = makeEvent(buffer[bufferStart...])
                bufferStart = buffer.count
                if let event { return event }
                return nil
            }
            buffer.removeFirst(bufferStart)
            bufferStart = 0
            let chunk = handle!.readData(ofLength: 4 << 20)
            if chunk.isEmpty { atEndOfFile = true } else { buffer.append(contentsOf: chunk) }
        }
    }

    private func makeEvent(_ raw: ArraySlice<UInt8>) -> SourcedEvent? {
        line += 1
        var bytes = Array(raw)
        if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return nil }
        return SourcedEvent(json: bytes, origin: "\(currentPath):\(line)")
    }
}
