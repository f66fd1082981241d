import DealModel
import Foundation

/// One measured figure of `dealstream bench`: a table row, or one JSON object with --json.
struct Figure {
    var name: String
    var value: Double
    var unit: String
    var extra: [(String, Double)] = []

    var formatted: String {
        let more = extra.map { "  \($0.0) \(Figure.number($0.1))" }.joined()
        return "\(Figure.number(value)) \(unit)\(more)"
    }

    static func number(_ v: Double) -> String {
        if !v.isFinite { return "n/a" }
        if abs(v) >= 100 { return String(Int(v.rounded())) }
        if abs(v) >= 1 { return String(format: "%.2f", v) }
        return String(format: "%.3g", v)
    }

    var json: String {
        var out: [UInt8] = Array("{\"figure\":".utf8)
        JSONWriter.appendString(name, to: &out)
        out += Array(",\"value\":\(value.isFinite ? JSONWriter.number(value) : "null"),\"unit\":".utf8)
        JSONWriter.appendString(unit, to: &out)
        for (k, v) in extra {
            out.append(UInt8(ascii: ","))
            JSONWriter.appendString(k, to: &out)
            out += Array(":\(v.isFinite ? JSONWriter.number(v) : "null")".utf8)
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }
}
