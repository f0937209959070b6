"""Private network namespaces and veth links for integration tests.

Every namespace made here is called ``kbgpi-<pid>-<n>[-<hint>]``: the pid of
the Python process that made it, so a later run can tell namespaces of a
killed run (pid gone) from those of a run that is still going.

    with Netns(hint="bird") as a, Netns(hint="gobgp") as b:
        lk = link(a, b, "10.0.0.1", "10.0.0.2", "fd00::1", "fd00::2")
        a.run(["ping", "-c1", "-W1", lk.b_v4])

Only loopback and veth links between namespaces made here are ever used.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import pytest

PREFIX = "kbgpi-"
_NAME_RE = re.compile(r"^kbgpi-(\d+)-")
_counter = itertools.count(1)
_counter_lock = threading.Lock()


class CommandError(subprocess.CalledProcessError):
    """CalledProcessError whose text includes the command's output."""

    def __str__(self) -> str:
        cmd = self.cmd if isinstance(self.cmd, str) else shlex.join(map(str, self.cmd))
        out = (self.stdout or "").strip()
        err = (self.stderr or "").strip()
        text = f"command {cmd!r} exited with status {self.returncode}"
        if out:
            text += f"\n--- stdout ---\n{out[-4000:]}"
        if err:
            text += f"\n--- stderr ---\n{err[-4000:]}"
        return text


def sh(cmd: Sequence[str], *, check: bool = True, timeout: float = 30,
       input: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command in the current (root) namespace, output captured as text."""
    cmd = [str(c) for c in cmd]
    p = subprocess.run(cmd, text=True, capture_output=True, timeout=timeout, input=input,
                       env=env, stdin=None if input is not None else subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise CommandError(p.returncode, cmd, p.stdout, p.stderr)
    return p


def list_netns() -> list[str]:
    """Names of all named network namespaces (``ip netns list``)."""
    out = sh(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_netns_processes(name: str, timeout: float = 5.0) -> None:
    """SIGKILL every process in namespace NAME until none is left."""
    end = time.monotonic() + timeout
    while True:
        out = sh(["ip", "netns", "pids", name], check=False).stdout.split()
        pids = [int(p) for p in out if p.isdigit() and int(p) != os.getpid()]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # Reap any of them that are our own children.
        for pid in pids:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        if time.monotonic() > end:
            return
        time.sleep(0.05)


def _delete_netns_by_name(name: str) -> None:
    _kill_netns_processes(name)
    for _ in range(20):
        if sh(["ip", "netns", "delete", name], check=False).returncode == 0 \
                or name not in list_netns():
            return
        time.sleep(0.1)


def cleanup_stale(prefix: str = PREFIX) -> list[str]:
    """Delete ``kbgpi-`` namespaces whose creating process is gone (left by a
    killed run), killing what still runs in them.  Returns the names removed.
    Namespaces of live processes (a concurrent run) are left alone."""
    removed = []
    for name in list_netns():
        if not name.startswith(prefix):
            continue
        m = _NAME_RE.match(name)
        if m and _pid_alive(int(m.group(1))):
            continue
        _delete_netns_by_name(name)
        removed.append(name)
    return removed


_availability: tuple[bool, str] | None = None


def netns_available() -> tuple[bool, str]:
    """(True, "") when namespaces can be made here, else (False, reason)."""
    global _availability
    if _availability is not None:
        return _availability
    if os.geteuid() != 0:
        _availability = (False, f"needs root for network namespaces (euid {os.geteuid()})")
    elif shutil.which("ip") is None:
        _availability = (False, "iproute2 'ip' command not found")
    else:
        probe = f"{PREFIX}{os.getpid()}-probe"
        p = sh(["ip", "netns", "add", probe], check=False)
        if p.returncode != 0:
            _availability = (False, f"'ip netns add' failed: {p.stderr.strip() or p.returncode}")
        else:
            sh(["ip", "netns", "delete", probe], check=False)
            _availability = (True, "")
    return _availability


def require_netns() -> None:
    """pytest.skip with a clear reason when namespaces cannot be made."""
    ok, reason = netns_available()
    if not ok:
        pytest.skip(reason)


class Netns:
    """One private network namespace with loopback up and IPv6 DAD off.

    ``run`` / ``popen`` execute inside it (``ip netns exec``); ``delete``
    kills everything still running in it and removes it.  Usable as a
    context manager."""

    def __init__(self, hint: str | None = None, *, forwarding: bool = False):
        with _counter_lock:
            n = next(_counter)
        name = f"{PREFIX}{os.getpid()}-{n}"
        if hint:
            name += "-" + re.sub(r"[^A-Za-z0-9_.-]", "", hint)[:16]
        self.name = name
        self.deleted = False
        self._procs: list[subprocess.Popen] = []
        self._finalizers: list[Callable[[], None]] = []
        self._ifcount = itertools.count(0)
        sh(["ip", "netns", "add", name])
        try:
            for key in ("all", "default"):
                self.sysctl(f"net.ipv6.conf.{key}.accept_dad", 0)
            if forwarding:
                self.sysctl("net.ipv4.ip_forward", 1)
                self.sysctl("net.ipv6.conf.all.forwarding", 1)
            self.ip("link", "set", "lo", "up")
        except BaseException:
            self.delete()
            raise

    # ---- context manager ------------------------------------------------
    def __enter__(self) -> "Netns":
        return self

    def __exit__(self, *exc) -> None:
        self.delete()

    def __repr__(self) -> str:
        return f"Netns({self.name!r})"

    # ---- running things -------------------------------------------------
    def wrap(self, cmd: Sequence[str] | str) -> list[str]:
        """The argv that runs CMD inside the namespace (a str runs via sh -c)."""
        if isinstance(cmd, str):
            cmd = ["sh", "-c", cmd]
        return ["ip", "netns", "exec", self.name, *map(str, cmd)]

    def run(self, cmd: Sequence[str] | str, *, check: bool = True, timeout: float = 30,
            input: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
        """Run CMD inside the namespace and wait; output captured as text.
        Raises CommandError (with the output) on a non-zero exit when check."""
        return sh(self.wrap(cmd), check=check, timeout=timeout, input=input, env=env)

    def popen(self, cmd: Sequence[str] | str, *, log: str | os.PathLike | None = None,
              hostname: str | None = None, env: dict | None = None,
              **kw) -> subprocess.Popen:
        """Start CMD inside the namespace without waiting.  LOG: file that gets
        stdout and stderr (appended).  HOSTNAME: run in a private UTS namespace
        with that host name (daemons that put the host name on the wire then
        do not depend on the machine).  Every step execs, so ``.pid`` is the
        command's own pid.  Other keyword arguments go to subprocess.Popen."""
        if isinstance(cmd, str):
            cmd = ["sh", "-c", cmd]
        cmd = [str(c) for c in cmd]
        if hostname:
            cmd = ["unshare", "--uts", "--", "sh", "-c",
                   'hostname "$1" && shift && exec "$@"', "sh", hostname, *cmd]
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("start_new_session", True)
        logf = None
        if log is not None:
            logf = open(log, "ab")
            kw.setdefault("stdout", logf)
            kw.setdefault("stderr", subprocess.STDOUT)
        try:
            p = subprocess.Popen(self.wrap(cmd), env=env, **kw)
        finally:
            if logf is not None:
                logf.close()
        self._procs.append(p)
        return p

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """``ip -n NAME ARGS``."""
        return sh(["ip", "-n", self.name, *map(str, args)], check=check)

    def sysctl(self, key: str, value) -> None:
        self.run(["sysctl", "-q", "-w", f"{key}={value}"])

    def pids(self) -> list[int]:
        """Pids of every process whose network namespace this is."""
        out = sh(["ip", "netns", "pids", self.name], check=False).stdout.split()
        return [int(p) for p in out if p.isdigit()]

    def exists(self) -> bool:
        return self.name in list_netns()

    # ---- addresses ------------------------------------------------------
    def addresses(self, family: int | None = None, *, ifname: str | None = None,
                  scope: str = "global") -> list[str]:
        """Addresses (no prefix length) of SCOPE, optionally of one family (4/6)
        or one interface, in the order the kernel lists them."""
        args = ["-j"]
        if family:
            args.append(f"-{family}")
        args += ["addr", "show"]
        if ifname:
            args += ["dev", ifname]
        found = []
        for dev in json.loads(self.ip(*args).stdout or "[]"):
            for a in dev.get("addr_info", []):
                if a.get("scope") == scope and "local" in a:
                    found.append(a["local"])
        return found

    def source_address(self, destination: str) -> str | None:
        """The address the kernel would use as source towards DESTINATION."""
        p = self.ip("-j", "route", "get", destination, check=False)
        if p.returncode != 0:
            return None
        routes = json.loads(p.stdout or "[]")
        return routes[0].get("prefsrc") if routes else None

    def interface_towards(self, destination: str) -> str | None:
        p = self.ip("-j", "route", "get", destination, check=False)
        if p.returncode != 0:
            return None
        routes = json.loads(p.stdout or "[]")
        return routes[0].get("dev") if routes else None

    def add_route(self, prefix: str, via: str) -> None:
        self.ip("route", "replace", prefix, "via", via)

    def next_ifname(self) -> str:
        return f"veth{next(self._ifcount)}"

    # ---- teardown -------------------------------------------------------
    def add_finalizer(self, fn: Callable[[], None]) -> None:
        """FN runs first when the namespace is deleted (errors ignored)."""
        self._finalizers.append(fn)

    def delete(self) -> None:
        """Run finalizers, SIGKILL every process left in the namespace, reap
        our own children and delete the namespace.  Idempotent."""
        if self.deleted:
            return
        self.deleted = True
        for fn in reversed(self._finalizers):
            try:
                fn()
            except Exception:
                pass
        self._finalizers.clear()
        _kill_netns_processes(self.name)
        for p in self._procs:
            if p.poll() is None:
                try:
                    p.kill()
                except ProcessLookupError:
                    pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._procs.clear()
        _delete_netns_by_name(self.name)


def _split_addr(addr: str | None, default_len: int) -> tuple[str | None, int]:
    if addr is None:
        return None, default_len
    if "/" in addr:
        a, plen = addr.split("/", 1)
        return str(ipaddress.ip_address(a)), int(plen)
    return str(ipaddress.ip_address(addr)), default_len


@dataclass
class Link:
    """One veth pair between two namespaces (plain addresses, no /len)."""
    a: Netns
    b: Netns
    a_ifname: str
    b_ifname: str
    a_v4: str | None
    b_v4: str | None
    a_v6: str | None
    b_v6: str | None

    def set_up(self, up: bool = True) -> None:
        """Bring the a-side of the pair up or down (carrier goes with it)."""
        self.a.ip("link", "set", self.a_ifname, "up" if up else "down")

    def set_down(self) -> None:
        self.set_up(False)

    def link_local(self, side: str = "a") -> str | None:
        ns, ifname = (self.a, self.a_ifname) if side == "a" else (self.b, self.b_ifname)
        found = ns.addresses(6, ifname=ifname, scope="link")
        return found[0] if found else None


def link(a: Netns, b: Netns, a_v4: str | None, b_v4: str | None,
         a_v6: str | None = None, b_v6: str | None = None, *,
         v4_prefixlen: int = 24, v6_prefixlen: int = 64,
         a_ifname: str | None = None, b_ifname: str | None = None,
         a_mac: str | None = None, b_mac: str | None = None) -> Link:
    """Join A and B with a veth pair, give each end its addresses (a
    "addr/len" form overrides the prefix length; IPv6 added with nodad) and
    bring both ends up.  Interface names default to vethN, numbered per
    namespace; they are created directly inside the namespaces."""
    a_ifname = a_ifname or a.next_ifname()
    b_ifname = b_ifname or b.next_ifname()
    cmd = ["ip", "link", "add", "name", a_ifname]
    if a_mac:
        cmd += ["address", a_mac]
    cmd += ["netns", a.name, "type", "veth", "peer", "name", b_ifname]
    if b_mac:
        cmd += ["address", b_mac]
    cmd += ["netns", b.name]
    sh(cmd)
    plain = {}
    for ns, ifname, v4, v6, side in ((a, a_ifname, a_v4, a_v6, "a"),
                                     (b, b_ifname, b_v4, b_v6, "b")):
        ns.sysctl(f"net.ipv6.conf.{ifname}.accept_dad", 0)
        addr4, len4 = _split_addr(v4, v4_prefixlen)
        addr6, len6 = _split_addr(v6, v6_prefixlen)
        if addr4:
            ns.ip("addr", "add", f"{addr4}/{len4}", "dev", ifname)
        if addr6:
            ns.ip("addr", "add", f"{addr6}/{len6}", "dev", ifname, "nodad")
        ns.ip("link", "set", ifname, "up")
        plain[side] = (addr4, addr6)
    return Link(a, b, a_ifname, b_ifname, plain["a"][0], plain["b"][0],
                plain["a"][1], plain["b"][1])


class RouteNamespace(Netns):
    """A namespace to write routes into (see route_namespace): ``peer`` is
    the namespace holding the far end of its veth link."""

    peer: Netns | None = None


@contextlib.contextmanager
def route_namespace(hint: str = "routes", *, v6: bool = True) -> Iterator[RouteNamespace]:
    """A private namespace for kernel route tests and benchmarks: veth
    ``kv0`` with 10.80.0.1/24 (and fd00:80::1/64) up, its peer ``kv1``
    (10.80.0.2, fd00:80::2) in a second private namespace so the link has
    carrier.  Routes ``via 10.80.0.2`` (any address of 10.80.0.0/24) are
    accepted.  Both namespaces are deleted at exit, also on failure.
    Shared by tests/integration/test_kernel_*.py and bench/."""
    near = RouteNamespace(hint)
    try:
        far = Netns(f"{hint}-far")
        near.peer = far
        near.add_finalizer(far.delete)
        link(near, far, "10.80.0.1", "10.80.0.2",
             "fd00:80::1" if v6 else None, "fd00:80::2" if v6 else None,
             a_ifname="kv0", b_ifname="kv1")
        yield near
    finally:
        near.delete()


# --------------------------------------------------------------------------
# pytest fixtures (imported by conftest.py)
# --------------------------------------------------------------------------

class NetnsFactory:
    """Callable handed out by the ``netns_factory`` fixture:
    ``netns_factory(hint=None, **kw) -> Netns``.  Everything it made is
    deleted at teardown, also when the test failed."""

    def __init__(self) -> None:
        self.created: list[Netns] = []

    def __call__(self, hint: str | None = None, **kw) -> Netns:
        ns = Netns(hint, **kw)
        self.created.append(ns)
        return ns

    link = staticmethod(link)

    def cleanup(self) -> None:
        for ns in reversed(self.created):
            ns.delete()
        self.created.clear()


@pytest.fixture
def netns_factory() -> Iterator[NetnsFactory]:
    """Factory of private namespaces, all removed at teardown (also on
    failure).  Skips the test when not root or ``ip netns`` does not work."""
    require_netns()
    factory = NetnsFactory()
    try:
        yield factory
    finally:
        factory.cleanup()


@pytest.fixture(scope="session")
def netns_stale_cleanup() -> Iterator[list[str]]:
    """Session-wide: remove ``kbgpi-`` namespaces left by killed runs, once
    at the start; yields the names removed."""
    ok, _ = netns_available()
    yield cleanup_stale() if ok else []
