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

    /// The payload object without `seq` and `log_seq`: labels first, then the metric's
    /// fields. The reference form: the daemon renders what it publishes itself, from the
    /// topic's `labels(ofTopic:)` and the values (`appendFields`), and the tests check that
    /// it writes exactly these bytes followed by the stamp.
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

    /// The labels of a series' payload, read from its topic: `{"metric":…,"dimension":…,
    /// "key":…,"period":…` and for stage_conversion `,"pipeline":…,"from":…,"to":…`, with no
    /// closing brace: byte for byte what `payload` starts with. Nil for a topic that is not
    /// `<metric>/<dimension>/<key>/<period>` with decodable segments.
    public static func labels(ofTopic topic: [UInt8]) -> [UInt8]? {
        let segments = topic.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        guard segments.count == 4, segments.allSatisfy({ !$0.isEmpty }) else { return nil }
        var metric = segments[0]
        var stages: [String] = []
        let conversion = Array("stage_conversion:".utf8)
        if metric.starts(with: conversion) {
            let parts = metric.dropFirst(conversion.count).split(
                separator: UInt8(ascii: ":"),
                omittingEmptySubsequences: false
            )
            guard parts.count == 3 else { return nil }
            for part in parts {
                guard let s = percentDecode(part) else { return nil }
                stages.append(s)
            }
            metric = metric.prefix(conversion.count - 1)
        }
        guard let metricName = percentDecode(metric), let dimension = percentDecode(segments[1]),
            let key = percentDecode(segments[2]), let period = percentDecode(segments[3])
        else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(topic.count + 64)
        func label(_ name: StaticString, _ value: String) {
            out.append(out.isEmpty ? UInt8(ascii: "{") : UInt8(ascii: ","))
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
            out.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
            JSONWriter.appendString(value, to: &out)
        }
        label("metric", metricName)
        label("dimension", dimension)
        label("key", key)
        label("period", period)
        if stages.count == 3 {
            label("pipeline", stages[0])
            label("from", stages[1])
            label("to", stages[2])
        }
        return out
    }

    /// A shape ready to render: each field's `,"name":` and its kind.
    public struct PayloadFields: Sendable {
        public let keys: [[UInt8]]
        public let kinds: [FieldKind]
        public init(_ shape: SeriesShape) {
            keys = shape.fields.map { field in
                var key: [UInt8] = [UInt8(ascii: ",")]
                JSONWriter.appendString(field.name, to: &key)
                key.append(UInt8(ascii: ":"))
                return key
            }
            kinds = shape.fields.map(\.kind)
        }
    }

    /// Appends the fields of a payload: `,"name":value` for each field and its word
    /// (`FieldWord`), numbers written by `JSONWriter.number` as `payload` writes them.
    public static func appendFields(
        _ fields: PayloadFields,
        _ words: UnsafeBufferPointer<UInt64>,
        to out: inout [UInt8]
    ) {
        for i in 0..<min(fields.keys.count, words.count) {
            out.append(contentsOf: fields.keys[i])
            switch fields.kinds[i] {
            case .count:
                let n = Int64(bitPattern: words[i])
                if n < 0 { out.append(UInt8(ascii: "-")) }
                appendDecimal(n.magnitude, to: &out)
            case .number:
                appendNumber(Double(bitPattern: words[i]), to: &out)
            }
        }
    }

    /// Appends `JSONWriter.number(d)`: the same text, with the integral case (most sums and
    /// counts kept as doubles) written digit by digit instead of through two `String`s.
    static func appendNumber(_ d: Double, to out: inout [UInt8]) {
        guard d.isFinite, d == d.rounded(), abs(d) < 1e15 else {
            out.append(contentsOf: JSONWriter.number(d).utf8)
            return
        }
        let n = Int64(d)
        if n < 0 { out.append(UInt8(ascii: "-")) }
        appendDecimal(n.magnitude, to: &out)
        out.append(contentsOf: [UInt8(ascii: "."), UInt8(ascii: "0")])
    }

    /// Appends `,"seq":…,"log_seq":…}`: what closes every published payload.
    public static func appendStamp(seq: UInt64, logSeq: UInt64, to out: inout [UInt8]) {
        out.append(contentsOf: seqKey)
        appendDecimal(seq, to: &out)
        out.append(contentsOf: logSeqKey)
        appendDecimal(logSeq, to: &out)
        out.append(UInt8(ascii: "}"))
    }

    /// Appends what follows the labels of a removed series: `,"value":null,"removed":true`
    /// and the stamp.
    public static func appendRemoval(seq: UInt64, logSeq: UInt64, to out: inout [UInt8]) {
        out.append(contentsOf: removedFields)
        appendStamp(seq: seq, logSeq: logSeq, to: &out)
    }

    private static let removedFields = Array(",\"value\":null,\"removed\":true".utf8)

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
