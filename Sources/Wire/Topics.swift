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
            guard let parsed = topic.withUnsafeBufferPointer(SeriesTopic.parse) else { return nil }
            self = parsed
        }

        private init(metricSegment: String, dimension: Dimension, key: [UInt8], labels: [UInt8]) {
            self.metricSegment = metricSegment
            self.dimension = dimension
            self.key = key
            self.labels = labels
        }

        /// One pass over the topic's bytes: the three slashes, the dimension, then each
        /// segment percent-decoded once, straight into the labels.
        private static func parse(_ topic: UnsafeBufferPointer<UInt8>) -> SeriesTopic? {
            var slashes = (0, 0, 0)
            var n = 0
            for i in 0..<topic.count where topic[i] == UInt8(ascii: "/") {
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
            func segment(_ range: Range<Int>) -> UnsafeBufferPointer<UInt8> {
                UnsafeBufferPointer(rebasing: topic[range])
            }
            let metric = segment(0..<slashes.0)
            let dimensionBytes = segment((slashes.0 + 1)..<slashes.1)
            let keyBytes = segment((slashes.1 + 1)..<slashes.2)
            let period = segment((slashes.2 + 1)..<topic.count)
            guard
                let dimension = Dimension.allCases.first(where: {
                    $0.name.utf8.count == dimensionBytes.count && $0.name.utf8.elementsEqual(dimensionBytes)
                })
            else { return nil }
            var key: [UInt8] = []
            key.reserveCapacity(keyBytes.count)
            guard Topics.percentDecode(keyBytes, into: &key) else { return nil }
            var out: [UInt8] = []
            out.reserveCapacity(topic.count + 96)
            var scratch: [UInt8] = []
            scratch.reserveCapacity(topic.count)
            func label(_ name: StaticString, _ segment: UnsafeBufferPointer<UInt8>) -> Bool {
                append(name, to: &out)
                guard Topics.percentDecode(segment, into: &scratch) else { return false }
                JSONWriter.appendString(utf8: scratch, to: &out)
                return true
            }
            func keyLabel() {
                append(#","key":"#, to: &out)
                JSONWriter.appendString(utf8: key, to: &out)
            }
            let conversion: StaticString = "stage_conversion:"
            if metric.starts(
                with: UnsafeBufferPointer(start: conversion.utf8Start, count: conversion.utf8CodeUnitCount)
            ) {
                var colons: [Int] = []
                for i in conversion.utf8CodeUnitCount..<metric.count where metric[i] == UInt8(ascii: ":") {
                    colons.append(i)
                }
                guard colons.count == 2 else { return nil }
                append(#"{"metric":"stage_conversion""#, to: &out)
                guard label(#","dimension":"#, dimensionBytes) else { return nil }
                keyLabel()
                guard label(#","period":"#, period),
                    label(
                        #","pipeline":"#,
                        UnsafeBufferPointer(rebasing: metric[conversion.utf8CodeUnitCount..<colons[0]])
                    ),
                    label(#","from":"#, UnsafeBufferPointer(rebasing: metric[(colons[0] + 1)..<colons[1]])),
                    label(#","to":"#, UnsafeBufferPointer(rebasing: metric[(colons[1] + 1)...]))
                else { return nil }
            } else {
                guard label(#"{"metric":"#, metric), label(#","dimension":"#, dimensionBytes) else { return nil }
                keyLabel()
                guard label(#","period":"#, period) else { return nil }
            }
            return SeriesTopic(
                metricSegment: String(decoding: metric, as: UTF8.self),
                dimension: dimension,
                key: key,
                labels: out
            )
        }
    }

    /// `percentDecode` into `out` (emptied first); false for a malformed escape or invalid
    /// UTF-8. Runs without an escape are copied whole.
    static func percentDecode(_ bytes: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) -> Bool {
        out.removeAll(keepingCapacity: true)
        var ascii = true
        var i = 0
        var run = 0
        while i < bytes.count {
            let b = bytes[i]
            guard b == UInt8(ascii: "%") else {
                if b >= 0x80 { ascii = false }
                i += 1
                continue
            }
            guard i + 2 < bytes.count, let hi = hexValue(bytes[i + 1]), let lo = hexValue(bytes[i + 2]) else {
                return false
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run..<i]))
            let decoded = hi << 4 | lo
            if decoded >= 0x80 { ascii = false }
            out.append(decoded)
            i += 3
            run = i
        }
        out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run..<bytes.count]))
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

    /// Appends what follows the labels of a live series' payload: its fields (`appendFields`)
    /// and the stamp. One writer for an update and for the same series in a snapshot.
    public static func appendValues(
        _ fields: borrowing PayloadFields,
        _ words: UnsafeBufferPointer<UInt64>,
        seq: UInt64,
        logSeq: UInt64,
        to out: inout [UInt8]
    ) {
        appendFields(fields, words, to: &out)
        appendStamp(seq: seq, logSeq: logSeq, to: &out)
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
