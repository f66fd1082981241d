import Foundation
import FramedLog
import Testing

/// The durable store on a real file: replay, torn tails, failed commits.
struct RecordLogTests {
    private func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("eventlog-\(UUID().uuidString).log").path
    }

    @Test func crcMatchesTheStandardCheckValue() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum([]) == 0)
        let long = Array("The quick brown fox jumps over the lazy dog".utf8)
        #expect(CRC32.checksum(long) == 0x414F_A339)
    }

    @Test func replaysCommittedRecordsInOrder() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let log = try RecordLog(path: path) { _ in Issue.record("a new log has nothing to replay") }
            for i in 0..<100 { log.append(Array("event-\(i)".utf8)) }
            try log.commit()
            #expect(log.count == 100)
            log.append(Array("never committed".utf8))  // lost with the process: never acknowledged
        }
        var replayed: [String] = []
        let log = try RecordLog(path: path) { replayed.append(String(decoding: $0, as: UTF8.self)) }
        #expect(replayed == (0..<100).map { "event-\($0)" })
        #expect(log.count == 100)
        #expect(log.truncatedBytes == 0)
    }

    @Test func cutsATornOrCorruptTailAndKeepsAppending() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let log = try RecordLog(path: path) { _ in }
            for i in 0..<10 { log.append(Array("event-\(i)".utf8)) }
            try log.commit()
        }
        // A crash mid-write: half a record at the end.
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data([42, 0, 0, 0, 1, 2, 3, 4, 65, 66]))
        try handle.close()
        var count = 0
        do {
            let log = try RecordLog(path: path) { _ in count += 1 }
            #expect(count == 10)
            #expect(log.truncatedBytes == 10)
            log.append(Array("after".utf8))
            try log.commit()
        }
        // Flip one byte inside the last record: a bad record followed by nothing valid is a
        // torn tail too, and is cut.
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        let recordSize = 8 + "event-0".utf8.count
        data[data.count - 2] ^= 0xFF
        try data.write(to: URL(fileURLWithPath: path))
        var kept: [String] = []
        let log = try RecordLog(path: path) { kept.append(String(decoding: $0, as: UTF8.self)) }
        #expect(kept == (0..<10).map { "event-\($0)" })
        #expect(log.count == 10)
        #expect(log.truncatedBytes == 8 + "after".utf8.count)
        // Inside record 5, with valid records after it, it is corruption: refused (FramedLogTests).
        data[recordSize * 5 + 9] ^= 0xFF
        try data.write(to: URL(fileURLWithPath: path))
        #expect(throws: RecordLog.Corruption.self) { try RecordLog(path: path) { _ in } }
    }
}
