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
    public static func labels(ofTopic topic: [UInt8]) -> [UInt8]? { SeriesTopic(topic)?.labels }

    /// A series topic read once: its metric segment (as sent), dimension, decoded key (the
    /// bytes its partition is hashed from) and the labels of its payload (`labels(ofTopic:)`).
    ///
    /// One pass over the bytes, no string per segment: the daemon reads every topic a
    /// worker session reports for the first time, tens of thousands at a start.
    public struct SeriesTopic {
        public let metricSegment: String
        public let dimension: Dimension
        public let key: [UInt8]
        public let labels: [UInt8]

        public init?(_ topic: [UInt8]) {
            var slashes = (0, 0, 0)
            var n = 0
            for (i, b) in topic.enumerated() where b == UInt8(ascii: "/") {
                switch n {
                case 0: slashes.0 = i
                case 1: slashes.1 = i
                case 2: slashes.2 = i
                default: return nil
                }
                n += 1
            }
            guard n == 3, slashes.0 > 0, slashes.1 > slashes.0 + 1, slashes.2 > slashes.1 + 1,
                slashes.2 < topic.count - 1
            else { return nil }
            let metric = topic[..<slashes.0]
            let dimensionBytes = topic[(slashes.0 + 1)..<slashes.1]
            guard let dimension = Dimension.allCases.first(where: { dimensionBytes.elementsEqual($0.name.utf8) }) else {
                return nil
            }
            var out: [UInt8] = []
            out.reserveCapacity(topic.count + 96)
            var scratch: [UInt8] = []
            scratch.reserveCapacity(topic.count)
            func label(_ name: [UInt8], _ segment: ArraySlice<UInt8>) -> Bool {
                out.append(contentsOf: name)
                guard Topics.percentDecode(segment, into: &scratch) else { return false }
                JSONWriter.appendString(utf8: scratch, to: &out)
                return true
            }
            let conversion = Topics.conversionPrefix
            if metric.starts(with: conversion) {
                var colons: [Int] = []
                for i in (metric.startIndex + conversion.count)..<metric.endIndex where topic[i] == UInt8(ascii: ":") {
                    colons.append(i)
                }
                guard colons.count == 2 else { return nil }
                out.append(contentsOf: Topics.conversionMetricLabel)
                guard label(Topics.dimensionLabel, dimensionBytes),
                    label(Topics.keyLabel, topic[(slashes.1 + 1)..<slashes.2]),
                    label(Topics.periodLabel, topic[(slashes.2 + 1)...]),
                    label(Topics.pipelineLabel, metric[(metric.startIndex + conversion.count)..<colons[0]]),
                    label(Topics.fromLabel, metric[(colons[0] + 1)..<colons[1]]),
                    label(Topics.toLabel, metric[(colons[1] + 1)...])
                else { return nil }
            } else {
                guard label(Topics.metricLabel, metric), label(Topics.dimensionLabel, dimensionBytes),
                    label(Topics.keyLabel, topic[(slashes.1 + 1)..<slashes.2]),
                    label(Topics.periodLabel, topic[(slashes.2 + 1)...])
                else { return nil }
            }
            guard Topics.percentDecode(topic[(slashes.1 + 1)..<slashes.2], into: &scratch) else { return nil }
            key = scratch
            labels = out
            metricSegment = String(decoding: metric, as: UTF8.self)
            self.dimension = dimension
        }
    }

    private static let conversionPrefix = Array("stage_conversion:".utf8)
    private static let conversionMetricLabel = Array(#"{"metric":"stage_conversion""#.utf8)
    private static let metricLabel = Array(#"{"metric":"#.utf8)
    private static let dimensionLabel = Array(#","dimension":"#.utf8)
    private static let keyLabel = Array(#","key":"#.utf8)
    private static let periodLabel = Array(#","period":"#.utf8)
    private static let pipelineLabel = Array(#","pipeline":"#.utf8)
    private static let fromLabel = Array(#","from":"#.utf8)
    private static let toLabel = Array(#","to":"#.utf8)

    /// `percentDecode` into `out` (emptied first); false for a malformed escape or invalid UTF-8.
    static func percentDecode(_ bytes: ArraySlice<UInt8>, into out: inout [UInt8]) -> Bool {
        out.removeAll(keepingCapacity: true)
        var ascii = true
        var i = bytes.startIndex
        while i < bytes.endIndex {
            var b = bytes[i]
            if b == UInt8(ascii: "%") {
                guard i + 2 < bytes.endIndex, let hi = hexValue(bytes[i + 1]), let lo = hexValue(bytes[i + 2]) else {
                    return false
                }
                b = hi << 4 | lo
                i += 3
            } else {
                i += 1
            }
            if b >= 0x80 { ascii = false }
            out.append(b)
        }
        return ascii || String(validating: out, as: UTF8.self) != nil
    }

    @inline(__always)
    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        default: nil
        }
    }

    /// A shape ready to render: each field's `,"name":` and its kind.
    ///
    /// The keys are one byte array (`keyBytes`, field `i`'s ending at `keyEnds[i]`), not
    /// an array per key: a round renders thousands of payloads, and appending from one
    /// buffer costs no reference counting per field.
    public struct PayloadFields: Sendable {
        public let keyBytes: [UInt8]
        public let keyEnds: [Int]
        public let kinds: [FieldKind]
        /// The number of fields (words) of the shape.
        public var count: Int { kinds.count }
        public init(_ shape: SeriesShape) {
            var bytes: [UInt8] = []
            var ends: [Int] = []
            for field in shape.fields {
                bytes.append(UInt8(ascii: ","))
                JSONWriter.appendString(field.name, to: &bytes)
                bytes.append(UInt8(ascii: ":"))
                ends.append(bytes.count)
            }
            keyBytes = bytes
            keyEnds = ends
            kinds = shape.fields.map(\.kind)
        }
    }

    /// Appends the fields of a payload: `,"name":value` for each field and its word
    /// (`FieldWord`), numbers written by `JSONWriter.number` as `payload` writes them.
    public static func appendFields(
        _ fields: borrowing PayloadFields,
        _ words: UnsafeBufferPointer<UInt64>,
        to out: inout [UInt8]
    ) {
        fields.keyBytes.withUnsafeBufferPointer { keys in
            fields.keyEnds.withUnsafeBufferPointer { ends in
                fields.kinds.withUnsafeBufferPointer { kinds in
                    var start = 0
                    for i in 0..<min(kinds.count, words.count) {
                        out.append(contentsOf: UnsafeBufferPointer(rebasing: keys[start..<ends[i]]))
                        start = ends[i]
                        switch kinds[i] {
                        case .count:
                            let n = Int64(bitPattern: words[i])
                            if n < 0 { out.append(UInt8(ascii: "-")) }
                            JSONWriter.appendDecimal(n.magnitude, to: &out)
                        case .number:
                            JSONWriter.appendNumber(Double(bitPattern: words[i]), to: &out)
                        }
                    }
                }
            }
        }
    }

    /// Appends `,"seq":…,"log_seq":…}`: what closes every published payload.
    public static func appendStamp(seq: UInt64, logSeq: UInt64, to out: inout [UInt8]) {
        append(",\"seq\":", to: &out)
        JSONWriter.appendDecimal(seq, to: &out)
        append(",\"log_seq\":", to: &out)
        JSONWriter.appendDecimal(logSeq, to: &out)
        out.append(UInt8(ascii: "}"))
    }

    /// Appends what follows the labels of a removed series: `,"value":null,"removed":true`
    /// and the stamp.
    public static func appendRemoval(seq: UInt64, logSeq: UInt64, to out: inout [UInt8]) {
        append(",\"value\":null,\"removed\":true", to: &out)
        appendStamp(seq: seq, logSeq: logSeq, to: &out)
    }

    /// Appends a literal's bytes (a `StaticString`: no array, no reference counting).
    @inline(__always)
    static func append(_ text: StaticString, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
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
