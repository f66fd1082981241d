import Dispatch
import Foundation
import ZeroMQ

/// libzmq PUSH/PULL with nothing of dealstream in between: the ceiling every end-to-end
/// figure is compared with, measured in the same run.
enum RawBaseline {
    /// Events per second through one PUSH → PULL pair, `eventsPerMessage` frames of
    /// `eventBytes` each per message.
    static func run(transport: String, eventBytes: Int, eventsPerMessage: Int, messages: Int) throws -> Double {
        let context = try ZMQContext()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ds-bench-raw-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let pull = try ZMQSocket(context: context, type: .pull)
        try pull.set(.receiveHighWaterMark, 0)
        let endpoint: String
        if transport == "ipc" {
            endpoint = "ipc://" + directory.appendingPathComponent("raw.sock").path
            try pull.bind(endpoint)
        } else {
            try pull.bind("tcp://127.0.0.1:*")
            endpoint = try pull.lastEndpoint()
        }
        let frame = [UInt8](repeating: 65, count: eventBytes)
        let message = [[UInt8]](repeating: frame, count: eventsPerMessage)
        let sender = ZMQThread(name: "bench-push") {
            guard let push = try? ZMQSocket(context: context, type: .push, lingerMilliseconds: 5000) else { return }
            try? push.set(.sendHighWaterMark, 0)
            try? push.connect(endpoint)
            for _ in 0..<messages { _ = try? push.send(message) }
        }
        _ = try pull.receive()
        let started = DispatchTime.now().uptimeNanoseconds
        for _ in 1..<messages { _ = try pull.receive() }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        sender.join()
        return Double((messages - 1) * eventsPerMessage) / seconds
    }
}
