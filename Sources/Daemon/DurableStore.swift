import CLinuxShims
import DealModel
import EventEncoding
import Foundation
import FramedLog
import Logging

/// The daemon's durable state: a checkpoint of the record store plus the event logs
/// written since it.
///
/// Files in the data directory:
/// - `checkpoint`: the record store at input position L, and the generation g of the log
///   that follows it (written to `checkpoint.tmp`, synced, renamed, directory synced).
/// - `events-<g>.log`, `events-<g+1>.log`, …: the events after L, in order.
///
/// A restart loads the checkpoint and replays only the logs after it, so restart time is
/// bounded by the checkpoint interval, not by history. Rotation is crash-safe at every
/// step: a new log generation starts before its checkpoint is durable, and older logs are
/// deleted only after it is.
final class DurableStore {
    let directory: String
    let model: Model
    let logger: Logger
    private(set) var store: RecordStore
    private(set) var log: RecordLog
    /// Input position the checkpoint covers.
    private(set) var checkpointPosition: UInt64
    /// Records in the log generations after the checkpoint, before the current one.
    private var earlierGenerationRecords: UInt64
    private(set) var generation: UInt64
    private(set) var lastReplay: (records: UInt64, seconds: Double, fromCheckpoint: Bool) = (0, 0, false)
    private var checkpointInFlight: Thread?
    private let checkpointDone = DispatchSemaphore(value: 0)
    /// Told of every checkpoint written (seconds it took, true) or failed (false), on the
    /// checkpoint thread (`DaemonMetrics.checkpointWritten`).
    var onCheckpoint: (@Sendable (_ seconds: Double, _ ok: Bool) -> Void)?

    init(directory: String, model: Model, logger: Logger) throws {
        self.directory = directory
        self.model = model
        self.logger = logger
        (store, log, checkpointPosition, earlierGenerationRecords, generation, lastReplay) =
            try DurableStore.open(directory: directory, model: model, logger: logger)
    }

    /// The input position: every durable-or-pending record ever appended.
    var position: UInt64 { checkpointPosition + earlierGenerationRecords + log.count }

    var recordsSinceCheckpoint: UInt64 { earlierGenerationRecords + log.count }

    static func logPath(_ directory: String, _ generation: UInt64) -> String { "\(directory)/events-\(generation).log" }
    static func checkpointPath(_ directory: String) -> String { "\(directory)/checkpoint" }

    private static func open(
        directory: String,
        model: Model,
        logger: Logger
    ) throws
        -> (RecordStore, RecordLog, UInt64, UInt64, UInt64, (UInt64, Double, Bool))
    {
        let started = Date()
        var store = RecordStore(model: model)
        var position: UInt64 = 0
        var generation: UInt64 = 0
        let path = checkpointPath(directory)
        var fromCheckpoint = false
        if let data = FileManager.default.contents(atPath: path) {
            let bytes = Array(data)
            guard bytes.count >= 20, CRC32.checksum(Array(bytes[20...])) == UInt32(littleEndianBytes: bytes[16..<20])
            else {
                throw RecordLog.Failure(operation: "checkpoint checksum", path: path, code: EIO)
            }
            position = UInt64(littleEndianBytes: bytes[0..<8])
            generation = UInt64(littleEndianBytes: bytes[8..<16])
            store = try RecordStore(model: model, encoded: Array(bytes[20...]))
            fromCheckpoint = true
        }
        // Delete logs the checkpoint covers; replay the others in order.
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var generations: [UInt64] = names.compactMap { name in
            guard name.hasPrefix("events-"), name.hasSuffix(".log") else { return nil }
            return UInt64(name.dropFirst("events-".count).dropLast(".log".count))
        }.sorted()
        for g in generations where g < generation { try? FileManager.default.removeItem(atPath: logPath(directory, g)) }
        generations = generations.filter { $0 >= generation }
        let decoder = EventDecoder(model: model)
        var skipped = 0
        var earlier: UInt64 = 0
        var current: RecordLog?
        let last = generations.last ?? generation
        for g in Set(generations + [generation]).sorted() {
            // Only the newest generation can end in a torn write: rotation starts a new one
            // with nothing pending, so a bad tail in an older one is corruption.
            let log = try ReplayPipeline.replay(path: logPath(directory, g), tailMayBeTorn: g == last, decoder: decoder)
            { replayed, buffer in
                switch replayed {
                case .record(let fields): _ = store.apply(fields, in: buffer, derivingChange: false)
                case .event(let event): _ = store.apply(event)
                case .skipped: skipped += 1
                }
            }
            if log.truncatedBytes > 0 {
                logger.warning(
                    "Cut torn tail off an event log",
                    metadata: ["log.path": "\(log.path)", "log.bytes": "\(log.truncatedBytes)"]
                )
            }
            if g == last { current = log } else { earlier += log.count }
        }
        if skipped > 0 {
            logger.error(
                "Logged events no longer valid under this model were skipped",
                metadata: ["log.skipped": "\(skipped)"]
            )
        }
        let seconds = Date().timeIntervalSince(started)
        return (store, current!, position, earlier, last, (earlier + current!.count, seconds, fromCheckpoint))
    }

    /// Resolves an event against the store; the caller appends it if it changed state.
    func apply(_ event: Event) -> Resolution { store.apply(event) }

    /// Appends the record of an event that changed state (`EventRecord`: what validation
    /// produced, so a replay need not parse and hash the frame again).
    func append(_ event: Event) {
        log.append(EventRecord.encode(event, model: model))
    }

    /// The first byte of a log record says what it holds: an `EventRecord` (its format
    /// byte, 1), a protobuf frame behind this zero byte, or a JSON frame as received (it
    /// never starts with either). Logs written before event records hold only the last
    /// two, and are replayed as they always were.
    static let protobufRecordMark: UInt8 = 0

    /// A log record as the replay resolves it: an `EventRecord` decoded in place (no
    /// strings made, `EventDecoder.decodeFields`; its spans index the batch's buffer), a
    /// frame from before event records decoded as it always was, or a record no longer
    /// valid under this model.
    enum Replayed {
        case record(RecordFields)
        case event(Event)
        case skipped
    }

    /// The record `payload` as the replay resolves it; an event record's bytes are to be at
    /// `base` in the buffer handed to the store with it.
    static func replayed(
        logRecord payload: UnsafeRawBufferPointer,
        at base: Int,
        with decoder: EventDecoder
    )
        -> Replayed
    {
        guard payload.first == EventRecord.format else {
            switch decode(logRecord: Array(payload), with: decoder) {
            case .success(let event): return .event(event)
            case .failure: return .skipped
            }
        }
        do {
            switch try decoder.decodeFields(record: payload, at: base) {
            case .success(let fields): return .record(fields)
            case .failure: return .skipped
            }
        } catch {
            return .skipped
        }
    }

    static func decode(logRecord payload: [UInt8], with decoder: EventDecoder) -> Result<Event, EventRejection> {
        switch payload.first {
        case EventRecord.format:
            do {
                return try decoder.decode(record: payload)
            } catch {
                return .failure(EventRejection("event record", error.reason))
            }
        case protobufRecordMark:
            return ProtobufEvent.decode(Array(payload.dropFirst()), with: decoder)
        default:
            return decoder.decode(json: payload)
        }
    }

    /// Makes the pending group durable. On failure the state is reloaded from disk, so
    /// nothing that was not stored stays applied; the caller then answers `ERR`.
    func commit() throws {
        do {
            try log.commit()
        } catch {
            logger.error("Event log commit failed; reloading state from disk", metadata: ["error": "\(error)"])
            waitForCheckpoint()
            (store, log, checkpointPosition, earlierGenerationRecords, generation, lastReplay) =
                try DurableStore.open(directory: directory, model: model, logger: logger)
            throw error
        }
    }

    /// Starts a new log generation and writes a checkpoint of the current state on a
    /// background thread (the store is a value: the copy costs nothing until it changes).
    /// Call only with nothing pending. `wait` blocks until the checkpoint is durable.
    /// `dropWrite` is fault injection for tests: it starts the new generation but never
    /// writes the checkpoint, as if the process died at that instant.
    func checkpoint(wait: Bool, dropWrite: Bool = false) throws {
        waitForCheckpoint()
        let snapshot = store
        let covered = position
        let next = generation + 1
        log = try RecordLog(path: DurableStore.logPath(directory, next)) { _ in }
        generation = next
        checkpointPosition = covered
        earlierGenerationRecords = 0
        let directory = self.directory
        let logger = self.logger
        let done = checkpointDone
        let onCheckpoint = self.onCheckpoint
        let thread = Thread {
            _ = CLinuxShims_setThreadName("ds-checkpoint")
            let started = Date()
            if dropWrite {
                done.signal()
                return
            }
            do {
                try DurableStore.writeCheckpoint(snapshot, position: covered, generation: next, directory: directory)
                for g in 0..<next { try? FileManager.default.removeItem(atPath: DurableStore.logPath(directory, g)) }
                logger.info(
                    "Checkpoint written",
                    metadata: [
                        "checkpoint.log_seq": "\(covered)", "checkpoint.records": "\(snapshot.recordCount)",
                        "checkpoint.seconds": "\(String(format: "%.3f", Date().timeIntervalSince(started)))",
                    ]
                )
                onCheckpoint?(Date().timeIntervalSince(started), true)
            } catch {
                // The older logs stay, so nothing is lost; the next checkpoint tries again.
                logger.error("Checkpoint failed", metadata: ["error": "\(error)"])
                onCheckpoint?(Date().timeIntervalSince(started), false)
            }
            done.signal()
        }
        thread.name = "checkpoint"
        checkpointInFlight = thread
        thread.start()
        if wait { waitForCheckpoint() }
    }

    /// Whether a background checkpoint is still being written.
    var isCheckpointing: Bool { checkpointInFlight != nil }

    func waitForCheckpoint() {
        guard checkpointInFlight != nil else { return }
        checkpointDone.wait()
        checkpointInFlight = nil
    }

    /// Non-blocking: notes a finished background checkpoint.
    func pollCheckpoint() {
        guard checkpointInFlight != nil else { return }
        if checkpointDone.wait(timeout: .now()) == .success { checkpointInFlight = nil }
    }

    static func publishedPath(_ directory: String) -> String { "\(directory)/published" }

    /// Saves the published state (see `AtomicFile`).
    func writePublished(_ bytes: [UInt8]) throws {
        try AtomicFile.write(DurableStore.publishedPath(directory), [bytes])
    }

    /// The saved published state, if any.
    func readPublished() -> [UInt8]? {
        FileManager.default.contents(atPath: DurableStore.publishedPath(directory)).map { Array($0) }
    }

    private static func writeCheckpoint(
        _ store: RecordStore,
        position: UInt64,
        generation: UInt64,
        directory: String
    ) throws {
        let body = store.encoded()
        var header: [UInt8] = []
        header.append(contentsOf: position.littleEndianBytes)
        header.append(contentsOf: generation.littleEndianBytes)
        header.append(contentsOf: CRC32.checksum(body).littleEndianBytes)
        try AtomicFile.write(checkpointPath(directory), [header, body])
    }
}

extension FixedWidthInteger {
    var littleEndianBytes: [UInt8] { withUnsafeBytes(of: self.littleEndian) { Array($0) } }

    init(littleEndianBytes bytes: ArraySlice<UInt8>) {
        var v = Self.zero
        for (i, b) in bytes.enumerated() { v |= Self(b) << (8 * i) }
        self = v
    }
}

/// Replays one event log on two threads: a `ds-replay` thread reads the file, checks each
/// record's checksum and decodes it; the calling thread resolves the decoded events
/// against the store, in log order.
///
/// Why it exists: a restart from the log alone replays up to a checkpoint interval of
/// events, and reading plus decoding is about as much work as resolving; on two cores
/// the two halves overlap. Batches of 4,096 events pass between the threads, at most four
/// in flight, so memory stays a few batches whatever the log's size. A batch's event
/// records are copied into one buffer that their decoded fields index, so no record gets
/// an array of its own (allocated on one thread, freed on the other).
enum ReplayPipeline {
    static let batchSize = 4096
    static let batchesInFlight = 4

    /// The log at `path`, opened (a torn tail cut as `RecordLog` does) after every record
    /// has been handed to `apply` in order; what `RecordLog.init` throws, it throws.
    static func replay(
        path: String,
        tailMayBeTorn: Bool,
        decoder: EventDecoder,
        apply: (DurableStore.Replayed, UnsafeRawBufferPointer) -> Void
    ) throws -> RecordLog {
        let channel = Channel()
        let thread = Thread {
            _ = CLinuxShims_setThreadName("ds-replay")
            var batch = Batch()
            let opened = Result { () throws -> RecordLog in
                try RecordLog(opening: path, tailMayBeTorn: tailMayBeTorn) { payload in
                    let replayed = DurableStore.replayed(logRecord: payload, at: batch.buffer.count, with: decoder)
                    if case .record = replayed { batch.buffer.append(contentsOf: payload) }
                    batch.items.append(replayed)
                    if batch.items.count == batchSize {
                        channel.put(batch)
                        batch = Batch()
                    }
                }
            }
            if !batch.items.isEmpty { channel.put(batch) }
            channel.finish(Opened(result: opened))
        }
        thread.start()
        while let batch = channel.take() {
            batch.buffer.withUnsafeBytes { buffer in
                for item in batch.items { apply(item, buffer) }
            }
        }
        return try channel.opened!.result.get()
    }

    /// Up to `batchSize` decoded records, and the buffer their event records' bytes are in.
    struct Batch {
        var items: [DurableStore.Replayed] = []
        var buffer: [UInt8] = []

        init() {
            items.reserveCapacity(ReplayPipeline.batchSize)
            buffer.reserveCapacity(ReplayPipeline.batchSize * 192)
        }
    }

    /// The log as the reading thread opened it, handed over once that thread is done
    /// with it.
    private final class Opened: @unchecked Sendable {
        let result: Result<RecordLog, any Error>
        init(result: Result<RecordLog, any Error>) { self.result = result }
    }

    /// A bounded queue of decoded batches from the reading thread to the resolving one.
    private final class Channel: @unchecked Sendable {
        private let condition = NSCondition()
        private var batches: [Batch] = []
        private var done = false
        private(set) var opened: Opened?

        func put(_ batch: Batch) {
            condition.lock()
            while batches.count >= ReplayPipeline.batchesInFlight { condition.wait() }
            batches.append(batch)
            condition.broadcast()
            condition.unlock()
        }

        func finish(_ opened: Opened) {
            condition.lock()
            self.opened = opened
            done = true
            condition.broadcast()
            condition.unlock()
        }

        /// The next batch, or nil once the reading thread has finished and every batch
        /// was taken.
        func take() -> Batch? {
            condition.lock()
            defer { condition.unlock() }
            while batches.isEmpty && !done { condition.wait() }
            guard !batches.isEmpty else { return nil }
            let batch = batches.removeFirst()
            condition.broadcast()
            return batch
        }
    }
}
