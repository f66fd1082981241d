public import DealModel

extension ProtobufEvent {
    /// The ingest fast path for protobuf: one pass over the wire format into `EventFields`
    /// (strings as slices of the frame, enums as their JSON strings, exactly the fields
    /// `jsonValue(of:)` would give), then `EventDecoder.decode(fields:)`. No message object
    /// and no `JSONValue` are built.
    ///
    /// It accepts only what it reads exactly as SwiftProtobuf does: each field of the
    /// schema at most once, with its own wire type. On anything else — an unknown field, a
    /// field repeated (which SwiftProtobuf merges or overwrites), a wrong wire type, an
    /// enum value outside the schema (or 0), invalid UTF-8, a truncated message, a broken
    /// rule — it returns nil and `decode` runs SwiftProtobuf and the `JSONValue` path.
    public static func decodeDirect(_ frame: [UInt8], with decoder: EventDecoder) -> Event? {
        frame.withUnsafeBytes { raw -> Event? in
            var reader = ProtobufEventReader(bytes: raw)
            var fields = EventFields()
            guard reader.readEvent(into: &fields) else { return nil }
            return decoder.decode(fields: fields)
        }
    }
}

/// The wire-format reader behind `ProtobufEvent.decodeDirect`, for
/// `proto/dealstream/v1/event.proto`.
struct ProtobufEventReader {
    private let bytes: UnsafeRawBufferPointer
    private var i = 0
    private var end: Int

    init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        self.end = bytes.count
    }

    private typealias Value = EventFields.Value

    /// A varint as SwiftProtobuf reads one: at most ten bytes, bits past 64 dropped.
    @inline(__always)
    private mutating func varint() -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while i < end {
            let c = bytes[i]
            i += 1
            value |= UInt64(c & 0x7F) &<< shift
            if c & 0x80 == 0 { return value }
            shift += 7
            if shift > 63 { return nil }
        }
        return nil
    }

    /// The next field's number and wire type; nil at the end of the message or when the
    /// tag is not one SwiftProtobuf accepts (field 0, a tag of 2^32 − 1 or more).
    @inline(__always)
    private mutating func tag() -> (field: UInt64, wire: UInt64)? {
        guard let t = varint(), t < UInt64(UInt32.max), t >> 3 != 0 else { return nil }
        return (t >> 3, t & 7)
    }

    /// A length-delimited body's range.
    @inline(__always)
    private mutating func delimited() -> Range<Int>? {
        guard let length = varint(), length < 0x7FFF_FFFF, Int(length) <= end - i else { return nil }
        let start = i
        i += Int(length)
        return start..<i
    }

    @inline(__always)
    private mutating func string() -> Value? {
        guard let r = delimited() else { return nil }
        return .string(validating: UnsafeRawBufferPointer(rebasing: bytes[r]))
    }

    @inline(__always)
    private mutating func double() -> Value? {
        guard end - i >= 8 else { return nil }
        let bits = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))
        i += 8
        return .double(Double(bitPattern: bits))
    }

    /// An enum field: the JSON string of values 1…`names.count`; nil for 0 (unset) and any
    /// value outside the schema, which `jsonValue(of:)` leaves out.
    @inline(__always)
    private mutating func enumeration(_ names: [StaticString]) -> Value? {
        guard let raw = varint() else { return nil }
        let n = Int32(truncatingIfNeeded: raw)
        guard n >= 1 && Int(n) <= names.count else { return nil }
        let name = names[Int(n) - 1]
        return .string(UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount), isASCII: true)
    }

    private static let kinds: [StaticString] = ["deal", "deal_deleted", "spend", "account"]
    private static let dealStatuses: [StaticString] = ["open", "won", "lost"]
    private static let accountStatuses: [StaticString] = ["active", "churned"]

    /// Reads the submessage whose body is `r` with `read`, then goes on after it.
    @inline(__always)
    private mutating func submessage(_ r: Range<Int>, _ read: (inout ProtobufEventReader) -> Bool) -> Bool {
        let outerEnd = end
        i = r.lowerBound
        end = r.upperBound
        defer {
            i = r.upperBound
            end = outerEnd
        }
        return read(&self)
    }

    mutating func readEvent(into f: inout EventFields) -> Bool {
        var seen: UInt32 = 0
        while i < end {
            guard let (field, wire) = tag(), field <= 8, seen & (1 << field) == 0 else { return false }
            seen |= 1 << field
            switch (field, wire) {
            case (1, 0):
                guard let v = enumeration(Self.kinds) else { return false }
                f.kind = v
            case (2, 2):
                guard let v = string() else { return false }
                f.source = v
            case (3, 2):
                guard let v = string() else { return false }
                f.id = v
            case (4, 0):
                guard let v = varint() else { return false }
                f.version = .int(Int64(bitPattern: v))
            case (5, 2):
                guard let v = string() else { return false }
                f.occurredAt = v
            case (6, 2):
                guard let r = delimited(), submessage(r, { $0.readDeal(into: &f.dealFields) }) else { return false }
                f.deal = .object
            case (7, 2):
                guard let r = delimited(), submessage(r, { $0.readSpend(into: &f.spendFields) }) else { return false }
                f.spend = .object
            case (8, 2):
                guard let r = delimited(), submessage(r, { $0.readAccount(into: &f.accountFields) }) else {
                    return false
                }
                f.account = .object
            default:
                return false
            }
        }
        return true
    }

    private mutating func readDeal(into d: inout EventFields.Deal) -> Bool {
        var seen: UInt32 = 0
        while i < end {
            guard let (field, wire) = tag(), field <= 11, seen & (1 << field) == 0 else { return false }
            seen |= 1 << field
            let value: Value?
            switch (field, wire) {
            case (3, 0): value = enumeration(Self.dealStatuses)
            case (4, 1): value = double()
            case (1...11, 2) where field != 3 && field != 4: value = string()
            default: return false
            }
            guard let value else { return false }
            d.set(Int(field) - 1, value)  // fields 1…11 are the deal's keys in order
        }
        return true
    }

    private mutating func readSpend(into s: inout EventFields.Spend) -> Bool {
        var seen: UInt32 = 0
        while i < end {
            guard let (field, wire) = tag(), field <= 4, seen & (1 << field) == 0 else { return false }
            seen |= 1 << field
            let value: Value?
            switch (field, wire) {
            case (2, 1): value = double()
            case (1, 2), (3, 2), (4, 2): value = string()
            default: return false
            }
            guard let value else { return false }
            s.set(Int(field) - 1, value)  // fields 1…4 are the spend's keys in order
        }
        return true
    }

    private mutating func readAccount(into a: inout EventFields.Account) -> Bool {
        var seen: UInt32 = 0
        while i < end {
            guard let (field, wire) = tag(), field <= 2, seen & (1 << field) == 0 else { return false }
            seen |= 1 << field
            switch (field, wire) {
            case (1, 0):
                guard let v = enumeration(Self.accountStatuses) else { return false }
                a.status = v
            case (2, 2):
                guard let v = string() else { return false }
                a.changedAt = v
            default:
                return false
            }
        }
        return true
    }
}
