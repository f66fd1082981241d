#!/usr/bin/env python3
"""Scale-out across hosts: workers join and leave a running daemon over tcp with CURVE, under a
steady stream, while a subscriber checks every round.

Three network namespaces made by the test (netns.py): the daemon in D (10.77.0.1, worker
endpoint tcp://10.77.0.1:7704 with `workers.curve`, `workers.per_family 1`, so it spawns one
worker per family itself), remote workers in W1 (10.77.0.2) and W2 (10.77.0.3), each with its
own hostname (a UTS namespace) and its own CURVE key from `dealstream keygen`. This process
moves into D, so the feeder, the follower and the STATUS requests use the daemon's loopback
endpoints.

Under a steady stream of new deals moving forward (counts only grow; common.MonotoneStream):
  1. remote workers join one by one, alternating hosts, up to --per-heavy (4) workers for each
     heavy family (revenue, stage_conversion, win_rate); after each join the newcomer owns
     partitions and the family's partitions are owned exactly once;
  2. a remote revenue worker gets SIGTERM, a remote stage_conversion worker SIGKILL, a remote
     win_rate worker SIGSTOP (and SIGCONT later), the spawned revenue worker SIGKILL; after each,
     its partitions are owned by the others again and rounds catch up with the ACKs; then one
     more win_rate worker joins while the stream is paused (a move with no new event, so
     whatever the switch publishes again shows as a second message at one log_seq);
  3. the follower (SUB + SNAPSHOT, Clone) checks every message the whole time: no lost update,
     no series removed (so none re-added), no series log_seq going backwards, no two messages
     for one series at one log_seq, no count going down; states at sampled rounds equal the
     reference for the events up to that round's log_seq;
  4. at the end the snapshot equals the acceptance kit's reference for every acknowledged event,
     the follower's state equals the snapshot, and `dealstream workers --snapshot EP` lists every
     worker (family, host, pid, partitions).

    python3 Tests/Cluster/test_cluster.py [--binary PATH] [--rate 200] [--per-heavy 4] ...

Prints PASS/FAIL lines and "cluster-scale: N passed, M failed"; exits 1 on a failure, and then
keeps its folder (printed): the daemon's and every remote worker's log, events.ndjson (every
acknowledged event in log order: event i is at log position i) and violations.txt. Not root or
no `ip`/`unshare`: prints "SKIP: ..." and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import netns  # noqa: E402
from common import HEAVY, Report, kit, wait_until  # noqa: E402

WORKER_PORT = 7704


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--binary", default=os.path.join(common.ROOT, ".build", "debug", "dealstream"))
    p.add_argument("--rate", type=float, default=200, help="events per second of the steady stream")
    p.add_argument("--batch", type=int, default=10, help="events per EVENTS request")
    p.add_argument("--per-heavy", type=int, default=4, choices=range(2, 9), metavar="{2..8}",
                   help="workers per heavy family at the peak (spawned one included)")
    p.add_argument("--partitions", type=int, default=64, help="workers.partitions")
    p.add_argument("--settle", type=float, default=40, help="seconds allowed for a join, a leave or a catch-up")
    p.add_argument("--samples", type=int, default=16, help="rounds (one after each step) whose state is compared with the reference")
    p.add_argument("--dwell", type=float, default=1.0, help="seconds the stream runs in each state between steps")
    p.add_argument("--seed", type=int, default=10)
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (logs) even when everything passed")
    return p.parse_args()


class Scenario:
    def __init__(self, args, report: Report, cluster: netns.Cluster):
        self.args, self.report, self.cluster = args, report, cluster
        self.d = cluster.daemon_host
        self.tmp = tempfile.mkdtemp(prefix="dealstream-cluster.")
        self.worker_ep = "tcp://%s:%d" % (self.d.address, WORKER_PORT)
        self.ingest, self.updates, self.snapshot = "tcp://127.0.0.1:7701", "tcp://127.0.0.1:7702", "tcp://127.0.0.1:7703"
        self.remote: list[dict] = []  # {proc, family, host, log}
        self.daemon = None

    # ---- setup --------------------------------------------------------------------------
    def start_daemon(self):
        b = self.args.binary
        self.daemon_pub, _ = common.keygen(b, os.path.join(self.tmp, "daemon-workers"))
        self.host_keys = {}
        for h in self.cluster.worker_hosts:
            short = h.name.split("-")[1]  # w1, w2
            pub, _ = common.keygen(b, os.path.join(self.tmp, short))
            self.host_keys[h.name] = (short, pub, os.path.join(self.tmp, short + ".key"))
        cfg = {
            "model": common.MODEL_PATH,
            "data_dir": os.path.join(self.tmp, "data"),
            "endpoints": {"ingest": self.ingest, "updates": self.updates, "snapshot": self.snapshot,
                          "workers": self.worker_ep},
            "workers": {
                "per_family": 1,
                "partitions": self.args.partitions,
                "heartbeat_ms": 200,
                "liveness": 10,
                "curve": {"secret_key_file": os.path.join(self.tmp, "daemon-workers.key"),
                          "workers": {short: pub.decode() for short, pub, _ in self.host_keys.values()}},
            },
            "http": {"listen": "127.0.0.1:7780"},
        }
        self.cfg_path = os.path.join(self.tmp, "dealstream.json")
        with open(self.cfg_path, "w") as f:
            json.dump(cfg, f, indent=2)
        self.daemon_log = open(os.path.join(self.tmp, "daemon.log"), "wb")
        self.daemon = self.d.popen([b, "daemon", "--config", self.cfg_path, "--log-level", "info"],
                                   stdout=self.daemon_log, stderr=subprocess.STDOUT)

    def status(self):
        return common.status(self.ctx, self.snapshot)

    def connect(self):
        import zmq
        self.ctx = zmq.Context()
        ping = kit.IngestClient(self.ctx, self.ingest, timeout=1, name="cluster-ping")
        ok = wait_until(lambda: self.daemon.poll() is not None or ping.ping(0.5), 60, 0.2)
        ping.close()
        if not ok or self.daemon.poll() is not None:
            raise RuntimeError("the daemon does not answer PING (exit %s); log: %s"
                               % (self.daemon.poll(), self.log_tail()))

    def log_tail(self, n: int = 15) -> str:
        self.daemon_log.flush()
        with open(self.daemon_log.name, "rb") as f:
            return " | ".join(f.read().decode("utf-8", "replace").splitlines()[-n:])

    # ---- workers ------------------------------------------------------------------------
    def start_remote(self, family: str, host: netns.Host) -> dict:
        short, _, keyfile = self.host_keys[host.name]
        log = open(os.path.join(self.tmp, "worker-%s-%s-%d.log" % (family, short, len(self.remote))), "wb")
        # a UTS namespace of its own, so the worker's host name is the worker host's;
        # unshare and sh exec, so the pid is the worker's
        cmd = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', host.name,
               self.args.binary, "worker", "--family", family, "--connect", self.worker_ep,
               "--curve-server-key", self.daemon_pub.decode(), "--curve-secret-key-file", keyfile, "--log-level", "info"]
        proc = host.popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        w = {"proc": proc, "family": family, "host": host, "log": log, "pid": proc.pid}
        self.remote.append(w)
        return w

    def settled(self, family: str, must_have=(), must_not_have=()):
        """STATUS when every partition of `family` is owned exactly once, nothing is being
        built, every pid in must_have owns partitions and no pid in must_not_have is listed."""
        st = self.status()
        ws = common.workers_of(st, family)
        pids = {w["pid"]: w for w in ws}
        if common.coverage_problem(st, family):
            return None
        if any(w.get("building") for w in ws):
            return None
        if any(p not in pids or not pids[p].get("partitions") for p in must_have):
            return None
        if any(p in pids for p in must_not_have):
            return None
        return st

    def caught_up(self, timeout=None):
        """Published log_seq reaches the feeder's last ACK (rounds are not stuck)."""
        target = self.feeder.last_log_seq()
        t0 = time.monotonic()
        try:
            self.follower.snap.wait_log_seq(target, timeout or self.args.settle)
            return time.monotonic() - t0
        except kit.KitError:
            return None

    def step(self, label: str, family: str, must_have=(), must_not_have=()):
        t0 = time.monotonic()
        st = wait_until(lambda: self.settled(family, must_have, must_not_have), self.args.settle, 0.1)
        took = time.monotonic() - t0
        self.follower.drain()
        if st is None:
            last = None
            try:
                last = self.status()
            except kit.KitError as e:
                last = str(e)
            self.report.check(label, False, "not settled within %.0fs; STATUS %s; %s"
                              % (self.args.settle, json.dumps(last)[:600], common.coverage_problem(last, family)
                                 if isinstance(last, dict) else ""))
            return None
        ws = common.workers_of(st, family)
        share = sorted(len(w["partitions"]) for w in ws)
        time.sleep(self.args.dwell)
        lag = self.caught_up()
        ok = lag is not None
        self.report.check(label, ok, "settled in %.2fs, %d workers own %s partitions; rounds %s"
                          % (took, len(ws), share, "caught up in %.2fs" % lag if ok else
                             "stuck below the acked log_seq %d" % self.feeder.last_log_seq()))
        return st

    # ---- the run ------------------------------------------------------------------------
    def run(self):
        r, a = self.report, self.args
        self.start_daemon()
        self.d.enter()  # from here this process's sockets are in D
        self.connect()
        self.status()  # raises at once when the daemon has no STATUS request
        st = wait_until(lambda: all(self.settled(f) for f in common.FAMILIES) and self.status(), a.settle, 0.2)
        r.check("start: %d spawned workers own every partition of every family" % len(common.FAMILIES),
                st is not None and all(w.get("spawned") for w in st["workers"]) and len(st["workers"]) == len(common.FAMILIES)
                and st.get("partitions") == a.partitions,
                "STATUS %s" % json.dumps(st)[:300] if st else "no settled STATUS; log: %s" % self.log_tail())
        if st is None:
            return
        spawned = {w["family"]: w["pid"] for w in st["workers"]}

        self.follower = common.Follower(self.ctx, self.updates, self.snapshot)
        self.feeder = common.Feeder(self.ctx, self.ingest, common.MonotoneStream(a.seed), a.rate, a.batch)
        self.feeder.start()
        time.sleep(2)
        r.note("stream running: %d requests acked" % len(self.feeder.acked()))

        # 1. joins, one by one, alternating hosts
        hosts = self.cluster.worker_hosts
        n = 0
        for round_ in range(a.per_heavy - 1):
            for family in HEAVY:
                host = hosts[n % len(hosts)]
                n += 1
                w = self.start_remote(family, host)
                count = round_ + 2
                self.step("join %s #%d on %s (pid %d)" % (family, count, host.name, w["pid"]), family, must_have=[w["pid"]])
                self.sample()
        st = self.status()
        for family in HEAVY:
            share = sorted(len(w["partitions"]) for w in common.workers_of(st, family))
            r.check("balanced %s: %d workers, partitions per worker %s differ by at most 1" % (family, len(share), share),
                    len(share) == a.per_heavy and share[-1] - share[0] <= 1)

        # 2. leaves
        def remote_of(family, host=None):
            return next(w for w in self.remote if w["family"] == family and w["proc"].poll() is None
                        and not w.get("stopped") and (host is None or w["host"] is host))

        w = remote_of("revenue")
        w["proc"].send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        self.step("SIGTERM revenue pid %d: it says BYE, its partitions move" % w["pid"], "revenue", must_not_have=[w["pid"]])
        rc = wait_until(lambda: w["proc"].poll() is not None, 10)
        r.check("SIGTERM revenue pid %d exits 0" % w["pid"], w["proc"].returncode == 0,
                "exit %s after %.2fs" % (w["proc"].returncode, time.monotonic() - t0) if rc is not None else "still running")
        self.sample()

        w = remote_of("stage_conversion")
        w["proc"].send_signal(signal.SIGKILL)
        w["proc"].wait(5)
        self.step("SIGKILL stage_conversion pid %d: detected, its partitions go to the others" % w["pid"],
                  "stage_conversion", must_not_have=[w["pid"]])
        self.sample()

        frozen = remote_of("win_rate")
        frozen["proc"].send_signal(signal.SIGSTOP)
        frozen["stopped"] = True
        self.step("SIGSTOP win_rate pid %d: dropped, its partitions go to the others" % frozen["pid"], "win_rate",
                  must_not_have=[frozen["pid"]])
        self.sample()

        pid = spawned["revenue"]
        os.kill(pid, signal.SIGKILL)
        st = self.step("SIGKILL the spawned revenue worker pid %d: respawned, partitions covered" % pid, "revenue",
                       must_not_have=[pid])
        if st:
            def back():
                s = self.settled("revenue", must_not_have=[pid])
                new = [w for w in common.workers_of(s, "revenue") if w.get("spawned") and w["partitions"]] if s else []
                return new if len(new) == 1 else None
            t0 = time.monotonic()
            respawned = wait_until(back, a.settle, 0.1)
            r.check("the spawned revenue worker is respawned (a new pid) and owns partitions again", bool(respawned),
                    "after %.2fs: %s" % (time.monotonic() - t0, [(w["pid"], len(w["partitions"])) for w in respawned or []]))
            self.sample()

        os.kill(frozen["pid"], signal.SIGCONT)
        frozen["stopped"] = False
        time.sleep(2)  # it wakes up with stale batches and a dead session
        self.step("SIGCONT win_rate pid %d: every partition still owned once" % frozen["pid"], "win_rate")
        self.sample()
        w = remote_of("win_rate")  # one more SIGTERM while the woken one may be rejoining
        w["proc"].send_signal(signal.SIGTERM)
        self.step("SIGTERM win_rate pid %d" % w["pid"], "win_rate", must_not_have=[w["pid"]])
        self.sample()

        # a join while no event arrives: the switch round is at the last round's log_seq, so
        # anything the move publishes again is visible as a second message at one log_seq
        self.feeder.pause_flag.set()
        time.sleep(0.3)
        self.caught_up()
        self.follower.drain()
        idle_at = self.feeder.last_log_seq()
        w = self.start_remote("win_rate", hosts[1])
        self.step("join win_rate on %s (pid %d) while the stream is paused at log_seq %d" % (hosts[1].name, w["pid"], idle_at),
                  "win_rate", must_have=[w["pid"]])
        self.feeder.pause_flag.clear()
        time.sleep(a.dwell)
        self.sample()

        # 3. the end of the stream
        self.feeder.stop()
        r.check("feeder: every request acked, all applied", not self.feeder.errors,
                "%d requests, %d events, %d resent; %s" % (len(self.feeder.acked()), len(self.feeder.events()),
                                                          self.feeder.resends, "; ".join(self.feeder.errors[:3])))
        lag = self.caught_up()
        r.check("published state reaches the last ACK's log_seq %d" % self.feeder.last_log_seq(), lag is not None)
        time.sleep(0.5)
        final, end = self.follower.snap.snapshot(b"")
        self.follower.drain()
        events = self.feeder.events()
        problem = common.compare_with_reference(events, final)
        r.check("final snapshot equals the reference (%d events, %d series)" % (len(events), len(final)),
                problem is None, problem or "")
        diff = _state_diff(self.follower.state, final)
        r.check("follower's state (snapshot + every update) equals the final snapshot", diff is None, diff or "")
        fv = self.follower
        r.check("the follower saw the whole run: %d updates over %d rounds" % (fv.updates, fv.rounds),
                fv.updates > 0 and fv.rounds > 0)
        for kind in common.VIOLATIONS:
            hits = [v for v in fv.violations if v.startswith(kind + ":")]
            r.check("every round: no %s" % kind, kind not in fv.kinds,
                    "%d times, e.g. %s" % (fv.kinds.get(kind, 0), "; ".join(hits[:3])) if kind in fv.kinds else "")
        for i, (log_seq, state) in enumerate(fv.samples):
            prefix = self.feeder.prefix_for(log_seq)
            problem = common.compare_with_reference(prefix, state) if prefix is not None else "no prefix"
            if problem and prefix is not None:
                expected = common.ref.compute_series(prefix, common.ref.load_model(common.MODEL_PATH))
                wrong = sorted(t for t in expected if t in state and common.ref.compare_payload(t, expected[t], state[t]))
                fams = sorted({common.family_of_topic(t) for t in wrong})
                problem += "; families %s; payload log_seq of the first wrong series: %s" % (
                    fams, [(t, state[t].get("log_seq")) for t in wrong[:3]])
                with open(os.path.join(self.tmp, "sample-%d-log_seq-%d.json" % (i + 1, log_seq)), "w") as f:
                    json.dump({"log_seq": log_seq, "state": state}, f)
            r.check("round at log_seq %d (sample %d) equals the reference for its %d events" % (log_seq, i + 1, len(prefix or [])),
                    problem is None, problem or "")

        # 4. dealstream workers
        self.check_workers_cli()

    def save_evidence(self):
        """Every acknowledged event in log order (event i is at log position i for a fresh
        store) and every violation the follower saw, beside the daemon's and workers' logs."""
        if getattr(self, "feeder", None):
            with open(os.path.join(self.tmp, "events.ndjson"), "wb") as f:
                for e in self.feeder.events():
                    f.write(e + b"\n")
        if getattr(self, "follower", None):
            with open(os.path.join(self.tmp, "violations.txt"), "w") as f:
                f.write("\n".join(self.follower.all_violations) + "\n")

    def sample(self):
        if len(self.follower.samples) + len(self.follower.sample_at) < self.args.samples:
            self.follower.request_sample(time.monotonic())

    def check_workers_cli(self):
        r = self.report
        st = self.status()
        out = self.d.run([self.args.binary, "workers", "--snapshot", self.snapshot], timeout=30)
        lines = out.stdout.splitlines()
        missing = []
        for w in st["workers"]:
            hit = [ln for ln in lines if str(w["pid"]) in ln.split() and w["family"] in ln]
            if not hit:
                missing.append("%s pid %d" % (w["family"], w["pid"]))
        remote_hosts = [w for w in st["workers"] if not w.get("spawned")]
        host_ok = all(any(h.name in w["host"] or h.address in w["host"] for h in self.cluster.worker_hosts)
                      for w in remote_hosts)
        r.check("dealstream workers --snapshot lists every worker (family, pid) of STATUS (%d)" % len(st["workers"]),
                out.returncode == 0 and not missing and len(st["workers"]) > len(common.FAMILIES),
                "exit %d; missing %s; output: %s" % (out.returncode, missing[:5], " | ".join(lines[:4])))
        r.check("STATUS names each remote worker's host (%d remote)" % len(remote_hosts), host_ok and remote_hosts,
                "%s" % [(w["family"], w["host"]) for w in remote_hosts][:6])
        js = self.d.run([self.args.binary, "workers", "--snapshot", self.snapshot, "--json"], timeout=30)
        try:
            parsed = json.loads(js.stdout)
            pids = sorted(w["pid"] for w in parsed["workers"])
            ok = js.returncode == 0 and pids == sorted(w["pid"] for w in st["workers"]) \
                and all("partitions" in w and "host" in w and "last_heard_ms" in w and "facts_behind" in w
                        for w in parsed["workers"])
            detail = "%d workers" % len(pids)
        except (ValueError, KeyError, TypeError) as e:
            ok, detail = False, "not the STATUS JSON: %s: %s" % (e, js.stdout[:200])
        r.check("dealstream workers --json: every worker with partitions, host, facts_behind, last_heard_ms", ok, detail)

    def stop(self):
        if getattr(self, "feeder", None) and self.feeder.is_alive():
            self.feeder.stop()
        if getattr(self, "follower", None):
            self.follower.close()
        for w in self.remote:
            if w["proc"].poll() is None:
                w["proc"].send_signal(signal.SIGCONT)
                w["proc"].send_signal(signal.SIGTERM)
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(20)
            except subprocess.TimeoutExpired:
                self.report.check("daemon stops on SIGTERM within 20s", False)
        if getattr(self, "ctx", None):
            self.ctx.destroy(linger=0)
        self.d.leave()


def _state_diff(a: dict, b: dict) -> str | None:
    strip = lambda s: {t: {k: v for k, v in p.items() if k not in ("seq", "log_seq")} for t, p in s.items()}
    sa, sb = strip(a), strip(b)
    if sa == sb:
        return None
    only_a = sorted(set(sa) - set(sb))
    only_b = sorted(set(sb) - set(sa))
    diff = sorted(t for t in set(sa) & set(sb) if sa[t] != sb[t])
    return "only in follower %d %s; only in snapshot %d %s; different %d %s" % (
        len(only_a), only_a[:3], len(only_b), only_b[:3], len(diff), [(t, sa[t], sb[t]) for t in diff[:2]])


def main() -> int:
    args = parse_args()
    reason = netns.unavailable_reason()
    if reason is None and shutil.which("unshare") is None:
        reason = "needs util-linux's unshare"
    if reason:
        print("SKIP: cluster scale-out test %s" % reason, flush=True)
        print("cluster-scale: 0 passed, 0 failed (skipped)")
        return 0
    if not os.access(args.binary, os.X_OK):
        print("FAIL no dealstream binary at %s (swift build first)" % args.binary)
        print("cluster-scale: 0 passed, 1 failed")
        return 1
    report = Report("cluster-scale")
    t0 = time.monotonic()
    scenario = None
    try:
        with netns.Cluster(workers=2) as cluster:
            scenario = Scenario(args, report, cluster)
            try:
                scenario.run()
            except Exception:  # noqa: BLE001
                common.print_exception(report, "scale-out scenario")
            finally:
                scenario.stop()
        left = netns.leftover_namespaces(cluster.tag)
        report.check("teardown: namespaces and processes gone", not left, "left: %s" % left)
    finally:
        keep = args.keep or report.failed
        if scenario:
            if keep:
                scenario.save_evidence()
                print("# logs in %s (events.ndjson: every acked event in log order; violations.txt)" % scenario.tmp,
                      file=sys.stderr)
                if report.failed:
                    print("# daemon log (last lines): %s" % scenario.log_tail(25), file=sys.stderr)
            else:
                shutil.rmtree(scenario.tmp, ignore_errors=True)
    report.note("took %.1fs" % (time.monotonic() - t0))
    print(report.summary(), flush=True)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
