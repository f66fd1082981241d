#!/usr/bin/env python3
"""The cluster tests' own checks can fail: common.RoundChecker fed hand-made update streams
(each breaking one rule) must report exactly that rule, and a clean stream nothing; the
Python StableHash must give the values the Swift one gives (computed with
Sources/DealModel/StableHash.swift); the monotone stream must never make the reference remove a
series or lower a count. No daemon, no root.

    python3 Tests/Cluster/test_checker.py      # "cluster-checker: N passed, M failed"
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Report, RoundChecker, ref  # noqa: E402

T = "new_opportunities/all/%2A/all"
U = "revenue/team/North/2026-01"


def p(topic, seq, log_seq, **fields):
    metric, dim, key, period = ref.split_topic(topic)
    return topic, dict({"metric": metric, "dimension": dim, "key": key, "period": period, "seq": seq,
                        "log_seq": log_seq}, **fields)


def progress(seq, log_seq):
    return ref.PROGRESS_TOPIC, {"seq": seq, "log_seq": log_seq}


def run(messages, start_state=None, start=(0, 0)):
    c = RoundChecker(start_state or {}, {"seq": start[0], "log_seq": start[1]})
    for i, (topic, payload) in enumerate(messages):
        c.apply(float(i), topic, payload)
    return c


CASES = {
    "clean": ([p(T, 1, 10, value=1), p(U, 2, 10, value=5.0, count=1), progress(2, 10),
               p(T, 3, 12, value=2), progress(3, 12), p(T, 4, 15, value=3), progress(4, 15)], None),
    "seq gap": ([p(T, 1, 10, value=1), p(T, 3, 12, value=2)], None),
    "series removed": ([p(T, 1, 10, value=1), p(T, 2, 12, value=None, removed=True)], None),
    "series removed and re-added": ([p(T, 1, 10, value=1), p(T, 2, 12, value=None, removed=True),
                                     p(T, 3, 14, value=1)], None),
    "series log_seq backwards": ([p(T, 1, 12, value=1), p(T, 2, 10, value=2)], None),
    "two values at one log_seq": ([p(T, 1, 10, value=1), p(T, 2, 10, value=2)], None),
    "republished at one log_seq": ([p(T, 1, 10, value=1), p(T, 2, 10, value=1)], None),
    "value went backwards": ([p(U, 1, 10, value=9.0, count=2), p(U, 2, 11, value=4.0, count=2)], None),
    "update below the last round": ([p(T, 1, 10, value=1), progress(1, 10), p(U, 2, 8, value=1.0, count=1)], None),
    "progress log_seq backwards": ([p(T, 1, 10, value=1), progress(1, 10), progress(1, 9)], None),
    "non-JSON payload": ([(T, None)], None),
}

SWIFT_HASHES = {  # StableHash.hash64(Array(s.utf8)) from the Swift source, printed by a swiftc build of it
    "": 13740803689574461454, "a": 9802015559493540684, "all/*": 9791209587696204981,
    "owner/rep-17": 17032847741358533069, "team/EMEA North": 12480946749384701058,
    "lead_source/événement": 14676726507887877565, "owner/0123456789abcdef-long-key": 17021399938840758326,
}


def main() -> int:
    r = Report("cluster-checker")
    for name, (msgs, state) in CASES.items():
        c = run(msgs, state)
        kinds = set(c.kinds)
        want = set() if name == "clean" else {name}
        # re-adding follows a removal, which is reported too
        if name == "series removed and re-added":
            want = {"series removed", name}
        r.check("checker reports %s" % ("nothing on a clean stream" if name == "clean" else "'%s'" % name),
                kinds == want, "reported %s" % sorted(kinds))
    c = run([p(T, 5, 10, value=1), p(T, 6, 11, value=2)], {T: {"seq": 5, "log_seq": 10, "value": 1}}, start=(5, 10))
    r.check("checker skips updates already in the snapshot (Clone)", not c.kinds and c.updates == 1, str(c.kinds))
    bad = {s: common.hash64(s.encode()) for s in SWIFT_HASHES if common.hash64(s.encode()) != SWIFT_HASHES[s]}
    r.check("Python StableHash.hash64 equals Swift's on %d strings" % len(SWIFT_HASHES), not bad, str(bad))
    # the stream: reference after every 250 events never loses a series or lowers a monotone field
    stream = common.MonotoneStream(5)
    model = ref.load_model(common.MODEL_PATH)
    events, prev, problems = [], {}, []
    for step in range(8):
        events += [stream.next() for _ in range(250)]
        cur = ref.compute_series(events, model)
        problems += ["%s gone after %d events" % (t, len(events)) for t in prev if t not in cur]
        for t, old in prev.items():
            metric = "stage_conversion" if t.startswith("stage_conversion:") else t.split("/", 1)[0]
            for f in common.MONOTONE.get(metric, ()):
                a, b = old.get(f), cur.get(t, {}).get(f)
                if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b < a - abs(a) * 1e-9:
                    problems.append("%s.%s %r -> %r" % (t, f, a, b))
        prev = cur
    r.check("monotone stream: no series removed and no count lowered over 2,000 events (reference)", not problems,
            "; ".join(problems[:4]))
    print(r.summary())
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
