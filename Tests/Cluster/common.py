"""Shared parts of the cluster tests: the worker link v2 wire format, the STATUS request, CURVE
keys from `dealstream keygen`, a monotone event stream, a feeder, and a follower that checks
every round.

The acceptance kit (../shared/acceptance, or the folder of $DEALSTREAM_ACCEPTANCE_KIT's run.py)
gives the protocol clients (client.py) and the reference implementation (reference.py).
"""

from __future__ import annotations

import json
import os
import random
import struct
import subprocess
import sys
import threading
import time
import traceback
from datetime import datetime, timedelta, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def kit_dir() -> str:
    runner = os.environ.get("DEALSTREAM_ACCEPTANCE_KIT", os.path.join(ROOT, "..", "shared", "acceptance", "run.py"))
    return os.path.dirname(os.path.abspath(runner))


sys.path.insert(0, kit_dir())
import client as kit  # noqa: E402  the acceptance kit's protocol clients
import reference as ref  # noqa: E402  the acceptance kit's reference implementation

MODEL_PATH = os.path.join(kit_dir(), "model.json")
FAMILIES = ["new_opportunities", "qualified_leads", "win_rate", "stage_conversion", "revenue",
            "average_order_value", "sales_cycle_length", "sales_velocity", "roi", "customer_retention_rate"]
HEAVY = ["revenue", "stage_conversion", "win_rate"]


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------

class Report:
    """PASS/FAIL lines, then "<name>: N passed, M failed"."""

    def __init__(self, name: str):
        self.name, self.passed, self.failed = name, 0, 0
        self.t0 = time.monotonic()

    def check(self, label: str, ok: bool, detail: str = "") -> bool:
        if ok:
            self.passed += 1
            print("PASS %s%s" % (label, (": " + detail) if detail else ""), flush=True)
        else:
            self.failed += 1
            print("FAIL %s%s" % (label, (": " + detail) if detail else ""), flush=True)
        return ok

    def note(self, text: str):
        print("# [%6.1fs] %s" % (time.monotonic() - self.t0, text), file=sys.stderr, flush=True)

    def summary(self) -> str:
        return "%s: %d passed, %d failed" % (self.name, self.passed, self.failed)


def wait_until(predicate, timeout: float, interval: float = 0.1):
    """The first truthy value of predicate() within timeout, else None (exceptions count as falsy)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = predicate()
            if v:
                return v
        except Exception:  # noqa: BLE001 — a daemon that is mid-change may not answer yet
            pass
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# Partitions: StableHash.hash64 (Sources/DealModel/StableHash.swift) in Python
# --------------------------------------------------------------------------------------------

M64 = (1 << 64) - 1


def _mix(a: int, b: int) -> int:
    p = a * b
    return ((p >> 64) ^ p) & M64


def hash64(data: bytes, seed: int = 0) -> int:
    h = (seed ^ 0x9E3779B97F4A7C15) & M64
    n, i = len(data), 0
    while i + 8 <= n:
        h = _mix(h ^ int.from_bytes(data[i:i + 8], "little"), 0xA0761D6478BD642F)
        i += 8
    tail, shift = 0, 0
    while i < n:
        tail |= data[i] << shift
        shift += 8
        i += 1
    h = _mix(h ^ tail ^ ((n << 56) & M64), 0xE7037ED1A0B428DB)
    return (_mix(h, 0x8EBC6AF09C88C6E3) ^ n) & M64


def partition_of_topic(topic: str, partitions: int) -> int:
    """partition(series) = hash64(dimension + "/" + key) % P (worker-link-v2.md)."""
    _, dimension, key, _ = ref.split_topic(topic)
    return hash64((dimension + "/" + key).encode("utf-8")) % partitions


def family_of_topic(topic: str) -> str:
    """The worker family that computes a topic's metric."""
    metric = topic.split("/", 1)[0]
    if metric.startswith("stage_conversion:"):
        return "stage_conversion"
    return {"qualification_rate": "qualified_leads", "deal_size": "revenue"}.get(metric, metric)


# --------------------------------------------------------------------------------------------
# Worker link v2 frames (/work/notes/worker-link-v2.md; all integers little-endian)
# --------------------------------------------------------------------------------------------

def _string(s: str) -> bytes:
    b = s.encode("utf-8")
    return struct.pack("<I", len(b)) + b


def ready(family: str, pid: int, host: str, token: bytes = b"", version: int = 2) -> list[bytes]:
    body = struct.pack("<I", version) + _string(family) + struct.pack("<Q", pid) + _string(host) \
        + struct.pack("<I", len(token)) + token
    return [b"READY", body]


def result(log_seq: int, body: bytes, lanes=()) -> list[bytes]:
    """RESULT: the command, the header (log_seq, lanes whole) and one body (ResultEncoder)."""
    header = struct.pack("<QI", log_seq, len(lanes)) + b"".join(struct.pack("<I", lane) for lane in lanes)
    return [b"RESULT", header, body]


class ResultEncoder:
    """A worker session's side of RESULT bodies (docs/workers.md, worker protocol 2): a shape
    (field names and kinds) once per session, a series' topic once, under a number dense
    from 0, then only numbers and 8-byte words (a count as int64, a number as a double) or a
    removal. Keeps the numbering across results, as the daemon does per session."""

    SHAPES = {  # shape id: fields (name, kind: 0 number, 1 count), as the Swift workers send them
        "win_rate": (3, [("value", 0), ("numerator", 1), ("denominator", 1)]),
        "revenue": (5, [("value", 0), ("count", 1)]),
    }

    def __init__(self):
        self.shapes_sent: set[str] = set()
        self.numbers: dict[str, int] = {}

    def _series(self, topic: str, shape: str) -> bytes:
        out = b""
        sid, fields = self.SHAPES[shape]
        if shape not in self.shapes_sent:
            self.shapes_sent.add(shape)
            out += struct.pack("<BHB", 1, sid, len(fields)) + b"".join(
                struct.pack("<B", kind) + _string(name) for name, kind in fields)
        if topic not in self.numbers:
            self.numbers[topic] = len(self.numbers)
            t = topic.encode("utf-8")
            out += struct.pack("<BIHI", 2, self.numbers[topic], sid, len(t)) + t
        return out

    def values(self, items) -> bytes:
        """A body with new values: items are (topic, shape name, [value per field])."""
        out = b""
        for topic, shape, vals in items:
            out += self._series(topic, shape)
            words = b"".join(struct.pack("<q", v) if kind else struct.pack("<d", v)
                             for v, (_, kind) in zip(vals, self.SHAPES[shape][1]))
            out += struct.pack("<BI", 3, self.numbers[topic]) + words
        return out

    def removed(self, items) -> bytes:
        """A body removing series: items are (topic, shape name)."""
        out = b""
        for topic, shape in items:
            out += self._series(topic, shape) + struct.pack("<BI", 4, self.numbers[topic])
        return out


def parse_assign(body: bytes) -> dict:
    lane, log_seq, p, n = struct.unpack_from("<IQII", body, 0)
    parts = list(struct.unpack_from("<%dI" % n, body, 20))
    return {"lane": lane, "log_seq": log_seq, "P": p, "partitions": parts}


def parse_facts_header(header: bytes) -> dict:
    log_seq, flags, lane, first, count = struct.unpack_from("<QBIII", header, 0)
    return {"log_seq": log_seq, "flags": flags, "lane": lane, "first_string_id": first, "strings": count}


# --------------------------------------------------------------------------------------------
# STATUS on the snapshot endpoint, keys
# --------------------------------------------------------------------------------------------

def status(ctx, endpoint: str, timeout: float = 3.0) -> dict:
    """STATUS -> {"partitions", "log_seq", "workers": [...]}; raises kit.Timeout/ProtocolError."""
    import zmq
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    try:
        s.send_multipart([b"STATUS"])
        if not s.poll(int(timeout * 1000)):
            raise kit.Timeout("no STATUS reply from %s" % endpoint)
        frames = s.recv_multipart()
        if frames and frames[0] == b"":
            frames = frames[1:]
        if len(frames) != 2 or frames[0] != b"STATUS":
            raise kit.ProtocolError("STATUS answered %r" % [f[:60] for f in frames])
        return json.loads(frames[1])
    finally:
        s.close(0)


def workers_of(st: dict, family: str) -> list[dict]:
    return [w for w in st.get("workers", []) if w.get("family") == family]


def coverage_problem(st: dict, family: str) -> str | None:
    """None when the family's owned partitions are exactly 0..P-1, each owned once."""
    p = st.get("partitions")
    owned = [x for w in workers_of(st, family) for x in w.get("partitions", [])]
    if sorted(owned) != list(range(p)):
        dup = sorted({x for x in owned if owned.count(x) > 1})
        missing = sorted(set(range(p)) - set(owned))
        return "%s: %d owned of %d, missing %s, owned twice %s" % (family, len(set(owned)), p, missing[:8], dup[:8])
    return None


def curve_socket(ctx, endpoint: str, server_public: bytes | None, secret: bytes | None, kind=None):
    """A DEALER (or `kind`) connected to `endpoint`; a CURVE client when server_public is given
    (with the key pair of `secret`, or a fresh one when secret is None)."""
    import zmq
    s = ctx.socket(kind if kind is not None else zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.SNDHWM, 0)
    s.setsockopt(zmq.RCVHWM, 0)
    if server_public is not None:
        if secret is None:
            public, secret = zmq.curve_keypair()
        else:
            public = zmq.curve_public(secret)
        s.curve_serverkey = server_public
        s.curve_publickey = public
        s.curve_secretkey = secret
    s.connect(endpoint)
    return s


def keygen(binary: str, out: str) -> tuple[bytes, bytes]:
    """`dealstream keygen --out OUT` -> (public Z85, secret Z85) read from OUT.pub and OUT.key."""
    r = subprocess.run([binary, "keygen", "--out", out], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError("dealstream keygen --out %s: %s" % (out, r.stderr.strip()))
    with open(out + ".pub", "rb") as f:
        pub = f.read().strip()
    with open(out + ".key", "rb") as f:
        sec = f.read().strip()
    return pub, sec


# --------------------------------------------------------------------------------------------
# A stream where counts only grow
# --------------------------------------------------------------------------------------------

UTC = timezone.utc

# Fields that can only grow while deals are only created and moved forward (never deleted,
# reopened, re-keyed or re-priced; no spend). CRR and ratios move both ways and are not listed.
MONOTONE = {
    "new_opportunities": ("value",),
    "qualified_leads": ("value",),
    "qualification_rate": ("numerator", "denominator"),
    "win_rate": ("numerator", "denominator"),
    "stage_conversion": ("numerator", "denominator"),
    "revenue": ("value", "count"),
    "deal_size": ("count", "sum"),
    "average_order_value": ("count", "sum"),
    "sales_cycle_length": ("count",),
    "sales_velocity": ("opportunities",),
    "roi": ("revenue",),
}


class MonotoneStream:
    """Seeded deal events: new deals, and deals moving forward one stage at a time until they
    close won or lost (each step a higher version). Owner, team, lead source, pipeline, amount
    and created_at never change, and nothing is deleted, so every count only grows. Each deal
    has an account of its own, so an account's customer_since never moves once set and the
    range of customer_retention_rate periods only widens (no series is ever removed)."""

    def __init__(self, seed: int, source: str = "cluster-crm"):
        self.rng = random.Random(seed)
        self.model = ref.load_model(MODEL_PATH)
        self.source = source
        self.open: list[dict] = []
        self.n = 0
        self.teams = {"North": ["ana", "bo", "chen", "dara"], "South": ["eli", "fay", "gus"],
                      "East": ["hana", "ivo", "jun", "kai"], "West": ["lea", "mo", "ned"]}
        self.pipelines = [(p, list(self.model.pipelines[p].stages)) for p in ("default", "renewals", "Enterprise Sales")]

    def _event(self, d: dict) -> bytes:
        d["version"] += 1
        deal = {"pipeline": d["pipeline"], "stage": d["stages"][d["stage"]], "status": d["status"],
                "amount": d["amount"], "currency": d["currency"], "owner": d["owner"], "team": d["team"],
                "lead_source": d["lead_source"], "account": d["account"], "created_at": d["created_at"],
                "closed_at": d.get("closed_at")}
        ev = {"kind": "deal", "source": self.source, "id": d["id"], "version": d["version"],
              "occurred_at": d["created_at"], "deal": deal}
        return json.dumps(ev, separators=(",", ":")).encode()

    def _new(self) -> bytes:
        rng = self.rng
        self.n += 1
        team = rng.choice(sorted(self.teams))
        pipeline, stages = rng.choice(self.pipelines)
        created = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 180 * 86400))
        d = {"id": "c-%06d" % self.n, "version": 0, "pipeline": pipeline, "stages": stages, "stage": 0,
             "status": "open", "amount": round(rng.uniform(100, 50000), 2), "currency": rng.choice(["USD", "EUR", "GBP"]),
             "owner": rng.choice(self.teams[team]), "team": team,
             "lead_source": rng.choice(["webinar", "seo", "partner", "outbound"]),
             "account": "acct-%06d" % self.n, "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
             "created": created}
        self.open.append(d)
        return self._event(d)

    def _advance(self) -> bytes:
        rng = self.rng
        i = rng.randrange(len(self.open))
        d = self.open[i]
        if d["stage"] + 1 < len(d["stages"]) and rng.random() < 0.6:
            d["stage"] += 1
        else:
            d["status"] = "won" if rng.random() < 0.55 else "lost"
            closed = d["created"] + timedelta(seconds=rng.randint(3600, 200 * 86400))
            d["closed_at"] = closed.strftime("%Y-%m-%dT%H:%M:%SZ")
            self.open[i] = self.open[-1]
            self.open.pop()
        return self._event(d)

    def next(self) -> bytes:
        if not self.open or self.rng.random() < 0.4:
            return self._new()
        return self._advance()


# --------------------------------------------------------------------------------------------
# Feeder: a steady stream, every request remembered with its ACK
# --------------------------------------------------------------------------------------------

class Feeder(threading.Thread):
    """Sends `rate` events/s in requests of `batch` from one DEALER until stopped. Keeps every
    acknowledged request (events, ack log_seq, latency). Resends a request that got no reply
    (versions make it harmless); counts the resends."""

    def __init__(self, ctx, endpoint: str, stream: MonotoneStream, rate: float, batch: int, timeout: float = 10,
                 curve: tuple | None = None):
        super().__init__(daemon=True)
        self.client = kit.IngestClient(ctx, endpoint, timeout=timeout, name="cluster-feed")
        if curve:  # (server public, own secret): the same client over a CURVE socket
            self.client.sock.close(0)
            self.client.sock = curve_socket(ctx, endpoint, *curve)
        self.stream, self.rate, self.batch = stream, rate, batch
        self.requests: list[tuple[list[bytes], int, float, float]] = []  # (events, log_seq, sent_at, latency)
        self.errors: list[str] = []
        self.resends = 0
        self.stop_flag = threading.Event()
        self.pause_flag = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        interval = self.batch / self.rate
        next_at = time.monotonic()
        try:
            while not self.stop_flag.is_set():
                if self.pause_flag.is_set():
                    time.sleep(0.02)
                    next_at = time.monotonic()
                    continue
                events = [self.stream.next() for _ in range(self.batch)]
                while True:
                    t = time.monotonic()
                    try:
                        ack = self.client.send_events(events)
                        break
                    except kit.Timeout:
                        self.resends += 1
                        if self.stop_flag.is_set():
                            return
                if ack.rejected or ack.applied != len(events):
                    self.errors.append("ACK %r for %d events" % (ack.raw, len(events)))
                with self.lock:
                    self.requests.append((events, ack.log_seq, t, time.monotonic() - t))
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    next_at = time.monotonic()
        except Exception as e:  # noqa: BLE001
            self.errors.append("feeder: %s" % e)
        finally:
            self.client.close()

    def stop(self):
        self.stop_flag.set()
        self.join(30)

    def acked(self):
        with self.lock:
            return list(self.requests)

    def events(self) -> list[bytes]:
        return [e for req in self.acked() for e in req[0]]

    def last_log_seq(self) -> int:
        with self.lock:
            return self.requests[-1][1] if self.requests else 0

    def prefix_for(self, log_seq: int) -> list[bytes] | None:
        """The events at log positions <= log_seq (every event applies, one sender, in order);
        None when log_seq is not a position this feeder's requests explain."""
        out = []
        for events, end, _, _ in self.acked():
            start = end - len(events)
            if end <= log_seq:
                out.extend(events)
            elif start < log_seq:
                out.extend(events[:log_seq - start])
                return out
            else:
                return out
        return out


# --------------------------------------------------------------------------------------------
# Follower: SUB + SNAPSHOT (Clone), every message checked
# --------------------------------------------------------------------------------------------

# What RoundChecker reports, each its own PASS/FAIL line in the scenario.
VIOLATIONS = ["seq gap", "series removed", "series removed and re-added", "series log_seq backwards",
              "two values at one log_seq", "republished at one log_seq", "value went backwards",
              "update below the last round", "progress log_seq backwards", "non-JSON payload", "bad message"]


class RoundChecker:
    """Applies updates in order to a state that starts from a snapshot, checking each one:

    - seq grows by exactly one per update (no lost message, else nothing after it is checkable);
    - a series is never removed (the stream never empties a population), so never removed and
      re-added either;
    - a series' log_seq never goes backwards, and no series gets two messages at one log_seq
      (reported apart: "two values at one log_seq", and "republished at one log_seq" when the
      second message repeats the first's value);
    - no update is below the last round's log_seq;
    - the fields in MONOTONE never decrease;
    - `_progress` log_seq never decreases.

    At chosen rounds (the first `_progress` received at or after a requested time) it keeps a
    copy of the state, so the caller can compare it with the reference for the events up to
    that round's log_seq."""

    def __init__(self, state: dict, end: dict):
        self.state = dict(state)
        self.seq, self.log_seq = end["seq"], end["log_seq"]
        self.series_log_seq = {t: p.get("log_seq", 0) for t, p in state.items()}
        self.violations: list[str] = []
        self.all_violations: list[str] = []  # up to 500 per kind, for the evidence file
        self.kinds: dict[str, int] = {}
        self.updates = 0
        self.rounds = 0
        self.removed_ever: set[str] = set()
        self.samples: list[tuple[int, dict]] = []
        self.sample_at: list[float] = []

    def _violate(self, kind: str, text: str):
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if self.kinds[kind] <= 5:
            self.violations.append("%s: %s" % (kind, text))
        if self.kinds[kind] <= 500:
            self.all_violations.append("%s: %s" % (kind, text))

    def request_sample(self, at: float):
        self.sample_at.append(at)

    def apply(self, t: float, topic: str, payload):
        if not isinstance(payload, dict):
            self._violate("non-JSON payload", topic)
            return
        if topic == ref.PROGRESS_TOPIC:
            ls = payload.get("log_seq", -1)
            if ls < self.log_seq:
                self._violate("progress log_seq backwards", "%d after %d" % (ls, self.log_seq))
            self.log_seq = max(self.log_seq, ls)
            self.rounds += 1
            if self.sample_at and t >= self.sample_at[0]:
                self.sample_at.pop(0)
                self.samples.append((self.log_seq, dict(self.state)))
            return
        seq = payload.get("seq", -1)
        if seq <= self.seq:
            return  # already in the snapshot (Clone)
        if seq != self.seq + 1:
            self._violate("seq gap", "%d after %d (%d updates lost)" % (seq, self.seq, seq - self.seq - 1))
        self.seq = seq
        self.updates += 1
        ls = payload.get("log_seq", -1)
        prev_ls = self.series_log_seq.get(topic)
        if prev_ls is not None:
            if ls < prev_ls:
                self._violate("series log_seq backwards", "%s: %d after %d" % (topic, ls, prev_ls))
            elif ls == prev_ls:
                old = self.state.get(topic)
                if old is not None and _fields(old) == _fields(payload):
                    self._violate("republished at one log_seq", "%s at %d, same value, seq %d then %d"
                                  % (topic, ls, old.get("seq", -1), seq))
                else:
                    self._violate("two values at one log_seq", "%s at %d: %s then %s" % (
                        topic, ls, json.dumps(_fields(old or {}))[:160], json.dumps(_fields(payload))[:160]))
        if ls < self.log_seq:
            self._violate("update below the last round", "%s: log_seq %d after a round at %d" % (topic, ls, self.log_seq))
        self.series_log_seq[topic] = ls
        if payload.get("removed"):
            self._violate("series removed", "%s at log_seq %d" % (topic, ls))
            self.removed_ever.add(topic)
            self.state.pop(topic, None)
            return
        if topic in self.removed_ever:
            self._violate("series removed and re-added", "%s at log_seq %d" % (topic, ls))
        old = self.state.get(topic)
        if old is not None:
            metric = "stage_conversion" if topic.startswith("stage_conversion:") else topic.split("/", 1)[0]
            for f in MONOTONE.get(metric, ()):
                a, b = old.get(f), payload.get(f)
                if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b < a - abs(a) * 1e-9:
                    self._violate("value went backwards", "%s.%s %r -> %r (log_seq %d -> %d)"
                                  % (topic, f, a, b, old.get("log_seq", -1), ls))
        self.state[topic] = payload


class Follower(RoundChecker):
    """SUB on everything, then a SNAPSHOT (the Clone pattern), then every update with a seq
    above the snapshot's goes through RoundChecker (call drain() now and then)."""

    def __init__(self, ctx, updates: str, snapshot: str):
        self.sub = kit.Subscriber(ctx, updates, prefixes=(b"",))
        time.sleep(0.3)  # the subscription reaches the XPUB before the snapshot is taken
        self.snap = kit.SnapshotClient(ctx, snapshot, timeout=10)
        state, end = self.snap.snapshot(b"")
        super().__init__(state, end)
        self.index = 0

    def drain(self):
        msgs = self.sub.snapshot()
        for t, topic, payload, raw in msgs[self.index:]:
            self.apply(t, topic, payload)
        self.index = len(msgs)
        for e in self.sub.errors:
            self._violate("bad message", e)
        self.sub.errors.clear()

    def close(self):
        self.sub.close()
        self.snap.close()


def _fields(p: dict) -> dict:
    return {k: v for k, v in p.items() if k not in ("seq", "log_seq")}


def compare_with_reference(events: list[bytes], state: dict) -> str | None:
    """None when `state` ({topic: payload}) equals the reference over `events`."""
    model = ref.load_model(MODEL_PATH)
    expected = ref.compute_series(events, model)
    missing, extra, problems = ref.compare_series(expected, state)
    if missing or extra or problems:
        return "reference %d series, state %d; missing %d %s; unexpected %d %s; different %d %s" % (
            len(expected), len(state), len(missing), missing[:3], len(extra), extra[:3], len(problems), problems[:3])
    return None


def print_exception(report: Report, label: str):
    report.check(label, False, "exception: %s" % traceback.format_exc().strip().splitlines()[-1])
    traceback.print_exc(file=sys.stderr)
