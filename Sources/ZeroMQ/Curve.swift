import CZeroMQ
import Foundation

/// One CURVE key (public or secret): 32 bytes, written as 40 characters of Z85.
///
/// Keys travel as Z85 text (config files, key files, command-line flags) because that is
/// how libzmq and every ZeroMQ tool print them. Making one validates the text, so a key
/// that exists is always usable as a socket option; the error says what is wrong with it
/// and the caller adds which field it came from.
public struct CurveKey: Hashable, Sendable, CustomStringConvertible {
    /// The 32 key bytes.
    public let bytes: [UInt8]
    /// The same key as 40 characters of Z85.
    public let z85: String

    /// Reads a 40-character Z85 key (surrounding whitespace is ignored).
    public init(z85 text: String) throws(CurveKeyError) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.utf8.count == 40 else {
            throw CurveKeyError(reason: "not a 40-character Z85 key (\(trimmed.utf8.count) characters)")
        }
        if let bad = trimmed.first(where: { !CurveKey.alphabet.contains($0) }) {
            throw CurveKeyError(
                reason:
                    "not a 40-character Z85 key (\"\(bad.isASCII && !bad.isWhitespace ? String(bad) : "?")\" is not a Z85 character)"
            )
        }
        var bytes = [UInt8](repeating: 0, count: 32)
        guard zmq_z85_decode(&bytes, trimmed) != nil else {
            throw CurveKeyError(reason: "not a 40-character Z85 key (does not decode)")
        }
        self.bytes = bytes
        self.z85 = trimmed
    }

    /// A key from its 32 bytes (the form ZAP credentials arrive in).
    public init(bytes: [UInt8]) throws(CurveKeyError) {
        guard bytes.count == 32 else { throw CurveKeyError(reason: "\(bytes.count) bytes, a CURVE key has 32") }
        var text = [CChar](repeating: 0, count: 41)
        guard zmq_z85_encode(&text, bytes, 32) != nil else { throw CurveKeyError(reason: "does not encode as Z85") }
        self.bytes = bytes
        self.z85 = ZeroMQ.text(text)
    }

    /// The Z85 text. (A secret key prints as itself too: never log one.)
    public var description: String { z85 }

    /// The 85 characters of Z85 (ZeroMQ RFC 32).
    static let alphabet = Set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#")
}

/// A CURVE key pair: the public key others configure, the secret key only its owner holds.
///
/// The daemon's ingest endpoint has one (its public key is the `--curve-server-key` of
/// every connector); each connector has one (its public key is listed in the daemon's
/// config). `dealstream keygen` makes them; key files hold only the secret key, the
/// public key is always derived from it so the two cannot disagree.
public struct CurveKeyPair: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    public let publicKey: CurveKey
    public let secretKey: CurveKey

    /// Only the public key: a pair printed in a log or an error never shows its secret.
    public var description: String { "CurveKeyPair(public: \(publicKey))" }
    public var debugDescription: String { description }

    /// A new random key pair (libzmq's `zmq_curve_keypair`).
    public static func generate() throws(CurveKeyError) -> CurveKeyPair {
        try Curve.requireAvailable()
        var publicText = [CChar](repeating: 0, count: 41)
        var secretText = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&publicText, &secretText) == 0 else {
            throw CurveKeyError(reason: "zmq_curve_keypair failed: \(ZMQError.last("zmq_curve_keypair"))")
        }
        return CurveKeyPair(
            publicKey: try CurveKey(z85: text(publicText)),
            secretKey: try CurveKey(z85: text(secretText))
        )
    }

    /// The pair of `secretKey`, its public key derived (`zmq_curve_public`).
    public init(secretKey: CurveKey) throws(CurveKeyError) {
        try Curve.requireAvailable()
        var publicText = [CChar](repeating: 0, count: 41)
        guard zmq_curve_public(&publicText, secretKey.z85) == 0 else {
            throw CurveKeyError(reason: "cannot derive the public key: \(ZMQError.last("zmq_curve_public"))")
        }
        self.publicKey = try CurveKey(z85: text(publicText))
        self.secretKey = secretKey
    }

    private init(publicKey: CurveKey, secretKey: CurveKey) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// Reads a secret key file (one Z85 key, as `dealstream keygen --out` writes it) and
    /// derives the public key. The error's reason names the file.
    public static func load(secretKeyFile path: String) throws(CurveKeyError) -> CurveKeyPair {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CurveKeyError(reason: "cannot read \(path)")
        }
        do {
            return try CurveKeyPair(secretKey: CurveKey(z85: String(decoding: data, as: UTF8.self)))
        } catch {
            throw CurveKeyError(reason: "\(path): \(error.reason)")
        }
    }
}

/// The text of a NUL-terminated C string libzmq wrote into `chars`.
private func text(_ chars: [CChar]) -> String {
    String(decoding: chars.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// A CURVE key that cannot be used, and why; the caller names the field it came from.
public struct CurveKeyError: Error, Hashable, Sendable, CustomStringConvertible {
    public var reason: String
    public init(reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// What a connector needs to reach a CURVE-protected endpoint: the server's public key
/// and its own key pair.
///
/// A small value so every command that makes an ingest client (`send`, `bench`, and
/// later ones) passes the same thing through; `ZMQSocket.setCurveClient` applies it.
public struct CurveClientKeys: Sendable {
    /// The public key of the endpoint (the daemon's ingest key).
    public var serverKey: CurveKey
    /// This connector's key pair; its public key must be configured on the server.
    public var keyPair: CurveKeyPair

    public init(serverKey: CurveKey, keyPair: CurveKeyPair) {
        self.serverKey = serverKey
        self.keyPair = keyPair
    }
}

/// Whether the linked libzmq can do CURVE.
public enum Curve {
    /// `zmq_has("curve")`: libzmq built with libsodium or tweetnacl.
    public static var isAvailable: Bool { zmq_has("curve") != 0 }

    /// Throws when the linked libzmq has no CURVE support.
    public static func requireAvailable() throws(CurveKeyError) {
        guard isAvailable else {
            throw CurveKeyError(
                reason:
                    "this libzmq has no CURVE support (zmq_has(\"curve\") is 0); install a libzmq built with libsodium"
            )
        }
    }
}

extension ZMQSocket {
    /// Makes this socket a CURVE server (before bind): peers must run the CURVE handshake
    /// with `secretKey`'s public key. Who is admitted is decided by the context's ZAP
    /// handler (`ZAPAuthenticator`); with none bound, libzmq admits every client key.
    public func setCurveServer(secretKey: CurveKey) throws(ZMQError) {
        try set(.curveServer, 1)
        try set(bytesOption: ZMQ_CURVE_SECRETKEY, secretKey.bytes)
    }

    /// Sets the ZAP domain the context's ZAP handler is asked about this socket's
    /// handshakes under (before bind): sockets of one context with different key sets
    /// have different domains (`ZAPAuthenticator(domains:)`).
    public func setZAPDomain(_ domain: String) throws(ZMQError) {
        try set(bytesOption: ZMQ_ZAP_DOMAIN, Array(domain.utf8))
    }

    /// Makes this socket a CURVE client of the server whose public key is
    /// `keys.serverKey` (before connect).
    public func setCurveClient(_ keys: CurveClientKeys) throws(ZMQError) {
        try set(bytesOption: ZMQ_CURVE_SERVERKEY, keys.serverKey.bytes)
        try set(bytesOption: ZMQ_CURVE_PUBLICKEY, keys.keyPair.publicKey.bytes)
        try set(bytesOption: ZMQ_CURVE_SECRETKEY, keys.keyPair.secretKey.bytes)
    }
}
