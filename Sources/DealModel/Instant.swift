/// An instant on the UTC time line, in nanoseconds since 1970-01-01T00:00:00Z.
///
/// `Int128` because the spec admits years 0001–9999, beyond what `Int64` nanoseconds
/// reach. Only the timestamps inside events are instants; wall-clock time never enters
/// a metric.
public struct Instant: Hashable, Comparable, Sendable {
    public var nanoseconds: Int128

    public init(nanoseconds: Int128) { self.nanoseconds = nanoseconds }

    public static func < (a: Instant, b: Instant) -> Bool { a.nanoseconds < b.nanoseconds }

    static let nanosecondsPerSecond: Int128 = 1_000_000_000
    static let secondsPerDay: Int64 = 86_400

    /// The UTC civil date of this instant.
    public var utcDate: (year: Int, month: Int, day: Int) {
        var seconds = nanoseconds / Instant.nanosecondsPerSecond
        if nanoseconds % Instant.nanosecondsPerSecond < 0 { seconds -= 1 }
        var days = Int64(seconds / Int128(Instant.secondsPerDay))
        if seconds % Int128(Instant.secondsPerDay) < 0 { days -= 1 }
        return CivilCalendar.civil(fromDays: days)
    }

    /// The month this instant falls in, as `year * 12 + (month - 1)`.
    public var monthIndex: Int32 {
        let d = utcDate
        return Int32(d.year * 12 + d.month - 1)
    }

    /// The first instant of the month `monthIndex` (`year * 12 + month - 1`).
    public static func startOfMonth(_ monthIndex: Int32) -> Instant {
        let year = Int(monthIndex.quotientFloor(12))
        let month = Int(monthIndex - Int32(year) * 12) + 1
        let days = CivilCalendar.days(fromYear: year, month: month, day: 1)
        return Instant(nanoseconds: Int128(days) * Int128(Instant.secondsPerDay) * Instant.nanosecondsPerSecond)
    }
}

extension Int32 {
    func quotientFloor(_ d: Int32) -> Int32 {
        let q = self / d
        return (self % d != 0 && (self < 0) != (d < 0)) ? q - 1 : q
    }
}

/// Proleptic Gregorian calendar arithmetic (Howard Hinnant's days-from-civil algorithms).
public enum CivilCalendar {
    /// Days since 1970-01-01 of the civil date.
    public static func days(fromYear year: Int, month: Int, day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let m = Int64(month)
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The civil date of a day count since 1970-01-01.
    public static func civil(fromDays z0: Int64) -> (year: Int, month: Int, day: Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (Int(m <= 2 ? y + 1 : y), Int(m), Int(d))
    }

    static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 1, 3, 5, 7, 8, 10, 12: return 31
        case 4, 6, 9, 11: return 30
        default: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        }
    }
}

/// Parsers for the two timestamp forms the spec uses, and the RFC 3339 formatter.
public enum Timestamp {
    /// The inverse of `parseRFC3339`, in UTC to the millisecond:
    /// `2026-11-02T09:00:00Z`, or `2026-11-02T09:00:00.123Z` when there are milliseconds.
    public static func formatRFC3339(_ instant: Instant) -> String {
        let d = instant.utcDate
        let perDay = Int128(Instant.secondsPerDay) * Instant.nanosecondsPerSecond
        var ofDay = instant.nanoseconds % perDay
        if ofDay < 0 { ofDay += perDay }
        let millis = Int(ofDay / 1_000_000 % 1000)
        let seconds = Int(ofDay / Instant.nanosecondsPerSecond)
        func pad(_ v: Int, _ n: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        var text =
            "\(pad(d.year, 4))-\(pad(d.month, 2))-\(pad(d.day, 2))T\(pad(seconds / 3600, 2)):\(pad(seconds % 3600 / 60, 2)):\(pad(seconds % 60, 2))"
        if millis != 0 { text += "." + pad(millis, 3) }
        return text + "Z"
    }

    /// Parses an RFC 3339 date-time (`2026-11-28T10:15:00Z`, `…T10:15:00.123+01:00`).
    ///
    /// `T`/`Z` may be lower case; second 60 counts as the next minute's first instant;
    /// digits beyond nanoseconds are truncated; an instant whose UTC date is outside the
    /// years 0001–9999 is refused.
    public static func parseRFC3339(_ text: String) -> Instant? {
        var text = text
        return text.withUTF8 { parseRFC3339(utf8: UnsafeRawBufferPointer($0)) }
    }

    /// `parseRFC3339` over UTF-8 bytes (the ingest fast path reads them in the frame).
    public static func parseRFC3339(utf8 b: UnsafeRawBufferPointer) -> Instant? {
        guard b.count >= 20 else { return nil }
        func digits(_ at: Int, _ n: Int) -> Int? {
            guard at + n <= b.count else { return nil }
            var v = 0
            for i in at..<at + n {
                let c = b[i]
                guard c >= 48 && c <= 57 else { return nil }
                v = v * 10 + Int(c - 48)
            }
            return v
        }
        guard let year = digits(0, 4), b[4] == UInt8(ascii: "-"), let month = digits(5, 2), b[7] == UInt8(ascii: "-"),
            let day = digits(8, 2), b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t"),
            let hour = digits(11, 2), b[13] == UInt8(ascii: ":"), let minute = digits(14, 2),
            b[16] == UInt8(ascii: ":"), let second = digits(17, 2)
        else { return nil }
        var i = 19
        var fraction: Int128 = 0
        if i < b.count && b[i] == UInt8(ascii: ".") {
            i += 1
            let start = i
            var scale: Int128 = 100_000_000
            while i < b.count && b[i] >= 48 && b[i] <= 57 {
                fraction += Int128(b[i] - 48) * scale
                scale /= 10
                i += 1
            }
            if i == start { return nil }
        }
        guard i < b.count else { return nil }
        var offsetSeconds = 0
        if b[i] == UInt8(ascii: "Z") || b[i] == UInt8(ascii: "z") {
            i += 1
        } else if b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
            let sign = b[i] == UInt8(ascii: "+") ? 1 : -1
            guard let oh = digits(i + 1, 2), i + 3 < b.count, b[i + 3] == UInt8(ascii: ":"), let om = digits(i + 4, 2),
                oh <= 23, om <= 59
            else { return nil }
            offsetSeconds = sign * (oh * 3600 + om * 60)
            i += 6
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        guard year >= 1, (1...12).contains(month), day >= 1, day <= CivilCalendar.daysInMonth(year: year, month: month),
            hour <= 23, minute <= 59, second <= 60
        else { return nil }
        let days = CivilCalendar.days(fromYear: year, month: month, day: day)
        let seconds = Int128(days) * 86_400 + Int128(hour * 3600 + minute * 60 + second) - Int128(offsetSeconds)
        let instant = Instant(nanoseconds: seconds * 1_000_000_000 + fraction)
        let utcYear = instant.utcDate.year
        guard utcYear >= 1 && utcYear <= 9999 else { return nil }
        return instant
    }

    /// Parses exactly `YYYY-MM-DD` as the first instant of that UTC day.
    public static func parseDate(_ text: String) -> Instant? {
        var text = text
        return text.withUTF8 { parseDate(utf8: UnsafeRawBufferPointer($0)) }
    }

    /// `parseDate` over UTF-8 bytes.
    public static func parseDate(utf8 b: UnsafeRawBufferPointer) -> Instant? {
        guard b.count == 10, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-") else { return nil }
        func digits(_ at: Int, _ n: Int) -> Int? {
            var v = 0
            for i in at..<at + n {
                guard b[i] >= 48 && b[i] <= 57 else { return nil }
                v = v * 10 + Int(b[i] - 48)
            }
            return v
        }
        guard let year = digits(0, 4), let month = digits(5, 2), let day = digits(8, 2), year >= 1,
            (1...12).contains(month), day >= 1, day <= CivilCalendar.daysInMonth(year: year, month: month)
        else { return nil }
        return Instant(
            nanoseconds: Int128(CivilCalendar.days(fromYear: year, month: month, day: day)) * 86_400 * 1_000_000_000
        )
    }
}

/// A reporting period: all time, a UTC calendar month or a UTC calendar quarter.
///
/// Encoded in one `Int32` so aggregates can be keyed cheaply: 0 is all time, odd values
/// are months, even positive values quarters.
public struct Period: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var raw: Int32

    public static let all = Period(raw: 0)
    public static func month(_ monthIndex: Int32) -> Period { Period(raw: 1 + monthIndex * 2) }
    public static func quarter(_ quarterIndex: Int32) -> Period { Period(raw: 2 + quarterIndex * 2) }
    public init(raw: Int32) { self.raw = raw }

    public static func < (a: Period, b: Period) -> Bool { a.raw < b.raw }

    public var isAll: Bool { raw == 0 }
    public var isMonth: Bool { raw > 0 && raw % 2 == 1 }

    /// The three periods an instant counts in: all, its month, its quarter.
    /// The `n`th (0, 1, 2) of the periods of a month: `all`, the month, its quarter
    /// (the hot paths loop over `0..<3` instead of allocating `periods(of:)`).
    @inline(__always)
    public static func nth(_ n: Int, month m: Int32) -> Period {
        switch n {
        case 0: .all
        case 1: .month(m)
        default: .quarter(m.quotientFloor(3))
        }
    }

    public static func periods(of instant: Instant) -> [Period] {
        (0..<3).map { nth($0, month: instant.monthIndex) }
    }

    /// `all`, `YYYY-MM` or `YYYY-Qn`.
    public var description: String {
        if raw == 0 { return "all" }
        if isMonth {
            let m = (raw - 1) / 2
            return pad4(Int(m / 12)) + "-" + (m % 12 + 1 < 10 ? "0" : "") + String(m % 12 + 1)
        }
        let q = (raw - 2) / 2
        return pad4(Int(q / 4)) + "-Q" + String(q % 4 + 1)
    }

    private func pad4(_ v: Int) -> String {
        let s = String(v)
        return String(repeating: "0", count: max(0, 4 - s.count)) + s
    }
}
