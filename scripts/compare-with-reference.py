#!/usr/bin/env python3
"""Compares a dealstream snapshot with the acceptance kit's reference implementation.

    compare-with-reference.py --model MODEL --events EVENTS.ndjson --snapshot SNAPSHOT.json

EVENTS is every event sent (in any order: the reference is order-independent), one JSON
per line; SNAPSHOT is {topic: payload} as published. Exits 0 when they agree (counts exact,
doubles within 1e-9 relative, p50/p90 within 1%), 1 with the differences otherwise.
The reference lives in ../shared/acceptance/reference.py (or --kit DIR).
"""
import argparse
import json
import os
import sys

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", required=True)
parser.add_argument("--events", required=True)
parser.add_argument("--snapshot", required=True)
parser.add_argument("--kit", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "acceptance"))
args = parser.parse_args()
sys.path.insert(0, os.path.abspath(args.kit))
import reference as ref  # noqa: E402

model = ref.load_model(args.model)
with open(args.events, "rb") as f:
    events = [line.rstrip(b"\r\n") for line in f if line.strip()]
with open(args.snapshot, "rb") as f:
    actual = json.load(f)
expected = ref.compute_series(events, model)
missing, extra, problems = ref.compare_series(expected, actual)
print("reference: %d series from %d events; snapshot: %d series" % (len(expected), len(events), len(actual)))
for label, items in (("missing", missing), ("unexpected", extra), ("different", problems)):
    if items:
        print("%s: %d, e.g. %s" % (label, len(items), items[:3]))
sys.exit(1 if (missing or extra or problems) else 0)
