import Foundation
import Synchronization

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Real HTTP against a daemon's or connector's listener, and Prometheus' own linter.
public enum HTTPScrape {
    /// GETs `url`: the status code and the body.
    public static func get(_ url: String) async throws -> (status: Int, body: String) {
        var request = URLRequest(url: URL(string: url)!)
        request.timeoutInterval = 10
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }

    /// GETs `url` from a plain thread, blocking it (not the cooperative pool): the status, or nil.
    public static func getBlocking(_ url: String) -> Int? {
        let done = DispatchSemaphore(value: 0)
        let status = Mutex<Int?>(nil)
        var request = URLRequest(url: URL(string: url)!)
        request.timeoutInterval = 10
        URLSession.shared.dataTask(with: request) { _, response, _ in
            status.withLock { $0 = (response as? HTTPURLResponse)?.statusCode }
            done.signal()
        }.resume()
        done.wait()
        return status.withLock { $0 }
    }

    /// Polls `url` until it answers `status` (within `timeout` seconds, see `poll`); false
    /// if it never did.
    public static func waitFor(_ url: String, status: Int, timeout: Double) async -> Bool {
        await poll(timeout: timeout) { (try? await get(url))?.status == status ? true : nil } ?? false
    }

    /// The samples of an exposition: `name{labels}` → value (labels as written).
    public static func samples(_ exposition: String) -> [String: Double] {
        var samples: [String: Double] = [:]
        for line in exposition.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                continue
            }
            samples[String(line[..<space])] = value
        }
        return samples
    }

    /// The metric names an exposition declares (`# TYPE name kind`) that
    /// docs/operations.md does not document (as `` `name` ``).
    public static func undocumented(_ exposition: String) throws -> [String] {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/"
            && !FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path)
        {
            url.deleteLastPathComponent()
        }
        let docs = try String(contentsOf: url.appendingPathComponent("docs/operations.md"), encoding: .utf8)
        return exposition.split(separator: "\n").compactMap { line -> String? in
            let words = line.split(separator: " ")
            guard words.count >= 3, words[0] == "#", words[1] == "TYPE" else { return nil }
            return docs.contains("`\(words[2])`") ? nil : String(words[2])
        }
    }

    /// `promtool check metrics` over `exposition`: nil when it passes, else what it said.
    /// Throws `Missing` when promtool is not installed (scripts/install-deps installs it).
    public static func promtoolProblems(_ exposition: String) throws -> String? {
        let candidates = ["/usr/bin/promtool", "/usr/local/bin/promtool"]
        guard let promtool = candidates.first(where: FileManager.default.isExecutableFile(atPath:)) else {
            throw Missing()
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: promtool)
        process.arguments = ["check", "metrics"]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        input.fileHandleForWriting.write(Data(exposition.utf8))
        try input.fileHandleForWriting.close()
        let said = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return process.terminationStatus == 0 && said.isEmpty ? nil : "status \(process.terminationStatus): \(said)"
    }

    public struct Missing: Error, CustomStringConvertible {
        public var description: String { "promtool not installed (Debian package prometheus; scripts/install-deps)" }
    }
}
