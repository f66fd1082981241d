"""Network namespaces made by the test itself: a daemon host and worker hosts on one subnet.

    with Cluster(workers=2) as c:          # needs root and iproute2's `ip`
        d = c.daemon_host                  # Host: name "ds-d-<rand>", address 10.77.0.1
        p = c.worker_hosts[0].popen([...]) # runs inside the namespace (`ip netns exec`)
        with d.entered():                  # this thread's sockets are made inside D
            ...

The daemon host's namespace holds a bridge (`br0`, 10.77.0.1/24); each worker host is its own
namespace with one end of a veth pair (`eth0`, 10.77.0.2/24, .3, ...) whose other end is on
the bridge. Loopback is up everywhere. Nothing is added to the namespace the test starts in
except, for an instant, the veth ends before they are moved.

Teardown always runs (context exit, atexit, SIGTERM/SIGINT): every process started here is
killed (its whole process group), then whatever else still runs inside a namespace
(`ip netns pids`), then the namespaces are deleted, which deletes their veth ends.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time

CLONE_NEWNET = 0x40000000
SUBNET = "10.77.0"


class NetnsUnavailable(Exception):
    """Why namespaces cannot be made here (not root, no `ip`); the caller prints it as a SKIP."""


def unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (ip netns add)"
    if shutil.which("ip") is None:
        return "needs iproute2's ip (scripts/install-deps installs it)"
    return None


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("ip %s: %s" % (" ".join(args), (r.stderr or r.stdout).strip()))
    return r


_libc = ctypes.CDLL(None, use_errno=True)
_enter_lock = threading.Lock()


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "setns: " + os.strerror(e))


class Host:
    """One network namespace and the processes started in it."""

    def __init__(self, name: str, address: str):
        self.name, self.address = name, address
        self.procs: list[subprocess.Popen] = []

    def popen(self, args, **kw) -> subprocess.Popen:
        """Starts `args` inside this namespace, in a process group of its own.
        `ip netns exec` execs the command, so the Popen's pid is the command's pid."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(["ip", "netns", "exec", self.name, *args], start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def run(self, args, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(["ip", "netns", "exec", self.name, *args], timeout=timeout, **kw)

    @contextlib.contextmanager
    def entered(self):
        """Moves the calling thread into this namespace for the block (sockets made and
        threads started inside it stay there), and back to where it was afterwards."""
        with _enter_lock:
            home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
            target = os.open("/run/netns/" + self.name, os.O_RDONLY)
            try:
                _setns(target)
                try:
                    yield self
                finally:
                    _setns(home)
            finally:
                os.close(target)
                os.close(home)

    def enter(self):
        """Moves the calling thread into this namespace for good (until `leave`)."""
        self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open("/run/netns/" + self.name, os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)

    def leave(self):
        home = getattr(self, "_home", None)
        if home is not None:
            _setns(home)
            os.close(home)
            self._home = None

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, signal.SIGCONT)
                    os.killpg(p.pid, signal.SIGKILL)
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(5)
        # anything else still inside (a daemon's spawned workers, a stray child)
        r = ip("netns", "pids", self.name, check=False)
        for pid in r.stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)


class Cluster:
    """A daemon host D and `workers` worker hosts W1..Wn, made on enter, removed on exit."""

    def __init__(self, workers: int = 2, tag: str | None = None):
        reason = unavailable_reason()
        if reason:
            raise NetnsUnavailable(reason)
        self.tag = tag or secrets.token_hex(3)
        self.daemon_host = Host("ds-d-" + self.tag, SUBNET + ".1")
        self.worker_hosts = [Host("ds-w%d-%s" % (i + 1, self.tag), "%s.%d" % (SUBNET, i + 2)) for i in range(workers)]
        self._made: list[str] = []
        self._torn = False

    @property
    def hosts(self) -> list[Host]:
        return [self.daemon_host, *self.worker_hosts]

    def __enter__(self) -> "Cluster":
        atexit.register(self.teardown)
        self._old_handlers = {}
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self._old_handlers[sig] = signal.getsignal(sig)
            signal.signal(sig, self._on_signal)
        try:
            self._build()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc):
        self.teardown()
        return False

    def _on_signal(self, signum, frame):
        self.teardown()
        raise SystemExit(128 + signum)

    def _build(self):
        d = self.daemon_host.name
        for h in self.hosts:
            ip("netns", "add", h.name)
            self._made.append(h.name)
            ip("-n", h.name, "link", "set", "lo", "up")
        ip("-n", d, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
        ip("-n", d, "addr", "add", self.daemon_host.address + "/24", "dev", "br0")
        ip("-n", d, "link", "set", "br0", "up")
        for i, w in enumerate(self.worker_hosts):
            a, b = "dsv%s%da" % (self.tag, i), "dsv%s%db" % (self.tag, i)  # <= 15 characters
            ip("link", "add", a, "type", "veth", "peer", "name", b)
            try:
                ip("link", "set", a, "netns", d)
                ip("link", "set", b, "netns", w.name)
            except BaseException:
                ip("link", "del", a, check=False)
                raise
            ip("-n", d, "link", "set", a, "master", "br0")
            ip("-n", d, "link", "set", a, "up")
            ip("-n", w.name, "link", "set", b, "name", "eth0")
            ip("-n", w.name, "addr", "add", w.address + "/24", "dev", "eth0")
            ip("-n", w.name, "link", "set", "eth0", "up")

    def teardown(self):
        if self._torn:
            return
        self._torn = True
        for h in self.hosts:
            h.leave()
        for h in self.hosts:
            with contextlib.suppress(Exception):
                h.kill_all()
        for name in reversed(self._made):
            ip("netns", "del", name, check=False)
        self._made.clear()
        for sig, handler in getattr(self, "_old_handlers", {}).items():
            with contextlib.suppress(Exception):
                signal.signal(sig, handler)
        with contextlib.suppress(Exception):
            atexit.unregister(self.teardown)


def leftover_namespaces(tag: str | None = None) -> list[str]:
    """Namespaces of ours still present (for the self-check of teardown)."""
    r = ip("netns", "list", check=False)
    names = [line.split()[0] for line in r.stdout.splitlines() if line.strip()]
    return [n for n in names if n.startswith("ds-") and (tag is None or n.endswith("-" + tag))]


if __name__ == "__main__":
    # Self-check: make a cluster, reach D from each worker host over tcp, tear down, nothing left.
    import socket
    import sys

    reason = unavailable_reason()
    if reason:
        print("SKIP: netns self-check %s" % reason)
        sys.exit(0)
    with Cluster(workers=2) as c:
        tag = c.tag
        d = c.daemon_host
        with d.entered():
            srv = socket.socket()
            srv.bind((d.address, 0))
            srv.listen()
        port = srv.getsockname()[1]
        for w in c.worker_hosts:
            r = w.run(["python3", "-c", "import socket; s=socket.create_connection(('%s', %d), 3); print(s.getsockname()[0])"
                       % (d.address, port)])
            conn, _ = srv.accept()
            conn.close()
            assert r.returncode == 0 and r.stdout.strip() == w.address, (r.returncode, r.stdout, r.stderr)
            print("PASS %s (%s) reaches %s:%d" % (w.name, w.address, d.address, port))
        srv.close()
        sleeper = c.worker_hosts[0].popen(["sleep", "600"])
    assert sleeper.poll() is not None, "a process outlived the teardown"
    left = leftover_namespaces(tag)
    assert not left, "namespaces left behind: %s" % left
    print("PASS teardown: no namespace and no process left")
