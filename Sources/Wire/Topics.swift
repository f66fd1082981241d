public import DealModel
public import PipelineMetrics

/// Topics and payloads of the public updates stream (PROTOCOL.md §3).
public enum Topics {
    /// Topic of the progress message published after every round.
    public static let progress: [UInt8] = Array("_progress".utf8)

    private static let unreserved: [Bool] = {
        var table = [Bool](repeating: false, count: 256)
        for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8 { table[Int(c)] = true }
        return table
    }()
    private static let hex = Array("0123456789ABCDEF".utf8)

    /// RFC 3986 percent-encoding of the UTF-8 bytes, upper-case hex.
    public static func percentEncode(_ s: String, into out: inout [UInt8]) {
        for b in s.utf8 {
            if unreserved[Int(b)] {
                out.append(b)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 0xF)])
            }
        }
    }

    /// The metric segment (still encoded), dimension and decoded key of a series topic
    /// `<metric>/<dimension>/<key>/<period>`; nil for anything else. What the daemon checks
    /// a worker's result against (its family and partitions).
    public static func seriesParts(_ topic: [UInt8]) -> (metric: String, dimension: Dimension, key: String)? {
        let segments = topic.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        guard segments.count == 4, !segments[0].isEmpty, !segments[2].isEmpty, !segments[3].isEmpty,
            let dimension = Dimension.allCases.first(where: { Array($0.name.utf8)[...] == segments[1] }),
            let key = percentDecode(segments[2])
        else { return nil }
        return (String(decoding: segments[0], as: UTF8.self), dimension, key)
    }

    /// Undoes `percentEncode`; nil for a malformed escape or invalid UTF-8.
    static func percentDecode(_ bytes: ArraySlice<UInt8>) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        func hexValue(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            default: nil
            }
        }
        while i < bytes.endIndex {
            if bytes[i] == UInt8(ascii: "%") {
                guard i + 2 < bytes.endIndex, let hi = hexValue(bytes[i + 1]), let lo = hexValue(bytes[i + 2]) else {
                    return nil
                }
                out.append(hi << 4 | lo)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    /// `<metric>/<dimension>/<key>/<period>`, each segment percent-encoded; for
    /// stage_conversion the metric segment is `stage_conversion:<p>:<from>:<to>`.
    public static func topic(_ id: SeriesID, strings: StringTable, model: Model) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        if id.metric == .stageConversion {
            let p = model.pipelines[Int(id.pipeline)]
            out.append(contentsOf: Array("stage_conversion:".utf8))
            percentEncode(p.name, into: &out)
            out.append(UInt8(ascii: ":"))
            percentEncode(p.stages[Int(id.fromStage)], into: &out)
            out.append(UInt8(ascii: ":"))
            percentEncode(p.stages[Int(id.fromStage) + 1], into: &out)
        } else {
            percentEncode(id.metric.name, into: &out)
        }
        out.append(UInt8(ascii: "/"))
        percentEncode(id.dimension.name, into: &out)
        out.append(UInt8(ascii: "/"))
        percentEncode(strings[id.key], into: &out)
        out.append(UInt8(ascii: "/"))
        percentEncode(id.period.description, into: &out)
        return out
    }

    /// The payload object without `seq` and `log_seq` (the daemon adds those when it
    /// publishes): labels first, then the metric's fields.
    public static func payload(
        _ id: SeriesID,
        fields: [(String, FieldValue)],
        strings: StringTable,
        model: Model
    ) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(192)
        func raw(_ s: String) { out.append(contentsOf: s.utf8) }
        var first = true
        func label(_ name: String, _ value: String) {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            JSONWriter.appendString(name, to: &out)
            out.append(UInt8(ascii: ":"))
            JSONWriter.appendString(value, to: &out)
        }
        out.append(UInt8(ascii: "{"))
        label("metric", id.metric.name)
        label("dimension", id.dimension.name)
        label("key", strings[id.key])
        label("period", id.period.description)
        if id.metric == .stageConversion {
            let p = model.pipelines[Int(id.pipeline)]
            label("pipeline", p.name)
            label("from", p.stages[Int(id.fromStage)])
            label("to", p.stages[Int(id.fromStage) + 1])
        }
        for (name, value) in fields {
            out.append(UInt8(ascii: ","))
            JSONWriter.appendString(name, to: &out)
            out.append(UInt8(ascii: ":"))
            switch value {
            case .count(let n): raw(String(n))
            case .number(let d): raw(JSONWriter.number(d))
            }
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// `payload` with `,"seq":…,"log_seq":…` spliced in before the closing brace.
    /// Whether `stamped` (a payload as published) is `payload` with its `seq` and `log_seq`:
    /// the same value, published before.
    public static func isStamped(_ stamped: [UInt8], from payload: [UInt8]) -> Bool {
        guard payload.last == UInt8(ascii: "}"), stamped.count > payload.count + seqKey.count else { return false }
        let body = payload.count - 1
        return stamped[..<body].elementsEqual(payload[..<body])
            && stamped[body..<(body + seqKey.count)].elementsEqual(seqKey)
    }

    public static func stamped(_ payload: [UInt8], seq: UInt64, logSeq: UInt64) -> [UInt8] {
        // On every published update: one allocation, digits written in place.
        var out: [UInt8] = []
        out.reserveCapacity(payload.count + 56)
        if payload.last == UInt8(ascii: "}") {
            out.append(contentsOf: payload[..<(payload.count - 1)])
        } else {
            out.append(contentsOf: payload)
        }
        out.append(contentsOf: Topics.seqKey)
        appendDecimal(seq, to: &out)
        out.append(contentsOf: Topics.logSeqKey)
        appendDecimal(logSeq, to: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    private static let seqKey = Array(",\"seq\":".utf8)
    private static let logSeqKey = Array(",\"log_seq\":".utf8)

    /// Appends `v` in decimal ASCII (no `String` in between).
    static func appendDecimal(_ v: UInt64, to out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buffer in
            var i = 20
            var rest = v
            repeat {
                i -= 1
                buffer[i] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest % 10)
                rest /= 10
            } while rest > 0
            out.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[i...]))
        }
    }

    /// The payload of a removed series: its labels, `value` null and `"removed":true`.
    public static func removal(labels payload: [UInt8], seq: UInt64, logSeq: UInt64) -> [UInt8] {
        // Keep the labels of the last payload; replace the fields by a null value.
        var labels: [UInt8] = []
        if let value = payload.firstRange(of: Array(",\"value\":".utf8)) {
            labels = Array(payload[..<value.lowerBound])
        } else {
            labels = Array(payload.dropLast())
        }
        labels.append(contentsOf: Array(",\"value\":null,\"removed\":true,\"seq\":\(seq),\"log_seq\":\(logSeq)}".utf8))
        return labels
    }

    /// `{"seq":…,"log_seq":…}`: the body of `_progress` and of a snapshot's `END`.
    public static func position(seq: UInt64, logSeq: UInt64) -> [UInt8] {
        Array("{\"seq\":\(seq),\"log_seq\":\(logSeq)}".utf8)
    }
}

/// A topic as a dictionary key: hashed in one pass over its bytes (an `[UInt8]` key
/// would be hashed byte by byte).
public struct TopicKey: Hashable, Sendable {
    public let bytes: [UInt8]
    /// Computed once: the published table hashes a topic on every update.
    private let digest: UInt64
    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        digest = StableHash.hash64(bytes)
    }
    public func hash(into hasher: inout Hasher) { hasher.combine(digest) }
    public static func == (a: TopicKey, b: TopicKey) -> Bool { a.digest == b.digest && a.bytes == b.bytes }
}
