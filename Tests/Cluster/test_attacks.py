#!/usr/bin/env python3
"""Fake-worker attacks on the worker link: a pyzmq DEALER speaking worker link v2
(/work/notes/worker-link-v2.md, common.py) against a real daemon on loopback tcp with
`workers.curve` (and `ingest.curve`, so a connector key exists), one spawned worker per family.

(a) refused: a worker with an unknown key, a plain (non-CURVE) socket, and a connector's key
    send READY and heartbeats: they receive nothing and no session appears in STATUS; and a
    worker key on the ingest endpoint gets no PONG.
(b) an allowlisted key (the daemon admits it; it gets RESET and ASSIGN) that never answers:
    - forged RESULTs (binary bodies, common.ResultEncoder): a series of another family
      (win_rate/all/*/all = -999999999), topic `zzz/injected`, garbage bytes instead of values,
      values for a series number never defined, bytes that are no record, a revenue series
      outside its partitions, a value for a series of its own partitions while it has not
      caught up, and a removal of every real revenue series: none of it is published
      (subscriber) or stored (snapshot), and each unreadable body is logged;
    - it holds its fact batches, heartbeats only (limits.max_outstanding_batches is small, so
      held batches would stop ingest): it is dropped within workers.result_timeout_ms + slack,
      and an ingest client that keeps sending sees its ACK latency recover;
(c) READY claiming the pid of the real (spawned) win_rate worker, then silence past the
    liveness and result timeouts: that worker is never signalled (same pid, alive, still
    serving) and the fake is gone.
At the end the snapshot equals the acceptance kit's reference for every acknowledged event.

    python3 Tests/Cluster/test_attacks.py [--binary PATH] [--result-timeout-ms 2000] [--slack 2.5]

Prints PASS/FAIL lines and "cluster-attacks: N passed, M failed"; exits 1 on a failure. Needs
no root (one host, loopback).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Report, kit, wait_until  # noqa: E402

import zmq  # noqa: E402

FORGED = -999999999


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--binary", default=os.path.join(common.ROOT, ".build", "debug", "dealstream"))
    p.add_argument("--result-timeout-ms", type=int, default=None,
                   help="set workers.result_timeout_ms (default: leave it out, the daemon's default of 5000 applies)")
    p.add_argument("--heartbeat-ms", type=int, default=200)
    p.add_argument("--liveness", type=int, default=10)
    p.add_argument("--slack", type=float, default=2.5, help="seconds allowed beyond a timeout")
    p.add_argument("--preload", type=int, default=3000, help="events sent before the attacks")
    p.add_argument("--rate", type=float, default=100, help="events/s of the ingest client during the hold")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--keep", action="store_true")
    return p.parse_args()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeWorker(threading.Thread):
    """A DEALER on the worker endpoint, driven from its own thread: sends what is queued,
    records everything received with its arrival time, and heartbeats when asked to."""

    all: list["FakeWorker"] = []

    def __init__(self, ctx, endpoint, server_public, secret, heartbeat_ms: int | None):
        super().__init__(daemon=True)
        self.sock = common.curve_socket(ctx, endpoint, server_public, secret)
        FakeWorker.all.append(self)
        self.heartbeat = heartbeat_ms / 1000 if heartbeat_ms else None
        self.outbox: queue.Queue = queue.Queue()
        self.received: list[tuple[float, list[bytes]]] = []
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.unsent = 0
        self.start()

    def send(self, frames):
        self.outbox.put(frames)

    def run(self):
        next_hb = time.monotonic() + (self.heartbeat or 0)  # READY (queued first) goes out before any heartbeat
        try:
            while not self.stop_flag.is_set():
                # a DEALER with no peer (handshake refused) would block in send: never wait
                while True:
                    try:
                        frames = self.outbox.get_nowait()
                    except queue.Empty:
                        break
                    try:
                        self.sock.send_multipart(frames, flags=zmq.NOBLOCK)
                    except zmq.Again:
                        self.unsent += 1
                if self.heartbeat and time.monotonic() >= next_hb:
                    try:
                        self.sock.send_multipart([b"HEARTBEAT"], flags=zmq.NOBLOCK)
                    except zmq.Again:
                        pass
                    next_hb = time.monotonic() + self.heartbeat
                if self.sock.poll(20):
                    frames = self.sock.recv_multipart()
                    if frames and frames[0] == b"":
                        frames = frames[1:]
                    with self.lock:
                        self.received.append((time.monotonic(), frames))
        finally:
            self.sock.close(0)

    def got(self, command: bytes) -> list[tuple[float, list[bytes]]]:
        with self.lock:
            return [(t, f) for t, f in self.received if f and f[0] == command]

    def commands(self) -> dict:
        with self.lock:
            out = {}
            for _, f in self.received:
                out[f[0][:16]] = out.get(f[0][:16], 0) + 1
            return out

    def stop(self):
        self.stop_flag.set()
        self.join(3)


class Attacks:
    def __init__(self, args, report: Report):
        self.args, self.report = args, report
        self.tmp = tempfile.mkdtemp(prefix="dealstream-attacks.")
        self.daemon = None
        self.ctx = zmq.Context()
        self.pick_ports()
        self.events: list[bytes] = []
        self.stream = common.MonotoneStream(args.seed, source="attack-crm")

    def pick_ports(self):
        ports = [free_port() for _ in range(5)]
        self.ingest, self.updates, self.snapshot, self.workers = ("tcp://127.0.0.1:%d" % p for p in ports[:4])
        self.http = "127.0.0.1:%d" % ports[4]

    def key(self, name):
        return common.keygen(self.args.binary, os.path.join(self.tmp, name))

    def start(self):
        a = self.args
        a.result_timeout_ms_given = a.result_timeout_ms is not None
        if not a.result_timeout_ms_given:
            a.result_timeout_ms = 5000  # worker-link-v2.md: the default, left out of the config
        self.worker_server_pub, _ = self.key("daemon-workers")
        self.ingest_server_pub, _ = self.key("daemon-ingest")
        self.fake_pub, self.fake_sec = self.key("fake-worker")
        self.unknown_pub, self.unknown_sec = self.key("unknown")
        self.crm_pub, self.crm_sec = self.key("crm")
        # a free port can be taken by someone else before the daemon binds it: then again
        for attempt in range(3):
            if self.launch(attempt):
                break
            if "Address already in use" not in self.log_text() or attempt == 2:
                raise RuntimeError("the daemon does not answer PING (exit %s): %s" % (self.daemon.poll(), self.log_tail()))
            self.ingest_client.close()
            self.pick_ports()
        self.snap = kit.SnapshotClient(self.ctx, self.snapshot, timeout=10)

    def launch(self, attempt: int) -> bool:
        """Starts the daemon on the current ports; whether it answers PING."""
        a = self.args
        cfg = {
            "model": common.MODEL_PATH,
            "data_dir": os.path.join(self.tmp, "data-%d" % attempt),
            "endpoints": {"ingest": self.ingest, "updates": self.updates, "snapshot": self.snapshot,
                          "workers": self.workers},
            "workers": {  # per_family is left at its default, 1
                "heartbeat_ms": a.heartbeat_ms,
                "liveness": a.liveness,
                "curve": {"secret_key_file": os.path.join(self.tmp, "daemon-workers.key"),
                          "workers": {"fake": self.fake_pub.decode()}},
            },
            "ingest": {"curve": {"secret_key_file": os.path.join(self.tmp, "daemon-ingest.key"),
                                 "connectors": {"crm": self.crm_pub.decode()}}},
            "limits": {"max_outstanding_batches": 8},
            "http": {"listen": self.http},
        }
        if a.result_timeout_ms_given:
            cfg["workers"]["result_timeout_ms"] = a.result_timeout_ms
        path = os.path.join(self.tmp, "dealstream.json")
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2)
        self.log = open(os.path.join(self.tmp, "daemon.log"), "wb")  # a retry starts a fresh log
        self.daemon = subprocess.Popen([a.binary, "daemon", "--config", path, "--log-level", "info"],
                                       stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.ingest_client = self.curve_ingest(self.crm_sec, "attack-ingest")
        ok = wait_until(lambda: self.daemon.poll() is not None or self.ingest_client.ping(0.5), 60, 0.2)
        return bool(ok) and self.daemon.poll() is None

    def curve_ingest(self, secret, name):
        c = kit.IngestClient(self.ctx, self.ingest, timeout=10, name=name)
        c.sock.close(0)
        c.sock = common.curve_socket(self.ctx, self.ingest, self.ingest_server_pub, secret)
        return c

    def log_text(self) -> str:
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_tail(self, n=20):
        return " | ".join(self.log_text().splitlines()[-n:])

    def status(self):
        return common.status(self.ctx, self.snapshot)

    def session(self, host: str):
        return [w for w in self.status()["workers"] if w.get("host") == host]

    def send(self, n: int):
        for i in range(0, n, 100):
            events = [self.stream.next() for _ in range(min(100, n - i))]
            ack = self.ingest_client.send_events(events)
            assert ack.applied == len(events) and not ack.rejected, ack.raw
            self.events.extend(events)
            self.last_ack = ack.log_seq

    def published(self):
        self.snap.wait_log_seq(self.last_ack, 30)

    # ---- (a) ----------------------------------------------------------------------------
    def refused(self):
        r = self.report
        before = sorted((w["family"], w["pid"], tuple(w["partitions"])) for w in self.status()["workers"])
        snap_before, end_before = self.snap.snapshot(b"")
        cases = [("unknown key", self.worker_server_pub, self.unknown_sec),
                 ("plain socket", None, None),
                 ("connector key", self.worker_server_pub, self.crm_sec)]
        fakes = []
        for label, server, secret in cases:
            host = "attacker-" + label.replace(" ", "-")
            f = FakeWorker(self.ctx, self.workers, server, secret, self.args.heartbeat_ms)
            f.send(common.ready("revenue", os.getpid(), host))
            fakes.append((label, host, f))
        worker_key_on_ingest = self.curve_ingest(self.fake_sec, "attack-wrongkey")
        try:
            worker_key_on_ingest.ping(2.5)
            pong = True
        except (kit.KitError, zmq.Again):  # no peer to send to, or no answer
            pong = False
        time.sleep(0.5)
        st = self.status()
        for label, host, f in fakes:
            listed = [w for w in st["workers"] if w.get("host") == host]
            r.check("(a) %s on the worker endpoint gets nothing and no session" % label,
                    not f.received and not listed, "received %s; STATUS lists %s" % (f.commands(), listed))
            f.stop()
        r.check("(a) a worker key on the ingest endpoint gets no PONG", not pong)
        worker_key_on_ingest.close()
        lines = [ln for ln in self.log_text().splitlines() if "refused" in ln.lower()]
        named = {"unknown key": any(self.unknown_pub.decode() in ln for ln in lines),
                 "connector key": any(self.crm_pub.decode() in ln for ln in lines),
                 "plain socket": any(w in ln for ln in lines for w in ("NULL", "no CURVE", "without CURVE"))}
        r.check("(a) the daemon logs each refusal, naming the key (or its absence)", all(named.values()),
                "%s; refusal lines: %s" % (named, " | ".join(ln[:200] for ln in lines[:3])))
        after = sorted((w["family"], w["pid"], tuple(w["partitions"])) for w in self.status()["workers"])
        snap_after, end_after = self.snap.snapshot(b"")
        r.check("(a) the refused ones changed nothing: same sessions and partitions, same published state",
                before == after and snap_before == snap_after and end_before == end_after,
                "sessions %s -> %s; END %s -> %s" % (len(before), len(after), end_before, end_after))

    # ---- (b) ----------------------------------------------------------------------------
    def forged_and_held(self):
        r, a = self.report, self.args
        s0, end0 = self.snap.snapshot(b"")
        revenue_topics = sorted(t for t in s0 if common.family_of_topic(t) == "revenue")
        sub = kit.Subscriber(self.ctx, self.updates, prefixes=(b"",))
        time.sleep(0.3)
        feeder = common.Feeder(self.ctx, self.ingest, self.stream, a.rate, 10, curve=(self.ingest_server_pub, self.crm_sec))
        feeder.start()
        time.sleep(2)
        baseline = [lat for _, _, _, lat in feeder.acked()]

        host = "fake-revenue"
        fake = FakeWorker(self.ctx, self.workers, self.worker_server_pub, self.fake_sec, a.heartbeat_ms)
        t_ready = time.monotonic()
        fake.send(common.ready("revenue", os.getpid(), host))
        got_assign = wait_until(lambda: fake.got(b"ASSIGN") and fake.got(b"FACTS"), 10, 0.02)
        listed = wait_until(lambda: self.session(host), 5, 0.05)
        admitted = bool(got_assign) and bool(fake.got(b"RESET")) and bool(listed)
        r.check("(b) an allowlisted key is admitted: RESET, ASSIGN and FACTS arrive, STATUS lists it", admitted,
                "received %s within %.1fs; STATUS %s" % (fake.commands(), time.monotonic() - t_ready, listed))
        if not admitted:
            print("SKIP (b) forged RESULTs and held batches: not run, the fake worker was never admitted", flush=True)
            feeder.stop()
            fake.stop()
            sub.close()
            return
        assigns = [common.parse_assign(f[1]) for _, f in fake.got(b"ASSIGN")]
        parts = sorted({p for asg in assigns for p in asg["partitions"]})
        P = assigns[0]["P"] if assigns else self.status()["partitions"]
        facts = fake.got(b"FACTS")
        t_hold = facts[0][0] if facts else time.monotonic()
        ls = max([common.parse_facts_header(f[1])["log_seq"] for _, f in facts] + [end0["log_seq"]])

        enc = common.ResultEncoder()  # the fake session's numbering, kept across its RESULTs

        def forged(topic, shape="revenue"):
            width = len(common.ResultEncoder.SHAPES[shape][1])
            return enc.values([(topic, shape, [FORGED] + [1] * (width - 1))])

        inside = [t for t in revenue_topics if common.partition_of_topic(t, P) in parts]
        outside = [t for t in revenue_topics if common.partition_of_topic(t, P) not in parts]
        new_inside = next("revenue/owner/zz-fake-%d/all" % i for i in range(100000)
                          if common.partition_of_topic("revenue/owner/zz-fake-%d/all" % i, P) in parts) if parts else \
            "revenue/owner/zz-fake-0/all"
        # the topic each attack names, and the body that carries it (built in this order: each
        # valid body is taken by the daemon, so the encoder's numbering stays the daemon's)
        forged_topics = {}
        forged_topics["another family's series (win_rate/all/*/all)"] = (
            "win_rate/all/%2A/all", forged("win_rate/all/%2A/all", "win_rate"))
        forged_topics["topic zzz/injected"] = ("zzz/injected", forged("zzz/injected"))
        garbage = struct.pack("<BI", 2, len(enc.numbers)) + b"\xffnot values{"  # a series record cut short
        forged_topics["garbage bytes instead of values, in its own partition"] = (new_inside, garbage)
        forged_topics["a revenue series outside its partitions"] = (
            outside[0] if outside else "revenue/all/%2A/all", forged(outside[0] if outside else "revenue/all/%2A/all"))
        own = inside[0] if inside else new_inside
        forged_topics["a series of its own partitions before it caught up"] = (own, forged(own))
        for _, (topic, body) in forged_topics.items():
            fake.send(common.result(ls, body))
        # remove every real revenue series (one valid body: each series named, then removed)
        fake.send(common.result(ls, enc.removed([(t, "revenue") for t in revenue_topics])))
        # values for a series number the session never defined, and bytes that are no record at all
        fake.send(common.result(ls, struct.pack("<BI", 3, len(enc.numbers) + 7) + struct.pack("<d", FORGED) * 2))
        fake.send(common.result(ls, b"zzz/injected not values at all"))

        # it holds everything, heartbeats only: dropped within result_timeout_ms + slack
        limit = a.result_timeout_ms / 1000 + a.slack
        gone = wait_until(lambda: not self.session(host) and time.monotonic(), limit + 10, 0.05)
        held_for = (gone - t_hold) if gone else None
        r.check("(b) a session holding its batches is dropped within result_timeout_ms %d + %.1fs slack"
                % (a.result_timeout_ms, a.slack), held_for is not None and held_for <= limit,
                "gone %s after its first FACTS; it received %s" % ("%.2fs" % held_for if held_for else "never", fake.commands()))
        time.sleep(3)
        feeder.stop()
        fake.stop()
        reqs = feeder.acked()
        t_gone = gone or time.monotonic()
        during = [lat for _, _, t, lat in reqs if t_hold <= t < t_gone]
        after = [lat for _, _, t, lat in reqs if t >= t_gone + 0.5]
        done = sorted(t + lat for _, _, t, lat in reqs)
        gaps = [b - a_ for a_, b in zip(done, done[1:])]
        base = statistics.median(baseline) if baseline else 0.0
        recovered = after and statistics.median(after) <= max(0.25, 3 * base)
        r.check("(b) ingest ACKs resume: longest ACK gap %.2fs <= %.1fs; ACK latency median before %.3fs, during the hold max %.3fs, after %.3fs"
                % (max(gaps or [0]), limit, base, max(during or [0]), statistics.median(after) if after else -1),
                bool(recovered) and max(gaps or [0]) <= limit and not feeder.errors,
                "%d requests after the drop; %s" % (len(after), "; ".join(feeder.errors[:2])))
        self.events.extend(feeder.events())
        self.last_ack = feeder.last_log_seq()
        self.published()
        time.sleep(0.3)
        s1, _ = self.snap.snapshot(b"")
        msgs = sub.snapshot()
        sub.close()
        for label, (topic, _) in forged_topics.items():
            stored = s1.get(topic)
            seen = [p for _, t, p, raw in msgs if t == topic and (p is None or p.get("value") == FORGED)]
            r.check("(b) forged RESULT with %s: not published, not stored" % label,
                    not seen and (stored is None or stored.get("value") != FORGED) and not (topic.startswith("zzz") and stored),
                    "snapshot %s; %d forged messages seen" % (json.dumps(stored)[:120] if stored else "none", len(seen)))
        logged = [ln for ln in self.log_text().splitlines() if host in ln and "dropped" in ln.lower()]
        r.check("(b) the daemon logs the dropped series, naming the fake (%d lines)" % len(logged), bool(logged),
                " | ".join(ln[:220] for ln in logged[:2]))
        unreadable = [ln for ln in logged if "Unreadable RESULT" in ln]
        r.check("(b) each unreadable body (garbage, an undefined series, no records) is refused whole and logged: "
                "%d lines" % len(unreadable), len(unreadable) == 3, " | ".join(ln[:220] for ln in unreadable[:3]))
        removed = [t for _, t, p, _ in msgs if isinstance(p, dict) and p.get("removed")]
        still = [t for t in revenue_topics if t in s1]
        r.check("(b) forged removal of all %d real revenue series: none removed (published or stored)" % len(revenue_topics),
                not removed and len(still) == len(revenue_topics) and revenue_topics,
                "removed messages %d %s; %d of %d still in the snapshot" % (len(removed), removed[:3], len(still), len(revenue_topics)))
        bad = [t for _, t, p, _ in msgs if t.startswith("zzz") or p is None or (isinstance(p, dict) and p.get("value") == FORGED)]
        r.check("(b) the subscriber saw only JSON payloads of real series (%d messages)" % len(msgs), not bad and not sub.errors,
                "%s %s" % (bad[:3], sub.errors[:2]))
        problem = common.compare_with_reference(self.events, s1)
        r.check("(b) snapshot after the attacks equals the reference (%d events)" % len(self.events), problem is None, problem or "")

    # ---- (c) ----------------------------------------------------------------------------
    def claimed_pid(self):
        r, a = self.report, self.args
        st = self.status()
        real = [w for w in common.workers_of(st, "win_rate") if w.get("spawned")]
        if not real:
            r.check("(c) a spawned win_rate worker to claim the pid of", False, json.dumps(st)[:300])
            return
        pid = real[0]["pid"]
        host = "fake-pid"
        fake = FakeWorker(self.ctx, self.workers, self.worker_server_pub, self.fake_sec, None)  # silent
        t_ready = time.monotonic()
        fake.send(common.ready("win_rate", pid, host))
        seen = wait_until(lambda: self.session(host), 5, 0.05)
        r.check("(c) the fake claiming pid %d is admitted as a session (not spawned)" % pid,
                bool(seen) and not seen[0].get("spawned"), "STATUS: %s" % (seen or "not listed"))
        if not seen:
            fake.stop()
            print("SKIP (c) the rest: the fake worker was never admitted", flush=True)
            return
        silence = a.heartbeat_ms * a.liveness / 1000 + a.result_timeout_ms / 1000 + a.slack
        gone = wait_until(lambda: not self.session(host), silence + 5, 0.1)
        time.sleep(max(0.0, t_ready + silence - time.monotonic()))
        fake.stop()
        alive = _alive(pid)
        st = self.status()
        still = [w for w in common.workers_of(st, "win_rate") if w.get("spawned")]
        r.check("(c) the real win_rate worker pid %d is never signalled: alive after %.1fs of the fake's silence" % (pid, silence),
                alive and [w["pid"] for w in still] == [pid],
                "alive=%s; spawned win_rate now %s; fake %s" % (alive, [w["pid"] for w in still], "gone" if gone else "still listed"))
        self.send(200)
        try:
            self.published()
            ok = True
        except kit.KitError:
            ok = False
        r.check("(c) rounds go on after the fake is gone", ok and bool(gone))
        s2, _ = self.snap.snapshot(b"")
        problem = common.compare_with_reference(self.events, s2)
        r.check("final snapshot equals the reference (%d events)" % len(self.events), problem is None, problem or "")

    def run(self):
        self.start()
        self.status()  # raises at once when the daemon has no STATUS request
        st = wait_until(lambda: all(not common.coverage_problem(self.status(), f) for f in common.FAMILIES) and self.status(),
                        60, 0.2)
        self.report.check("start: the spawned workers own every partition", st is not None,
                          "" if st else "log: %s" % self.log_tail())
        self.send(self.args.preload)
        self.published()
        for phase in (self.refused, self.forged_and_held, self.claimed_pid):
            try:
                phase()
            except Exception:  # noqa: BLE001
                common.print_exception(self.report, phase.__name__)

    def stop(self):
        for f in FakeWorker.all:
            f.stop()
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(20)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.report.check("daemon stops on SIGTERM within 20s", False)
        self.ctx.destroy(linger=0)


def _alive(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except OSError:
        return False


def main() -> int:
    args = parse_args()
    if not os.access(args.binary, os.X_OK):
        print("FAIL no dealstream binary at %s (swift build first)" % args.binary)
        print("cluster-attacks: 0 passed, 1 failed")
        return 1
    report = Report("cluster-attacks")
    t0 = time.monotonic()
    attacks = Attacks(args, report)
    try:
        attacks.run()
    except Exception:  # noqa: BLE001
        common.print_exception(report, "attacks")
    finally:
        if report.failed:
            print("# daemon log (last lines): %s" % attacks.log_tail(25) if hasattr(attacks, "log") else "", file=sys.stderr)
        attacks.stop()
        if args.keep or report.failed:
            print("# logs in %s" % attacks.tmp, file=sys.stderr)
        else:
            shutil.rmtree(attacks.tmp, ignore_errors=True)
    report.note("took %.1fs" % (time.monotonic() - t0))
    print(report.summary(), flush=True)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
