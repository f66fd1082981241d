import Testing

@testable import DealModel

struct TimestampTests {
    private func ns(_ s: String) -> Int128? { Timestamp.parseRFC3339(s)?.nanoseconds }

    @Test func parsesOffsetsAndFractions() {
        #expect(ns("1970-01-01T00:00:00Z") == 0)
        #expect(ns("1970-01-01T01:00:00+01:00") == 0)
        #expect(ns("1969-12-31T19:00:00-05:00") == 0)
        #expect(ns("1970-01-01T00:00:00.5Z") == 500_000_000)
        #expect(ns("1970-01-01T00:00:00.123456789123Z") == 123_456_789)
        #expect(ns("1970-01-01t00:00:01z") == 1_000_000_000)
        #expect(ns("2026-11-28T10:15:00Z") == 1_795_860_900_000_000_000)
    }

    @Test func secondSixtyIsTheNextMinute() {
        #expect(ns("2016-12-31T23:59:60Z") == ns("2017-01-01T00:00:00Z"))
    }

    @Test(arguments: [
        "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-06-02T09:00:00", "02/06/2026 09:00", "yesterday",
        "2026-06-02 09:00:00Z", "2026-06-02T24:00:00Z", "2026-06-02T09:00:00+24:00", "2026-06-02T09:00:00.Z",
        "0001-01-01T00:00:00+01:00", "2026-6-2T09:00:00Z",
    ])
    func rejects(_ text: String) {
        #expect(Timestamp.parseRFC3339(text) == nil)
    }

    @Test func datesAreExactlyYearMonthDay() {
        #expect(Timestamp.parseDate("2026-06-30")?.nanoseconds == ns("2026-06-30T00:00:00Z"))
        #expect(Timestamp.parseDate("2024-02-29") != nil)
        for bad in ["2026-02-30", "2026-6-30", "2026-06-30T00:00:00Z", "20260630", ""] {
            #expect(Timestamp.parseDate(bad) == nil, "\(bad)")
        }
    }

    @Test func periodsAreUTCCalendarBuckets() throws {
        // 2026-03-31T23:30-02:00 is April in UTC.
        let t = try #require(Timestamp.parseRFC3339("2026-03-31T23:30:00-02:00"))
        #expect(Period.periods(of: t).map(\.description) == ["all", "2026-04", "2026-Q2"])
        let d = try #require(Timestamp.parseRFC3339("2026-01-01T08:30:00+09:00"))
        #expect(Period.periods(of: d).map(\.description) == ["all", "2025-12", "2025-Q4"])
        #expect(
            Instant.startOfMonth(try #require(Timestamp.parseRFC3339("2026-10-01T00:00:00Z")).monthIndex)
                == Timestamp.parseRFC3339("2026-10-01T00:00:00Z")
        )
    }

    @Test func civilCalendarRoundTrips() {
        for days in stride(from: Int64(-719_162), through: 2_932_896, by: 997) {
            let c = CivilCalendar.civil(fromDays: days)
            #expect(CivilCalendar.days(fromYear: c.year, month: c.month, day: c.day) == days)
        }
    }

    @Test func formattingIsTheInverseOfParsingToTheMillisecond() throws {
        for text in [
            "2026-11-02T09:00:00Z", "2026-11-02T09:00:00.123Z", "1969-12-31T23:59:59.999Z", "0001-01-01T00:00:00Z",
        ] {
            #expect(Timestamp.formatRFC3339(try #require(Timestamp.parseRFC3339(text))) == text)
        }
        #expect(
            Timestamp.formatRFC3339(try #require(Timestamp.parseRFC3339("2026-11-02T10:00:00.5+01:00")))
                == "2026-11-02T09:00:00.500Z"
        )
    }
}
