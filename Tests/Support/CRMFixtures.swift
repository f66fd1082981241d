public import CRMWebhooks
public import Foundation

/// The vendor-shaped fixtures of `Fixtures/` (see its README) and the repository files the
/// tests use (mappings, model, comparison script).
public enum FixtureFiles {
    public static var repository: URL { packageRoot }

    public static var fixtures: URL { repository.appendingPathComponent("Tests/CRMWebhooksTests/Fixtures") }

    /// The numbered request bodies of a vendor's sequence, in order.
    public static func sequence(_ vendor: Vendor) throws -> [(name: String, body: [UInt8])] {
        let folder = fixtures.appendingPathComponent(vendor.rawValue)
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
            .filter { $0.first?.isNumber == true && $0.hasSuffix(".json") }.sorted()
        return try names.map { ($0, Array(try Data(contentsOf: folder.appendingPathComponent($0)))) }
    }

    public static func file(_ vendor: Vendor, _ name: String) throws -> [UInt8] {
        Array(try Data(contentsOf: fixtures.appendingPathComponent(vendor.rawValue).appendingPathComponent(name)))
    }

    /// The dealstream events a sequence must translate to, one JSON per line.
    public static func expected(_ vendor: Vendor, _ name: String = "expected.ndjson") throws -> [String] {
        String(decoding: try file(vendor, name), as: UTF8.self).split(separator: "\n").map(String.init)
    }

    public static func mapping(_ vendor: Vendor) throws -> Mapping {
        try Mapping.parse(
            Array(try Data(contentsOf: repository.appendingPathComponent("config/mapping-\(vendor.rawValue).json")))
        )
    }

    public static var modelJSON: String {
        get throws { try String(contentsOf: repository.appendingPathComponent("config/model.json"), encoding: .utf8) }
    }
}

/// Runs a whole fixture sequence through translator and assembler, as the receiver does.
public func translateSequence(
    _ vendor: Vendor,
    bodies: [[UInt8]],
    mapping: Mapping
) throws -> (events: [String], translations: [Translation]) {
    let assembler = DealAssembler(mapping: mapping)
    var states: [String: DealState] = [:]
    var events: [String] = []
    var translations: [Translation] = []
    for body in bodies {
        let t = try vendor.translate(body, mapping: mapping)
        translations.append(t)
        for change in t.changes {
            var state = states[change.recordID] ?? DealState()
            if case .event(let e) = try assembler.apply(change, to: &state) {
                events.append(String(decoding: e, as: UTF8.self))
            }
            states[change.recordID] = state
        }
    }
    return (events, translations)
}
