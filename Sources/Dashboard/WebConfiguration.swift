import DealModel
import Foundation

/// What `dealstream web` runs with: where to listen, the daemon's endpoints, the model
/// (for the reporting currency and the stage order of each pipeline) and the optional
/// basic-auth credentials.
///
/// Why it exists: the dashboard can share the daemon's config file. `load(file:)` reads
/// `model`, `endpoints.updates`, `endpoints.snapshot` and the `web` object
/// (`listen`, `basic_auth`); every other top-level key belongs to the daemon and is left
/// alone, while an unknown key inside `web` is an error, so a typo is not ignored.
///
/// - Configuration keys:
///   - `web.listen` (string, default `127.0.0.1:8090`): HOST:PORT of the HTTP server
///   - `web.basic_auth` (string, optional): path of a secret file holding one `user:password` line
///   - `endpoints.updates`, `endpoints.snapshot`, `model`: as for the daemon
public struct WebConfiguration: Sendable {
    public var listen = "127.0.0.1:8090"
    public var updatesEndpoint = "tcp://127.0.0.1:7702"
    public var snapshotEndpoint = "tcp://127.0.0.1:7703"
    public var modelPath: String?
    public var basicAuthFile: String?

    public init() {}

    /// A wrong key or value, named.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var key: String
        public var reason: String
        public var description: String { "config: \(key): \(reason)" }
    }

    public static func load(file path: String) throws(Failure) -> WebConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Failure(key: "(file)", reason: "cannot read \(path)")
        }
        guard case .object(let members)? = try? JSONParser.parse(Array(data)) else {
            throw Failure(key: "(file)", reason: "\(path) is not a JSON object")
        }
        let base = URL(fileURLWithPath: path).deletingLastPathComponent()
        func resolve(_ p: String) -> String { p.hasPrefix("/") ? p : base.appendingPathComponent(p).path }
        func string(_ v: JSONValue, _ key: String) throws(Failure) -> String {
            guard let s = v.stringValue else { throw Failure(key: key, reason: "expected a string, got \(v.typeName)") }
            return s
        }
        var c = WebConfiguration()
        for (key, value) in members {
            switch key {
            case "model": c.modelPath = resolve(try string(value, "model"))
            case "endpoints":
                guard case .object(let endpoints) = value else { throw Failure(key: key, reason: "expected an object") }
                for (k, v) in endpoints {
                    if k == "updates" { c.updatesEndpoint = try string(v, "endpoints.updates") }
                    if k == "snapshot" { c.snapshotEndpoint = try string(v, "endpoints.snapshot") }
                }
            case "web":
                guard case .object(let web) = value else { throw Failure(key: key, reason: "expected an object") }
                for (k, v) in web {
                    switch k {
                    case "listen": c.listen = try string(v, "web.listen")
                    case "basic_auth": c.basicAuthFile = resolve(try string(v, "web.basic_auth"))
                    default: throw Failure(key: "web.\(k)", reason: "unknown key")
                    }
                }
            default: break  // the daemon's keys
            }
        }
        return c
    }

    /// `listen` split into host and port; nil when it is not HOST:PORT.
    public var listenAddress: (host: String, port: Int)? {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        var host = String(listen[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host, port)
    }

    /// Whether only this host can reach `host` (127.0.0.0/8, ::1, localhost).
    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}

/// HTTP Basic credentials read from a secret file (one `user:password` line).
///
/// Why a file: the password must not show in the process list or the config file, which
/// is shared; container platforms mount secrets as files. A file readable by group or
/// others is reported by `looselyProtected` so the command can warn.
public struct BasicAuthCredentials: Sendable {
    let expected: [UInt8]
    public let user: String
    public let looselyProtected: Bool

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    public init(file path: String) throws(Failure) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Failure(description: "web.basic_auth: cannot read \(path)")
        }
        let line = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        let mode = (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? 0
        do { try self.init(userAndPassword: line, looselyProtected: mode & 0o077 != 0) } catch {
            throw Failure(description: "web.basic_auth: \(path): expected one line user:password")
        }
    }

    /// `line` is `user:password`, both non-empty.
    public init(userAndPassword line: String, looselyProtected: Bool = false) throws(Failure) {
        guard let colon = line.firstIndex(of: ":"), colon != line.startIndex, line.index(after: colon) != line.endIndex
        else {
            throw Failure(description: "web.basic_auth: expected user:password")
        }
        expected = Array(Data(line.utf8).base64EncodedString().utf8)
        user = String(line[..<colon])
        self.looselyProtected = looselyProtected
    }

    /// Whether an `Authorization` header value carries these credentials (compared in constant time).
    public func admits(_ header: String?) -> Bool {
        guard let header, header.count > 6, header.prefix(6).lowercased() == "basic " else { return false }
        let given = Array(header.dropFirst(6).trimmingCharacters(in: .whitespaces).utf8)
        var difference = UInt8(given.count == expected.count ? 0 : 1)
        for i in 0..<expected.count { difference |= expected[i] ^ (i < given.count ? given[i] : 0) }
        return difference == 0
    }
}
