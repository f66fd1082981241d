import ArgumentParser
import ZeroMQ

/// `--curve-server-key` and `--curve-key-file`: how a connector command reaches an ingest
/// endpoint that has CURVE on (`ingest.curve` in the daemon's config).
///
/// One option group so every command that makes an `IngestClient` (`send`, and later
/// ones) takes the same flags and passes the same `CurveClientKeys` through.
struct CurveClientOptions: ParsableArguments {
    @Option(
        name: .customLong("curve-server-key"),
        help: ArgumentHelp(
            "The daemon's ingest public key (Z85, as in its keygen .pub file): connect with CURVE.",
            valueName: "key"
        )
    )
    var serverKey: String?

    @Option(
        name: .customLong("curve-key-file"),
        help: ArgumentHelp(
            "This connector's secret key file (dealstream keygen --out PREFIX writes PREFIX.key); its public key must be in the daemon's ingest.curve.connectors.",
            valueName: "file"
        )
    )
    var keyFile: String?

    func validate() throws {
        _ = try keys()
    }

    /// The keys to connect with; nil when neither flag is given (plain connection).
    func keys() throws -> CurveClientKeys? {
        switch (serverKey, keyFile) {
        case (nil, nil):
            return nil
        case (nil, _):
            throw ValidationError("--curve-key-file needs --curve-server-key (the daemon's ingest public key)")
        case (_, nil):
            throw ValidationError("--curve-server-key needs --curve-key-file (this connector's secret key)")
        case (let server?, let file?):
            let serverKey: CurveKey
            do { serverKey = try CurveKey(z85: server) } catch { throw ValidationError("--curve-server-key: \(error)") }
            do {
                return CurveClientKeys(serverKey: serverKey, keyPair: try CurveKeyPair.load(secretKeyFile: file))
            } catch {
                throw ValidationError("--curve-key-file: \(error)")
            }
        }
    }
}
