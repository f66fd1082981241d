import DealModel
import DealstreamTestSupport
import Foundation
import PipelineMetrics
import Testing
import Wire

/// `dealstream workers` against a real daemon: every family's partitions are spread evenly
/// and disjointly over its spawned workers, and a worker killed is replaced and its share
/// moved, as STATUS shows it.
@Suite(.serialized)
struct WorkersStatusTests {
    /// `dealstream workers --json` run as a person would.
    private func status(
        _ daemon: DaemonProcess
    ) throws -> [(family: String, pid: Int, partitions: [Int], building: [Int])] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: DaemonProcess.binary)
        process.arguments = ["workers", "--snapshot", daemon.snapshotEndpoint, "--json"]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        guard case .object(let top) = try JSONParser.parse(Array(data)),
            case .array(let workers)? = top.first(where: { $0.0 == "workers" })?.1
        else { throw DaemonProcess.Failure(description: "STATUS: \(String(decoding: data, as: UTF8.self))") }
        return workers.compactMap { w in
            guard case .object(let m) = w, case .string(let family)? = m.first(where: { $0.0 == "family" })?.1,
                case .int(let pid)? = m.first(where: { $0.0 == "pid" })?.1
            else { return nil }
            func list(_ key: String) -> [Int] {
                guard case .array(let items)? = m.first(where: { $0.0 == key })?.1 else { return [] }
                return items.compactMap { if case .int(let i) = $0 { Int(i) } else { nil } }
            }
            return (family, Int(pid), list("partitions"), list("building"))
        }
    }

    private func waitForEvenShares(
        _ daemon: DaemonProcess,
        perFamily: Int,
        without gone: Int? = nil
    ) throws -> [(family: String, pid: Int, partitions: [Int], building: [Int])] {
        let deadline = Date().addingTimeInterval(30)
        var last: [(family: String, pid: Int, partitions: [Int], building: [Int])] = []
        while Date() < deadline {
            last = try status(daemon)
            let byFamily = Dictionary(grouping: last, by: \.family)
            let settled =
                !last.contains { $0.pid == gone } && byFamily.count == MetricFamily.allCases.count
                && byFamily.values.allSatisfy { sessions in
                    sessions.count == perFamily && sessions.allSatisfy { $0.building.isEmpty }
                        && sessions.flatMap(\.partitions).sorted() == Array(0..<64)
                }
            if settled { return last }
            Thread.sleep(forTimeInterval: 0.2)
        }
        Issue.record("shares never settled: \(last)")
        return last
    }

    @Test func partitionsAreSpreadEvenlyAndMoveWhenAWorkerDies() throws {
        let daemon = try DaemonProcess(shards: 2, modelJSON: harnessModelJSON)
        defer { _ = daemon.terminate() }
        let ack = try daemon.send((0..<200).map { deal("s-\($0)", created: "2026-01-01T00:00:00Z") })
        _ = try daemon.waitUntilPublished(ack.logSeq)
        let before = try waitForEvenShares(daemon, perFamily: 2)
        for (_, sessions) in Dictionary(grouping: before, by: \.family) {
            #expect(sessions.map(\.partitions.count).sorted() == [32, 32])
        }
        // kill -9 one revenue worker: its share goes to the other, then half comes back to
        // its replacement; the published state stays what was sent.
        let victim = try #require(before.first { $0.family == "revenue" })
        kill(Int32(victim.pid), SIGKILL)
        let after = try waitForEvenShares(daemon, perFamily: 2, without: victim.pid)
        #expect(!after.contains { $0.pid == victim.pid })
        let more = try daemon.send([deal("s-late", created: "2026-01-02T00:00:00Z")])
        let state = try daemon.waitUntilPublished(more.logSeq)
        #expect(state["new_opportunities/all/%2A/all"]?.contains("\"value\":201") == true)
        #expect(daemon.terminate() == 0)
    }
}
