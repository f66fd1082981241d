import DealModel
public import Foundation

/// Where a connector's secrets come from: the environment first (the variable itself, or
/// `NAME_FILE` naming a file that holds it: a mounted Kubernetes Secret or systemd
/// credential), then the JSON file (`{"DEALSTREAM_HUBSPOT_CLIENT_SECRET": "…"}`) that the
/// mapping's `secrets_file` names.
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
    public init(
        mappingFile: String,
        secretsFile: String?,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws {
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
        if let path = environment[name + "_FILE"], !path.isEmpty, let bytes = FileManager.default.contents(atPath: path)
        {
            // The file's content less its trailing newline (as `echo … > file` leaves it).
            var text = String(decoding: bytes, as: UTF8.self)
            while text.hasSuffix("\n") || text.hasSuffix("\r") { text.removeLast() }
            if !text.isEmpty { return text }
        }
        return file[name]
    }

    /// The variables that name a secret's file but cannot be read (to refuse at start
    /// rather than run unauthenticated).
    public func unreadableFiles(_ names: [String]) -> [String] {
        names.compactMap { name in
            guard let path = environment[name + "_FILE"], !path.isEmpty else { return nil }
            return FileManager.default.isReadableFile(atPath: path) ? nil : "\(name)_FILE: cannot read \(path)"
        }
    }
}
