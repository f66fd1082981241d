import Foundation
import FramedLog
import Testing

/// The rule that tells a torn tail from corruption, and `repair`, on real files.
struct CorruptionTests {
    private func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("framedlog-\(UUID().uuidString).log").path
    }

    /// A log of `count` records `record-<i>`, closed; its bytes and each record's start.
    private func makeLog(_ path: String, count: Int) throws -> (bytes: [UInt8], offsets: [Int]) {
        var offsets: [Int] = []
        var size = 0
        do {
            let log = try RecordLog(path: path) { _ in }
            for i in 0..<count {
                offsets.append(size)
                let payload = Array("record-\(i)".utf8)
                log.append(payload)
                size += 8 + payload.count
            }
            try log.commit()
        }
        return (Array(try Data(contentsOf: URL(fileURLWithPath: path))), offsets)
    }

    private func contents(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

    private func write(_ bytes: [UInt8], _ path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    @Test(arguments: [("payload", 8 + 2), ("checksum", 5), ("length", 0)])
    func aBadRecordFollowedByValidOnesIsRefusedNamingFileAndOffsetAndNothingChanges(part: String, at: Int) throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        var (bytes, offsets) = try makeLog(path, count: 100)
        bytes[offsets[50] + at] ^= 0x40
        try write(bytes, path)
        var replayed = 0
        do {
            _ = try RecordLog(path: path) { _ in replayed += 1 }
            Issue.record("a log with a bad \(part) mid-file was opened")
        } catch let corruption as RecordLog.Corruption {
            #expect(corruption.path == path)
            #expect(corruption.offset == offsets[50])
            #expect(corruption.nextValidOffset != nil)
            #expect(corruption.description.contains("\(path): corrupt record at byte \(offsets[50])"))
            #expect(corruption.description.contains("dealstream repair"))
        }
        #expect(replayed == 50)
        #expect(try contents(path) == bytes, "opening a corrupt log changed it")
    }

    @Test func aPartialLastRecordIsATornTailAndIsCut() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (bytes, _) = try makeLog(path, count: 10)
        try write(bytes + [42, 0, 0, 0, 1, 2, 3, 4, 65, 66], path)
        var replayed = 0
        let log = try RecordLog(path: path) { _ in replayed += 1 }
        #expect(replayed == 10 && log.truncatedBytes == 10)
        #expect(try contents(path) == bytes)
    }

    @Test func aBadLastRecordAndGarbageOrZerosAfterItAreATornTail() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        var (bytes, offsets) = try makeLog(path, count: 10)
        bytes[offsets[9] + 9] ^= 0xFF
        // A crash can leave a written-but-not-synced block of zeros, or anything, behind.
        let tails: [[UInt8]] = [[], [UInt8](repeating: 0, count: 4096), Array("not a record, just bytes".utf8)]
        for tail in tails {
            try write(bytes + tail, path)
            var replayed = 0
            let log = try RecordLog(path: path) { _ in replayed += 1 }
            #expect(replayed == 9)
            #expect(log.count == 9 && log.truncatedBytes == bytes.count - offsets[9] + tail.count)
            #expect(try contents(path) == Array(bytes[..<offsets[9]]))
        }
    }

    @Test func aLogThatMustNotBeTornRefusesEvenATornTail() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (bytes, _) = try makeLog(path, count: 10)
        try write(bytes + [9, 0, 0], path)
        #expect(throws: RecordLog.Corruption.self) { try RecordLog(path: path, tailMayBeTorn: false) { _ in } }
        #expect(try contents(path) == bytes + [9, 0, 0])
        // An intact one opens.
        try write(bytes, path)
        #expect(try RecordLog(path: path, tailMayBeTorn: false) { _ in }.count == 10)
    }

    @Test func repairCutsAtTheFirstBadRecordAfterCopyingWhatItCuts() throws {
        let path = temporaryPath()
        defer {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory())) ?? []
            where name.hasPrefix((path as NSString).lastPathComponent) {
                try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "/" + name)
            }
        }
        var (bytes, offsets) = try makeLog(path, count: 20)
        #expect(try RecordLog.repair(path: path) == nil, "an intact log needs no repair")
        #expect(try contents(path) == bytes)
        bytes[offsets[7] + 10] ^= 0x01
        try write(bytes, path)
        let repair = try #require(try RecordLog.repair(path: path))
        #expect(repair.offset == offsets[7] && repair.recordsKept == 7 && repair.cutValidRecords)
        #expect(repair.copyPath == path + ".cut-\(offsets[7])")
        #expect(try contents(repair.copyPath) == Array(bytes[offsets[7]...]))
        #expect(try contents(path) == Array(bytes[..<offsets[7]]))
        var replayed: [String] = []
        _ = try RecordLog(path: path) { replayed.append(String(decoding: $0, as: UTF8.self)) }
        #expect(replayed == (0..<7).map { "record-\($0)" })
        // A second cut at the same offset never overwrites the first copy.
        try write(try contents(path) + [1, 0, 0, 0, 0, 0, 0, 0, 0], path)
        let again = try #require(try RecordLog.repair(path: path))
        #expect(!again.cutValidRecords && again.offset == repair.offset && again.copyPath == repair.copyPath + ".2")
        #expect(try contents(repair.copyPath) == Array(bytes[offsets[7]...]))
    }
}
