public import DealModel
public import PipelineMetrics

extension WorkerLink {
    /// The records of a `RESULT` body (docs/workers.md): each starts with one of these bytes.
    public enum ResultRecord: UInt8, Sendable {
        /// u16 shape id, u8 n, n × (u8 kind, string name): a field list, once per session.
        case shape = 1
        /// u32 series number, u16 shape id, bytes topic: a series, the first time the session reports it.
        case series = 2
        /// u32 series number, one u64 word per field of its shape: new values.
        case values = 3
        /// u32 series number: the series no longer exists.
        case removed = 4
    }

    /// Writes a `RESULT` body: the worker's side of `ResultSchema`.
    ///
    /// Exists so that a result is one frame of compact values rather than a JSON payload
    /// (and two frames) per series: the daemon renders the JSON once, into what it publishes.
    /// Whoever writes keeps the session's numbering (series numbers dense from 0, in the
    /// order they are first reported, and each shape defined before its first use).
    public struct ResultWriter {
        public private(set) var bytes: [UInt8] = []

        public init(capacity: Int = 1024) { bytes.reserveCapacity(capacity) }

        public mutating func shape(_ id: UInt16, _ shape: SeriesShape) {
            var w = BinaryWriter(capacity: 8 + shape.fields.count * 16)
            w.u8(ResultRecord.shape.rawValue)
            w.u16(id)
            w.u8(UInt8(shape.fields.count))
            for field in shape.fields {
                w.u8(field.kind.rawValue)
                w.string(field.name)
            }
            bytes.append(contentsOf: w.bytes)
        }

        public mutating func series(_ number: UInt32, shape: UInt16, topic: [UInt8]) {
            bytes.append(ResultRecord.series.rawValue)
            append(number)
            append(shape)
            append(UInt32(topic.count))
            bytes.append(contentsOf: topic)
        }

        public mutating func values(_ number: UInt32, _ words: ArraySlice<UInt64>) {
            bytes.append(ResultRecord.values.rawValue)
            append(number)
            for word in words { append(word) }
        }

        public mutating func removed(_ number: UInt32) {
            bytes.append(ResultRecord.removed.rawValue)
            append(number)
        }

        @inline(__always)
        private mutating func append<T: FixedWidthInteger>(_ v: T) {
            withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
        }
    }

    /// A `RESULT` body read against its session's `ResultSchema`: the shapes and series it
    /// defines (new to the session), then its entries in order, each a series number with
    /// the offset of its words in `words`, or `removed`.
    public struct DecodedResult: Sendable {
        public var shapes: [(id: UInt16, shape: SeriesShape)] = []
        public var series: [(number: UInt32, shape: UInt16, topic: [UInt8])] = []
        public var entries: [(number: UInt32, offset: Int32)] = []
        public var words: [UInt64] = []
        /// The offset of a removal in `entries`.
        public static let removed: Int32 = -1
        public init() {}
    }

    /// What one worker session has defined so far in its results: its shapes and, per
    /// series number, the shape. The daemon keeps one per session and reads every body
    /// against it; a body that does not fit it (an unknown record, a number out of step, a
    /// shape not defined or defined twice, a field name that is not allowed, short or
    /// trailing bytes) is refused whole.
    public struct ResultSchema: Sendable {
        /// Shape ids are below this.
        public static let maximumShapes = 1024
        /// Fields of one shape, at most.
        public static let maximumFields = 32
        /// Topic bytes of one series, at most.
        public static let maximumTopicBytes = 1024
        /// Names a field may not have: the labels, `seq`, `log_seq` and `removed` of a payload.
        public static let reservedNames: Set<String> = [
            "metric", "dimension", "key", "period", "pipeline", "from", "to", "seq", "log_seq", "removed",
        ]

        public private(set) var shapes: [SeriesShape?] = []
        /// The shape id of each series number.
        public private(set) var seriesShapes: [UInt16] = []

        public init() {}

        /// The number of series the session has defined.
        public var seriesCount: Int { seriesShapes.count }

        public func shape(of number: UInt32) -> SeriesShape { shapes[Int(seriesShapes[Int(number)])]! }

        /// Reads `body` against this schema, which it does not change (see `adopt`).
        public func decode(_ body: [UInt8]) throws(BinaryDecodingError) -> DecodedResult {
            var out = DecodedResult()
            var fieldCounts: [Int] = []
            var newShapes: [Int: Int] = [:]
            func fields(ofShape id: Int) -> Int? {
                if id < shapes.count, let s = shapes[id] { return s.fields.count }
                return newShapes[id]
            }
            var r = Cursor(body)
            while !r.isAtEnd {
                let tag = try r.u8("record")
                switch ResultRecord(rawValue: tag) {
                case .shape:
                    let id = Int(try r.u16("shape id"))
                    guard id < ResultSchema.maximumShapes else { throw BinaryDecodingError("shape id \(id)") }
                    guard fields(ofShape: id) == nil else { throw BinaryDecodingError("shape \(id) defined twice") }
                    let n = Int(try r.u8("field count"))
                    guard n >= 1, n <= ResultSchema.maximumFields else {
                        throw BinaryDecodingError("shape \(id): \(n) fields")
                    }
                    var list: [SeriesShape.Field] = []
                    var names = Set<String>()
                    for _ in 0..<n {
                        guard let kind = FieldKind(rawValue: try r.u8("field kind")) else {
                            throw BinaryDecodingError("shape \(id): unknown field kind")
                        }
                        let name = try r.string("field name")
                        guard !name.isEmpty, name.utf8.count <= 64, !ResultSchema.reservedNames.contains(name),
                            names.insert(name).inserted
                        else { throw BinaryDecodingError("shape \(id): field name \"\(name.prefix(64))\" not allowed") }
                        list.append(.init(name, kind))
                    }
                    newShapes[id] = n
                    out.shapes.append((UInt16(id), SeriesShape(list)))
                case .series:
                    let number = try r.u32("series number")
                    let expected = seriesShapes.count + out.series.count
                    guard number == expected else {
                        throw BinaryDecodingError("series number \(number) out of step (next is \(expected))")
                    }
                    let shape = try r.u16("shape id")
                    guard let n = fields(ofShape: Int(shape)) else {
                        throw BinaryDecodingError("series \(number): shape \(shape) not defined")
                    }
                    let length = Int(try r.u32("topic length"))
                    guard length >= 1, length <= ResultSchema.maximumTopicBytes else {
                        throw BinaryDecodingError("series \(number): topic of \(length) bytes")
                    }
                    out.series.append((number, shape, try r.bytes(length, "topic")))
                    fieldCounts.append(n)
                case .values:
                    let number = try r.u32("series number")
                    let n: Int
                    if Int(number) < seriesShapes.count {
                        n = shapes[Int(seriesShapes[Int(number)])]!.fields.count
                    } else if Int(number) - seriesShapes.count < fieldCounts.count {
                        n = fieldCounts[Int(number) - seriesShapes.count]
                    } else {
                        throw BinaryDecodingError("values of series \(number), which is not defined")
                    }
                    out.entries.append((number, Int32(out.words.count)))
                    try r.words(n, into: &out.words)
                case .removed:
                    let number = try r.u32("series number")
                    guard Int(number) < seriesShapes.count + fieldCounts.count else {
                        throw BinaryDecodingError("removal of series \(number), which is not defined")
                    }
                    out.entries.append((number, DecodedResult.removed))
                case nil:
                    throw BinaryDecodingError("unknown record \(tag) at byte \(r.offset - 1)")
                }
            }
            return out
        }

        /// Takes the shapes and series `decoded` (from `decode`) defines.
        public mutating func adopt(_ decoded: DecodedResult) {
            for (id, shape) in decoded.shapes {
                if Int(id) >= shapes.count {
                    shapes.append(contentsOf: repeatElement(nil, count: Int(id) - shapes.count + 1))
                }
                shapes[Int(id)] = shape
            }
            for s in decoded.series { seriesShapes.append(s.shape) }
        }
    }

    /// Little-endian reads over a body, failing (never trapping) on short input.
    struct Cursor {
        let bytes: [UInt8]
        private(set) var offset = 0
        init(_ bytes: [UInt8]) { self.bytes = bytes }
        var isAtEnd: Bool { offset == bytes.count }

        private mutating func take(_ n: Int, _ what: String) throws(BinaryDecodingError) -> Int {
            guard bytes.count - offset >= n else { throw BinaryDecodingError("truncated RESULT body reading \(what)") }
            defer { offset += n }
            return offset
        }
        private func load<T: FixedWidthInteger>(_ at: Int, as: T.Type) -> T {
            bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: T.self)) }
        }
        mutating func u8(_ what: String) throws(BinaryDecodingError) -> UInt8 { bytes[try take(1, what)] }
        mutating func u16(_ what: String) throws(BinaryDecodingError) -> UInt16 {
            load(try take(2, what), as: UInt16.self)
        }
        mutating func u32(_ what: String) throws(BinaryDecodingError) -> UInt32 {
            load(try take(4, what), as: UInt32.self)
        }
        mutating func bytes(_ n: Int, _ what: String) throws(BinaryDecodingError) -> [UInt8] {
            let o = try take(n, what)
            return Array(bytes[o..<(o + n)])
        }
        mutating func string(_ what: String) throws(BinaryDecodingError) -> String {
            let n = Int(try u32(what))
            let o = try take(n, what)
            guard let s = String(validating: bytes[o..<(o + n)], as: UTF8.self) else {
                throw BinaryDecodingError("\(what) is not UTF-8")
            }
            return s
        }
        mutating func words(_ n: Int, into out: inout [UInt64]) throws(BinaryDecodingError) {
            let o = try take(n * 8, "values")
            bytes.withUnsafeBytes { raw in
                for i in 0..<n {
                    out.append(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: o + i * 8, as: UInt64.self)))
                }
            }
        }
    }
}
