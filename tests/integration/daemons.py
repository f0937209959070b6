"""Drivers for real BGP daemons (BIRD 2, GoBGP, FRR, ExaBGP) with one interface.

    bird = Bird(ns_a, "10.0.0.1", 65001, tmp_path)
    bird.add_neighbor("10.0.0.2", 65002)
    bird.originate("198.51.100.0/24", med=10, communities=["65000:1"])
    bird.start()
    bird.wait_established("10.0.0.2")
    routes = bird.wait_routes(1, "10.0.0.2")   # {"203.0.113.0/24": {"as_path": [65002], ...}}

Every daemon accepts and exports everything by default.  Its files
(configuration, control sockets, pid files, logs) live in
``workdir/<kind>-<router_id>/``.  Routes come back in kbgp's JSON shape:
``as_path`` (flat list of ints), ``next_hop`` (the global one for IPv6),
``origin`` ("igp"/"egp"/"incomplete") always; ``med``, ``local_pref``,
``communities`` ("a:b" or a well-known name), ``large_communities``
("a:b:c"), ``originator_id``, ``cluster_list`` only when present.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from .netns import Netns

WELL_KNOWN_COMMUNITIES: dict[int, str] = {
    0xFFFF0000: "graceful-shutdown",
    0xFFFF0001: "accept-own",
    0xFFFF029A: "blackhole",
    0xFFFFFF01: "no-export",
    0xFFFFFF02: "no-advertise",
    0xFFFFFF03: "no-export-subconfed",
    0xFFFFFF04: "no-peer",
}
WELL_KNOWN_VALUES: dict[str, int] = {v: k for k, v in WELL_KNOWN_COMMUNITIES.items()}

RFC_STATES = ("idle", "connect", "active", "opensent", "openconfirm", "established")
QUERY_TIMEOUT = 10.0      # seconds for one CLI query (a frozen daemon never answers)


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------

def norm_prefix(prefix: str) -> str:
    return str(ipaddress.ip_network(prefix, strict=False))


def norm_addr(addr: str) -> str:
    return str(ipaddress.ip_address(addr.split("%")[0]))


def family_of(prefix_or_addr: str) -> str:
    return "ipv6" if ":" in prefix_or_addr else "ipv4"


def community_str(high: int, low: int) -> str:
    return WELL_KNOWN_COMMUNITIES.get((high << 16) | low, f"{high}:{low}")


def community_pair(text: str) -> tuple[int, int]:
    if text in WELL_KNOWN_VALUES:
        v = WELL_KNOWN_VALUES[text]
        return v >> 16, v & 0xFFFF
    high, low = text.split(":")
    return int(high), int(low)


def large_triple(text: str) -> tuple[int, int, int]:
    a, b, c = text.split(":")
    return int(a), int(b), int(c)


def _norm_family(f: str) -> str:
    f = f.lower()
    if f in ("ipv4", "ipv4-unicast", "ipv4 unicast", "inet"):
        return "ipv4"
    if f in ("ipv6", "ipv6-unicast", "ipv6 unicast", "inet6"):
        return "ipv6"
    raise ValueError(f"unsupported address family {f!r} (ipv4 / ipv6 unicast only)")


def wait_until(predicate: Callable[[], object], timeout: float, what: str,
               interval: float = 0.2, on_timeout: Callable[[], str] | None = None):
    """Poll PREDICATE until it returns something truthy (returned); else
    TimeoutError naming WHAT (plus on_timeout()'s text)."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= end:
            extra = on_timeout() if on_timeout else ""
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}" +
                               (f"\n{extra}" if extra else ""))
        time.sleep(interval)


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Neighbor:
    address: str
    asn: int
    index: int
    passive: bool = False
    password: str | None = None
    port: int = 179
    local_address: str | None = None
    hold_time: int | None = None
    multihop: int | None = None
    families: tuple[str, ...] = ("ipv4", "ipv6")
    graceful_restart: bool = False
    route_reflector_client: bool = False
    import_all: bool = True
    export_all: bool = True


@dataclass
class Route:
    prefix: str
    next_hop: str | None = None
    communities: tuple[str, ...] = ()
    med: int | None = None
    large_communities: tuple[str, ...] = ()
    origin: str = "igp"
    index: int = 0

    @property
    def family(self) -> str:
        return family_of(self.prefix)


def route_dict(*, as_path, next_hop, origin, med=None, local_pref=None, communities=(),
               large_communities=(), originator_id=None, cluster_list=()) -> dict:
    """One route in kbgp's JSON shape (absent attributes left out)."""
    d = {"as_path": [int(a) for a in as_path], "next_hop": next_hop, "origin": origin}
    if med is not None:
        d["med"] = int(med)
    if local_pref is not None:
        d["local_pref"] = int(local_pref)
    if communities:
        d["communities"] = list(communities)
    if large_communities:
        d["large_communities"] = list(large_communities)
    if originator_id is not None:
        d["originator_id"] = originator_id
    if cluster_list:
        d["cluster_list"] = list(cluster_list)
    return d


# --------------------------------------------------------------------------
# Common driver
# --------------------------------------------------------------------------

class Daemon:
    """Shared part of every driver.  Subclasses implement the hooks
    ``_start``, ``_graceful_stop``, ``_apply_originate``, ``_apply_withdraw``,
    ``session_state``, ``received_routes`` and ``request_refresh``."""

    kind = "daemon"
    binaries: tuple[str, ...] = ()
    instances: list["Daemon"] = []       # every driver made in this process (leak checks)

    @classmethod
    def missing(cls) -> str | None:
        """Why this daemon cannot run here (a missing program), else None."""
        for b in cls.binaries:
            if (os.path.isabs(b) and not os.access(b, os.X_OK)) or \
                    (not os.path.isabs(b) and shutil.which(b) is None):
                return f"{cls.kind}: {b} not found"
        return None

    def __init__(self, netns: Netns, router_id: str, asn: int, workdir: str | os.PathLike):
        self.netns = netns
        self.router_id = norm_addr(router_id)
        self.asn = int(asn)
        base = Path(workdir) / f"{self.kind}-{self.router_id}"
        d, n = base, 1
        while d.exists():
            n += 1
            d = base.with_name(f"{base.name}-{n}")
        d.mkdir(parents=True)
        self.dir = d
        self.neighbors: dict[str, Neighbor] = {}
        self.routes: dict[str, Route] = {}
        self.procs: list[subprocess.Popen] = []
        self.running = False
        self.frozen = False
        self.all_pids: list[int] = []        # every process ever started (for leak checks)
        self._route_counter = 0
        self.hostname = f"kbgpi-{self.kind}-{self.router_id.replace('.', '-')}"
        netns.add_finalizer(self._finalize)
        Daemon.instances.append(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.router_id}, AS{self.asn}, {self.netns.name})"

    # ---- configuration ----------------------------------------------------
    def add_neighbor(self, address: str, asn: int, *, passive: bool = False,
                     password: str | None = None, port: int = 179,
                     local_address: str | None = None, hold_time: int | None = None,
                     multihop: int | None = None, families: Iterable[str] = ("ipv4", "ipv6"),
                     graceful_restart: bool = False, route_reflector_client: bool = False,
                     import_all: bool = True, export_all: bool = True) -> Neighbor:
        """Configure one BGP neighbor (before start()).  PASSWORD is the plain
        TCP-MD5 key.  HOLD_TIME in seconds (keepalive = hold/3).  MULTIHOP is
        the TTL for eBGP multihop.  FAMILIES: "ipv4" and/or "ipv6" (unicast)."""
        if self.running:
            raise RuntimeError(f"{self}: add_neighbor() must come before start()")
        address = norm_addr(address)
        if address in self.neighbors:
            raise ValueError(f"{self}: neighbor {address} configured twice")
        fams = tuple(dict.fromkeys(_norm_family(f) for f in families))
        if not fams:
            raise ValueError("families must not be empty")
        if route_reflector_client and int(asn) != self.asn:
            raise ValueError("route_reflector_client needs an iBGP neighbor")
        nb = Neighbor(address=address, asn=int(asn), index=len(self.neighbors) + 1,
                      passive=passive, password=password, port=int(port),
                      local_address=norm_addr(local_address) if local_address else None,
                      hold_time=hold_time, multihop=multihop, families=fams,
                      graceful_restart=graceful_restart,
                      route_reflector_client=route_reflector_client,
                      import_all=import_all, export_all=export_all)
        self._check_neighbor(nb)
        self.neighbors[address] = nb
        return nb

    def _check_neighbor(self, nb: Neighbor) -> None:
        """Subclass hook: refuse options the daemon cannot do."""

    def neighbor(self, address: str) -> Neighbor:
        try:
            return self.neighbors[norm_addr(address)]
        except KeyError:
            raise KeyError(f"{self}: no neighbor {address}") from None

    def originate(self, prefix: str, next_hop: str | None = None, communities: Iterable[str] = (),
                  med: int | None = None, large_communities: Iterable[str] = (),
                  *, origin: str = "igp") -> Route:
        """Announce PREFIX to every neighbor of its family (before or after
        start; after start it is applied live).  NEXT_HOP None means the
        daemon's own address.  Originating a prefix again replaces it."""
        if origin not in ("igp", "egp", "incomplete"):
            raise ValueError(f"bad origin {origin!r}")
        self._route_counter += 1
        route = Route(prefix=norm_prefix(prefix),
                      next_hop=norm_addr(next_hop) if next_hop else None,
                      communities=tuple(communities), med=med,
                      large_communities=tuple(large_communities), origin=origin,
                      index=self._route_counter)
        for c in route.communities:
            community_pair(c)           # validate early
        for lc in route.large_communities:
            large_triple(lc)
        old = self.routes.get(route.prefix)
        self.routes[route.prefix] = route
        if self.running:
            self._apply_originate(route, old)
        return route

    def withdraw(self, prefix: str) -> None:
        """Stop announcing PREFIX (applied live after start)."""
        prefix = norm_prefix(prefix)
        route = self.routes.pop(prefix, None)
        if route is None:
            raise KeyError(f"{self}: {prefix} is not originated")
        if self.running:
            self._apply_withdraw(route)

    # ---- process control --------------------------------------------------
    def start(self) -> None:
        if self.running:
            raise RuntimeError(f"{self} already running")
        if not self.neighbors:
            raise RuntimeError(f"{self}: no neighbor configured")
        self.running = True
        try:
            self._start()
        except BaseException:
            self.kill()
            raise

    def stop(self, timeout: float = 15) -> None:
        """Graceful stop with the daemon's own shutdown (it sends a Cease
        NOTIFICATION to its established peers); SIGKILL after TIMEOUT."""
        if not self.running:
            return
        if self.frozen:
            self.thaw()
        try:
            self._graceful_stop()
        except Exception:
            pass
        end = time.monotonic() + timeout
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def kill(self) -> None:
        """SIGKILL every process of the daemon (no NOTIFICATION is sent)."""
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.kill()
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._after_exit([p.pid for p in self.procs])
        self.procs.clear()
        self.running = False
        self.frozen = False

    def restart(self) -> None:
        """stop() then start() with the current configuration and routes."""
        self.stop()
        self.start()

    def _signal_all(self, sig: int) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.kill(p.pid, sig)

    def freeze(self) -> None:
        """SIGSTOP every process of the daemon: it stops sending keepalives
        and answering its control socket (queries on it then time out)."""
        self._signal_all(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        """SIGCONT after freeze()."""
        self._signal_all(signal.SIGCONT)
        self.frozen = False

    def alive(self) -> bool:
        return bool(self.procs) and all(p.poll() is None for p in self.procs)

    def _finalize(self) -> None:
        self.kill()

    def _after_exit(self, pids: list[int]) -> None:
        """Subclass hook: tidy what a killed daemon left behind."""

    def _spawn(self, cmd: list[str], logname: str, **kw) -> subprocess.Popen:
        p = self.netns.popen(cmd, log=self.dir / logname, hostname=self.hostname, **kw)
        self.procs.append(p)
        self.all_pids.append(p.pid)
        return p

    def _check_alive(self) -> None:
        for p in self.procs:
            if p.poll() is not None:
                raise RuntimeError(f"{self}: process {p.args[-1] if p.args else p.pid} exited "
                                   f"with {p.returncode}\n{_tail(self.log())}")

    # ---- observation --------------------------------------------------------
    def session_state(self, address: str) -> str:
        raise NotImplementedError

    def received_routes(self, address: str | None = None) -> dict[str, dict]:
        raise NotImplementedError

    def request_refresh(self, address: str) -> None:
        raise NotImplementedError

    def _safe_state(self, address: str) -> str:
        try:
            return self.session_state(address)
        except Exception as exc:           # daemon frozen or gone
            return f"unknown ({exc.__class__.__name__})"

    def _diag(self, address: str | None = None) -> str:
        head = f"{self}"
        if address:
            head += f" state towards {address}: {self._safe_state(address)}"
        return f"{head}\n--- {self.kind} log (tail) ---\n{_tail(self.log())}"

    def wait_state(self, address: str, states: str | Iterable[str], timeout: float = 30) -> str:
        """Wait until the session to ADDRESS is in one of STATES; returns it."""
        wanted = {states} if isinstance(states, str) else set(states)
        return wait_until(lambda: (s := self._safe_state(address)) in wanted and s,
                          timeout, f"{self} session to {address} in {sorted(wanted)}",
                          on_timeout=lambda: self._diag(address))

    def wait_established(self, address: str, timeout: float = 30) -> None:
        self.wait_state(address, "established", timeout)

    def wait_not_established(self, address: str, timeout: float = 30) -> str:
        """Wait until the session to ADDRESS has left Established; returns the state."""
        return wait_until(lambda: (s := self._safe_state(address)) != "established" and s,
                          timeout, f"{self} session to {address} to leave established",
                          on_timeout=lambda: self._diag(address))

    def wait_routes(self, count: int, address: str | None = None,
                    timeout: float = 30) -> dict[str, dict]:
        """Wait until exactly COUNT routes are received (from ADDRESS, or from
        any neighbor); returns them."""
        last: dict = {}

        def check():
            nonlocal last
            try:
                last = self.received_routes(address)
            except Exception:
                return None
            return len(last) == count

        wait_until(check, timeout,
                   f"{self} to hold {count} routes from {address or 'any neighbor'}",
                   on_timeout=lambda: f"have {len(last)}: {json.dumps(last, indent=1)[:3000]}\n"
                                      + self._diag(address))
        return last

    def log(self) -> str:
        """Every log file of the daemon, for failure messages."""
        parts = []
        for f in sorted(self.dir.glob("*.log")):
            parts.append(f"==> {f.name} <==\n" + f.read_text(errors="replace"))
        return "\n".join(parts)

    # ---- helpers for subclasses --------------------------------------------
    def _local_address_for(self, nb: Neighbor) -> str | None:
        return nb.local_address or self.netns.source_address(nb.address)

    def _own_address(self, nb: Neighbor, family: str) -> str | None:
        """This namespace's global address of FAMILY facing neighbor NB."""
        local = self._local_address_for(nb)
        if local and family_of(local) == family:
            return local
        ifname = self.netns.interface_towards(nb.address)
        found = self.netns.addresses(6 if family == "ipv6" else 4, ifname=ifname) if ifname else []
        return found[0] if found else None


# --------------------------------------------------------------------------
# BIRD 2
# --------------------------------------------------------------------------

class Bird(Daemon):
    """BIRD 2 (``bird -f``).  Originated routes are static routes in
    ``kbgpi_orig4/6``; their attributes are set by each neighbor's export
    filter.  Live changes rewrite bird.conf and run ``birdc configure``
    (sessions stay up: only the channels reload).

    Quirks: no JSON output, ``birdc show route all`` is parsed.  On a direct
    eBGP session a route whose NEXT_HOP is not on a connected network, or
    of the other address family (GoBGP's IPv4-mapped next hop for IPv6 over
    an IPv4 session: "mismatched address family"), is dropped.  LOCAL_PREF
    from eBGP peers is discarded and replaced by BIRD's default 100, so it
    is left out of received_routes() for eBGP neighbors.  graceful_restart
    False means ``graceful restart off`` (BIRD's default would be "aware")."""

    kind = "bird"
    binaries = ("bird", "birdc")
    # The TCP port BIRD listens on and connects from (BIRD's "local port"); None: 179.
    local_port: int | None = None

    @property
    def conf(self) -> Path:
        return self.dir / "bird.conf"

    @property
    def ctl(self) -> Path:
        return self.dir / "bird.ctl"

    @staticmethod
    def proto(nb: Neighbor) -> str:
        return f"kbgpi_peer{nb.index}"

    def _route_actions(self) -> list[str]:
        lines = []
        for r in self.routes.values():
            lines.append(f"    if net = {r.prefix} then {{")
            lines.append(f"      bgp_origin = ORIGIN_{r.origin.upper()};")
            if r.med is not None:
                lines.append(f"      bgp_med = {int(r.med)};")
            for c in r.communities:
                lines.append("      bgp_community.add((%d, %d));" % community_pair(c))
            for lc in r.large_communities:
                lines.append("      bgp_large_community.add((%d, %d, %d));" % large_triple(lc))
            if r.next_hop:
                lines.append(f"      bgp_next_hop = {r.next_hop};")
            lines.append("    }")
        return lines

    def config(self) -> str:
        out = [
            "log stderr all;",
            f"router id {self.router_id};",
            "protocol device { scan time 10; }",
            # Connected and kernel routes only resolve next hops of multihop /
            # iBGP sessions; the export filters never let them out.
            "protocol direct kbgpi_direct { ipv4; ipv6; }",
            "protocol kernel kbgpi_kernel4 { learn; ipv4 { import all; export none; }; }",
            "protocol kernel kbgpi_kernel6 { learn; ipv6 { import all; export none; }; }",
        ]
        for fam, ch in (("ipv4", "kbgpi_orig4"), ("ipv6", "kbgpi_orig6")):
            out.append(f"protocol static {ch} {{")
            out.append(f"  {fam} {{ preference 250; }};")
            out += [f"  route {r.prefix} unreachable;"
                    for r in self.routes.values() if r.family == fam]
            out.append("}")
        actions = self._route_actions()
        for nb in self.neighbors.values():
            out.append(f"filter kbgpi_export{nb.index} {{")
            out.append('  if proto = "kbgpi_orig4" || proto = "kbgpi_orig6" then {')
            out += actions
            out.append("    accept;")
            out.append("  }")
            if nb.export_all:
                out.append("  if source = RTS_BGP then accept;")
            out.append("  reject;")
            out.append("}")
        for nb in self.neighbors.values():
            port = f" port {self.local_port}" if getattr(self, "local_port", None) else ""
            local = (f"local {nb.local_address}{port} as {self.asn};" if nb.local_address
                     else f"local{port} as {self.asn};")
            out += [
                f"protocol bgp {self.proto(nb)} {{",
                f"  {local}",
                f"  neighbor {nb.address} port {nb.port} as {nb.asn};",
                "  connect delay time 1;",
                "  connect retry time 2;",
                "  error wait time 1, 4;",
                "  error forget time 10;",
                f"  graceful restart {'on' if nb.graceful_restart else 'off'};",
            ]
            if nb.passive:
                out.append("  passive on;")
            if nb.password is not None:
                out.append('  password "%s";' % nb.password.replace('"', '\\"'))
            if nb.hold_time is not None:
                out.append(f"  hold time {int(nb.hold_time)};")
                out.append(f"  keepalive time {max(1, int(nb.hold_time) // 3)};")
            if nb.multihop:
                out.append(f"  multihop {int(nb.multihop)};")
            else:
                out.append("  direct;")
            if nb.route_reflector_client:
                out.append("  rr client;")
            imp = "all" if nb.import_all else "none"
            for fam in nb.families:
                out.append(f"  {fam} {{ import {imp}; export filter kbgpi_export{nb.index}; }};")
            out.append("}")
        return "\n".join(out) + "\n"

    def birdc(self, *args: str, check: bool = True, timeout: float = QUERY_TIMEOUT) -> str:
        return self.netns.run(["birdc", "-s", str(self.ctl), *args], check=check,
                              timeout=timeout).stdout

    def _write_config(self) -> None:
        self.conf.write_text(self.config())
        self.netns.run(["bird", "-p", "-c", str(self.conf)])      # parse only

    def _start(self) -> None:
        self._write_config()
        self.ctl.unlink(missing_ok=True)
        self._spawn(["bird", "-f", "-c", str(self.conf), "-s", str(self.ctl),
                     "-P", str(self.dir / "bird.pid")], "bird.log")

        def ready():
            self._check_alive()
            return self.ctl.exists() and \
                self.netns.run(["birdc", "-s", str(self.ctl), "show", "status"],
                               check=False).returncode == 0
        wait_until(ready, 20, f"{self} control socket", on_timeout=self._diag)

    def _graceful_stop(self) -> None:
        self.birdc("down", check=False)

    def _reconfigure(self) -> None:
        self._write_config()
        out = self.birdc("configure")
        if "Reconfigured" not in out and "Reconfiguration in progress" not in out:
            raise RuntimeError(f"{self}: birdc configure failed:\n{out}")

    def _apply_originate(self, route: Route, old: Route | None) -> None:
        self._reconfigure()

    def _apply_withdraw(self, route: Route) -> None:
        self._reconfigure()

    _STATE_MAP = {"idle": "idle", "connect": "connect", "active": "active",
                  "opensent": "opensent", "openconfirm": "openconfirm",
                  "established": "established", "close": "idle", "down": "idle"}

    def session_state(self, address: str) -> str:
        nb = self.neighbor(address)
        out = self.birdc("show", "protocols", "all", self.proto(nb))
        m = re.search(r"^\s*BGP state:\s+(\S+)", out, re.M)
        if not m:
            # Protocol not started yet (or down): no BGP state line.
            return "idle"
        return self._STATE_MAP.get(m.group(1).lower(), m.group(1).lower())

    def request_refresh(self, address: str) -> None:
        out = self.birdc("reload", "in", self.proto(self.neighbor(address)))
        if "reload" not in out.lower():
            raise RuntimeError(f"{self}: reload in failed: {out}")

    def received_routes(self, address: str | None = None) -> dict[str, dict]:
        protos = {self.proto(nb): nb for nb in self.neighbors.values()}
        if address is not None:
            nb = self.neighbor(address)
            args = ["show", "route", "all", "protocol", self.proto(nb)]
        else:
            args = ["show", "route", "all"]
        routes: dict[str, dict] = {}
        for rec in parse_birdc_routes(self.birdc(*args)):
            nb = protos.get(rec["proto"])
            if nb is None:
                continue
            if rec["prefix"] in routes and not rec["primary"]:
                continue
            a = rec["attrs"]
            nh = a.get("BGP.next_hop", "").split()
            ebgp = nb.asn != self.asn
            routes[rec["prefix"]] = route_dict(
                as_path=[int(x) for x in re.findall(r"\d+", a.get("BGP.as_path", ""))],
                next_hop=nh[0] if nh else None,
                origin=a.get("BGP.origin", "").lower() or None,
                med=a.get("BGP.med"),
                # BIRD drops LOCAL_PREF received from eBGP and sets its own
                # default (100): that is no received attribute, leave it out.
                local_pref=None if ebgp else a.get("BGP.local_pref"),
                communities=[community_str(int(h), int(l)) for h, l in
                             re.findall(r"\((\d+),\s*(\d+)\)", a.get("BGP.community", ""))],
                large_communities=[f"{x}:{y}:{z}" for x, y, z in re.findall(
                    r"\((\d+),\s*(\d+),\s*(\d+)\)", a.get("BGP.large_community", ""))],
                originator_id=a.get("BGP.originator_id"),
                cluster_list=a.get("BGP.cluster_list", "").split(),
            )
        return routes


_BIRD_ROUTE_HEAD = re.compile(
    r"^(?P<prefix>\S+)?\s+(?P<kind>unicast|unreachable|blackhole|prohibited|\S+)\s+"
    r"\[(?P<proto>[^\s\]]+)[^\]]*\]\s+(?P<primary>\*)?")


def parse_birdc_routes(text: str) -> list[dict]:
    """Parse ``birdc show route all`` into records {prefix, proto, primary,
    attrs: {"BGP.xxx": value text}}.  A route line names the prefix only for
    the first route of a network; alternatives start with white space."""
    recs: list[dict] = []
    cur = None
    last_prefix = None
    for raw in text.splitlines():
        if not raw.strip() or raw.startswith("BIRD ") or raw.startswith("Table ") \
                or raw.startswith("Access restricted"):
            continue
        m = _BIRD_ROUTE_HEAD.match(raw)
        if m and "[" in raw and not raw.lstrip().startswith(("via ", "dev ", "Type:", "BGP.")):
            prefix = m.group("prefix") or last_prefix
            if m.group("prefix"):
                try:
                    prefix = norm_prefix(m.group("prefix"))
                except ValueError:
                    prefix = m.group("prefix")
            last_prefix = prefix
            cur = {"prefix": prefix, "proto": m.group("proto"), "primary": bool(m.group("primary")),
                   "attrs": {}}
            recs.append(cur)
            continue
        line = raw.strip()
        if cur is not None and ":" in line:
            key, _, value = line.partition(":")
            if key.startswith("BGP.") or key == "Type":
                cur["attrs"][key] = value.strip()
    return recs


# --------------------------------------------------------------------------
# GoBGP
# --------------------------------------------------------------------------

class Gobgp(Daemon):
    """GoBGP (``gobgpd``), API on a unix socket in workdir.  Neighbors start
    administratively down and are enabled once the originated routes are in
    the RIB (added with the ``gobgp`` CLI).

    Quirks: IPv6 routes over an IPv4 session go out with the IPv4-mapped
    next hop ``::ffff:a.b.c.d``.  request_refresh() (``softresetin``) puts
    no ROUTE-REFRESH on the wire: GoBGP 3.10 only re-runs its import policy
    over the Adj-RIB-In.  Per-neighbor policies only apply to route-server
    clients, so import_all / export_all = False are global policies matching
    neighbor-sets.  SIGTERM sends Cease / Peer De-configured (6/3).  End-of-
    RIB is only sent with graceful restart on."""

    kind = "gobgp"
    binaries = ("gobgpd", "gobgp")

    @property
    def conf(self) -> Path:
        return self.dir / "gobgpd.toml"

    @property
    def api(self) -> Path:
        return self.dir / "gobgp.sock"

    def config(self) -> str:
        out = [
            "[global.config]",
            f"  as = {self.asn}",
            f'  router-id = "{self.router_id}"',
            "",
        ]
        # Per-neighbor apply-policy only works for route-server clients in
        # GoBGP, so import_all / export_all = False are global policies whose
        # statements match neighbor-sets (for export, GoBGP matches the
        # neighbor the route goes to).
        noimport = [nb.address for nb in self.neighbors.values() if not nb.import_all]
        noexport = [nb.address for nb in self.neighbors.values() if not nb.export_all]
        if noimport or noexport:
            out.append("[global.apply-policy.config]")
            if noimport:
                out += ['  import-policy-list = ["kbgpi-import"]',
                        '  default-import-policy = "accept-route"']
            if noexport:
                out += ['  export-policy-list = ["kbgpi-export"]',
                        '  default-export-policy = "accept-route"']
            out.append("")
        for name, members in (("kbgpi-noimport", noimport), ("kbgpi-noexport", noexport)):
            if members:
                out += ["[[defined-sets.neighbor-sets]]",
                        f'  neighbor-set-name = "{name}"',
                        "  neighbor-info-list = [" + ", ".join(f'"{m}"' for m in members) + "]", ""]
        if noimport:
            out += ["[[policy-definitions]]",
                    '  name = "kbgpi-import"',
                    "  [[policy-definitions.statements]]",
                    '    name = "kbgpi-noimport"',
                    "    [policy-definitions.statements.conditions.match-neighbor-set]",
                    '      neighbor-set = "kbgpi-noimport"',
                    "    [policy-definitions.statements.actions]",
                    '      route-disposition = "reject-route"', ""]
        if noexport:
            out += ["[[policy-definitions]]",
                    '  name = "kbgpi-export"',
                    "  [[policy-definitions.statements]]",
                    '    name = "kbgpi-local"',
                    "    [policy-definitions.statements.conditions.match-neighbor-set]",
                    '      neighbor-set = "kbgpi-noexport"',
                    "    [policy-definitions.statements.conditions.bgp-conditions]",
                    '      route-type = "local"',
                    "    [policy-definitions.statements.actions]",
                    '      route-disposition = "accept-route"',
                    "  [[policy-definitions.statements]]",
                    '    name = "kbgpi-noexport"',
                    "    [policy-definitions.statements.conditions.match-neighbor-set]",
                    '      neighbor-set = "kbgpi-noexport"',
                    "    [policy-definitions.statements.actions]",
                    '      route-disposition = "reject-route"', ""]
        for nb in self.neighbors.values():
            out += [
                "[[neighbors]]",
                "  [neighbors.config]",
                f'    neighbor-address = "{nb.address}"',
                f"    peer-as = {nb.asn}",
                "    admin-down = true",
            ]
            if nb.password is not None:
                out.append(f"    auth-password = {json.dumps(nb.password)}")
            out += ["  [neighbors.timers.config]",
                    "    connect-retry = 1",
                    "    idle-hold-time-after-reset = 1"]
            if nb.hold_time is not None:
                out.append(f"    hold-time = {int(nb.hold_time)}")
                out.append(f"    keepalive-interval = {max(1, int(nb.hold_time) // 3)}")
            out.append("  [neighbors.transport.config]")
            if nb.passive:
                out.append("    passive-mode = true")
            if nb.local_address:
                out.append(f'    local-address = "{nb.local_address}"')
            if nb.port != 179:
                out.append(f"    remote-port = {nb.port}")
            if nb.multihop:
                out += ["  [neighbors.ebgp-multihop.config]", "    enabled = true",
                        f"    multihop-ttl = {int(nb.multihop)}"]
            if nb.route_reflector_client:
                out += ["  [neighbors.route-reflector.config]",
                        "    route-reflector-client = true",
                        f'    route-reflector-cluster-id = "{self.router_id}"']
            if nb.graceful_restart:
                out += ["  [neighbors.graceful-restart.config]", "    enabled = true",
                        "    restart-time = 120"]
            for fam in nb.families:
                out += ["  [[neighbors.afi-safis]]", "    [neighbors.afi-safis.config]",
                        f'      afi-safi-name = "{fam}-unicast"']
                if nb.graceful_restart:
                    out += ["    [neighbors.afi-safis.mp-graceful-restart.config]",
                            "      enabled = true"]
            out.append("")
        return "\n".join(out) + "\n"

    def cli(self, *args: str, check: bool = True, as_json: bool = False,
            timeout: float = QUERY_TIMEOUT):
        cmd = ["gobgp", "--target", f"unix://{self.api}"]
        if as_json:
            cmd.append("-j")
        p = self.netns.run([*cmd, *args], check=check, timeout=timeout)
        if as_json:
            return json.loads(p.stdout) if p.stdout.strip() else None
        return p.stdout

    def _rib_add_args(self, r: Route) -> list[str]:
        args = ["global", "rib", "add", "-a", r.family, r.prefix, "origin", r.origin]
        if r.next_hop:
            args += ["nexthop", r.next_hop]
        if r.med is not None:
            args += ["med", str(int(r.med))]
        if r.communities:
            args += ["community", ",".join("%d:%d" % community_pair(c) for c in r.communities)]
        if r.large_communities:
            args += ["large-community", ",".join(r.large_communities)]
        return args

    def _start(self) -> None:
        self.conf.write_text(self.config())
        self.api.unlink(missing_ok=True)        # left by a killed gobgpd: bind would fail
        self._spawn(["gobgpd", "-f", str(self.conf), "-t", "toml",
                     "--api-hosts", f"unix://{self.api}", "--pprof-disable",
                     "-p", "-l", "info"], "gobgpd.log")

        def ready():
            self._check_alive()
            return self.api.exists() and self.netns.run(
                ["gobgp", "--target", f"unix://{self.api}", "global"], check=False).returncode == 0
        wait_until(ready, 20, f"{self} API", on_timeout=self._diag)
        for r in self.routes.values():
            self.cli(*self._rib_add_args(r))
        for nb in self.neighbors.values():
            self.cli("neighbor", nb.address, "enable")

    def _graceful_stop(self) -> None:
        # gobgpd's SIGTERM handler stops the server, which sends Cease
        # (peer de-configured) to every established peer.
        self._signal_all(signal.SIGTERM)

    def _apply_originate(self, route: Route, old: Route | None) -> None:
        self.cli(*self._rib_add_args(route))

    def _apply_withdraw(self, route: Route) -> None:
        self.cli("global", "rib", "del", "-a", route.family, route.prefix)

    def session_state(self, address: str) -> str:
        nb = self.neighbor(address)
        data = self.cli("neighbor", nb.address, as_json=True)
        state = (data or {}).get("state", {}).get("session_state", "idle")
        if isinstance(state, int):
            state = {1: "idle", 2: "connect", 3: "active", 4: "opensent", 5: "openconfirm",
                     6: "established"}.get(state, "idle")
        state = str(state).lower().replace("_", "")
        if (data or {}).get("state", {}).get("admin_state") in (1, "down", "DOWN"):
            return "idle"
        return state if state in RFC_STATES else "idle"

    def request_refresh(self, address: str) -> None:
        nb = self.neighbor(address)
        for fam in nb.families:
            self.cli("neighbor", nb.address, "softresetin", "-a", fam)

    @staticmethod
    def _path_to_route(path: dict) -> dict:
        attrs = {a.get("type"): a for a in path.get("attrs", [])}
        as_path: list[int] = []
        for seg in attrs.get(2, {}).get("as_paths", []) or []:
            as_path += seg.get("asns", [])
        nh = None
        if 14 in attrs:
            nh = attrs[14].get("nexthop")
        if nh is None and 3 in attrs:
            nh = attrs[3].get("nexthop")
        origin = {0: "igp", 1: "egp", 2: "incomplete"}.get(attrs.get(1, {}).get("value"))
        comms = [community_str(c >> 16, c & 0xFFFF)
                 for c in attrs.get(8, {}).get("communities", [])]
        large = [f"{v['ASN']}:{v['LocalData1']}:{v['LocalData2']}"
                 for v in attrs.get(32, {}).get("value", []) or []]
        return route_dict(
            as_path=as_path, next_hop=nh, origin=origin,
            med=attrs[4].get("metric") if 4 in attrs else None,
            local_pref=attrs[5].get("value") if 5 in attrs else None,
            communities=comms, large_communities=large,
            originator_id=attrs[9].get("value") if 9 in attrs else None,
            cluster_list=attrs.get(10, {}).get("value") or [],
        )

    def received_routes(self, address: str | None = None) -> dict[str, dict]:
        want = norm_addr(address) if address else None
        fams = {f for nb in self.neighbors.values() for f in nb.families}
        routes: dict[str, dict] = {}
        for fam in sorted(fams):
            rib = self.cli("global", "rib", "-a", fam, as_json=True) or {}
            for prefix, paths in rib.items():
                chosen = None
                for path in paths:
                    peer = path.get("neighbor-ip") or ""
                    if path.get("source-id") in (None, "", "<nil>") and peer in ("", "<nil>"):
                        continue                      # locally originated
                    try:
                        peer = norm_addr(peer)
                    except ValueError:
                        continue
                    if peer not in self.neighbors or (want and peer != want):
                        continue
                    if chosen is None or path.get("best"):
                        chosen = path
                if chosen is not None:
                    routes[norm_prefix(prefix)] = self._path_to_route(chosen)
        return routes


# --------------------------------------------------------------------------
# FRR
# --------------------------------------------------------------------------

def _make_traversable(path: Path) -> list[str]:
    """Give 'others' search (x) permission on PATH and its ancestors where
    missing, so FRR's unprivileged 'frr' user can reach its files; returns
    the directories changed."""
    changed = []
    p = Path(path).resolve()
    for d in [p, *p.parents]:
        st = d.stat()
        if not st.st_mode & stat.S_IXOTH:
            os.chmod(d, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)
            changed.append(str(d))
    return changed


class Frr(Daemon):
    """FRR 8 (zebra + bgpd in the foreground), vty socket in workdir.
    Originated routes are ``network`` statements; their attributes are set
    by each neighbor's outbound route-map ``KBGPI-OUT-<n>`` (one entry per
    route, matched by prefix-list and an empty AS path).  Live changes go
    through vtysh.

    Quirks: the daemons drop privileges to the packaged ``frr`` user, so
    the work directory is chowned to it and every ancestor directory gets
    o+x (pytest's tmp dirs are 0700).  Each daemon keeps a
    ``/var/tmp/frr/<daemon>.<pid>/`` directory (removed on a clean exit;
    kill() removes it).  Routes from ``network`` statements carry MED 0
    unless a MED is given.  A received BLACKHOLE community gets NO_EXPORT
    added (RFC 7999).  ``neighbor password`` takes one word.  SIGTERM sends
    Cease 6/3 and then 6/2.  JSON details: ``show bgp <afi> unicast json
    detail`` (8.4 has no ``detail json``)."""

    kind = "frr"
    sbin = "/usr/lib/frr"
    binaries = ("/usr/lib/frr/zebra", "/usr/lib/frr/bgpd", "vtysh")

    @classmethod
    def missing(cls) -> str | None:
        import pwd
        try:
            pwd.getpwnam("frr")
        except KeyError:
            return "frr: no 'frr' user (install the Debian frr package)"
        return super().missing()

    def _check_neighbor(self, nb: Neighbor) -> None:
        if nb.password is not None and (not nb.password or re.search(r"\s", nb.password)):
            raise ValueError("FRR's 'neighbor password' takes one word: no white space in the key")

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.chmodded: list[str] = []

    @property
    def vty(self) -> Path:
        return self.dir / "vty"

    @property
    def zsock(self) -> Path:
        return self.dir / "zserv.api"

    @staticmethod
    def _plist(r: Route) -> str:
        return f"KBGPI-P{r.index}"

    @staticmethod
    def _out_map(nb: Neighbor) -> str:
        return f"KBGPI-OUT-{nb.index}"

    @staticmethod
    def _seq(r: Route) -> int:
        if r.index * 10 >= 65535:
            raise RuntimeError("too many originate() calls for FRR route-map sequence numbers")
        return r.index * 10

    def _plist_line(self, r: Route) -> str:
        kind = "ipv6" if r.family == "ipv6" else "ip"
        return f"{kind} prefix-list {self._plist(r)} seq 5 permit {r.prefix}"

    def _out_entry(self, nb: Neighbor, r: Route) -> list[str]:
        """Outbound route-map entry giving originated route R its attributes
        towards NB (only when R is ours: empty AS path)."""
        kind = "ipv6" if r.family == "ipv6" else "ip"
        lines = [f"route-map {self._out_map(nb)} permit {self._seq(r)}",
                 f" match {kind} address prefix-list {self._plist(r)}",
                 " match as-path KBGPI-LOCAL",
                 f" set origin {r.origin}"]
        if r.med is not None:
            lines.append(f" set metric {int(r.med)}")
        if r.communities:
            lines.append(" set community "
                         + " ".join("%d:%d" % community_pair(c) for c in r.communities))
        if r.large_communities:
            lines.append(" set large-community " + " ".join(r.large_communities))
        if r.next_hop:
            if r.family == "ipv6":
                lines.append(f" set ipv6 next-hop global {r.next_hop}")
            else:
                lines.append(f" set ip next-hop {r.next_hop}")
        return lines

    def _out_final(self, nb: Neighbor) -> list[str]:
        if nb.export_all:
            return [f"route-map {self._out_map(nb)} permit 65535"]
        return [f"route-map {self._out_map(nb)} permit 65535", " match as-path KBGPI-LOCAL"]

    def bgpd_config(self) -> str:
        # Lists and route-maps come first: a route-map referenced before it
        # exists is deny-all until FRR's route-map delay timer fires.  The
        # attributes of originated routes are set on the way out (an outbound
        # route-map runs after the RFC 1997 check, so a route originated with
        # no-export is still sent, as with the other daemons).
        out = [f"hostname {self.hostname}", "log stdout informational", "!",
               "bgp as-path access-list KBGPI-LOCAL seq 5 permit ^$",
               "route-map KBGPI-DENY deny 10", "!"]
        for r in self.routes.values():
            out.append(self._plist_line(r))
        out.append("!")
        for nb in self.neighbors.values():
            for r in self.routes.values():
                if r.family in nb.families:
                    out += self._out_entry(nb, r) + ["!"]
            out += self._out_final(nb) + ["!"]
        out += [f"router bgp {self.asn}",
                f" bgp router-id {self.router_id}",
                " no bgp ebgp-requires-policy",
                " no bgp network import-check",
                " no bgp default ipv4-unicast",
                " bgp log-neighbor-changes"]
        for nb in self.neighbors.values():
            a = nb.address
            out.append(f" neighbor {a} remote-as {nb.asn}")
            out.append(f" neighbor {a} timers connect 1")
            if nb.passive:
                out.append(f" neighbor {a} passive")
            if nb.password is not None:
                out.append(f" neighbor {a} password {nb.password}")
            if nb.port != 179:
                out.append(f" neighbor {a} port {nb.port}")
            if nb.local_address:
                out.append(f" neighbor {a} update-source {nb.local_address}")
            if nb.hold_time is not None:
                hold = int(nb.hold_time)
                out.append(f" neighbor {a} timers {max(1, hold // 3)} {hold}")
            if nb.multihop:
                out.append(f" neighbor {a} ebgp-multihop {int(nb.multihop)}")
            if nb.graceful_restart:
                out.append(f" neighbor {a} graceful-restart")
        out.append(" !")
        for fam in ("ipv4", "ipv6"):
            out.append(f" address-family {fam} unicast")
            for r in self.routes.values():
                if r.family == fam:
                    out.append(f"  network {r.prefix}")
            for nb in self.neighbors.values():
                if fam not in nb.families:
                    continue
                out.append(f"  neighbor {nb.address} activate")
                if nb.route_reflector_client:
                    out.append(f"  neighbor {nb.address} route-reflector-client")
                if not nb.import_all:
                    out.append(f"  neighbor {nb.address} route-map KBGPI-DENY in")
                out.append(f"  neighbor {nb.address} route-map {self._out_map(nb)} out")
            out.append(" exit-address-family")
            out.append(" !")
        return "\n".join(out) + "\n"

    def vtysh(self, *commands: str, check: bool = True) -> str:
        cmd = ["vtysh", "--vty_socket", str(self.vty)]
        for c in commands:
            cmd += ["-c", c]
        p = self.netns.run(cmd, check=check, timeout=QUERY_TIMEOUT)
        return p.stdout

    def _vtysh_json(self, command: str):
        out = self.vtysh(command)
        return json.loads(out) if out.strip() else {}

    def _start(self) -> None:
        zconf, bconf = self.dir / "zebra.conf", self.dir / "bgpd.conf"
        zconf.write_text(f"hostname {self.hostname}\n!\n")
        bconf.write_text(self.bgpd_config())
        self.vty.mkdir(exist_ok=True)
        for f in (self.zsock, self.dir / "zebra.pid", self.dir / "bgpd.pid"):
            f.unlink(missing_ok=True)
        # FRR drops privileges to the packaged 'frr' user: it must own its
        # directory and be able to reach it.
        self.chmodded += _make_traversable(self.dir.parent)
        for path in (self.dir, self.vty, zconf, bconf):
            shutil.chown(path, "frr", "frr")
        common = ["--vty_socket", str(self.vty), "-P", "0", "-z", str(self.zsock),
                  "--log", "stdout"]
        self._spawn([f"{self.sbin}/zebra", "-f", str(zconf), "-i", str(self.dir / "zebra.pid")]
                    + common, "zebra.log")
        wait_until(lambda: (self._check_alive(), self.zsock.exists())[1], 20,
                   f"{self} zebra socket", on_timeout=self._diag)
        self._spawn([f"{self.sbin}/bgpd", "-f", str(bconf), "-i", str(self.dir / "bgpd.pid")]
                    + common, "bgpd.log")

        def ready():
            self._check_alive()
            return self.netns.run(["vtysh", "--vty_socket", str(self.vty), "-d", "bgpd",
                                   "-c", "show bgp summary json"], check=False).returncode == 0
        wait_until(ready, 20, f"{self} bgpd vty", on_timeout=self._diag)

    def _graceful_stop(self) -> None:
        # bgpd's SIGTERM handler sends Cease to established peers; then zebra.
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass

    def _after_exit(self, pids: list[int]) -> None:
        # Killed FRR daemons leave their per-process log buffers behind.
        for pid in pids:
            for name in ("zebra", "bgpd"):
                shutil.rmtree(f"/var/tmp/frr/{name}.{pid}", ignore_errors=True)

    def _apply_originate(self, route: Route, old: Route | None) -> None:
        nbs = [nb for nb in self.neighbors.values() if route.family in nb.families]
        cmds = ["configure terminal", self._plist_line(route)]
        for nb in nbs:
            cmds += self._out_entry(nb, route) + ["exit"]
        if old is not None:
            # The new entries (higher sequence numbers) exist before the old
            # ones go, so no update without the attributes can slip out.
            for nb in nbs:
                cmds.append(f"no route-map {self._out_map(nb)} permit {self._seq(old)}")
            cmds.append("no " + self._plist_line(old))
        cmds += [f"router bgp {self.asn}", f"address-family {route.family} unicast",
                 f"network {route.prefix}"]
        self.vtysh(*cmds)
        if old is not None:
            for nb in nbs:
                self.vtysh(f"clear bgp {route.family} unicast {nb.address} soft out")

    def _apply_withdraw(self, route: Route) -> None:
        cmds = ["configure terminal", f"router bgp {self.asn}",
                f"address-family {route.family} unicast", f"no network {route.prefix}",
                "exit-address-family", "exit"]
        for nb in self.neighbors.values():
            if route.family in nb.families:
                cmds.append(f"no route-map {self._out_map(nb)} permit {self._seq(route)}")
        cmds.append("no " + self._plist_line(route))
        self.vtysh(*cmds)

    def session_state(self, address: str) -> str:
        nb = self.neighbor(address)
        data = self._vtysh_json(f"show bgp neighbors {nb.address} json")
        info = next(iter(data.values()), {}) if data else {}
        state = str(info.get("bgpState", "idle")).lower()
        return state if state in RFC_STATES else "idle"

    def request_refresh(self, address: str) -> None:
        nb = self.neighbor(address)
        for fam in nb.families:
            self.vtysh(f"clear bgp {fam} unicast {nb.address} soft in")

    def received_routes(self, address: str | None = None) -> dict[str, dict]:
        want = norm_addr(address) if address else None
        fams = {f for nb in self.neighbors.values() for f in nb.families}
        routes: dict[str, dict] = {}
        for fam in sorted(fams):
            data = self._vtysh_json(f"show bgp {fam} unicast json detail")
            for prefix, entry in (data.get("routes") or {}).items():
                paths = entry.get("paths", entry) if isinstance(entry, dict) else entry
                chosen = None
                for path in paths:
                    peer = (path.get("peer") or {}).get("peerId")
                    if not peer or peer == "0.0.0.0" or peer == "::":
                        continue
                    peer = norm_addr(peer)
                    if peer not in self.neighbors or (want and peer != want):
                        continue
                    if chosen is None or (path.get("bestpath") or {}).get("overall"):
                        chosen = path
                if chosen is not None:
                    routes[norm_prefix(prefix)] = self._path_to_route(chosen, fam)
        return routes

    def _path_to_route(self, path: dict, fam: str) -> dict:
        aspath = path.get("aspath") or {}
        if aspath.get("segments") is not None:
            as_path = [int(x) for seg in aspath["segments"] for x in seg.get("list", [])]
        else:
            as_path = [int(x) for x in re.findall(r"\d+", aspath.get("string", ""))]
        nh = None
        for h in path.get("nexthops", []):
            if h.get("scope", "global") == "global" and h.get("ip"):
                nh = h["ip"]
                break
        comms = []
        for c in (path.get("community") or {}).get("list", []) or []:
            comms.append(self._frr_community(c))
        if not comms and path.get("community"):
            comms = [self._frr_community(c) for c in path["community"].get("string", "").split()]
        large = (path.get("largeCommunity") or {}).get("string", "").split()
        return route_dict(
            as_path=as_path, next_hop=nh, origin=str(path.get("origin", "")).lower() or None,
            med=path.get("metric"), local_pref=path.get("locPrf") if "locPrf" in path else None,
            communities=comms, large_communities=large,
            originator_id=path.get("originatorId"),
            cluster_list=(path.get("clusterList") or {}).get("list", []) or [],
        )

    @staticmethod
    def _frr_community(text: str) -> str:
        names = {"noExport": "no-export", "noAdvertise": "no-advertise",
                 "localAs": "no-export-subconfed", "noPeer": "no-peer", "blackhole": "blackhole",
                 "gshut": "graceful-shutdown", "acceptOwn": "accept-own",
                 "graceful-shutdown": "graceful-shutdown"}
        if text in names:
            return names[text]
        if ":" in text:
            h, l = text.split(":")
            return community_str(int(h), int(l))
        return text


# --------------------------------------------------------------------------
# ExaBGP
# --------------------------------------------------------------------------

EXABGP = "/usr/sbin/exabgp"      # Debian package exabgp 4.2.x (runs on /usr/bin/python3)

_EXABGP_API = r'''
import os, select, sys
d = sys.argv[1]
fifo = os.open(os.path.join(d, "cmd.fifo"), os.O_RDWR | os.O_NONBLOCK)
rx = open(os.path.join(d, "received.jsonl"), "a", buffering=1)
acks = open(os.path.join(d, "acks.txt"), "a", buffering=1)
sent = open(os.path.join(d, "commands.txt"), "a", buffering=1)
open(os.path.join(d, "api.ready"), "w").close()
stdin = sys.stdin.fileno()
ibuf = b""
cbuf = b""
while True:
    r, _, _ = select.select([stdin, fifo], [], [])
    if stdin in r:
        data = os.read(stdin, 65536)
        if not data:
            break
        ibuf += data
        while b"\n" in ibuf:
            line, ibuf = ibuf.split(b"\n", 1)
            text = line.decode("utf-8", "replace").strip()
            if text:
                (rx if text.startswith("{") else acks).write(text + "\n")
    if fifo in r:
        cbuf += os.read(fifo, 65536)
        while b"\n" in cbuf:
            line, cbuf = cbuf.split(b"\n", 1)
            text = line.decode().strip()
            if text:
                sent.write(text + "\n")
                sys.stdout.write(text + "\n")
                sys.stdout.flush()
'''


class Exabgp(Daemon):
    """ExaBGP 4.2 (Debian's /usr/sbin/exabgp, on /usr/bin/python3; the
    PyPI exabgp in other Pythons is not used).  An API process (a small
    script in workdir) dumps every message ExaBGP reports (updates, state
    changes, notifications) as JSON lines to ``received.jsonl`` and forwards
    commands written to ``cmd.fifo`` (acks in ``acks.txt``).  ExaBGP keeps
    no RIB of received routes: received_routes() replays the dump.  It
    never re-advertises routes, so import_all / export_all change nothing.

    Quirks (4.2.21): local-address is mandatory (taken from ``ip route
    get``); ``host-name`` must be alphanumeric, so the UTS host name is used;
    the route-refresh capability is left off (see config()); ROUTE-REFRESH
    messages are dumped as invalid JSON (skipped); SIGTERM closes sessions
    without NOTIFICATION (see _graceful_stop()); no AS-path loop check; an
    IPv6 global + link-local next hop appears as two next-hop keys."""

    kind = "exabgp"
    binaries = (EXABGP, "/usr/bin/python3")

    def _check_neighbor(self, nb: Neighbor) -> None:
        if nb.route_reflector_client:
            raise ValueError("ExaBGP cannot reflect routes (route_reflector_client)")

    @property
    def rx(self) -> Path:
        return self.dir / "received.jsonl"

    @property
    def fifo(self) -> Path:
        return self.dir / "cmd.fifo"

    def _next_hop(self, r: Route, nb: Neighbor) -> str | None:
        if r.next_hop:
            return r.next_hop
        return self._own_address(nb, r.family)

    def _route_spec(self, r: Route, nb: Neighbor) -> str | None:
        nh = self._next_hop(r, nb)
        if nh is None:
            return None
        s = f"{r.prefix} next-hop {nh} origin {r.origin}"
        if r.med is not None:
            s += f" med {int(r.med)}"
        if r.communities:
            s += " community [ " + " ".join("%d:%d" % community_pair(c)
                                            for c in r.communities) + " ]"
        if r.large_communities:
            s += " large-community [ " + " ".join(r.large_communities) + " ]"
        return s

    def env_file(self) -> str:
        return "\n".join([
            "[exabgp.api]", "ack = true", "cli = false", "encoder = json", "respawn = false",
            "terminate = false",
            "[exabgp.daemon]", "daemonize = false", "drop = false", "user = 'root'",
            f"pid = '{self.dir / 'exabgp.pid'}'", "umask = '0o137'",
            "[exabgp.log]", "enable = true", "destination = 'stdout'", "level = INFO",
            "all = false", "configuration = true", "daemon = true", "network = true",
            "processes = true", "reactor = true", "message = false", "packets = false",
            "[exabgp.tcp]", "bind = ''", "once = false", "delay = 0",
            "[exabgp.bgp]", "openwait = 60",
        ]) + "\n"

    def config(self) -> str:
        out = ["process kbgpi-api {",
               f"  run /usr/bin/python3 {self.dir / 'api.py'} {self.dir};",
               "  encoder json;",
               "}"]
        for nb in self.neighbors.values():
            local = self._local_address_for(nb)
            if local is None:
                raise RuntimeError(f"{self}: no local address towards {nb.address}")
            out += [f"neighbor {nb.address} {{",
                    f"  router-id {self.router_id};",
                    f"  local-address {local};",
                    f"  local-as {self.asn};",
                    f"  peer-as {nb.asn};",
                    f"  hold-time {int(nb.hold_time) if nb.hold_time is not None else 180};",
                    "  group-updates false;",
                    "  adj-rib-out true;"]
            if nb.passive:
                out += ["  passive true;", "  listen 179;"]
            if nb.port != 179:
                out.append(f"  connect {nb.port};")
            if nb.password is not None:
                out.append(f"  md5-password {json.dumps(nb.password)};")
            if nb.multihop:
                out.append(f"  outgoing-ttl {int(nb.multihop)};")
            # No route-refresh capability: ExaBGP 4.2.21 then also announces
            # Enhanced Route Refresh, and a ROUTE-REFRESH arriving with ERR
            # negotiated crashes its resend (TypeError: 'RouteRefresh' object
            # is not iterable) and resets the session.  FRR sends one on its
            # own about a second after the session comes up.  ExaBGP can still
            # send ROUTE-REFRESH (request_refresh) to peers that announce it.
            if nb.graceful_restart:
                out += ["  capability {", "    graceful-restart 120;", "  }"]
            out.append("  family {")
            out += [f"    {fam} unicast;" for fam in nb.families]
            out.append("  }")
            out += ["  api {", "    processes [ kbgpi-api ];", "    neighbor-changes;",
                    "    receive { parsed; update; notification; refresh; }", "  }"]
            specs = [self._route_spec(r, nb)
                     for r in self.routes.values() if r.family in nb.families]
            if any(specs):
                out.append("  static {")
                out += [f"    route {s};" for s in specs if s]
                out.append("  }")
            out.append("}")
        return "\n".join(out) + "\n"

    def _start(self) -> None:
        (self.dir / "api.py").write_text(_EXABGP_API)
        (self.dir / "exabgp.env").write_text(self.env_file())
        (self.dir / "exabgp.conf").write_text(self.config())
        for name in ("api.ready", "acks.txt"):
            (self.dir / name).unlink(missing_ok=True)
        if self.rx.exists():       # a new run starts with an empty dump
            n = len(list(self.dir.glob("received.*.jsonl"))) + 1
            self.rx.rename(self.dir / f"received.{n}.jsonl")
        if not self.fifo.exists():
            os.mkfifo(self.fifo)
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        env.pop("PYTHONHOME", None)
        self._spawn([EXABGP, "--env", str(self.dir / "exabgp.env"), str(self.dir / "exabgp.conf")],
                    "exabgp.log", env=env)
        wait_until(lambda: (self._check_alive(), (self.dir / "api.ready").exists())[1], 20,
                   f"{self} API process", on_timeout=self._diag)

    def _downs(self) -> int:
        if not self.rx.exists():
            return 0
        return len(re.findall(r'"state": "down"', self.rx.read_text(errors="replace")))

    def _graceful_stop(self) -> None:
        # ExaBGP's SIGTERM shutdown closes its TCP sessions without any
        # NOTIFICATION, so established sessions are first torn down through
        # the API (Cease / Administrative Shutdown).  ExaBGP reconnects at
        # once after a teardown, so SIGTERM follows as soon as the dump shows
        # the sessions down; the peer may still see a new TCP connection
        # that closes before it reaches Established.
        up = [nb for nb in self.neighbors.values()
              if self.session_state(nb.address) == "established"]
        if up and self.alive():
            before = self._downs()
            try:
                for nb in up:
                    self.command(f"neighbor {nb.address} teardown 2", wait_ack=False)
                wait_until(lambda: self._downs() >= before + len(up), 5,
                           f"{self} teardown", interval=0.01)
            except Exception:
                pass
        self._signal_all(signal.SIGTERM)

    def command(self, text: str, timeout: float = 10, *, wait_ack: bool = True) -> None:
        """Send one API command and (WAIT_ACK) wait for ExaBGP's 'done' ack."""
        acks = self.dir / "acks.txt"
        before = len(acks.read_text().splitlines()) if acks.exists() else 0
        deadline = time.monotonic() + timeout
        while True:
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as exc:
                if exc.errno != errno.ENXIO or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        try:
            os.write(fd, (text + "\n").encode())
        finally:
            os.close(fd)
        if not wait_ack:
            return

        def acked():
            lines = acks.read_text().splitlines() if acks.exists() else []
            return lines[before:] if len(lines) > before else None
        got = wait_until(acked, timeout, f"{self} ack for {text!r}", interval=0.05,
                         on_timeout=self._diag)
        if got[0] != "done":
            raise RuntimeError(f"{self}: command {text!r} answered {got[0]!r}")

    def _apply_originate(self, route: Route, old: Route | None) -> None:
        for nb in self.neighbors.values():
            if route.family in nb.families:
                spec = self._route_spec(route, nb)
                if spec:
                    self.command(f"neighbor {nb.address} announce route {spec}")

    def _apply_withdraw(self, route: Route) -> None:
        for nb in self.neighbors.values():
            if route.family in nb.families:
                spec = self._route_spec(route, nb)
                self.command(f"neighbor {nb.address} withdraw route {spec or route.prefix}")

    def request_refresh(self, address: str) -> None:
        nb = self.neighbor(address)
        for fam in nb.families:
            self.command(f"neighbor {nb.address} announce route-refresh {fam} unicast")

    def messages(self) -> list[dict]:
        """Every JSON message ExaBGP reported in the current run."""
        if not self.rx.exists():
            return []
        out = []
        for line in self.rx.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def notifications(self, address: str | None = None) -> list[dict]:
        """NOTIFICATIONs received (from ADDRESS): [{"code", "subcode", "data"}]."""
        want = norm_addr(address) if address else None
        out = []
        for msg in self.messages():
            nb = msg.get("neighbor") or {}
            note = nb.get("notification") or msg.get("notification")
            if msg.get("type") != "notification" or not isinstance(note, dict) \
                    or nb.get("direction") != "receive":
                continue
            if want and self._peer_of(msg) != want:
                continue
            out.append(note)
        return out

    @staticmethod
    def _peer_of(msg: dict) -> str | None:
        addr = ((msg.get("neighbor") or {}).get("address") or {}).get("peer")
        try:
            return norm_addr(addr) if addr else None
        except ValueError:
            return None

    def session_state(self, address: str) -> str:
        want = norm_addr(address)
        state = "idle"
        for msg in self.messages():
            if msg.get("type") == "state" and self._peer_of(msg) == want:
                s = (msg.get("neighbor") or {}).get("state")
                state = {"up": "established", "connected": "opensent",
                         "down": "idle"}.get(s, "idle")
        if not self.alive():
            return "idle"
        return state

    def received_routes(self, address: str | None = None, *,
                        include_loops: bool = False) -> dict[str, dict]:
        """Routes in the dump that are still announced (a session going down
        clears its peer's routes).  Routes whose AS path holds our own AS are
        left out, as a BGP speaker's loop check would (ExaBGP has none)
        unless INCLUDE_LOOPS."""
        want = norm_addr(address) if address else None
        ribs: dict[str, dict[str, dict]] = {}
        for msg in self.messages():
            peer = self._peer_of(msg)
            if peer is None:
                continue
            if msg.get("type") == "state":
                if (msg.get("neighbor") or {}).get("state") != "up":
                    ribs.pop(peer, None)
                continue
            if msg.get("type") != "update":
                continue
            update = ((msg.get("neighbor") or {}).get("message") or {}).get("update") or {}
            rib = ribs.setdefault(peer, {})
            for _fam, entries in (update.get("withdraw") or {}).items():
                for e in entries:
                    p = e.get("nlri") if isinstance(e, dict) else e
                    rib.pop(norm_prefix(p), None)
            attr = update.get("attribute") or {}
            for _fam, by_nh in (update.get("announce") or {}).items():
                # An IPv6 global + link-local next hop shows up as two keys
                # holding the same NLRI: the global one wins.
                seen: dict[str, str] = {}
                for nh, entries in by_nh.items():
                    nh = norm_addr(nh.split(",")[0])
                    for e in entries:
                        p = norm_prefix(e.get("nlri") if isinstance(e, dict) else e)
                        if p in seen and not ipaddress.ip_address(seen[p]).is_link_local:
                            continue
                        seen[p] = nh
                        rib[p] = self._attrs_to_route(attr, nh)
        routes: dict[str, dict] = {}
        for peer, rib in ribs.items():
            if want and peer != want:
                continue
            for p, r in rib.items():
                if include_loops or self.asn not in r["as_path"]:
                    routes.setdefault(p, r)
        return routes

    @staticmethod
    def _attrs_to_route(attr: dict, nh: str) -> dict:
        as_path: list[int] = []
        raw = attr.get("as-path", [])
        if isinstance(raw, dict):       # newer encoders: {"0": {"element": ..., "value": [...]}}
            for seg in raw.values():
                as_path += seg.get("value", [])
        else:
            for x in raw:
                as_path += x if isinstance(x, list) else [x]
        for x in attr.get("as-set", []) or []:
            as_path.append(x)
        comms = [community_str(h, l) for h, l in attr.get("community", []) or []]
        large = [f"{a}:{b}:{c}" for a, b, c in attr.get("large-community", []) or []]
        return route_dict(
            as_path=as_path, next_hop=norm_addr(nh), origin=attr.get("origin"),
            med=attr.get("med"), local_pref=attr.get("local-preference"),
            communities=comms, large_communities=large,
            originator_id=attr.get("originator-id"), cluster_list=attr.get("cluster-list") or [],
        )


DAEMONS = {"bird": Bird, "gobgp": Gobgp, "frr": Frr, "exabgp": Exabgp}


def leftover_processes(daemons: Iterable[Daemon] | None = None) -> list[tuple[int, str]]:
    """Processes still running whose command line names a daemon's work
    directory (daemons, ExaBGP's API script, ...): (pid, command line)."""
    dirs = [str(d.dir) for d in (Daemon.instances if daemons is None else daemons)]
    found = []
    if not dirs:
        return found
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
            with open(f"/proc/{entry}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue                 # zombie: gone, only not reaped yet
        except (OSError, IndexError):
            continue
        if any(d in cmdline for d in dirs):
            found.append((int(entry), cmdline))
    return found
