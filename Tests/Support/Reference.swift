import DealModel
public import Foundation

/// The acceptance kit's reference implementation as the oracle of a process test: writes
/// `events` and the `published` state into `directory` and runs
/// scripts/compare-with-reference.py with `model`. Nil when they agree, else its report.
public func referenceDisagreement(
    events: [String],
    published: [String: String],
    model: URL,
    directory: URL
) throws -> String? {
    let eventsPath = directory.appendingPathComponent("events.ndjson")
    try Data((events.joined(separator: "\n") + "\n").utf8).write(to: eventsPath)
    var snapshot: [UInt8] = [UInt8(ascii: "{")]
    for (i, (topic, payload)) in published.sorted(by: { $0.key < $1.key }).enumerated() {
        if i > 0 { snapshot.append(UInt8(ascii: ",")) }
        JSONWriter.appendString(topic, to: &snapshot)
        snapshot.append(UInt8(ascii: ":"))
        snapshot += Array(payload.utf8)
    }
    snapshot.append(UInt8(ascii: "}"))
    let snapshotPath = directory.appendingPathComponent("snapshot.json")
    try Data(snapshot).write(to: snapshotPath)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [
        "python3", packageRoot.appendingPathComponent("scripts/compare-with-reference.py").path,
        "--model", model.path, "--events", eventsPath.path, "--snapshot", snapshotPath.path,
    ]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return process.terminationStatus == 0 ? nil : output
}
