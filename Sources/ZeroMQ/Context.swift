import CZeroMQ

/// A libzmq context: the I/O threads and the registry of inproc endpoints.
///
/// The context is the one libzmq object that is thread-safe, so it is `Sendable` and
/// shared by every socket thread of a process. Sockets are made from it but must stay on
/// the thread that made them.
public final class ZMQContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    /// Creates a context with `ioThreads` background I/O threads.
    public init(ioThreads: Int32 = 1) throws(ZMQError) {
        guard let handle = zmq_ctx_new() else { throw ZMQError.last("zmq_ctx_new") }
        zmq_ctx_set(handle, ZMQ_IO_THREADS, ioThreads)
        self.handle = handle
    }

    deinit {
        // Sockets all set a finite linger, so terminating cannot hang.
        while zmq_ctx_term(handle) != 0 && zmq_errno() == EINTR {}
    }

    /// The linked libzmq's version, e.g. (4, 3, 4).
    public static var version: (major: Int32, minor: Int32, patch: Int32) {
        var major: Int32 = 0
        var minor: Int32 = 0
        var patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return (major, minor, patch)
    }
}
