import DealModel

/// Customer retention rate (METRICS.md metric 10), kept incrementally per account.
///
/// Each account contributes a range of month boundaries at which it is a customer
/// (after its first won close, up to its churn): a +1/−1 pair in a difference array.
/// S and E of any month or quarter are prefix sums of that array at the period's
/// boundaries, N is counted per period of `customer_since`. A change to one deal or
/// account retracts that account's old contribution and adds its new one.
struct RetentionEngine: Sendable {
    struct AccountKey: Hashable, Sendable {
        var source: UInt32
        var account: UInt32
    }

    struct AccountState: Sendable {
        /// closed_at of the account's current won deals (a multiset).
        var wonClosings: [Instant] = []
        var churnedAt: Instant?
        var customerSince: Instant? { wonClosings.min() }
    }

    /// What one account adds to the aggregates; equal contributions retract exactly.
    struct Contribution: Equatable {
        var sinceMonth: Int32
        var churnMonth: Int32?
        var extentMonth: Int32
    }

    let allKey: UInt32
    private var accounts: [AccountKey: AccountState] = [:]
    private var difference: [Int32: Int] = [:]
    private var newByMonth: [Int32: Int] = [:]
    private var newByQuarter: [Int32: Int] = [:]
    private var sinceMonths: [Int32: Int] = [:]
    private var extentMonths: [Int32: Int] = [:]
    private(set) var isDirty = false

    init(allKey: UInt32) { self.allKey = allKey }

    mutating func apply(_ change: FactChange) {
        switch change {
        case .deal(let old, let new):
            if let old, old.status == .won, old.account != DealFacts.noAccount {
                update(AccountKey(source: old.source, account: old.account)) { s in
                    if let i = s.wonClosings.firstIndex(of: old.closedAt!) { s.wonClosings.remove(at: i) }
                }
            }
            if let new, new.status == .won, new.account != DealFacts.noAccount {
                update(AccountKey(source: new.source, account: new.account)) { $0.wonClosings.append(new.closedAt!) }
            }
        case .account(let old, let new):
            if let facts = new ?? old {
                update(AccountKey(source: facts.source, account: facts.account)) { $0.churnedAt = new?.churnedAt }
            }
        case .spend:
            return
        }
    }

    private func contribution(_ s: AccountState?) -> Contribution? {
        guard let s, let since = s.customerSince else { return nil }
        let sinceMonth = since.monthIndex
        let churnMonth = s.churnedAt?.monthIndex
        return Contribution(
            sinceMonth: sinceMonth,
            churnMonth: churnMonth,
            extentMonth: max(sinceMonth, churnMonth ?? sinceMonth)
        )
    }

    private mutating func update(_ key: AccountKey, _ body: (inout AccountState) -> Void) {
        var state = accounts[key] ?? AccountState()
        let before = contribution(accounts[key])
        body(&state)
        let after = contribution(state)
        if state.wonClosings.isEmpty && state.churnedAt == nil { accounts[key] = nil } else { accounts[key] = state }
        guard before != after else { return }
        if let before { add(before, -1) }
        if let after { add(after, 1) }
        isDirty = true
    }

    private mutating func add(_ c: Contribution, _ sign: Int) {
        func bump(_ table: inout [Int32: Int], _ k: Int32, _ by: Int) {
            let v = (table[k] ?? 0) + by
            table[k] = v == 0 ? nil : v
        }
        // A customer at boundary k (first instant of month k) iff sinceMonth < k ≤ churnMonth.
        let first = c.sinceMonth + 1
        if let churn = c.churnMonth {
            if churn >= first {
                bump(&difference, first, sign)
                bump(&difference, churn + 1, -sign)
            }
        } else {
            bump(&difference, first, sign)
        }
        if c.churnMonth == nil || c.churnMonth! >= c.sinceMonth + 1 { bump(&newByMonth, c.sinceMonth, sign) }
        let quarter = c.sinceMonth.quotientFloor3
        if c.churnMonth == nil || c.churnMonth! >= quarter * 3 + 3 { bump(&newByQuarter, quarter, sign) }
        bump(&sinceMonths, c.sinceMonth, sign)
        bump(&extentMonths, c.extentMonth, sign)
    }

    /// Every series of the current range: its period and its values (`FieldWord`s of
    /// `MetricName.customerRetentionRate.shape`: value, start, end, new).
    mutating func render() -> [(Period, [UInt64])] {
        isDirty = false
        guard let first = sinceMonths.keys.min(), let last = extentMonths.keys.max() else { return [] }
        let steps = difference.sorted { $0.key < $1.key }
        var out: [(Period, [UInt64])] = []
        func emit(_ period: Period, start: Int, end: Int, new: Int) {
            let value: Double? = start == 0 ? nil : Double(end - new) / Double(start)
            out.append(
                (
                    period,
                    [FieldWord.number(value), FieldWord.count(start), FieldWord.count(end), FieldWord.count(new)]
                )
            )
        }
        var boundary: [Int32: Int] = [:]
        let firstQuarter = first.quotientFloor3
        let lastQuarter = last.quotientFloor3
        // Prefix sums once over every boundary needed.
        var running = 0
        var stepIndex = 0
        for k in (firstQuarter * 3)...(lastQuarter * 3 + 3) {
            while stepIndex < steps.count && steps[stepIndex].key <= k {
                running += steps[stepIndex].value
                stepIndex += 1
            }
            boundary[k] = running
        }
        for m in first...last {
            emit(.month(m), start: boundary[m]!, end: boundary[m + 1]!, new: newByMonth[m] ?? 0)
        }
        for q in firstQuarter...lastQuarter {
            emit(.quarter(q), start: boundary[q * 3]!, end: boundary[q * 3 + 3]!, new: newByQuarter[q] ?? 0)
        }
        return out
    }
}

extension Int32 {
    var quotientFloor3: Int32 {
        let q = self / 3
        return (self % 3 != 0 && self < 0) ? q - 1 : q
    }
}
