"""KernelSyncer against the real kernel, in private network namespaces.

Every test gets the shared route namespace of netns.py (veth kv0 with
10.80.0.1/24 and fd00:80::1/64, its peer in a second namespace) and runs a
KernelSyncer on uvloop in this process with ``netns=`` that namespace; the
kernel is read back with ``ip -n NS -j route``.  Both namespaces are deleted
at teardown, also on failure, and with them every route, link and rule.

Tunnels: this machine's kernel may lack the ipip/ip6tnl/fou modules; the
tests that need them probe a throwaway namespace and skip with the reason.
The exact messages kbgp sends for tunnels are checked in
tests/unit/test_tunnels.py on any kernel.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import uvloop
from kbgp._fast.wire import PrefixArray

from kbgp.errors import KernelError
from kbgp.kernel.netlink import EventSocket, NetlinkChannel, RouteSocket, in_netns
from kbgp.kernel.syncer import KernelSyncer, OverlayConfig
from kbgp.kernel.tunnels import Links, TunnelManager, tunnel_name

from .netns import Netns, require_netns, route_namespace

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create network namespaces"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 'ip' is missing"),
]


@pytest.fixture
def ns():
    require_netns()
    with route_namespace("ksync") as near:
        yield near


def run(coro):
    return uvloop.run(coro)


def routes(ns: Netns, *sel: str, family: str = "-4") -> list[dict]:
    out = ns.ip(family, "-j", "route", "show", *sel).stdout
    return json.loads(out or "[]")


def ours(ns: Netns, family: str = "-4", table: str = "main") -> dict[str, dict]:
    return {r["dst"]: r for r in routes(ns, "table", table, "proto", "17", family=family)}


async def wait_for(pred, timeout: float, step: float = 0.02) -> float:
    """Seconds until pred() is true; fails after timeout."""
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(step)
    return time.monotonic() - t0


def pa(*prefixes: str) -> PrefixArray:
    return PrefixArray.from_strings(list(prefixes))


_kinds: dict[str, str] = {}


def kernel_lacks(kind: str) -> str:
    """'' when this kernel can make a link of KIND (tried in a throwaway
    namespace), else the reason to skip."""
    if kind not in _kinds:
        with Netns("probe") as probe:
            args = {"ipip": ["type", "ipip", "remote", "192.0.2.1", "local", "192.0.2.2"],
                    "ip6tnl": ["type", "ip6tnl", "remote", "2001:db8::1", "local",
                               "2001:db8::2"]}[kind]
            p = probe.ip("link", "add", "probe0", *args, check=False)
            _kinds[kind] = "" if p.returncode == 0 else (
                f"this kernel cannot make '{kind}' links ({p.stderr.strip()}); the tunnel "
                f"messages are checked in tests/unit/test_tunnels.py")
    return _kinds[kind]


class RouteMonitor:
    """``ip -n NS monitor route`` in the background, written to a file."""

    def __init__(self, ns: Netns, path: Path) -> None:
        self.ns = ns
        self.path = path
        self.file = open(path, "w")  # noqa: SIM115 - the monitor writes to it until stop()
        self.proc = subprocess.Popen(["ip", "-n", ns.name, "monitor", "route"],
                                     stdout=self.file, stderr=subprocess.STDOUT)
        ns.add_finalizer(self.stop)
        # A marker route of another protocol proves the monitor is listening.
        # It may not have subscribed yet when the first marker goes in, so a
        # new marker (another address, added only) goes in until one is seen.
        t0 = time.monotonic()
        for i in range(1, 250):
            marker = f"10.254.254.{i}"
            ns.ip("route", "add", f"{marker}/32", "dev", "kv0", "proto", "static")
            seen_by = time.monotonic() + 0.2
            while time.monotonic() < seen_by:
                if "10.254.254." in self.text():
                    return
                time.sleep(0.02)
            if time.monotonic() - t0 > 10:
                break
        raise AssertionError("ip monitor route did not start")

    def text(self) -> str:
        self.file.flush()
        return self.path.read_text()

    def deleted(self) -> list[str]:
        return [line for line in self.text().splitlines() if line.startswith("Deleted")]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self.file.close()


# ----------------------------------------------------------------- basics

def test_install_change_next_hop_withdraw(ns):
    async def main():
        s = KernelSyncer(netns=ns.name)
        await s.start()
        try:
            s.update(1, {"10.80.0.2": pa("10.100.0.0/24", "10.100.1.0/24")}, None)
            s.update(2, {"fd00:80::2": pa("fd00:100::/64")}, None)
            await s.flush()
            v4 = ours(ns)
            assert set(v4) == {"10.100.0.0/24", "10.100.1.0/24"}
            assert all(r["gateway"] == "10.80.0.2" and r["dev"] == "kv0" for r in v4.values())
            v6 = ours(ns, "-6")
            assert set(v6) == {"fd00:100::/64"} and v6["fd00:100::/64"]["gateway"] == "fd00:80::2"

            s.update(1, {"10.80.0.3": pa("10.100.0.0/24")}, None)      # next hop change
            s.update(2, {"fd00:80::3": pa("fd00:100::/64")}, None)
            await s.flush()
            got = routes(ns, "10.100.0.0/24")
            assert len(got) == 1 and got[0]["gateway"] == "10.80.0.3"
            got = routes(ns, "fd00:100::/64", family="-6")
            assert len(got) == 1 and got[0]["gateway"] == "fd00:80::3"

            s.update(1, {}, pa("10.100.1.0/24"))
            s.update(2, {}, pa("fd00:100::/64"))
            await s.flush()
            assert set(ours(ns)) == {"10.100.0.0/24"} and ours(ns, "-6") == {}
            st = s.status()
            assert (st["installed"], st["pending"], st["failed"]["count"]) == (1, 0, 0)
            assert st["counters"]["routes_replaced_total"] == 2
        finally:
            await s.shutdown(remove_routes=False)
        assert set(ours(ns)) == {"10.100.0.0/24"}            # kept
    run(main())


def test_100000_routes_in_one_burst(ns):
    n = 100_000
    arr = PrefixArray.sequence("10.128.0.0/32", n)

    async def main():
        s = KernelSyncer(netns=ns.name)
        await s.start()
        try:
            t0 = time.perf_counter()
            s.update(1, {"10.80.0.2": arr}, None)
            await s.flush()
            took = time.perf_counter() - t0
            count = int(ns.run("ip -4 route show proto 17 | wc -l").stdout)
            assert count == n and s.status()["installed"] == n
            print(f"100,000 routes installed in {took:.2f} s")
            s.update(1, {}, arr)
            await s.flush()
            assert int(ns.run("ip -4 route show proto 17 | wc -l").stdout) == 0
        finally:
            await s.shutdown(remove_routes=True)
    run(main())


def test_notifications_of_our_own_writes_are_dropped_in_the_kernel(ns):
    """The event socket's filter drops what kbgp's writer causes (a million
    routes written would otherwise be a million notifications to read) and
    lets everyone else's through."""
    writer = in_netns(ns.name, RouteSocket)
    events = in_netns(ns.name, lambda: EventSocket(ignore=writer.portid))
    try:
        assert writer.add(PrefixArray.sequence("10.100.0.0/24", 100), "10.80.0.2") == {}
        time.sleep(0.1)
        assert events.read() is None
        ns.ip("route", "add", "10.101.0.0/24", "via", "10.80.0.2", "proto", "17")
        time.sleep(0.1)
        k = events.read()
        assert k is not None and struct.unpack_from("=H", events.rbuf, 4)[0] == 24
        assert events.read() is None
    finally:
        writer.close()
        events.close()


def test_deleted_or_changed_route_is_restored_within_5_s(ns):
    async def main():
        # a long sync period: the repair must come from the route notifications
        s = KernelSyncer(netns=ns.name, sync_period=3600)
        await s.start()
        try:
            s.update(1, {"10.80.0.2": pa("10.100.0.0/24", "10.100.1.0/24")}, None)
            await s.flush()
            ns.ip("route", "del", "10.100.0.0/24")
            took = await wait_for(lambda: "10.100.0.0/24" in ours(ns), 5.0)
            assert ours(ns)["10.100.0.0/24"]["gateway"] == "10.80.0.2"
            ns.ip("route", "replace", "10.100.1.0/24", "via", "10.80.0.9", "proto", "17")
            took2 = await wait_for(
                lambda: ours(ns).get("10.100.1.0/24", {}).get("gateway") == "10.80.0.2", 5.0)
            print(f"restored after {took:.3f} s (deleted) and {took2:.3f} s (changed)")
            assert s.status()["counters"]["repaired_total"] >= 1
        finally:
            await s.shutdown(remove_routes=True)
    run(main())


def test_foreign_routes_are_never_touched(ns, caplog):
    ns.ip("route", "add", "10.100.5.0/24", "via", "10.80.0.2", "proto", "static")
    ns.ip("route", "add", "10.100.6.0/24", "via", "10.80.0.2", "proto", "static")
    ns.ip("-6", "route", "add", "fd00:100:5::/64", "via", "fd00:80::2", "proto", "static")
    before = {r["dst"]: r for r in routes(ns, "proto", "static")}

    async def main():
        s = KernelSyncer(netns=ns.name, sync_period=0.2)
        await s.start()
        try:
            with caplog.at_level(logging.ERROR, logger="kbgp.kernel.syncer"):
                s.update(1, {"10.80.0.3": pa("10.100.5.0/24", "10.100.7.0/24")}, None)
                s.update(2, {"fd00:80::3": pa("fd00:100:5::/64")}, None)
                await s.flush()
            assert set(ours(ns)) == {"10.100.7.0/24"} and ours(ns, "-6") == {}
            st = s.status()
            assert st["failed"]["conflicts"] == 2
            assert st["counters"]["foreign_conflicts_total"] == 2
            text = caplog.text
            assert "prefix=10.100.5.0/24 gateway=10.80.0.3" in text and "File exists" in text
            assert "prefix=fd00:100:5::/64 gateway=fd00:80::3" in text
            s.converged()
            await asyncio.sleep(0.7)                     # several reconciles
            await s.flush()
            s.update(1, {}, pa("10.100.5.0/24"))
            await s.flush()
        finally:
            await s.shutdown(remove_routes=True)
    run(main())
    after = {r["dst"]: r for r in routes(ns, "proto", "static")}
    assert after == before
    assert routes(ns, "fd00:100:5::/64", family="-6")[0]["gateway"] == "fd00:80::2"
    assert ours(ns) == {} and ours(ns, "-6") == {}


def test_withdrawn_route_does_not_come_back(ns):
    """kube-router #1738: a withdrawn route re-injected by the periodic sync."""
    async def main():
        s = KernelSyncer(netns=ns.name, sync_period=0.1)
        await s.start()
        s.converged()
        try:
            s.update(1, {"10.80.0.2": pa("10.100.0.0/24", "10.100.1.0/24")}, None)
            await s.flush()
            s.update(1, {}, pa("10.100.0.0/24"))
            await s.flush()
            reconciles = s.status()["counters"]["reconciles_total"]
            for _ in range(10):
                await asyncio.sleep(0.1)
                assert set(ours(ns)) == {"10.100.1.0/24"}
            assert s.status()["counters"]["reconciles_total"] >= reconciles + 3
        finally:
            await s.shutdown(remove_routes=True)
    run(main())


def test_per_route_error_does_not_block_the_rest(ns, caplog):
    good = PrefixArray.sequence("10.101.0.0/32", 97)
    bad = pa("10.102.0.1/32", "10.102.0.2/32", "10.102.0.3/32")

    async def main():
        s = KernelSyncer(netns=ns.name)
        await s.start()
        try:
            with caplog.at_level(logging.ERROR, logger="kbgp.kernel.syncer"):
                s.update(1, {"10.81.0.2": bad, "10.80.0.2": good}, None)   # 10.81.0.2: off-link
                await s.flush()
            assert len(ours(ns)) == 97
            st = s.status()
            assert st["failed"]["count"] == 3 and st["installed"] == 97
            errs = {e["prefix"]: e for e in st["failed"]["last_errors"]}
            assert set(errs) == set(bad.to_strings())
            assert all(e["gateway"] == "10.81.0.2" and e["errno"] == errno.ENETUNREACH
                       for e in errs.values())
            for p in bad.to_strings():
                (rec,) = [r for r in caplog.records if f"prefix={p} " in r.getMessage()]
                assert rec.levelno == logging.ERROR
                assert "gateway=10.81.0.2" in rec.getMessage()
                assert "Network is unreachable" in rec.getMessage()
        finally:
            await s.shutdown(remove_routes=True)
    run(main())


def test_withdrawal_is_written_within_the_debounce(ns):
    async def main():
        s = KernelSyncer(netns=ns.name, debounce=0.02)
        await s.start()
        try:
            s.update(1, {"10.80.0.2": pa("10.100.0.0/24")}, None)
            await s.flush()
            t0 = time.monotonic()
            s.update(1, {}, pa("10.100.0.0/24"))      # e.g. a de-configured peer's route
            await wait_for(lambda: ours(ns) == {}, 2.0, step=0.005)
            took = time.monotonic() - t0
            print(f"withdrawal in the kernel after {took * 1000:.0f} ms")
            assert took < 0.5
        finally:
            await s.shutdown(remove_routes=True)
    run(main())


def test_link_flap_routes_come_back(ns):
    """IPv4 routes over a link that goes down vanish without a
    notification; the link event triggers a reconcile that reinstalls them."""
    async def main():
        s = KernelSyncer(netns=ns.name, sync_period=3600)
        await s.start()
        try:
            s.update(1, {"10.80.0.2": pa("10.100.0.0/24", "10.100.1.0/24")}, None)
            await s.flush()
            ns.ip("link", "set", "kv0", "down")
            await wait_for(lambda: ours(ns) == {}, 5.0)
            await asyncio.sleep(0.3)
            ns.ip("link", "set", "kv0", "up")
            took = await wait_for(lambda: len(ours(ns)) == 2, 10.0, step=0.05)
            print(f"routes back {took:.2f} s after the link came up")
        finally:
            await s.shutdown(remove_routes=True)
    run(main())


# ----------------------------------------------------------------- restarts

def test_adoption_at_start_and_converged_removes_only_unwanted(ns, tmp_path):
    for p in ("10.100.1.0/24", "10.100.2.0/24", "10.100.3.0/24"):
        ns.ip("route", "add", p, "via", "10.80.0.2", "proto", "17")
    ns.ip("route", "add", "10.100.4.0/24", "via", "10.80.0.2", "proto", "static")
    mon = RouteMonitor(ns, tmp_path / "monitor.txt")

    async def main():
        s = KernelSyncer(netns=ns.name)
        await s.start()
        try:
            assert s.status()["adopted"] == 3
            assert set(ours(ns)) == {"10.100.1.0/24", "10.100.2.0/24", "10.100.3.0/24"}
            s.update(1, {"10.80.0.2": pa("10.100.1.0/24"), "10.80.0.3": pa("10.100.2.0/24")},
                     None)
            await s.flush()
            assert ours(ns)["10.100.2.0/24"]["gateway"] == "10.80.0.3"
            assert "10.100.3.0/24" in ours(ns)           # not converged yet: kept
            assert mon.deleted() == []
            s.converged()
            await s.flush()
            assert set(ours(ns)) == {"10.100.1.0/24", "10.100.2.0/24"}
            assert len(routes(ns, "10.100.4.0/24", "proto", "static")) == 1
        finally:
            await s.shutdown(remove_routes=False)
    run(main())
    deleted = mon.deleted()
    assert len(deleted) == 1 and deleted[0].startswith("Deleted 10.100.3.0/24")
    # 10.100.1.0/24 was re-learned with the same next hop: never rewritten
    assert "10.100.1.0/24" not in mon.text()


CHILD = textwrap.dedent("""
    import asyncio, sys
    import uvloop
    sys.path.insert(0, {root!r})
    from kbgp._fast.wire import PrefixArray
    from kbgp.kernel.syncer import KernelSyncer

    async def main():
        s = KernelSyncer(netns={ns!r})
        await s.start()
        s.update(1, {{"10.80.0.2": PrefixArray.sequence("10.100.0.0/24", 1000)}}, None)
        s.update(2, {{"fd00:80::2": PrefixArray.sequence("fd00:100::/64", 100)}}, None)
        await s.flush()
        print("ready", flush=True)
        await asyncio.sleep(3600)

    uvloop.run(main())
""")


def test_restart_after_sigkill_keeps_every_route(ns, tmp_path):
    """Graceful restart: kbgp killed with SIGKILL, a new one adopts, the RIB
    re-learns all but 10 prefixes, converged(): the kernel never loses a
    route in between, and only the 10 are deleted at the end."""
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(root=str(ROOT), ns=ns.name)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ns.add_finalizer(child.kill)
    assert child.stdout.readline().strip() == "ready", child.stderr.read()
    assert len(ours(ns)) == 1000 and len(ours(ns, "-6")) == 100
    mon = RouteMonitor(ns, tmp_path / "monitor.txt")
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    relearned = PrefixArray.sequence("10.100.0.0/24", 990)
    gone = PrefixArray.sequence("10.100.0.0/24", 1000).to_strings()[990:]

    async def main():
        s = KernelSyncer(netns=ns.name)
        await s.start()
        try:
            assert s.status()["adopted"] == 1100
            s.update(1, {"10.80.0.2": relearned}, None)
            s.update(2, {"fd00:80::2": PrefixArray.sequence("fd00:100::/64", 100)}, None)
            await s.flush()
            await asyncio.sleep(0.2)
            assert len(ours(ns)) == 1000 and mon.deleted() == []
            assert s.status()["counters"].get("routes_added_total", 0) == 0   # nothing rewritten
            s.converged()
            await s.flush()
        finally:
            await s.shutdown(remove_routes=False)
    run(main())
    time.sleep(0.2)
    deleted = sorted(line.split()[1] for line in mon.deleted())
    assert deleted == sorted(gone)
    assert len(ours(ns)) == 990 and len(ours(ns, "-6")) == 100


def test_shutdown_remove_routes_removes_ours_only(ns):
    ns.ip("route", "add", "10.109.0.0/24", "via", "10.80.0.2", "proto", "static")
    ns.ip("-6", "route", "add", "fd00:100:9::/64", "via", "fd00:80::2", "proto", "static")

    async def main():
        s = KernelSyncer(netns=ns.name)
        await s.start()
        s.update(1, {"10.80.0.2": PrefixArray.sequence("10.100.0.0/24", 50)}, None)
        s.update(2, {"fd00:80::2": pa("fd00:100::/64")}, None)
        await s.flush()
        ns.ip("route", "add", "10.100.200.0/24", "via", "10.80.0.2", "proto", "17")  # ours by protocol
        assert len(ours(ns)) == 51 and len(ours(ns, "-6")) == 1
        await s.shutdown(remove_routes=True)
    run(main())
    assert ours(ns) == {} and ours(ns, "-6") == {}
    assert len(routes(ns, "proto", "static")) == 1
    assert len(routes(ns, "proto", "static", family="-6")) == 1


def test_shutdown_keep_routes(ns):
    async def main():
        s = KernelSyncer(netns=ns.name)
        await s.start()
        s.update(1, {"10.80.0.2": PrefixArray.sequence("10.100.0.0/24", 50)}, None)
        await s.flush()
        await s.shutdown(remove_routes=False)
    run(main())
    assert len(ours(ns)) == 50


# ----------------------------------------------------------------- overlay

def overlay(**kw) -> OverlayConfig:
    base = {"enabled": True, "type": "subnet", "encap": "ipip", "encap_port": 5555,
            "node_addresses": ("10.80.0.1", "fd00:80::1"),
            "pod_cidrs": ("10.244.1.0/24", "fd00:244:1::/64")}
    base.update(kw)
    return OverlayConfig(**base)


def rules(ns: Netns, family: str = "-4") -> list[dict]:
    return json.loads(ns.ip(family, "-j", "rule", "show").stdout or "[]")


def lookup77(ns: Netns, family: str = "-4") -> set[str]:
    return {f"{r['src']}/{r['srclen']}" for r in rules(ns, family)
            if r.get("table") in ("77", 77) and "src" in r}


def test_overlay_subnet_on_link_next_hop_is_direct_and_rules_follow_overlay(ns):
    async def main():
        s = KernelSyncer(netns=ns.name, overlay=overlay())
        await s.start()
        try:
            assert lookup77(ns) == {"10.244.1.0/24"}
            assert lookup77(ns, "-6") == {"fd00:244:1::/64"}
            s.update(1, {"10.80.0.2": pa("10.100.0.0/24")}, None)    # on kv0's subnet
            await s.flush()
            r = ours(ns)["10.100.0.0/24"]
            assert (r["gateway"], r["dev"]) == ("10.80.0.2", "kv0")
            assert s.status()["tunnels"] == []
        finally:
            await s.shutdown(remove_routes=False)
        # overlay off: the rules go at the next start, the off-link next hop
        # gets no route (the underlay routes it), the on-link one stays direct
        s = KernelSyncer(netns=ns.name, overlay=overlay(enabled=False))
        await s.start()
        try:
            assert lookup77(ns) == set() and lookup77(ns, "-6") == set()
            s.update(1, {"10.80.0.2": pa("10.100.0.0/24"), "10.99.0.2": pa("10.100.1.0/24")},
                     None)
            await s.flush()
            assert set(ours(ns)) == {"10.100.0.0/24"}
            st = s.status()
            assert st["not_installed_by_decision"] == 1 and st["failed"]["count"] == 0
        finally:
            await s.shutdown(remove_routes=True)
    run(main())


def test_table_77_route_rules_and_foreign_tun_link(ns):
    """The table-77 route and rule requests against the kernel (over a veth,
    which any kernel has), and the guard that a link named like a tunnel
    but of another kind is never replaced nor removed."""
    name = tunnel_name("10.80.0.2")
    ns.ip("link", "add", name, "type", "veth", "peer", "name", "tunpeer0")
    links = in_netns(ns.name, lambda: Links(NetlinkChannel(), NetlinkChannel(16)))
    try:
        kv0 = links.link_index("kv0")
        links.replace_tunnel_route("10.80.0.2", kv0, 17)
        (r,) = routes(ns, "table", "77")
        assert (r["dst"], r["dev"], r["protocol"], r["scope"]) == ("10.80.0.2", "kv0", "17", "link")
        # rules: added once however often they are synced (the kernel
        # would take a duplicate with another priority), removed when the
        # overlay is off
        tm = TunnelManager(links, overlay(type="full"), 17)
        tm.refresh()
        assert tm.sync_rules() == (["10.244.1.0/24", "fd00:244:1::/64"], [])
        assert tm.sync_rules() == ([], [])
        from_pod = [r for r in rules(ns) if r.get("src") == "10.244.1.0"]
        assert len(from_pod) == 1 and from_pod[0]["table"] == "77"
        assert lookup77(ns, "-6") == {"fd00:244:1::/64"}
        off = TunnelManager(links, overlay(enabled=False), 17)
        assert off.sync_rules() == ([], ["10.244.1.0/24", "fd00:244:1::/64"])
        assert lookup77(ns) == set() and lookup77(ns, "-6") == set()

        assert tm.tunnels == {}                          # a veth is not a tunnel
        with pytest.raises(KernelError, match="not a tunnel kbgp may replace"):
            tm.ensure("10.80.0.2")
        assert tm.cleanup(set()) == []
        assert ns.ip("link", "show", name, check=False).returncode == 0
    finally:
        links.close()


def test_tunnel_failure_is_reported_and_nothing_is_installed(ns, caplog):
    if not kernel_lacks("ipip"):
        pytest.skip("this kernel makes ipip links: test_tunnel_kernel_step covers tunnels")

    async def main():
        s = KernelSyncer(netns=ns.name, overlay=overlay(type="full"))
        await s.start()
        try:
            with caplog.at_level(logging.ERROR, logger="kbgp.kernel.syncer"):
                s.update(1, {"10.80.0.2": pa("10.100.0.0/24")}, None)
                await s.flush()
            assert ours(ns) == {}
            st = s.status()
            assert st["counters"]["tunnel_errors_total"] == 1
            assert st["not_installed_by_decision"] == 1
            assert "tunnel to next_hop=10.80.0.2 failed" in caplog.text
        finally:
            await s.shutdown(remove_routes=True)
    run(main())


@pytest.mark.parametrize("encap", ["ipip", "fou"])
def test_tunnel_kernel_step(ns, encap):
    reason = kernel_lacks("ipip")
    if reason:
        pytest.skip(reason)
    name = tunnel_name("10.80.0.2")

    async def main():
        s = KernelSyncer(netns=ns.name, overlay=overlay(type="full", encap=encap))
        await s.start()
        try:
            s.update(1, {"10.80.0.2": pa("10.100.0.0/24")}, None)
            await s.flush()
            st = s.status()
            if encap == "fou" and st["counters"].get("tunnel_errors_total"):
                pytest.skip("this kernel has ipip but no fou module")
            (link,) = json.loads(ns.ip("-d", "-j", "link", "show", name).stdout)
            info = link["linkinfo"]
            assert info["info_kind"] == "ipip"
            assert (info["info_data"]["remote"], info["info_data"]["local"]) == (
                "10.80.0.2", "10.80.0.1")
            r = ours(ns)["10.100.0.0/24"]
            assert (r["dev"], r["prefsrc"]) == (name, "10.80.0.1") and "gateway" not in r
            (t77,) = routes(ns, "table", "77")
            assert (t77["dst"], t77["dev"]) == ("10.80.0.2", name)
            assert lookup77(ns) == {"10.244.1.0/24"}
            s.converged()
            s.update(1, {}, pa("10.100.0.0/24"))
            await s.flush()
            assert ns.ip("link", "show", name, check=False).returncode != 0
        finally:
            await s.shutdown(remove_routes=True)
    run(main())


# ----------------------------------------------------------------- guards

@pytest.mark.parametrize("kwargs, message", [
    ({"protocol": 2}, "route protocol: 2 is the kernel's RTPROT_KERNEL"),
    ({"protocol": 300}, "route protocol: 300 is not 1..255"),
    ({"table": 255}, "route table: 255 is RT_TABLE_LOCAL"),
    ({"sync_period": 0}, "injected_routes_sync_period: 0 is not a positive"),
    ({"max_batch": 0}, "kernel max_batch: 0 is not a positive integer"),
    ({"overlay": "full"}, "overlay: str is not an OverlayConfig"),
    ({"nexthop_objects": "yes"}, "kernel nexthop_objects: 'yes' is not True, False or None"),
])
def test_bad_settings_name_the_setting(kwargs, message):
    from kbgp.errors import ConfigError
    with pytest.raises(ConfigError, match=message):
        KernelSyncer(**kwargs)


def test_one_writer_per_namespace(ns):
    async def main():
        a = KernelSyncer(netns=ns.name)
        await a.start()
        try:
            b = KernelSyncer(netns=ns.name)
            with pytest.raises(RuntimeError, match="one writer per namespace"):
                await b.start()
            await b.shutdown(remove_routes=True)
            with pytest.raises(ValueError, match=r"announce\['10.80.0.2'\] holds afi 2"):
                a.update(1, {"10.80.0.2": pa("fd00::/64")}, None)
        finally:
            await a.shutdown(remove_routes=True)
        c = KernelSyncer(netns=ns.name)                  # free again
        await c.start()
        await c.shutdown(remove_routes=True)
    run(main())


# ----------------------------------------------------------------- nexthop objects

def nexthops(ns: Netns) -> dict[int, dict]:
    """``ip -j nexthop show``: id -> object."""
    return {n["id"]: n for n in json.loads(ns.ip("-j", "nexthop", "show").stdout or "[]")}


def by_gateway(ns: Netns) -> dict[str, int]:
    return {n["gateway"]: i for i, n in nexthops(ns).items() if "gateway" in n}


def test_routes_use_nexthop_objects_and_follow_a_gateway_change(ns):
    async def main():
        s = KernelSyncer(netns=ns.name, sync_period=0.3)
        await s.start()
        try:
            s.update(1, {"10.80.0.2": pa("10.100.0.0/24", "10.100.1.0/24")}, None)
            s.update(2, {"fd00:80::2": pa("fd00:100::/64")}, None)
            await s.flush()
            objs = nexthops(ns)
            assert len(objs) == 2
            assert all(o["protocol"] == "17" and o["dev"] == "kv0" for o in objs.values())
            gw = by_gateway(ns)
            assert set(gw) == {"10.80.0.2", "fd00:80::2"}
            assert f"nhid {gw['10.80.0.2']} via 10.80.0.2 dev kv0" in \
                ns.ip("route", "show", "proto", "17").stdout
            v4 = ours(ns)
            assert {r["nhid"] for r in v4.values()} == {gw["10.80.0.2"]}
            assert ours(ns, "-6")["fd00:100::/64"]["nhid"] == gw["fd00:80::2"]
            assert s.status()["nexthop_objects"] is True

            # a gateway change: one more object, the route moves to it
            s.update(1, {"10.80.0.3": pa("10.100.0.0/24")}, None)
            await s.flush()
            gw = by_gateway(ns)
            assert set(gw) == {"10.80.0.2", "10.80.0.3", "fd00:80::2"}
            assert ours(ns)["10.100.0.0/24"]["nhid"] == gw["10.80.0.3"]
            assert ours(ns)["10.100.1.0/24"]["nhid"] == gw["10.80.0.2"]

            # converged, the last route via 10.80.0.2 withdrawn: its object goes
            s.converged()
            s.update(1, {}, pa("10.100.1.0/24"))
            await s.flush()
            await wait_for(lambda: "10.80.0.2" not in by_gateway(ns), 5.0, step=0.1)
            assert set(by_gateway(ns)) == {"10.80.0.3", "fd00:80::2"}
            assert set(ours(ns)) == {"10.100.0.0/24"}

            # a route via 10.80.0.2 again: its object is made again
            s.update(1, {"10.80.0.2": pa("10.100.1.0/24")}, None)
            await s.flush()
            assert ours(ns)["10.100.1.0/24"]["nhid"] == by_gateway(ns)["10.80.0.2"]
        finally:
            await s.shutdown(remove_routes=True)
    run(main())
    assert ours(ns) == {} and ours(ns, "-6") == {}
    assert nexthops(ns) == {}                        # removed after the routes


def test_nexthop_object_follows_its_gateway_to_another_device(ns):
    """The gateway's subnet moves from kv0 to another link (kd0, a veth
    whose peer kd1 stays in the namespace): the object is replaced in place
    (same id, new device) and the routes are there."""
    ns.ip("link", "add", "kd0", "type", "veth", "peer", "name", "kd1")
    ns.ip("link", "set", "kd1", "up")
    ns.ip("link", "set", "kd0", "up")

    async def main():
        s = KernelSyncer(netns=ns.name, sync_period=3600)
        await s.start()
        try:
            s.update(1, {"10.80.0.2": pa("10.100.0.0/24", "10.100.1.0/24")}, None)
            await s.flush()
            nhid = by_gateway(ns)["10.80.0.2"]
            ns.ip("addr", "del", "10.80.0.1/24", "dev", "kv0")
            ns.ip("addr", "add", "10.80.0.1/24", "dev", "kd0")

            def moved():
                o = nexthops(ns).get(nhid, {})
                r = ours(ns)
                return o.get("dev") == "kd0" and len(r) == 2 and \
                    all(x.get("nhid") == nhid and x.get("dev") == "kd0" for x in r.values())
            took = await wait_for(moved, 10.0, step=0.1)
            print(f"object on kd0 and routes back {took:.2f} s after the address moved")
            assert len(nexthops(ns)) == 1
        finally:
            await s.shutdown(remove_routes=True)
    run(main())


def test_nexthop_routes_are_repaired_after_ip_route_del_and_ip_nexthop_del(ns):
    async def main():
        s = KernelSyncer(netns=ns.name, sync_period=0.5)
        await s.start()
        try:
            s.update(1, {"10.80.0.2": pa("10.100.0.0/24", "10.100.1.0/24")}, None)
            await s.flush()
            nhid = by_gateway(ns)["10.80.0.2"]
            ns.ip("route", "del", "10.100.0.0/24", "proto", "17")
            await wait_for(lambda: ours(ns).get("10.100.0.0/24", {}).get("nhid") == nhid, 5.0)
            # deleting the object takes its routes with it (the kernel's doing)
            ns.ip("nexthop", "del", "id", str(nhid))
            await wait_for(lambda: len(ours(ns)) == 2 and all(
                r.get("nhid") == by_gateway(ns).get("10.80.0.2") for r in ours(ns).values()),
                10.0, step=0.1)
            assert set(nexthops(ns)) == {nhid}        # made again under its id
            assert s.status()["counters"]["repaired_total"] >= 1
        finally:
            await s.shutdown(remove_routes=True)
    run(main())


def test_restart_adopts_nexthop_objects_without_deleting_anything(ns, tmp_path):
    async def first():
        s = KernelSyncer(netns=ns.name)
        await s.start()
        s.update(1, {"10.80.0.2": pa("10.100.0.0/24", "10.100.1.0/24"),
                     "10.80.0.3": pa("10.100.2.0/24")}, None)
        s.update(2, {"fd00:80::2": pa("fd00:100::/64")}, None)
        await s.flush()
        await s.shutdown(remove_routes=False)
    run(first())
    before = nexthops(ns)
    assert len(before) == 3 and len(ours(ns)) == 3          # kept by shutdown(False)
    gw = by_gateway(ns)
    mon = RouteMonitor(ns, tmp_path / "monitor.txt")

    async def second():
        s = KernelSyncer(netns=ns.name)
        await s.start()
        try:
            st = s.status()
            assert (st["adopted"], st["nexthops"]) == (4, 3)
            s.update(1, {"10.80.0.2": pa("10.100.0.0/24", "10.100.1.0/24")}, None)
            s.update(2, {"fd00:80::2": pa("fd00:100::/64")}, None)
            await s.flush()
            await asyncio.sleep(0.2)
            assert mon.deleted() == []
            assert "10.100.0.0/24" not in mon.text()          # nothing rewritten
            c = s.status()["counters"]
            assert c.get("routes_added_total", 0) == c.get("routes_replaced_total", 0) == 0
            assert c.get("nexthop_objects_written_total", 0) == 0
            assert nexthops(ns) == before
            s.converged()
            await s.flush()
            # the route nobody re-learned and then its object are deleted
            assert set(ours(ns)) == {"10.100.0.0/24", "10.100.1.0/24"}
            assert set(nexthops(ns)) == {gw["10.80.0.2"], gw["fd00:80::2"]}
        finally:
            await s.shutdown(remove_routes=False)
    run(second())
    time.sleep(0.2)
    deleted = mon.deleted()
    assert len(deleted) == 1 and deleted[0].startswith("Deleted 10.100.2.0/24")


def test_gateway_form_when_nexthop_objects_are_off(ns):
    async def main():
        s = KernelSyncer(netns=ns.name, nexthop_objects=False)
        await s.start()
        try:
            s.update(1, {"10.80.0.2": pa("10.100.0.0/24")}, None)
            s.update(2, {"fd00:80::2": pa("fd00:100::/64")}, None)
            await s.flush()
            r4, r6 = ours(ns)["10.100.0.0/24"], ours(ns, "-6")["fd00:100::/64"]
            assert "nhid" not in r4 and "nhid" not in r6
            assert (r4["gateway"], r4["dev"], r6["gateway"]) == ("10.80.0.2", "kv0", "fd00:80::2")
            assert nexthops(ns) == {}
            assert s.status()["nexthop_objects"] is False
        finally:
            await s.shutdown(remove_routes=True)
    run(main())
    assert ours(ns) == {}


def test_routes_written_over_objects_are_rewritten_in_gateway_form(ns):
    """From nexthop objects back to the gateway form (nexthop_objects=False
    after a run with them): the routes are replaced, never deleted, and the
    objects are left alone (that syncer does not touch them)."""
    async def first():
        s = KernelSyncer(netns=ns.name)
        await s.start()
        s.update(1, {"10.80.0.2": pa("10.100.0.0/24")}, None)
        await s.flush()
        await s.shutdown(remove_routes=False)
    run(first())
    assert "nhid" in ours(ns)["10.100.0.0/24"]

    async def second():
        s = KernelSyncer(netns=ns.name, nexthop_objects=False)
        await s.start()
        try:
            s.update(1, {"10.80.0.2": pa("10.100.0.0/24")}, None)
            await s.flush()
            r = ours(ns)["10.100.0.0/24"]
            assert "nhid" not in r and r["gateway"] == "10.80.0.2"
        finally:
            await s.shutdown(remove_routes=True)
    run(second())
    assert ours(ns) == {} and len(nexthops(ns)) == 1
