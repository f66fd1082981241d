import Dispatch
import Foundation
import Logging
import Observability

/// The test hook behind `dealstream daemon --debug-freeze-signal N` (hidden): signal N
/// freezes the daemon loop at its next liveness stamp, the next N thaws it.
///
/// Why: `/ready` and `/live` must turn false when the loop stops answering while the HTTP
/// listener still runs; a SIGSTOP stops every thread of the process, the listener too, so
/// a test needs the loop alone stuck, as a loop blocked in a call would be.
enum DebugFreeze {
    nonisolated(unsafe) private static var source: (any DispatchSourceSignal)?

    static func arm(signal number: Int32, probe: ProbeState, logger: Logger) {
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler {
            if probe.isLoopFrozen {
                probe.thawLoop()
                logger.warning("Daemon loop thawed (test hook)")
            } else {
                probe.freezeLoop()
                logger.warning("Daemon loop frozen (test hook)")
            }
        }
        source.resume()
        // Armed once, at start, before any other thread could look.
        Self.source = source
    }
}
