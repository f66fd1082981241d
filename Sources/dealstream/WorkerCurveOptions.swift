import ArgumentParser
import Foundation
import Worker
import ZeroMQ

/// `--curve-server-key` and `--curve-secret-key-file`: how `dealstream worker` joins a
/// daemon whose worker endpoint has CURVE on (`workers.curve` in the daemon's config).
///
/// Not `CurveClientOptions`: those are a connector's ingest keys (`--curve-key-file`), and
/// a worker's key is a different key in a different allowlist. A worker the daemon spawns
/// gets the server key as a flag and its secret key in `DEALSTREAM_WORKER_SECRET_KEY`
/// (never on a command line `ps` shows); the variable is removed from the environment once
/// read.
struct WorkerCurveOptions: ParsableArguments {
    @Option(
        name: .customLong("curve-server-key"),
        help: ArgumentHelp(
            "The daemon's worker-link public key (Z85, the .pub of workers.curve.secret_key_file): connect with CURVE.",
            valueName: "key"
        )
    )
    var serverKey: String?

    @Option(
        name: .customLong("curve-secret-key-file"),
        help: ArgumentHelp(
            "This worker's secret key file (dealstream keygen --out PREFIX writes PREFIX.key); its public key must be in the daemon's workers.curve.workers. Default: the key in DEALSTREAM_WORKER_SECRET_KEY.",
            valueName: "file"
        )
    )
    var secretKeyFile: String?

    /// The keys to connect with; nil when no `--curve-server-key` is given (plain link).
    func keys(
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> WorkerLinkCurve? {
        let variable = "DEALSTREAM_WORKER_SECRET_KEY"
        guard let server = serverKey else {
            if secretKeyFile != nil {
                throw ValidationError(
                    "--curve-secret-key-file needs --curve-server-key (the daemon's worker-link public key)"
                )
            }
            return nil
        }
        let serverKey: CurveKey
        do { serverKey = try CurveKey(z85: server) } catch { throw ValidationError("--curve-server-key: \(error)") }
        let keyPair: CurveKeyPair
        if let secretKeyFile {
            do { keyPair = try CurveKeyPair.load(secretKeyFile: secretKeyFile) } catch {
                throw ValidationError("--curve-secret-key-file: \(error)")
            }
        } else if let secret = environment[variable] {
            do { keyPair = try CurveKeyPair(secretKey: CurveKey(z85: secret)) } catch {
                throw ValidationError("\(variable): \(error)")
            }
        } else {
            throw ValidationError(
                "--curve-server-key needs --curve-secret-key-file (this worker's secret key) or \(variable)"
            )
        }
        unsetenv(variable)
        return WorkerLinkCurve(keys: CurveClientKeys(serverKey: serverKey, keyPair: keyPair))
    }
}
