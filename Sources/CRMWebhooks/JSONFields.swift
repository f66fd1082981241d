import DealModel

/// Reading vendor JSON with errors that name the field.
///
/// Why: every translator reads ids that may be numbers or strings, timestamps in several
/// forms and optional objects; one set of helpers keeps the error texts uniform.
enum JSONFields {
    static func parse(_ body: [UInt8]) throws(PayloadError) -> JSONValue {
        do { return try JSONParser.parse(body) } catch {
            throw PayloadError(field: "body", reason: "not JSON: \(error)")
        }
    }

    /// An id that vendors send as a number or a string.
    static func id(_ value: JSONValue?, _ field: String) throws(PayloadError) -> String {
        switch value {
        case .int(let i)?: return String(i)
        case .bigInt(let digits, _)?: return digits
        case .string(let s)? where !s.isEmpty: return s
        case nil: throw PayloadError(field: field, reason: "missing")
        case let v?: throw PayloadError(field: field, reason: "expected an id (number or string), got \(v.typeName)")
        }
    }

    /// An optional scalar as text: strings as they are, numbers as JSON writes them,
    /// `null` as nil; objects with an `id` or `value` member (Pipedrive's expanded
    /// references) as that member.
    static func text(_ value: JSONValue?, _ field: String) throws(PayloadError) -> String?? {
        switch value {
        case nil: return .none
        case .null?: return .some(nil)
        case .string(let s)?: return .some(s)
        case .int(let i)?: return .some(String(i))
        case .bigInt(let d, _)?: return .some(d)
        case .double(let d)?: return .some("\(d)")
        case .bool(let b)?: return .some(b ? "true" : "false")
        case .object?:
            if let inner = value?["value"] ?? value?["id"] { return try text(inner, field) }
            throw PayloadError(field: field, reason: "expected a value, got an object without id or value")
        case .array?: throw PayloadError(field: field, reason: "expected a value, got an array")
        }
    }

    /// A non-negative integer (a version, a timestamp).
    static func unsigned(_ value: JSONValue?, _ field: String) throws(PayloadError) -> UInt64 {
        switch value {
        case .int(let i)? where i >= 0: return UInt64(i)
        case .string(let s)?:
            if let v = UInt64(s) { return v }
            throw PayloadError(field: field, reason: "expected a non-negative integer, got \"\(s)\"")
        case nil: throw PayloadError(field: field, reason: "missing")
        case let v?: throw PayloadError(field: field, reason: "expected a non-negative integer, got \(v.typeName)")
        }
    }

    /// A vendor version: a non-negative integer small enough that `DealAssembler` can make
    /// an event version of it (`v × 1000 + 999` fits an `Int64`).
    static func version(_ value: JSONValue?, _ field: String) throws(PayloadError) -> UInt64 {
        let v = try unsigned(value, field)
        guard v <= DealAssembler.maximumVendorVersion else {
            throw PayloadError(field: field, reason: "\(v) is above \(DealAssembler.maximumVendorVersion)")
        }
        return v
    }

    /// A timestamp in any vendor form, as RFC 3339 (nil for null or empty).
    static func time(_ value: JSONValue?, _ field: String) throws(PayloadError) -> String?? {
        switch value {
        case nil: return .none
        case .null?: return .some(nil)
        case .string(let s)? where s.isEmpty: return .some(nil)
        case let v?:
            guard let t = VendorTime.normalise(v) else {
                throw PayloadError(field: field, reason: "not a timestamp: \(v.typeName)")
            }
            return .some(t)
        }
    }

    /// A number as text (amounts arrive as numbers or numeric strings).
    static func amount(_ value: JSONValue?, _ field: String) throws(PayloadError) -> String?? {
        switch value {
        case nil: return .none
        case .null?: return .some(nil)
        case .string(let s)? where s.isEmpty: return .some(nil)
        case .string(let s)?:
            guard let d = Double(s), d.isFinite else {
                throw PayloadError(field: field, reason: "expected a number, got \"\(s)\"")
            }
            return .some(JSONWriter.number(d))
        case let v?:
            guard let d = v.numberValue else {
                throw PayloadError(field: field, reason: "expected a number, got \(v.typeName)")
            }
            return .some(JSONWriter.number(d))
        }
    }
}
