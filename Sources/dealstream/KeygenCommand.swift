import ArgumentParser
import Foundation
import ZeroMQ

/// `dealstream keygen`: makes the CURVE key pairs of the daemon's ingest endpoint and of
/// its connectors, and of its worker link and its remote workers.
struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Make a CURVE key pair for the ingest endpoint, a connector, the worker link or a worker.",
        discussion: """
            Without --out, prints the public and the secret key (Z85, 40 characters each). With \
            --out PREFIX, writes the secret key to PREFIX.key (mode 0600, refused if it exists) and \
            the public key to PREFIX.pub, and prints the public key.

            One pair for the daemon: its .key file is ingest.curve.secret_key_file in the daemon's \
            config, its public key is what every connector passes as --curve-server-key. One pair per \
            connector: its public key goes into the daemon's ingest.curve.connectors under the \
            connector's name, its .key file is the connector's --curve-key-file (dealstream send). \
            Only public keys ever leave the host that made them. config/README.md has an example.

            The worker link has pairs of its own (a connector's key is not a worker's): one for the             daemon (workers.curve.secret_key_file; its public key is every worker's             --curve-server-key) and one per remote worker or group of workers (its public key goes             into workers.curve.workers, its .key file is the worker's --curve-secret-key-file).             config/README.md, Worker authentication.
            """
    )

    @Option(
        help: ArgumentHelp(
            "Write PREFIX.key (secret) and PREFIX.pub (public) instead of printing both.",
            valueName: "prefix"
        )
    )
    var out: String?

    func run() throws {
        let pair: CurveKeyPair
        do { pair = try CurveKeyPair.generate() } catch { throw KeygenFailure("\(error)") }
        guard let out else {
            print("public: \(pair.publicKey.z85)")
            print("secret: \(pair.secretKey.z85)")
            return
        }
        let secretPath = out + ".key"
        let publicPath = out + ".pub"
        for path in [secretPath, publicPath] where FileManager.default.fileExists(atPath: path) {
            throw KeygenFailure("\(path) exists; not overwriting a key")
        }
        try write(pair.secretKey.z85 + "\n", to: secretPath, mode: 0o600)
        try write(pair.publicKey.z85 + "\n", to: publicPath, mode: 0o644)
        print("public: \(pair.publicKey.z85)")
        print("wrote \(secretPath) (secret, 0600) and \(publicPath)")
    }

    /// Creates `path` with `mode` from the start (O_EXCL), so a secret is never readable
    /// by others, not even briefly.
    private func write(_ text: String, to path: String, mode: mode_t) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode)
        guard fd >= 0 else { throw KeygenFailure("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        // The umask may have cleared bits of a public file; never add any to a secret one.
        fchmod(fd, mode)
        let bytes = Array(text.utf8)
        guard bytes.withUnsafeBytes({ Foundation.write(fd, $0.baseAddress, $0.count) }) == bytes.count else {
            throw KeygenFailure("cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}

/// Why no key pair was written (exit status 1).
struct KeygenFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
