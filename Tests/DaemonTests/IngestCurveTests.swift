import DealstreamTestSupport
import Foundation
import InMemoryLogging
import Logging
import Testing
import ZeroMQ

@testable import Daemon

/// `ingest.curve` in the config file: what is accepted, and errors that name the field.
struct IngestCurveTests {
    /// A folder with a daemon secret key file `ingest.key`; removed by `cleanUp`.
    struct Folder {
        let url = temporaryDirectory("curve-config")
        let daemonKeys: CurveKeyPair

        init() throws {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
            daemonKeys = try CurveKeyPair.generate()
            try write("ingest.key", daemonKeys.secretKey.z85 + "\n")
        }

        func write(_ name: String, _ text: String) throws {
            try Data(text.utf8).write(to: url.appendingPathComponent(name))
        }

        /// Loads a config file whose `ingest.curve` is `curveJSON`.
        func load(curve curveJSON: String) throws(ConfigurationError) -> DaemonConfiguration {
            let path = url.appendingPathComponent("dealstream.json").path
            _ = FileManager.default.createFile(
                atPath: path,
                contents: Data("{\"ingest\": {\"curve\": \(curveJSON)}}".utf8)
            )
            return try DaemonConfiguration.load(file: path)
        }

        func cleanUp() { try? FileManager.default.removeItem(at: url) }
    }

    /// The error loading a config with this `ingest.curve`, as printed.
    private func error(_ folder: Folder, curve: String) -> String {
        do {
            _ = try folder.load(curve: curve)
            return "no error"
        } catch {
            return error.description
        }
    }

    @Test func offByDefault() throws {
        #expect(DaemonConfiguration().ingestCurve == nil)
        let folder = try Folder()
        defer { folder.cleanUp() }
        try folder.write("plain.json", "{\"endpoints\": {\"ingest\": \"tcp://0.0.0.0:7701\"}}")
        #expect(
            try DaemonConfiguration.load(file: folder.url.appendingPathComponent("plain.json").path).ingestCurve == nil
        )
    }

    @Test func readsTheSecretKeyFileRelativeToTheConfigAndTheConnectorKeys() throws {
        let folder = try Folder()
        defer { folder.cleanUp() }
        let eu = try CurveKeyPair.generate()
        let us = try CurveKeyPair.generate()
        let c = try folder.load(
            curve: """
                {"secret_key_file": "ingest.key", "connectors": {"hubspot-eu": "\(eu.publicKey)", "salesforce_us.2": "\(us.publicKey)"}}
                """
        )
        let curve = try #require(c.ingestCurve)
        #expect(curve.keyPair.publicKey == folder.daemonKeys.publicKey)
        #expect(curve.secretKeyFile == folder.url.appendingPathComponent("ingest.key").path)
        #expect(curve.connectors == [eu.publicKey: "hubspot-eu", us.publicKey: "salesforce_us.2"])
    }

    @Test func errorsNameTheField() throws {
        let folder = try Folder()
        defer { folder.cleanUp() }
        let key = try CurveKeyPair.generate().publicKey
        #expect(
            error(folder, curve: #"{"secret_key_file": "ingest.key", "connectors": {"hubspot-eu": "abc"}}"#)
                == "config: ingest.curve.connectors.hubspot-eu: not a 40-character Z85 key (3 characters)"
        )
        #expect(
            error(folder, curve: #"{"secret_key_file": "ingest.key", "connectors": {"hubspot-eu": 7}}"#)
                == "config: ingest.curve.connectors.hubspot-eu: not a string (a Z85 public key)"
        )
        #expect(
            error(folder, curve: #"{"connectors": {"a": "\#(key)"}}"#)
                == "config: ingest.curve.secret_key_file: missing: the daemon's secret key file (make one with dealstream keygen --out)"
        )
        let missing = folder.url.appendingPathComponent("nope.key").path
        #expect(
            error(folder, curve: #"{"secret_key_file": "nope.key", "connectors": {"a": "\#(key)"}}"#)
                == "config: ingest.curve.secret_key_file: cannot read \(missing)"
        )
        try folder.write("bad.key", "secret\n")
        let bad = folder.url.appendingPathComponent("bad.key").path
        #expect(
            error(folder, curve: #"{"secret_key_file": "bad.key", "connectors": {"a": "\#(key)"}}"#)
                == "config: ingest.curve.secret_key_file: \(bad): not a 40-character Z85 key (6 characters)"
        )
        #expect(
            error(folder, curve: #"{"secret_key_file": "ingest.key", "connectors": {}}"#)
                == "config: ingest.curve.connectors: missing or empty: list each connector's public key, or no connector can send"
        )
        #expect(
            error(folder, curve: #"{"secret_key_file": "ingest.key", "connectors": {"a": "\#(key)", "b": "\#(key)"}}"#)
                == "config: ingest.curve.connectors.b: same public key as ingest.curve.connectors.a"
        )
        #expect(
            error(folder, curve: #"{"secret_key_file": "ingest.key", "connectors": {"a b": "\#(key)"}}"#)
                == "config: ingest.curve.connectors.a b: a connector name is 1 to 64 letters, digits, '.', '_' or '-'"
        )
        #expect(
            error(
                folder,
                curve: #"{"secret_key_file": "ingest.key", "connectors": {"a": "\#(folder.daemonKeys.secretKey)"}}"#
            )
                == "config: ingest.curve.connectors.a: this is the daemon's secret key, not a connector's public key"
        )
        #expect(error(folder, curve: #"{"secret_key": "x"}"#) == "config: ingest.curve.secret_key: unknown key")
        #expect(error(folder, curve: #""on""#) == "config: ingest.curve: not an object")
        try folder.write("other.json", #"{"ingest": {"cruve": {}}}"#)
        #expect(throws: ConfigurationError(key: "ingest.cruve", reason: "unknown key")) {
            try DaemonConfiguration.load(file: folder.url.appendingPathComponent("other.json").path)
        }
    }

    @Test func onlyIpcInprocAndLoopbackTcpCountAsLocal() {
        for local in [
            "ipc:///tmp/x.sock", "inproc://x", "tcp://127.0.0.1:7701", "tcp://127.1.2.3:1", "tcp://localhost:7701",
            "tcp://[::1]:7701", "tcp://lo:7701",
        ] {
            #expect(IngestCurve.isLocal(endpoint: local), "\(local)")
        }
        for exposed in [
            "tcp://*:7701", "tcp://0.0.0.0:7701", "tcp://10.0.0.5:7701", "tcp://eth0:7701", "tcp://[::]:7701",
            "tcp://128.0.0.1:7701", "ws://127.0.0.1:80", "pgm://eth0;239.192.1.1:5555",
        ] {
            #expect(!IngestCurve.isLocal(endpoint: exposed), "\(exposed)")
        }
    }

    @Test func refusalsAreLoggedOnceAMinutePerKeyAndAddressAdmissionsAlways() throws {
        let handler = InMemoryLogHandler()
        let log = ConnectorAuthenticationLog(logger: Logger(label: "test") { _ in handler })
        let stranger = try CurveKeyPair.generate().publicKey
        let refused = ZAPAuthenticator.Decision(
            userID: nil,
            mechanism: "CURVE",
            clientKey: stranger,
            peerAddress: "10.1.2.3"
        )
        for _ in 0..<50 { log.record(refused) }
        var other = refused
        other.peerAddress = "10.9.9.9"
        log.record(other)
        var admitted = refused
        admitted.userID = "hubspot-eu"
        log.record(admitted)
        log.record(admitted)
        let entries = handler.entries
        #expect(entries.filter { $0.message == "Connector refused" }.count == 2)
        let first = try #require(entries.first)
        #expect(first.level == .warning)
        #expect(first.metadata["connector.key"] == "\(stranger.z85)")
        #expect(first.metadata["peer.address"] == "10.1.2.3")
        #expect(
            entries.filter { $0.message == "Connector authenticated" && $0.metadata["connector"] == "hubspot-eu" }.count
                == 2
        )
    }
}
