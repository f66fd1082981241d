import DealModel
public import Foundation

/// Where a connector's secrets come from: the environment first, then the JSON file
/// (`{"DEALSTREAM_HUBSPOT_CLIENT_SECRET": "…"}`) that the mapping's `secrets_file` names.
///
/// Why: secrets never belong in the mapping file (which is shared and versioned), and
/// container platforms hand them over either as variables or as mounted files.
public struct Secrets: Sendable {
    var environment: [String: String]
    var file: [String: String]

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// `secretsFile` is resolved against the mapping file's folder when relative.
    public init(mappingFile: String, secretsFile: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        self.environment = environment
        file = [:]
        guard let secretsFile else { return }
        let base = URL(fileURLWithPath: mappingFile).deletingLastPathComponent()
        let path = secretsFile.hasPrefix("/") ? secretsFile : base.appendingPathComponent(secretsFile).path
        guard let bytes = FileManager.default.contents(atPath: path) else {
            throw Failure(description: "mapping.secrets_file: cannot read \(path)")
        }
        guard case .object(let members)? = try? JSONParser.parse(Array(bytes)) else {
            throw Failure(description: "mapping.secrets_file: \(path) is not a JSON object")
        }
        for (key, value) in members {
            guard let s = value.stringValue else { throw Failure(description: "\(path): \(key): expected a string") }
            file[key] = s
        }
    }

    public subscript(name: String) -> String? {
        if let v = environment[name], !v.isEmpty { return v }
        return file[name]
    }
}
