import CZeroMQ

/// An error reported by libzmq, carrying the C function that failed and its errno.
///
/// libzmq reports failures through `zmq_errno()`; this keeps the number, the call and
/// libzmq's own text together so a log line says exactly what went wrong.
public struct ZMQError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The errno value (`EAGAIN`, `ETERM`, `EHOSTUNREACH`, …).
    public var code: Int32
    /// The libzmq function that failed, e.g. `zmq_bind`.
    public var function: String
    /// What the call was about (an endpoint, an option name), when useful.
    public var context: String

    public init(code: Int32, function: String, context: String = "") {
        self.code = code
        self.function = function
        self.context = context
    }

    /// The error of the last failed libzmq call on this thread.
    public static func last(_ function: String, context: String = "") -> ZMQError {
        ZMQError(code: zmq_errno(), function: function, context: context)
    }

    /// The context was terminated: the socket's owner should close it and stop.
    public var isTerminated: Bool { code == ETERM }
    /// The operation would block (non-blocking send or receive).
    public var wouldBlock: Bool { code == EAGAIN }
    /// The call was interrupted by a signal; retrying is correct.
    public var isInterrupted: Bool { code == EINTR }

    public var description: String {
        let text = String(cString: zmq_strerror(code))
        return context.isEmpty
            ? "\(function): \(text) (errno \(code))" : "\(function)(\(context)): \(text) (errno \(code))"
    }
}
