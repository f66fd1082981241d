#!/usr/bin/env python3
"""The dashboard in a real browser (Debian's chromium + chromium-driver, driven by selenium).

A real daemon is fed the bundled Maven CRM sample (`dealstream send`) plus a few events of a
team and a rep whose names are HTML; `dealstream web` follows it; headless Chromium opens
the page. The values on the tiles, the funnel and the leaderboards are compared with the
daemon's own snapshot (read with pyzmq, the acceptance kit's SnapshotClient) for several
dimension/period choices picked with the page's own pickers; an event sent afterwards must
change its tile within a second without a reload; the HTML names must show as text; the
freshness line must turn stale once the daemon is stopped. Screenshots at 1280x800 and at a
phone width go to a temporary folder (printed).

    python3 Tests/Browser/test_dashboard.py [--binary PATH] [--screenshots DIR]
    python3 Tests/Browser/test_dashboard.py --measure-latency 100     # ACK -> tile change, p50/p99

Prints PASS/FAIL per test and "browser: N passed, M failed"; exits 1 on a failure. Without
chromium, chromedriver or selenium it prints why and skips (scripts/install-deps installs them).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
XSS_TEAM = "<script>alert(1)</script>"
XSS_REP = '<img src=x onerror="window.__xss=1">'
TEST_SOURCE = "crm-test"


def kit_dir() -> str:
    runner = os.environ.get("DEALSTREAM_ACCEPTANCE_KIT", os.path.join(ROOT, "..", "shared", "acceptance", "run.py"))
    return os.path.dirname(os.path.abspath(runner))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def topic(metric: str, dimension: str, key: str, period: str) -> str:
    q = lambda s: urllib.parse.quote(s, safe="-._~")
    if metric.startswith("stage_conversion:"):  # only the three ids are encoded (PROTOCOL.md §3)
        metric = ":".join(["stage_conversion"] + [q(part) for part in metric.split(":")[1:]])
    else:
        metric = q(metric)
    return "/".join([metric, q(dimension), q(key), q(period)])


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as e:  # the page may be mid-render
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what} (last: {last!r})")


class Skip(Exception):
    pass


class Stack:
    """The daemon, the sample data, `dealstream web` and a headless Chromium."""

    def __init__(self, binary: str, screenshots: str):
        try:
            from selenium import webdriver  # noqa: F401
        except ImportError:
            raise Skip("selenium is not installed (scripts/install-deps installs it)")
        self.chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        self.chromedriver = shutil.which("chromedriver")
        if not self.chromium or not self.chromedriver:
            raise Skip("chromium or chromedriver missing "
                       "(scripts/install-deps installs Debian's chromium chromium-driver)")
        if not os.access(binary, os.X_OK):
            raise Skip(f"no dealstream binary at {binary} (swift build first)")
        sys.path.insert(0, kit_dir())
        import zmq
        import client as kit  # the acceptance kit's protocol clients
        self.kit = kit
        self.binary = binary
        self.screenshots = screenshots
        self.tmp = tempfile.mkdtemp(prefix="dealstream-browser.")
        ports = [free_port() for _ in range(4)]
        self.ingest, self.updates, self.snapshot = (f"tcp://127.0.0.1:{p}" for p in ports[:3])
        self.web_port = ports[3]
        self.url = f"http://127.0.0.1:{self.web_port}/"
        self.procs = []
        self.daemon = self.spawn("daemon", [binary, "daemon", "--model", os.path.join(ROOT, "config/sample-model.json"),
                                            "--data-dir", os.path.join(self.tmp, "data"), "--ingest", self.ingest,
                                            "--updates", self.updates, "--snapshot", self.snapshot,
                                            "--log-level", "warning"])
        self.ctx = zmq.Context()
        self.snapshots = kit.SnapshotClient(self.ctx, self.snapshot, timeout=10)
        self.ingest_client = kit.IngestClient(self.ctx, self.ingest, timeout=10, name="browser-test")
        wait_for(lambda: self.ingest_client.ping(timeout=0.5), 30, "the daemon to answer PING")
        sample = os.path.join(ROOT, "samples/crm-sales-opportunities/sales_pipeline.csv")
        subprocess.run([binary, "send", sample, "--ingest", self.ingest, "--wait", self.snapshot],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
        self.next_id = 1
        # A team and a rep whose names are HTML: they must show as text.
        events = [self.deal(status="won", amount=5000 + 1000 * i, created="2017-06-0%dT00:00:00Z" % (i + 1),
                            closed="2017-06-2%dT00:00:00Z" % (i + 1)) for i in range(3)]
        events.append(self.deal(status="lost", amount=0, created="2017-06-05T00:00:00Z", closed="2017-06-28T00:00:00Z"))
        events.append(self.deal(status="open", amount=3000, created="2017-06-06T00:00:00Z", stage="Prospecting"))
        self.send(events)
        self.web = self.spawn("web", [binary, "web", "--listen", f"127.0.0.1:{self.web_port}",
                                      "--updates", self.updates, "--snapshot", self.snapshot,
                                      "--model", os.path.join(ROOT, "config/sample-model.json")])
        wait_for(lambda: self.http("/health")[0] == 200, 30, "dealstream web to answer /health")
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        options = webdriver.ChromeOptions()
        options.binary_location = self.chromium
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--window-size=1280,800", "--hide-scrollbars", "--force-device-scale-factor=1"):
            options.add_argument(arg)
        self.driver = webdriver.Chrome(service=Service(self.chromedriver), options=options)
        self.driver.set_window_size(1280, 800)
        self.driver.get(self.url)
        self.wait_current()

    # --- processes and the protocol ---
    def spawn(self, name, argv):
        log = open(os.path.join(self.tmp, name + ".log"), "wb")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        return p

    def deal(self, status, amount, created, closed=None, stage="Engaging", team=XSS_TEAM, owner=XSS_REP):
        self.next_id += 1
        return json.dumps({"kind": "deal", "source": TEST_SOURCE, "id": "t-%d" % self.next_id, "version": 1,
                           "deal": {"pipeline": "sales", "stage": stage, "status": status, "amount": amount,
                                    "currency": "USD", "owner": owner, "team": team, "lead_source": "webinar",
                                    "account": "acct-%d" % self.next_id, "created_at": created,
                                    "closed_at": closed}}).encode()

    def send(self, events):
        ack = self.ingest_client.send_events(events)
        assert not ack.rejected, ack.rejected
        return ack

    def published(self, log_seq: int):
        """The daemon's snapshot once it reflects log_seq."""
        def current():
            kv, end = self.snapshots.snapshot(b"")
            return (kv, end) if end["log_seq"] >= log_seq else None
        return wait_for(current, 30, f"the daemon to publish log_seq {log_seq}", interval=0.1)

    def http(self, path, method="GET", headers=None, port=None):
        req = urllib.request.Request(f"http://127.0.0.1:{port or self.web_port}{path}", method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)

    # --- the page ---
    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def page_log_seq(self):
        value = self.js("return document.getElementById('freshness').dataset.logSeq")
        return int(value) if value else -1

    def wait_current(self):
        """Waits until the page shows the daemon's current position (and the snapshot of it)."""
        _, end = self.snapshots.snapshot(b"")
        wait_for(lambda: self.page_log_seq() >= end["log_seq"], 20, f"the page to reach log_seq {end['log_seq']}")
        return self.published(end["log_seq"])

    def choose(self, period, dimension, key=None):
        from selenium.webdriver.support.ui import Select
        Select(self.driver.find_element("id", "dimension")).select_by_value(dimension)
        if dimension != "all":
            Select(self.driver.find_element("id", "key")).select_by_value(key)
        Select(self.driver.find_element("id", "period")).select_by_value(period)
        time.sleep(0.2)

    def tiles(self):
        return self.js("""
            const out = {};
            for (const t of document.querySelectorAll('#tiles .tile')) {
              const v = t.querySelector('.value');
              out[t.dataset.metric] = {value: v.dataset.value, text: v.textContent,
                detail: t.querySelector('.detail').textContent, changedAt: v.dataset.changedAt || null};
            }
            return out;""")

    def funnel(self):
        return self.js("""
            return [...document.querySelectorAll('#funnel .row')].map(r => ({stage: r.dataset.stage,
              reached: r.querySelector('.count').dataset.value,
              numerator: r.querySelector('.conv').dataset.numerator || null,
              denominator: r.querySelector('.conv').dataset.denominator || null,
              conversion: r.querySelector('.conv').dataset.value || null}));""")

    def board(self, dimension):
        return self.js("""
            return [...document.querySelectorAll('#board-' + arguments[0] + ' tbody tr')].map(tr => {
              const row = {key: tr.dataset.key, name: tr.cells[0].textContent};
              for (const td of [...tr.cells].slice(1)) row[td.dataset.column] = td.dataset.value;
              return row; });""", dimension)

    def screenshot(self, name, width, height):
        self.driver.set_window_size(width, height)
        time.sleep(0.5)
        path = os.path.join(self.screenshots, name)
        self.driver.save_screenshot(path)
        return path

    def close(self):
        try:
            self.driver.quit()
        except Exception:
            pass
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
        self.ctx.destroy(linger=0)


def number(text):
    return None if text in (None, "null") else float(text)


def expect_equal(what, shown, expected):
    assert shown == expected, f"{what}: page shows {shown!r}, daemon has {expected!r}"


def check_view(stack: Stack, kv, period, dimension, key):
    key = "*" if dimension == "all" else key
    tiles = stack.tiles()
    checked = 0
    for metric, tile in tiles.items():
        payload = kv.get(topic(metric, dimension, key, period))
        expected = None if payload is None else payload["value"]
        expect_equal(f"tile {metric} ({dimension}={key}, {period})", number(tile["value"]), expected)
        if payload is not None and metric in ("new_opportunities", "qualified_leads"):
            expect_equal(f"tile {metric} text", tile["text"], f"{int(expected):,}")
        if payload is not None and payload.get("denominator") is not None:
            assert f"{payload['numerator']:,}" in tile["detail"] and f"{payload['denominator']:,}" in tile["detail"], \
                f"tile {metric}: detail {tile['detail']!r} lacks {payload['numerator']} / {payload['denominator']}"
        checked += payload is not None
    assert checked >= 5, f"only {checked} tiles had values for {dimension}={key}, {period}"
    # The funnel: reached counts and conversions of pipeline 'sales'.
    rows = stack.funnel()
    conversion = kv.get(topic("stage_conversion:sales:Prospecting:Engaging", dimension, key, period))
    if conversion is None:
        assert rows == [], f"funnel shows {rows} but the daemon has no conversion series"
    else:
        expect_equal("funnel stages", [r["stage"] for r in rows], ["Prospecting", "Engaging"])
        expect_equal("funnel reached Prospecting", number(rows[0]["reached"]), conversion["denominator"])
        expect_equal("funnel reached Engaging", number(rows[1]["reached"]), conversion["numerator"])
        expect_equal("funnel conversion", number(rows[1]["conversion"]), conversion["value"])
    # The leaderboards: every row, every column.
    for board_dimension in ("owner", "team"):
        rows = stack.board(board_dimension)
        keys = {urllib.parse.unquote(t.split("/")[2]) for t in kv
                if t.split("/")[1:2] == [board_dimension]
                and t.split("/")[-1] == urllib.parse.quote(period, safe="-._~")
                and t.split("/")[0] in ("revenue", "win_rate", "new_opportunities", "sales_cycle_length")}
        expect_equal(f"{board_dimension} leaderboard rows ({period})", sorted(r["key"] for r in rows), sorted(keys))
        for r in rows:
            expect_equal(f"{board_dimension} leaderboard name", r["name"], r["key"])
            get = lambda m: kv.get(topic(m, board_dimension, r["key"], period))
            for column, metric, field in (("revenue", "revenue", "value"), ("win_rate", "win_rate", "value"),
                                          ("won", "revenue", "count"), ("deals", "new_opportunities", "value"),
                                          ("cycle", "sales_cycle_length", "value")):
                p = get(metric)
                expect_equal(f"{board_dimension} {r['key']} {column} ({period})", number(r[column]),
                             None if p is None else p.get(field))
        revenue = [number(r["revenue"]) for r in rows]
        present = [x for x in revenue if x is not None]
        assert present == sorted(present, reverse=True), f"{board_dimension} board not sorted by revenue: {revenue}"


# ---------------- the tests, in order ----------------

def test_values_match_the_snapshot(stack: Stack):
    kv, _ = stack.wait_current()
    teams = sorted({urllib.parse.unquote(t.split("/")[2]) for t in kv if t.startswith("revenue/team/")})
    reps = sorted({urllib.parse.unquote(t.split("/")[2]) for t in kv if t.startswith("revenue/owner/")})
    team = next(t for t in teams if t != XSS_TEAM)
    rep = reps[len(reps) // 2]
    choices = [("all", "all", None), ("2017-Q3", "team", team), ("2017-06", "owner", rep),
               ("2017-06", "source", "maven-crm"), ("2017-Q2", "all", None)]
    for period, dimension, key in choices:
        stack.choose(period, dimension, key)
        check_view(stack, kv, period, dimension, key)
    # The trend chart: revenue of everyone by month, one point per month with a value.
    stack.choose("all", "all")
    points = stack.js("return [...document.querySelectorAll('#trend circle')]"
                      ".map(c => [c.dataset.period, c.dataset.value])")
    expected = sorted((t.split("/")[3], p["value"]) for t, p in kv.items()
                      if t.startswith("revenue/all/") and re.fullmatch(r"\d{4}-\d{2}", t.split("/")[3])
                      and p["value"] is not None)
    expect_equal("trend points (revenue by month)", [(period, number(value)) for period, value in points], expected)
    assert len(points) >= 6, f"only {len(points)} trend points"
    # Sorting by clicking a header: win rate, descending then ascending.
    stack.choose("2017-Q2", "all")
    header = stack.driver.find_element("css selector", "#board-owner th[data-column=win_rate]")
    header.click()
    time.sleep(0.2)
    rates = [number(r["win_rate"]) for r in stack.board("owner")]
    rates = [x for x in rates if x is not None]
    assert rates == sorted(rates, reverse=True), f"win rate not sorted descending: {rates}"
    header.click()
    time.sleep(0.2)
    rates = [x for x in (number(r["win_rate"]) for r in stack.board("owner")) if x is not None]
    assert rates == sorted(rates), f"win rate not sorted ascending: {rates}"
    return f"{len(choices)} views (tiles, funnel, both leaderboards) and the trend equal the daemon's snapshot"


def test_html_labels_show_as_text(stack: Stack):
    stack.choose("2017-06", "team", XSS_TEAM)
    title = stack.driver.find_element("id", "title").text
    assert XSS_TEAM in title, f"title {title!r} lacks the team name as text"
    options = [o.text for o in stack.driver.find_elements("css selector", "#key option")]
    assert XSS_TEAM in options, "the team picker lacks the HTML-named team"
    names = [r["name"] for r in stack.board("team")]
    assert XSS_TEAM in names, f"teams board lacks the HTML-named team: {names}"
    assert XSS_REP in [r["name"] for r in stack.board("owner")], "reps board lacks the HTML-named rep"
    assert stack.js("return document.querySelectorAll('script').length") == 1, "a script element was injected"
    assert stack.js("return document.querySelectorAll('img[src=x]').length") == 0, "an img element was injected"
    assert stack.js("return window.__xss === undefined"), "an injected handler ran"
    from selenium.common.exceptions import NoAlertPresentException
    try:
        stack.driver.switch_to.alert
        raise AssertionError("an alert opened")
    except NoAlertPresentException:
        pass
    return "team <script>alert(1)</script> and rep <img onerror> shown as text in picker, title and boards"


def test_an_event_changes_its_tile_within_a_second(stack: Stack):
    stack.choose("2017-06", "team", XSS_TEAM)
    kv, _ = stack.wait_current()
    before = stack.tiles()
    page_id = stack.js("return window.dealstream.pageId || (window.dealstream.pageId = Math.random())")
    ack = stack.send([stack.deal(status="won", amount=12345, created="2017-06-10T00:00:00Z",
                                 closed="2017-06-20T00:00:00Z")])
    acked_ms = time.time() * 1000
    changed = wait_for(lambda: stack.tiles()["revenue"]["value"] != before["revenue"]["value"] and stack.tiles(),
                       1.0, "the revenue tile to change", interval=0.01)
    latency = float(changed["revenue"]["changedAt"]) - acked_ms
    assert latency < 1000, f"revenue tile changed {latency:.0f} ms after the ACK"
    assert stack.js("return window.dealstream.pageId") == page_id, "the page was reloaded"
    kv, _ = stack.published(ack.log_seq)
    wait_for(lambda: stack.page_log_seq() >= ack.log_seq, 2, "the page position")
    changed = stack.tiles()
    for metric in ("revenue", "new_opportunities", "win_rate"):
        payload = kv[topic(metric, "team", XSS_TEAM, "2017-06")]
        expect_equal(f"{metric} after the event", number(changed[metric]["value"]), payload["value"])
    assert number(changed["revenue"]["value"]) == number(before["revenue"]["value"]) + 12345
    flashed = stack.js("return document.querySelector('[data-metric=revenue] .value').classList.contains('flash')")
    assert flashed, "the changed value did not flash"
    return f"revenue tile changed {latency:.0f} ms after the ACK, no reload, flashed"


def test_read_only_and_headers(stack: Stack):
    for method in ("POST", "PUT", "DELETE"):
        status, _, _ = stack.http("/events", method=method)
        assert status == 405, f"{method} /events answered {status}"
    status, body, headers = stack.http("/")
    assert status == 200 and b"app.js" in body
    csp = headers.get("Content-Security-Policy", "")
    assert "script-src 'self'" in csp, f"no strict CSP: {csp!r}"
    status, body, _ = stack.http("/config.json")
    assert json.loads(body)["currency"] == "USD"
    return "POST/PUT/DELETE get 405; CSP script-src 'self'"


def test_basic_auth_and_exposure_warning(stack: Stack):
    secret = os.path.join(stack.tmp, "web-auth")
    with open(secret, "w") as f:
        f.write("manager:s3cret\n")
    os.chmod(secret, 0o600)
    port = free_port()
    web = stack.spawn("web-auth", [stack.binary, "web", "--listen", f"0.0.0.0:{port}", "--updates", stack.updates,
                                   "--snapshot", stack.snapshot, "--basic-auth-file", secret])
    try:
        wait_for(lambda: stack.http("/health", port=port)[0] == 401, 20, "the authenticated server")
        good = "Basic " + base64.b64encode(b"manager:s3cret").decode()
        bad = "Basic " + base64.b64encode(b"manager:wrong").decode()
        assert stack.http("/", headers={"Authorization": bad}, port=port)[0] == 401
        assert stack.http("/", headers={"Authorization": good}, port=port)[0] == 200
    finally:
        web.send_signal(signal.SIGTERM)
        web.wait(timeout=15)
    log = open(os.path.join(stack.tmp, "web-auth.log")).read()
    assert "not on loopback and has no basic auth" not in log, "warned although basic auth is on"
    port = free_port()
    open_web = stack.spawn("web-open", [stack.binary, "web", "--listen", f"0.0.0.0:{port}", "--updates", stack.updates,
                                        "--snapshot", stack.snapshot])
    try:
        wait_for(lambda: stack.http("/health", port=port)[0] == 200, 20, "the open server")
    finally:
        open_web.send_signal(signal.SIGTERM)
        open_web.wait(timeout=15)
    log = open(os.path.join(stack.tmp, "web-open.log")).read()
    assert "Dashboard is not on loopback and has no basic auth" in log, f"no warning in {log!r}"
    return "401 without or with wrong credentials, 200 with; warning on 0.0.0.0 without auth"


def test_screenshots(stack: Stack):
    stack.choose("2017-Q2", "all")
    wide = stack.screenshot("dashboard-1280x800.png", 1280, 800)
    height = stack.js("return document.documentElement.scrollHeight")
    full = stack.screenshot("dashboard-full-1280.png", 1280, max(800, height))
    stack.choose("2017-Q3", "team", "Celia Rouche")
    phone = stack.screenshot("dashboard-phone-390.png", 390, 844)
    stack.driver.set_window_size(1280, 800)
    for path in (wide, full, phone):
        assert os.path.getsize(path) > 10_000, f"{path} is suspiciously small"
    return f"{wide}, {full}, {phone}"


def test_stale_line_when_the_daemon_stops(stack: Stack):
    line = stack.driver.find_element("id", "freshness")
    assert "live" in line.get_attribute("class"), f"not live before the stop: {line.text!r}"
    stack.daemon.send_signal(signal.SIGTERM)
    stack.daemon.wait(timeout=30)
    wait_for(lambda: "stale" in line.get_attribute("class"), 8, "the freshness line to turn stale")
    assert line.text.startswith("Stale"), line.text
    stack.screenshot("dashboard-stale.png", 1280, 800)
    return f"freshness line: {line.text!r}"


TESTS = [test_values_match_the_snapshot, test_html_labels_show_as_text, test_an_event_changes_its_tile_within_a_second,
         test_read_only_and_headers, test_basic_auth_and_exposure_warning, test_screenshots,
         test_stale_line_when_the_daemon_stops]


def measure_latency(stack: Stack, count: int):
    """ACK -> tile change in the browser, over `count` events, one at a time."""
    stack.choose("2017-06", "team", XSS_TEAM)
    stack.wait_current()
    samples = []
    for i in range(count):
        before = stack.js("return window.dealstream.changedAt.new_opportunities || 0")
        stack.send([stack.deal(status="open", amount=100, created="2017-06-15T00:00:00Z", stage="Prospecting")])
        acked_ms = time.time() * 1000
        changed = wait_for(lambda: (stack.js("return window.dealstream.changedAt.new_opportunities || 0") or 0) > before
                           and stack.js("return window.dealstream.changedAt.new_opportunities"),
                           5, "the new_opportunities tile to change", interval=0.002)
        samples.append(changed - acked_ms)
        time.sleep(0.05)
    samples.sort()
    pick = lambda q: samples[min(len(samples) - 1, max(0, int(-(-q * len(samples) // 1)) - 1))]
    print(f"ACK -> tile change over {count} events: p50 {pick(0.5):.1f} ms, p99 {pick(0.99):.1f} ms, "
          f"min {samples[0]:.1f} ms, max {samples[-1]:.1f} ms")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary",
                        default=os.environ.get("DEALSTREAM_BINARY", os.path.join(ROOT, ".build/debug/dealstream")))
    parser.add_argument("--screenshots", default=None, help="folder for the PNGs (default: a new temporary folder)")
    parser.add_argument("--measure-latency", type=int, default=0, metavar="N")
    args = parser.parse_args()
    screenshots = args.screenshots or tempfile.mkdtemp(prefix="dealstream-screenshots.")
    os.makedirs(screenshots, exist_ok=True)
    try:
        stack = Stack(os.path.abspath(args.binary), screenshots)
    except Skip as e:
        print(f"SKIP browser tests: {e}")
        print("browser: 0 passed, 0 failed, 7 skipped")
        return 0
    passed = failed = 0
    try:
        if args.measure_latency:
            measure_latency(stack, args.measure_latency)
            return 0
        for test in TESTS:
            try:
                note = test(stack)
                passed += 1
                print(f"PASS {test.__name__}: {note}")
            except Exception as e:
                failed += 1
                print(f"FAIL {test.__name__}: {e}")
                traceback.print_exc(limit=3)
    finally:
        stack.close()
        if failed:
            print(f"logs kept in {stack.tmp}")
    print(f"screenshots in {screenshots}")
    print(f"browser: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
