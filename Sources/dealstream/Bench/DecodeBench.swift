import DealModel
import EventEncoding

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `dealstream bench`'s "decode only" figures: what the ingest thread spends per event on
/// decoding and validation, on one thread, with no socket and no store.
///
/// Why it exists: the end-to-end figures mix decoding with everything else the process
/// tree does; this isolates the per-event cost the ingest decode path owns, for the path
/// ingest runs (`EventEncoding.decode`: the one-pass fast path, falling back to the
/// reference) and the reference path alone (a `JSONValue` tree; for protobuf, SwiftProtobuf
/// then the tree), over the same frames in the same run. `referencePass` and `ingestPass`
/// are not inlined, so `valgrind --tool=callgrind --collect-atstart=no
/// --toggle-collect='*DecodeBench*ingestPass*'` counts the instructions of one path alone
/// (docs/performance.md).
enum DecodeBench {
    /// Which path a pass takes.
    enum Path: CaseIterable {
        case reference
        case ingest
    }

    /// This thread's CPU time in nanoseconds: on a shared machine, wall time counts the
    /// other processes' turns too.
    static func threadCPUNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Events per second of CPU time of one thread over `frames`, passes repeated for at
    /// least `seconds` of it.
    static func rate(
        _ frames: [[UInt8]],
        encoding: EventEncoding,
        decoder: EventDecoder,
        path: Path,
        seconds: Double = 1
    ) -> Double {
        var events = 0
        var checksum: UInt64 = 0
        let start = threadCPUNanoseconds()
        var elapsed: UInt64 = 0
        repeat {
            switch path {
            case .reference: checksum &+= referencePass(frames, encoding: encoding, decoder: decoder)
            case .ingest: checksum &+= ingestPass(frames, encoding: encoding, decoder: decoder)
            }
            events += frames.count
            elapsed = threadCPUNanoseconds() - start
        } while Double(elapsed) < seconds * 1e9
        // The checksum keeps the work from being optimized away.
        if checksum == 0x5EED { print("") }
        return Double(events) / (Double(elapsed) / 1e9)
    }

    /// Decodes every frame once the way ingest does; returns a checksum of the digests.
    @inline(never)
    static func ingestPass(_ frames: [[UInt8]], encoding: EventEncoding, decoder: EventDecoder) -> UInt64 {
        var checksum: UInt64 = 0
        for frame in frames {
            if case .success(let event) = encoding.decode(frame, with: decoder) { checksum &+= event.digest.low }
        }
        return checksum
    }

    /// Decodes every frame once through the reference path only.
    @inline(never)
    static func referencePass(_ frames: [[UInt8]], encoding: EventEncoding, decoder: EventDecoder) -> UInt64 {
        var checksum: UInt64 = 0
        for frame in frames {
            let result =
                switch encoding {
                case .json: decoder.decodeThroughValue(json: frame)
                case .protobuf: ProtobufEvent.decodeThroughValue(frame, with: decoder)
                }
            if case .success(let event) = result { checksum &+= event.digest.low }
        }
        return checksum
    }
}
