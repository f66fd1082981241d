import DealModel
import DealstreamTestSupport
import Foundation
import PipelineMetrics
import Testing
import Wire

/// Runs the real `dealstream` binary with `arguments`; its exit status, stdout and stderr.
func runDealstream(
    _ arguments: [String],
    environment: [String: String] = [:]
) throws
    -> (status: Int32, output: String, error: String)
{
    let process = Process()
    process.executableURL = URL(fileURLWithPath: DaemonProcess.binary)
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ds-cli-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let out = folder.appendingPathComponent("out")
    let err = folder.appendingPathComponent("err")
    _ = FileManager.default.createFile(atPath: out.path, contents: nil)
    _ = FileManager.default.createFile(atPath: err.path, contents: nil)
    process.standardOutput = try FileHandle(forWritingTo: out)
    process.standardError = try FileHandle(forWritingTo: err)
    try process.run()
    process.waitUntilExit()
    return (
        process.terminationStatus, try String(contentsOf: out, encoding: .utf8),
        try String(contentsOf: err, encoding: .utf8)
    )
}

/// The command line an operator expects, and threads named for their job, on the real binary.
@Suite(.serialized)
struct CommandLineAndThreadsTests {
    @Test func versionNamesTheReleaseAndTheGitCommitOfTheBuild() throws {
        let run = try runDealstream(["--version"])
        #expect(run.status == 0)
        let line = run.output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(line.hasPrefix("dealstream 0.12.0 (commit "), "\(line)")
        // The build's checkout: the commit it was built from (dirty while files are changed).
        let git = Process()
        git.executableURL = URL(fileURLWithPath: "/usr/bin/git")
        git.arguments = ["-C", URL(fileURLWithPath: #filePath).deletingLastPathComponent().path, "rev-parse", "HEAD"]
        let pipe = Pipe()
        git.standardOutput = pipe
        git.standardError = FileHandle(forWritingAtPath: "/dev/null")
        if (try? git.run()) != nil {
            git.waitUntilExit()
            let head = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            if git.terminationStatus == 0 && head.count == 40 {
                // The binary may be one commit behind a test file edited since; it is a commit id.
                let commit = line.dropFirst("dealstream 0.12.0 (commit ".count).prefix(40)
                #expect(commit.allSatisfy(\.isHexDigit) && commit.count == 40, "\(line)")
            }
        } else {
            print("git not available: only the version's form is checked")
        }
    }

    @Test func choicesAreTypedListedInHelpAndCompletedByTheShell() throws {
        let help = try runDealstream(["worker", "--help"])
        #expect(help.status == 0)
        for family in MetricFamily.allCases { #expect(help.output.contains(family.rawValue), "\(family)") }
        #expect(help.output.contains("--log-format"))
        let daemonHelp = try runDealstream(["daemon", "--help"])
        #expect(daemonHelp.output.contains("critical") && daemonHelp.output.contains("--http"))
        let connectHelp = try runDealstream(["connect", "--help"])
        #expect(connectHelp.output.contains("hubspot") && connectHelp.output.contains("salesforce"))

        let wrong = try runDealstream(["worker", "--family", "revenu", "--connect", "ipc:///tmp/x"])
        #expect(wrong.status == 64)
        #expect(wrong.error.contains("revenu") && wrong.error.contains("revenue"), "\(wrong.error)")
        #expect(try runDealstream(["daemon", "--log-level", "loud"]).status == 64)
        #expect(try runDealstream(["connect", "zoho", "--mapping", "m.json"]).status == 64)

        let bash = try runDealstream(["--generate-completion-script", "bash"])
        #expect(bash.status == 0)
        #expect(bash.output.contains("customer_retention_rate") && bash.output.contains("pipedrive"))
        let zsh = try runDealstream(["--generate-completion-script", "zsh"])
        #expect(zsh.status == 0 && zsh.output.contains("#compdef dealstream"))
    }

    /// The names of a process's threads (`/proc/<pid>/task/*/comm`).
    private func threadNames(_ pid: Int32) -> [String] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.compactMap { tid in
            (try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/comm", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    @Test func everyThreadTheDaemonAndItsWorkersStartIsNamedForItsJob() throws {
        let daemon = try DaemonProcess(
            shards: 1,
            modelJSON: harnessModelJSON,
            extraArguments: ["--http", "127.0.0.1:0"]
        )
        defer { _ = daemon.terminate() }
        let ack = try daemon.send([deal("t-1", created: "2026-01-01T00:00:00Z")])
        _ = try daemon.waitUntilPublished(ack.logSeq)
        // A checkpoint thread runs only while one is written; the graceful stop writes one.
        let names = threadNames(daemon.process.processIdentifier)
        for expected in ["ds-loop", "ds-ingest", "ds-publish", "ds-supervisor"] {
            #expect(names.contains(expected), "\(names)")
        }
        #expect(names.contains { $0.hasPrefix("ZMQbg/") }, "\(names)")
        let workers = daemon.workerPIDs
        #expect(workers.count == MetricFamily.allCases.count)
        for worker in workers {
            #expect(threadNames(worker).contains("ds-worker"), "\(threadNames(worker))")
        }
    }

    @Test func aDaemonWithJSONLogsWritesOneJSONObjectPerLineAndSoDoItsWorkers() throws {
        let daemon = try DaemonProcess(
            shards: 1,
            modelJSON: harnessModelJSON,
            extraArguments: ["--log-format", "json", "--http", "127.0.0.1:0"]
        )
        let ack = try daemon.send([deal("j-1", created: "2026-01-01T00:00:00Z")])
        _ = try daemon.waitUntilPublished(ack.logSeq)
        #expect(daemon.terminate() == 0)
        let lines = daemon.log.split(separator: "\n")
        #expect(lines.count > 3)
        var labels: Set<String> = []
        for line in lines {
            guard case .object(let members)? = try? JSONParser.parse(Array(line.utf8)) else {
                Issue.record("not a JSON line: \(line)")
                continue
            }
            let keys = members.map(\.0)
            #expect(Array(keys.prefix(4)) == ["time", "level", "label", "message"], "\(line)")
            if let label = members.first(where: { $0.0 == "label" })?.1.stringValue { labels.insert(label) }
        }
        #expect(labels.contains("dealstream.daemon") && labels.contains("dealstream.worker"), "\(labels)")
    }

    @Test func anUnknownEnvironmentKeyStopsTheDaemonNamingIt() throws {
        let daemon = try DaemonProcess(
            shards: 1,
            modelJSON: harnessModelJSON,
            environment: ["DEALSTREAM_LIMITS_MAX_BATCH": "10"]
        )
        daemon.process.waitUntilExit()
        #expect(daemon.process.terminationStatus == 1)
        #expect(daemon.log.contains("config: DEALSTREAM_LIMITS_MAX_BATCH: unknown key (environment)"), "\(daemon.log)")
    }
}
