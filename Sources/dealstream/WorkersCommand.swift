import ArgumentParser
import Clients
import DealModel
import Foundation
import PipelineMetrics
import ZeroMQ

/// `dealstream workers`: who serves which partitions, asked of a running daemon.
struct WorkersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workers",
        abstract: "List the worker sessions of a running daemon: family, host, pid, partitions, lag.",
        discussion: """
            Sends STATUS to the daemon's snapshot endpoint (docs/workers.md) and prints one row per \
            worker session: its family, host and pid, whether the daemon spawned it, the partitions \
            it owns (publishes) and is being rebuilt for, the facts sent to it and not yet answered, \
            and how long ago it was last heard. Families with partitions no worker serves are named \
            below the table (their rounds wait). --json prints the daemon's answer as it came.
            """
    )

    @Option(help: "Snapshot endpoint of the daemon.")
    var snapshot = "tcp://127.0.0.1:7703"

    @Option(help: "Seconds to wait for the answer.")
    var timeout: Double = 5

    @Flag(help: "Print the daemon's JSON answer.")
    var json = false

    func run() throws {
        let answer = try WorkerStatus.fetch(
            context: try ZMQContext(),
            endpoint: snapshot,
            timeoutMilliseconds: Int(timeout * 1000)
        )
        if json {
            print(String(decoding: answer, as: UTF8.self))
            return
        }
        print(try WorkersCommand.table(answer))
    }

    /// The STATUS answer as a table.
    static func table(_ answer: [UInt8]) throws -> String {
        guard case .object(let top) = try JSONParser.parse(answer) else {
            throw ValidationError("STATUS is not an object")
        }
        func field(_ members: [(String, JSONValue)], _ name: String) -> JSONValue? {
            members.first { $0.0 == name }?.1
        }
        func text(_ v: JSONValue?) -> String {
            switch v {
            case .string(let s)?: s
            case .int(let i)?: "\(i)"
            case .bool(let b)?: b ? "yes" : "no"
            case .array(let items)?:
                "\(PartitionSet(count: 65_536, members: items.compactMap { if case .int(let i) = $0 { Int(i) } else { nil } }))"
            case .null?, nil: "-"
            default: "\(v!)"
            }
        }
        var rows = [["FAMILY", "HOST", "PID", "SPAWNED", "OWNS", "BUILDING", "FACTS BEHIND", "LAST HEARD"]]
        if case .array(let workers)? = field(top, "workers") {
            for case .object(let w) in workers {
                rows.append([
                    text(field(w, "family")), text(field(w, "host")), text(field(w, "pid")), text(field(w, "spawned")),
                    text(field(w, "partitions")), text(field(w, "building")), text(field(w, "facts_behind")),
                    "\(text(field(w, "last_heard_ms"))) ms ago",
                ])
            }
        }
        let widths = rows[0].indices.map { i in rows.map { $0[i].count }.max()! }
        var out = rows.map { row in
            row.indices.map { row[$0].padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(
                separator: "  "
            )
        }
        out.append("\(rows.count - 1) worker session(s); \(text(field(top, "partitions"))) partitions per family")
        if case .object(let vacant)? = field(top, "vacant"), !vacant.isEmpty {
            out.append("vacant (rounds wait): " + vacant.map { "\($0.0) \(text($0.1))" }.joined(separator: ", "))
        }
        return out.joined(separator: "\n")
    }
}
