import Dispatch
import Logging
import Synchronization
import Wire
import ZeroMQ

/// The updates socket (XPUB) on a thread of its own (`ds-publish`): renders and sends, in
/// order, each round the loop hands it (`RoundOutput`), and counts the subscribers.
///
/// Exists so that output, most of what a round costs (rendering every changed series and
/// a `zmq_send` for each), runs beside the loop instead of in it: the loop meanwhile keeps
/// committing and acknowledging requests and reading results. The loop hands over one
/// round at a time (`isSendingRound`): while one is being sent, results coalesce into the next,
/// so a big round or a slow core makes later rounds larger, never a queue. What a round
/// cost this thread is handed back (`takeCost`) to the loop's `RoundPacing`, so output
/// keeps to its budget wherever it runs.
final class UpdatesPublisher: Sendable {
    private struct Shared {
        var queue: [RoundOutput] = []
        /// Rounds with updates handed over and not sent yet.
        var roundsInFlight = 0
        /// Anything handed over and not sent yet (a round or a `_progress`).
        var busy = false
        var finished = false
        /// CPU (ns) of the rounds sent since the last `takeCost`.
        var cost: UInt64 = 0
    }

    private let shared = Mutex(Shared())
    private let work = DispatchSemaphore(value: 0)
    private let thread: Mutex<ZMQThread?> = Mutex(nil)

    /// Starts the thread, which binds `endpoint`; returns once it is bound (or throws why not).
    init(
        context: ZMQContext,
        endpoint: String,
        highWaterMark: Int32,
        logger: Logger,
        metrics: DaemonMetrics?
    ) throws {
        let bound = DispatchSemaphore(value: 0)
        let bindError = Mutex<(any Error)?>(nil)
        thread.withLock {
            $0 = ZMQThread(name: "ds-publish") { [self] in
                let socket: ZMQSocket
                let subscribers: ZMQConnectionMonitor
                do {
                    socket = try ZMQSocket(context: context, type: .xpub, lingerMilliseconds: 0)
                    subscribers = try socket.monitorConnections()
                    try socket.set(.sendHighWaterMark, highWaterMark)
                    try socket.bind(endpoint)
                } catch {
                    bindError.withLock { $0 = error }
                    bound.signal()
                    return
                }
                bound.signal()
                sendUntilFinished(socket, subscribers: subscribers, logger: logger, metrics: metrics)
                subscribers.close()
                socket.close()
            }
        }
        bound.wait()
        if let error = bindError.withLock({ $0 }) { throw error }
    }

    /// Hands a round over; it is sent after the ones before it.
    func publish(_ output: RoundOutput) {
        shared.withLock {
            $0.queue.append(output)
            if !output.updates.isEmpty { $0.roundsInFlight += 1 }
            $0.busy = true
        }
        work.signal()
    }

    /// Whether a round with updates handed over is still being sent (a `_progress` alone
    /// does not hold the next round back).
    var isSendingRound: Bool { shared.withLock { $0.roundsInFlight > 0 } }

    /// Whether anything handed over is still being sent.
    var isBusy: Bool { shared.withLock { $0.busy } }

    /// The CPU (ns) this thread spent on the rounds sent since the last call.
    func takeCost() -> UInt64 {
        shared.withLock { shared in
            defer { shared.cost = 0 }
            return shared.cost
        }
    }

    /// Sends what was handed over, then closes the socket and ends the thread.
    func finish() {
        shared.withLock { $0.finished = true }
        work.signal()
        thread.withLock { $0 }?.join()
    }

    private func sendUntilFinished(
        _ socket: ZMQSocket,
        subscribers: ZMQConnectionMonitor,
        logger: Logger,
        metrics: DaemonMetrics?
    ) {
        while true {
            // Subscriptions arrive on the XPUB; nothing is done with them but reading them.
            _ = work.wait(timeout: .now() + .milliseconds(100))
            while (try? socket.receive(blocking: false)) != nil {}
            while let output = shared.withLock({ $0.queue.isEmpty ? nil : $0.queue.removeFirst() }) {
                let started = RoundPacing.threadCPUTime()
                do {
                    try output.render { topic, payload in
                        _ = try socket.send(UnsafeRawBufferPointer(topic), UnsafeRawBufferPointer(payload))
                    }
                } catch {
                    logger.error("Round not sent to subscribers", metadata: ["error": "\(error)"])
                }
                metrics?.published(logSeq: output.logSeq, seq: output.seq, subscribers: subscribers.drain())
                let cost = RoundPacing.threadCPUTime() &- started
                shared.withLock {
                    $0.cost &+= cost
                    if !output.updates.isEmpty { $0.roundsInFlight -= 1 }
                    if $0.queue.isEmpty { $0.busy = false }
                }
            }
            if shared.withLock({ $0.finished && $0.queue.isEmpty }) { return }
        }
    }
}
