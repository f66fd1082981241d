// libFuzzer entry point for the frame parsers: the input is split into frames (each
// frame: one length byte, then that many bytes), then fed to the ingest request parser,
// the worker-link decoders and the ACK reader. Built by scripts/fuzz.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrameParsers(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    var frames: [[UInt8]] = []
    var i = 0
    while i < bytes.count {
        let n = Int(bytes[i])
        i += 1
        frames.append(Array(bytes[i..<min(i + n, bytes.count)]))
        i += n
    }
    _ = IngestProtocol.parse(frames, maxBatchEvents: 1000, maxFrameBytes: 64)
    if frames.count >= 2 { _ = try? WorkerLink.FactBatch.decode(header: frames[0], changes: frames[1]) }
    if let first = frames.first {
        _ = try? WorkerLink.Ready.decode(first)
        _ = try? WorkerLink.ResultHeader.decode(first)
        _ = try? WorkerLink.ResultSchema().decode(first)
        _ = try? WorkerLink.Assign.decode(first)
        _ = try? WorkerLink.Progress.decode(first)
        _ = try? WorkerLink.decodeRelease(first, count: 64)
        _ = Topics.seriesParts(first)
        _ = Topics.SeriesTopic(first)
        _ = IngestProtocol.AckBody.decode(first)
    }
    return 0
}
