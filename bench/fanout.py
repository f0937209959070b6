"""Route-reflector fan-out benchmark: N clients, R routes reflected to all.

    sudo python3 bench/fanout.py [--clients 1000] [--routes 10000] [--targets kbgp,bird,gobgp,frr]

For each target: one network namespace holding the target BGP daemon (a
route reflector, AS 64512, cluster id 10.255.255.1, every neighbour a
passive iBGP route-reflector client) and one Python process (uvloop) that
simulates N clients and one feeder, each a real TCP BGP session from its
own loopback address (127.0.0.0/8 is all local, so 127.1.x.y can be bound).
Once every client is Established and has the target's End-of-RIB (or,
from a target that sends none, --eor-wait seconds later), the feeder writes R unique IPv4 /24s in packed UPDATEs (one attribute set).

Measured: seconds from the feeder's first UPDATE byte until the last client
holds all R routes (also p50/p90 over the clients and the first reflected
UPDATE); the target's CPU seconds over that window and its peak RSS (VmHWM,
summed over its processes); the simulator's own CPU.  Every client's routes
are then checked exactly: the R prefixes, nothing else, each with
ORIGINATOR_ID = the feeder's router id and CLUSTER_LIST = [cluster id].
Results: one JSON line per target on stdout, a table with ratios to BIRD,
and bench/results/fanout-<clients>x<routes>.json.  See bench/README-fanout.md.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import math
import os
import queue
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from procstat import proc_cpu, proc_kb, proc_name  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"

TARGET_AS = 64512
# Where the target listens: on lo, but not in 127/8, which FRR cannot tie to
# an interface ("nexthop_set failed, resetting connection").
TARGET_ADDR = "10.78.0.1"
ROUTER_ID = "10.255.0.1"          # the target's
CLUSTER_ID = "10.255.255.1"       # != router id, so CLUSTER_LIST shows it was set
FEEDER_ADDR = "127.0.0.2"
FEEDER_RID = "10.77.0.2"
# The feeder's NEXT_HOP is on a connected network (LO_NET is on lo) but is
# no address of the namespace: BIRD and FRR resolve it, and FRR would drop
# routes whose next hop is one of its own addresses.
NEXT_HOP = "10.77.0.2"
LO_NET = "10.77.0.254/24"
FIRST_PREFIX = "16.0.0.0/24"
HOLD_TIME = 240
KEEPALIVE_EVERY = 20.0
OPEN, UPDATE, NOTIFICATION, KEEPALIVE = 1, 2, 3, 4


def client_address(i: int) -> str:
    """Client i's source address (and router id): 127.1.0.1, ... 200 per /24."""
    return f"127.1.{i // 200}.{i % 200 + 1}"



def listen_drops() -> dict[str, int]:
    """TcpExt ListenOverflows / ListenDrops of this process's network
    namespace: SYNs dropped because a listener's accept queue was full."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return {}
    for head, vals in zip(lines[::2], lines[1::2]):
        if head.startswith("TcpExt:"):
            table = dict(zip(head.split()[1:], vals.split()[1:]))
            return {k: int(table.get(k, 0)) for k in ("ListenOverflows", "ListenDrops")}
    return {}


# ====================================================================== worker
# Runs inside the target's namespace: python3 bench/fanout.py --worker ...

def emit(event: str, **kw) -> None:
    sys.stdout.write(json.dumps({"event": event, "t": time.monotonic(), **kw}) + "\n")
    sys.stdout.flush()


class Client(asyncio.Protocol):
    """One simulated iBGP route-reflector client (or the feeder).

    Counts announced minus withdrawn prefixes per UPDATE with kbgp's codec
    (the prefixes stay in C arrays) and keeps each UPDATE body with the
    monotonic time of the read that brought it, for the exact check after
    the run."""

    def __init__(self, sim: Simulator, index: int, address: str) -> None:
        self.sim = sim
        self.index = index
        self.address = address
        self.transport: asyncio.Transport | None = None
        self.reset()
        self.error: str | None = None
        self.attempts = 0
        self.last_refusal: str | None = None
        self.t_connected = self.t_open = 0.0

    def reset(self) -> None:
        from kbgp._fast.wire import Framer
        self.framer = Framer()
        self.got_open = False
        self.established = False
        self.eor = False
        self.count = 0
        self.updates = 0
        self.bytes = 0
        self.bad_updates = 0
        self.first_t: float | None = None
        self.done_t: float | None = None
        self.bodies: list[tuple[float, bytes]] = []

    # ------------------------------------------------------------ asyncio
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.reset()
        self.t_connected = time.monotonic()
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.sim.open_for(self.address))  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        t = time.monotonic()
        sim = self.sim
        self.bytes += len(data)
        try:
            msgs = self.framer.messages(data)
        except Exception as exc:  # noqa: BLE001 - a BgpError: framing lost
            self.fail(f"framing: {exc}")
            return
        for mtype, body in msgs:
            if mtype == UPDATE:
                u = sim.decode(body)
                if u.end_of_rib is not None:
                    if not self.eor:
                        self.eor = True
                        sim.on_eor(self, t)
                    continue
                ann = len(u.nlri) + (len(u.mp_nlri) if u.mp_nlri is not None else 0)
                wd = len(u.withdrawn) + (len(u.mp_withdrawn) if u.mp_withdrawn is not None else 0)
                if not (ann or wd):
                    continue
                self.updates += 1
                self.bodies.append((t, body))
                if ann and not sim.attrs_ok(u):
                    self.bad_updates += 1
                self.count += ann - wd
                if self.first_t is None and ann:
                    self.first_t = t
                if self.done_t is None and self.count >= sim.routes:
                    self.done_t = t
                    sim.on_done(self)
            elif mtype == KEEPALIVE:
                if self.got_open and not self.established:
                    self.established = True
                    sim.on_established(self, t)
            elif mtype == OPEN:
                self.got_open = True
                self.t_open = t
                self.transport.write(sim.keepalive)  # type: ignore[union-attr]
            elif mtype == NOTIFICATION:
                note = f"NOTIFICATION {body[:2].hex()} {body[2:].hex()}"
                if self.established:
                    self.fail(note)
                else:
                    # Refused while starting (BIRD: protocol not up yet): retry.
                    self.last_refusal = note
                    self.transport.abort()  # type: ignore[union-attr]
                return

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.sim.finished:
            return
        if self.established:
            self.fail(f"session lost: {exc or 'closed by the target'}")
        else:
            # Not up yet (target still starting, or a collision): try again.
            self.sim.reconnect(self)

    def fail(self, why: str) -> None:
        if self.error is None:
            self.error = why
            self.sim.on_failed(self, why)
        if self.transport is not None:
            self.transport.abort()


class Simulator:
    def __init__(self, a: argparse.Namespace) -> None:
        from kbgp._fast.attrs import (
            AttrTable,
            DecodeContext,
            PathAttributes,
            decode_update,
            encode_attributes,
            encode_updates,
        )
        from kbgp._fast.wire import PrefixArray, encode_keepalive
        self.a = a
        self.routes = a.routes
        self.loop = asyncio.get_running_loop()
        self.ctx = DecodeContext(asn4=True, ibgp=True, ipv4=True, ipv6=False)
        self.table = AttrTable()
        self._decode = decode_update
        self.keepalive = encode_keepalive()
        self.attr_verdict: dict[int, bool] = {}
        self.clients = [Client(self, i, client_address(i)) for i in range(a.clients)]
        self.feeder = Client(self, -1, FEEDER_ADDR)
        self.everyone = [self.feeder] + self.clients
        self.established: set[int] = set()
        self.est_times: list[float] = []
        self.eors: set[int] = set()
        self.done: list[Client] = []
        self.failed: list[tuple[str, str]] = []
        self.finished = False
        self.all_done = asyncio.Event()
        self.sem = asyncio.Semaphore(a.connect_burst)
        self.deadline = 0.0
        self.tasks: set[asyncio.Task] = set()
        attrs = encode_attributes(PathAttributes(origin=0, as_path=(), next_hop=NEXT_HOP,
                                                 local_pref=100))
        self.prefixes = PrefixArray.sequence(FIRST_PREFIX, a.routes)
        self.payload = encode_updates(self.prefixes, attrs)
        self._opens: dict[str, bytes] = {}

    # ----------------------------------------------------------- helpers
    def open_for(self, address: str) -> bytes:
        from kbgp._fast.wire import encode_open

        from kbgp.bgp.messages import FourOctetAsCap, MultiprotocolCap, Open, RouteRefreshCap
        msg = self._opens.get(address)
        if msg is None:
            rid = FEEDER_RID if address == FEEDER_ADDR else address
            caps = (MultiprotocolCap(1, 1), RouteRefreshCap(), FourOctetAsCap(TARGET_AS))
            msg = encode_open(Open(my_as=TARGET_AS, hold_time=HOLD_TIME, router_id=rid,
                                   capabilities=caps))
            self._opens[address] = msg
        return msg

    def decode(self, body: bytes):
        return self._decode(body, self.ctx, self.table)

    def attrs_ok(self, u) -> bool:
        """ORIGINATOR_ID is the feeder's router id and CLUSTER_LIST is [cluster id]."""
        v = self.attr_verdict.get(u.attr_id)
        if v is None:
            pa = u.attrs
            v = (u.attr_id >= 0 and pa is not None and pa.originator_id == FEEDER_RID
                 and tuple(pa.cluster_list) == (CLUSTER_ID,))
            self.attr_verdict[u.attr_id] = v
        return v

    # ------------------------------------------------------------ events
    def on_established(self, c: Client, t: float) -> None:
        self.established.add(c.index)
        self.est_times.append(t)

    def on_eor(self, c: Client, t: float) -> None:
        self.eors.add(c.index)

    def on_done(self, c: Client) -> None:
        if c.index < 0:
            return
        self.done.append(c)
        if len(self.done) == len(self.clients):
            self.all_done.set()

    def on_failed(self, c: Client, why: str) -> None:
        self.failed.append((c.address, why))
        emit("client_failed", client=c.address, why=why)
        self.all_done.set()        # a lost session ends the wait: the run failed

    # ----------------------------------------------------------- connect
    async def connect(self, c: Client) -> None:
        while not self.finished:
            c.attempts += 1
            try:
                async with self.sem:
                    await self.loop.create_connection(lambda: c, TARGET_ADDR, 179,
                                                      local_addr=(c.address, 0))
                return
            except OSError as exc:
                if time.monotonic() > self.deadline:
                    c.fail(f"connect: {exc}")
                    return
                await asyncio.sleep(0.25)

    def start_connect(self, c: Client) -> None:
        task = self.loop.create_task(self.connect(c))
        self.tasks.add(task)                  # the loop keeps only a weak reference
        task.add_done_callback(self.tasks.discard)

    def reconnect(self, c: Client) -> None:
        if time.monotonic() < self.deadline and c.error is None:
            self.loop.call_later(0.5, self.start_connect, c)

    async def keepalives(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_EVERY)
            for c in self.everyone:
                if c.established and c.transport is not None:
                    c.transport.write(self.keepalive)

    async def progress(self, t0: float) -> None:
        while True:
            await asyncio.sleep(1.0)
            counts = [c.count for c in self.clients]
            emit("progress", s=round(time.monotonic() - t0, 2), done=len(self.done),
                 min_count=min(counts), received=sum(counts))

    # --------------------------------------------------------------- run
    async def run(self, go: asyncio.Event, quit_: asyncio.Event) -> None:
        a = self.a
        total = len(self.everyone)
        t_start = time.monotonic()
        self.deadline = t_start + a.establish_timeout
        emit("connecting", sessions=total)
        for c in self.everyone:
            self.start_connect(c)
        ka = self.loop.create_task(self.keepalives())
        while len(self.established) < total:
            if time.monotonic() > self.deadline or len(self.failed) > 0:
                emit("failed", why="not every session reached Established",
                     established=len(self.established), sessions=total,
                     errors=self.failed[:5] or [(c.address, c.last_refusal or "no session")
                                                for c in self.everyone if not c.established][:5])
                return
            await asyncio.sleep(0.02)
        t_est = time.monotonic()
        # End-of-RIB from everyone.  BIRD, FRR and GoBGP send none without
        # graceful restart: they get eor-wait seconds after the last session
        # came up.  That also lets FRR's update-group coalesce timer run out
        # (min(10 s, 1 s + 50 ms per configured peer) after a subgroup is
        # made, bgpd/bgp_updgrp.h), so the feed measures fan-out, not a timer.
        while len(self.eors) < total and time.monotonic() - t_est < a.eor_wait:
            await asyncio.sleep(0.02)
        t_ready = time.monotonic()
        early = sum(c.count for c in self.clients)
        est = sorted(x - t_start for x in self.est_times)
        # Where session set-up waits: for the TCP connection, or for the
        # target's OPEN once connected (p50 / max over the sessions).
        tcp = sorted(c.t_connected - t_start for c in self.everyone)
        open_wait = sorted(c.t_open - c.t_connected for c in self.everyone)
        emit("ready", establish_s=round(t_est - t_start, 3), eor=len(self.eors),
             establish_first_s=round(est[0], 3), establish_p50_s=round(_pct(est, 50), 3),
             tcp_connected_p50_s=round(_pct(tcp, 50), 3), tcp_connected_max_s=round(tcp[-1], 3),
             open_wait_p50_s=round(_pct(open_wait, 50), 4),
             open_wait_max_s=round(open_wait[-1], 4), listen=listen_drops(),
             ready_s=round(t_ready - t_start, 3), sessions=total, routes_before=early,
             connect_attempts=sum(c.attempts for c in self.everyone))
        await go.wait()

        pids = a.pids
        cpu0 = {p: proc_cpu(p) for p in pids}
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        prog = self.loop.create_task(self.progress(time.monotonic()))
        t0 = time.monotonic()
        self.feeder.transport.write(self.payload)  # type: ignore[union-attr]
        try:
            await asyncio.wait_for(self.all_done.wait(), a.timeout)
            timed_out = False
        except TimeoutError:
            timed_out = True
        t1 = time.monotonic()
        cpu = {p: round(proc_cpu(p) - cpu0[p], 3) for p in pids}
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        prog.cancel()
        sim_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
        counts = sorted(c.count for c in self.clients)
        base = {"cpu_by_pid": cpu, "cpu_s": round(sum(cpu.values()), 3),
                "simulator_cpu_s": round(sim_cpu, 3), "wall_s": round(t1 - t0, 3),
                "done": len(self.done), "min_count": counts[0],
                "received": sum(counts), "failed": len(self.failed)}
        if timed_out or self.failed:
            emit("timeout" if timed_out else "failed", **base,
                 why="clients failed" if self.failed else f"not done after {a.timeout:g} s",
                 errors=self.failed[:5])
        else:
            emit("done", **base)
        if timed_out:
            # Unfinished: the exact replay would add nothing to the row.
            emit("result", partial=True, complete=len(self.done))
        else:
            self.verify(t0, bool(self.failed))
        self.finished = True
        ka.cancel()
        await quit_.wait()

    # ------------------------------------------------------------ verify
    def verify(self, t0: float, partial: bool) -> None:
        """Replay every client's UPDATEs exactly: a set of prefixes announced
        with the right attributes, one of prefixes announced with wrong ones.
        A client completes at the read that made its good set hold every
        expected prefix; it passes when, at the end, the good set is exactly
        the expected prefixes and the bad set is empty."""
        expected = set(self.prefixes.keys())
        n = len(expected)
        times: list[float] = []
        firsts: list[float] = []
        bad_clients: list[dict] = []
        updates = 0
        nbytes = 0
        for c in self.clients:
            good: set = set()
            bad: set = set()
            t_full = None
            for t, body in c.bodies:
                u = self.decode(body)
                gone = _keys(u.withdrawn, u.mp_withdrawn)
                if gone:
                    good.difference_update(gone)
                    bad.difference_update(gone)
                keys = _keys(u.nlri, u.mp_nlri)
                if keys:
                    if self.attrs_ok(u):
                        good.update(keys)
                        if bad:
                            bad.difference_update(keys)
                    else:
                        bad.update(keys)
                        good.difference_update(keys)
                if t_full is None and len(good) >= n and expected <= good:
                    t_full = t
            updates += c.updates
            nbytes += c.bytes
            if c.first_t is not None:
                firsts.append(c.first_t - t0)
            if t_full is not None:
                times.append(t_full - t0)
            ok = good == expected and not bad and t_full is not None
            if not ok and len(bad_clients) < 5:
                pa = None
                for _t, body in c.bodies:
                    u = self.decode(body)
                    if len(u.nlri) and not self.attrs_ok(u):
                        pa = u.attrs.to_dict() if u.attrs is not None else "treat-as-withdraw"
                        break
                bad_clients.append({"client": c.address, "good": len(good), "bad": len(bad),
                                    "missing": len(expected - good), "extra": len(good - expected),
                                    "wrong_attributes_example": pa})
            if not ok:
                c.error = c.error or "verify"
        nbad = sum(1 for c in self.clients if c.error)
        times.sort()
        out = {"clients": len(self.clients), "routes": n, "complete": len(times),
               "verified_ok": len(self.clients) - nbad, "verify_failures": bad_clients,
               "updates_received": updates, "bytes_received": nbytes,
               "updates_with_wrong_attributes": sum(c.bad_updates for c in self.clients),
               "feeder_payload_bytes": len(self.payload)}
        if times:
            out.update(last_s=round(times[-1], 4), p50_s=round(_pct(times, 50), 4),
                       p90_s=round(_pct(times, 90), 4), first_done_s=round(times[0], 4))
        if firsts:
            out["first_update_s"] = round(min(firsts), 4)
        emit("result", partial=partial, **out)


def _keys(classic, mp) -> list[int]:
    """Prefix keys of an UPDATE field and its MP counterpart (None when absent)."""
    keys = classic.keys() if len(classic) else []
    if mp is not None and len(mp):
        keys = keys + mp.keys()
    return keys


def _pct(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def worker_main(a: argparse.Namespace) -> int:
    import uvloop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        go, quit_ = asyncio.Event(), asyncio.Event()

        def read_stdin() -> None:
            for line in sys.stdin:
                if line.strip() == "go":
                    loop.call_soon_threadsafe(go.set)
                elif line.strip() == "quit":
                    break
            loop.call_soon_threadsafe(go.set)
            loop.call_soon_threadsafe(quit_.set)
        threading.Thread(target=read_stdin, daemon=True).start()
        sim = Simulator(a)
        await sim.run(go, quit_)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = a.clients + 100
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(need, soft), hard), hard))
    uvloop.run(main())
    return 0


# ===================================================================== targets

def _targets():
    """The target classes (imported late: the worker does not need them)."""
    from tests.integration.daemons import Bird, Frr, Gobgp, wait_until
    from tests.integration.kbgp_driver import PYTHON, Kbgp, kbgp_env

    class Target:
        """What every target of this benchmark has in common."""

        def fanout_setup(self, peers: list[str]) -> None:
            for addr in peers:
                self.add_neighbor(addr, TARGET_AS, passive=True, families=["ipv4"],
                                  route_reflector_client=True)

        def pids(self) -> list[int]:
            return [p.pid for p in self.procs]

    class KbgpTarget(Target, Kbgp):
        """kbgp's speaker; with ``profile_env`` set it runs under
        bench/profile_speaker.py (a profiling window switched by SIGUSR1/2)."""

        profile_env: dict[str, str] | None = None

        def fanout_setup(self, peers: list[str]) -> None:
            self.configure(listen=[f"{TARGET_ADDR}:179"], cluster_id=CLUSTER_ID)
            super().fanout_setup(peers)

        def _start(self) -> None:
            self.conf.write_text(self.config())
            self.ctl.unlink(missing_ok=True)
            env = kbgp_env()
            head = [PYTHON, "-m", "kbgp"]
            if self.profile_env:
                env.update(self.profile_env)
                head = [PYTHON, str(ROOT / "bench" / "profile_speaker.py")]
            self._spawn([*head, "speaker", "--config", str(self.conf),
                         "--control-socket", str(self.ctl), "--log-level", self.log_level],
                        "kbgp.log", env=env, cwd=str(ROOT))

            def ready():
                self._check_alive()
                return self.ctl.exists() and self.cli("neighbors", "--json",
                                                      check=False).returncode == 0
            wait_until(ready, 60, f"{self} control socket", on_timeout=self._diag)

    class BirdTarget(Target, Bird):
        """BIRD 2: one template, one ``protocol bgp`` per client.  The
        feeder's next hop resolves through a static device route on lo."""

        def config(self) -> str:
            out = [
                "log stderr all;",
                f"router id {self.router_id};",
                "protocol device { scan time 10; }",
                f"protocol static fanout_nh {{ ipv4; route {ipaddress.ip_network(LO_NET, strict=False)} via \"lo\"; }}",
                "template bgp rrc {",
                f"  local {TARGET_ADDR} as {self.asn};",
                "  passive on;",
                "  rr client;",
                f"  rr cluster id {CLUSTER_ID};",
                "  graceful restart off;",
                "  ipv4 { import all; export where source = RTS_BGP; };",
                "}",
            ]
            for nb in self.neighbors.values():
                out.append(f"protocol bgp c{nb.index} from rrc {{ neighbor {nb.address} "
                           f"as {nb.asn}; }}")
            return "\n".join(out) + "\n"

    class GobgpTarget(Target, Gobgp):
        """GoBGP: one [[neighbors]] entry per client, route-reflector-client
        with the cluster id; neighbours start enabled (no per-neighbour CLI
        call, which would take a process start each)."""

        def config(self) -> str:
            out = ["[global.config]", f"  as = {self.asn}", f'  router-id = "{self.router_id}"',
                   f'  local-address-list = ["{TARGET_ADDR}"]', ""]
            for nb in self.neighbors.values():
                out += ["[[neighbors]]", "  [neighbors.config]",
                        f'    neighbor-address = "{nb.address}"', f"    peer-as = {nb.asn}",
                        "  [neighbors.transport.config]", "    passive-mode = true",
                        "  [neighbors.route-reflector.config]",
                        "    route-reflector-client = true",
                        f'    route-reflector-cluster-id = "{CLUSTER_ID}"',
                        "  [[neighbors.afi-safis]]", "    [neighbors.afi-safis.config]",
                        '      afi-safi-name = "ipv4-unicast"', ""]
            return "\n".join(out) + "\n"

        def _start(self) -> None:
            self.conf.write_text(self.config())
            self.api.unlink(missing_ok=True)
            self._spawn(["gobgpd", "-f", str(self.conf), "-t", "toml",
                         "--api-hosts", f"unix://{self.api}", "--pprof-disable",
                         "-l", "warn"], "gobgpd.log")

            def ready():
                self._check_alive()
                return self.api.exists() and self.netns.run(
                    ["gobgp", "--target", f"unix://{self.api}", "global"],
                    check=False).returncode == 0
            wait_until(ready, 60, f"{self} API", on_timeout=self._diag)

    class FrrTarget(Target, Frr):
        """FRR (zebra + bgpd): the clients are members of one peer-group."""

        def bgpd_config(self) -> str:
            out = [f"hostname {self.hostname}", "log stdout informational", "!",
                   f"router bgp {self.asn}",
                   f" bgp router-id {self.router_id}",
                   f" bgp cluster-id {CLUSTER_ID}",
                   " no bgp default ipv4-unicast",
                   " neighbor RRC peer-group",
                   f" neighbor RRC remote-as {self.asn}",
                   " neighbor RRC passive"]
            out += [f" neighbor {nb.address} peer-group RRC" for nb in self.neighbors.values()]
            out += [" !", " address-family ipv4 unicast",
                    "  neighbor RRC activate",
                    "  neighbor RRC route-reflector-client",
                    " exit-address-family", "!"]
            return "\n".join(out) + "\n"

    return {"kbgp": KbgpTarget, "bird": BirdTarget, "gobgp": GobgpTarget, "frr": FrrTarget}


TARGET_NAMES = ("kbgp", "bird", "gobgp", "frr")


# ================================================================ orchestration

class Events:
    """JSON lines of the worker's stdout, read by a thread into a queue."""

    def __init__(self, proc: subprocess.Popen, verbose: bool):
        self.proc = proc
        self.verbose = verbose
        self.q: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                self.q.put(json.loads(line))
            except ValueError:
                self.q.put({"event": "text", "text": line.rstrip()})
        self.q.put({"event": "eof"})

    def wait(self, names: set[str], timeout: float) -> dict | None:
        """The first event named in NAMES (or eof / failed), None after TIMEOUT."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            try:
                ev = self.q.get(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            self.seen.append(ev)
            if self.verbose and ev["event"] in ("progress", "client_failed", "ready", "connecting"):
                print(f"#   {json.dumps(ev)}", file=sys.stderr, flush=True)
            if ev["event"] in names or ev["event"] in ("eof", "failed"):
                return ev


def perf_summary(data: Path) -> str:
    """Flat profiles: by shared object, then by symbol (Python 3.11 frames
    all show as the interpreter; Cython functions and the kernel by name)."""
    out = []
    for sort, limit in (("dso", "0.5"), ("dso,symbol", "0.4")):
        p = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--sort", sort,
                            "--percent-limit", limit],
                           check=False, capture_output=True, text=True, timeout=300)
        out.append(p.stdout)
    return "\n".join(out)


def run_one(target: str, a: argparse.Namespace, workroot: Path) -> dict:
    from tests.integration.kbgp_driver import kbgp_env
    from tests.integration.netns import Netns

    rec: dict = {"target": target, "clients": a.clients, "routes": a.routes,
                 "loadavg_before": Path("/proc/loadavg").read_text().split()[0]}
    cls = _targets()[target]
    why = cls.missing()
    if why:
        rec["status"] = f"skipped: {why}"
        return rec
    work = Path(tempfile.mkdtemp(prefix=f"{target}-", dir=workroot))
    os.chmod(work, 0o755)
    ns = None
    d = None
    profiling = a.profile and target == "kbgp"
    perf = None
    try:
        ns = Netns(hint=f"fo-{target}")
        ns.ip("addr", "add", LO_NET, "dev", "lo")
        ns.ip("addr", "add", f"{TARGET_ADDR}/32", "dev", "lo")
        d = cls(ns, ROUTER_ID, TARGET_AS, work)
        stem = RESULTS / f"fanout-{a.clients}x{a.routes}-kbgp"
        if profiling and a.profile == "cprofile":
            d.profile_env = {"KBGP_PROFILE_OUT": f"{stem}.prof"}
        elif profiling and a.profile == "stages":
            d.profile_env = {"KBGP_STAGES_OUT": f"{stem}.stages.json"}
        d.fanout_setup([FEEDER_ADDR] + [client_address(i) for i in range(a.clients)])
        t_start = time.monotonic()
        d.start()
        rec["start_s"] = round(time.monotonic() - t_start, 2)
        pids = d.pids()
        with open(work / "worker.err", "ab") as errf:
            worker = ns.popen([sys.executable, str(Path(__file__).resolve()), "--worker",
                               "--clients", str(a.clients), "--routes", str(a.routes),
                               "--pids", ",".join(map(str, pids)),
                               "--timeout", str(a.timeout),
                               "--establish-timeout", str(a.establish_timeout),
                               "--eor-wait", str(a.eor_wait),
                               "--connect-burst", str(a.connect_burst)],
                              env=kbgp_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=errf, text=True, cwd=str(ROOT))
        ev_stream = Events(worker, a.verbose)
        ev = ev_stream.wait({"ready"}, a.establish_timeout + 60)
        if not ev or ev["event"] != "ready":
            raise RuntimeError(f"sessions did not come up within {a.establish_timeout:g} s: "
                               f"{ev} {(work / 'worker.err').read_text()[-1500:]}")
        rec.update(establish_s=ev["establish_s"], establish_first_s=ev["establish_first_s"],
                   establish_p50_s=ev["establish_p50_s"],
                   tcp_connected_p50_s=ev["tcp_connected_p50_s"],
                   tcp_connected_max_s=ev["tcp_connected_max_s"],
                   open_wait_p50_s=ev["open_wait_p50_s"], open_wait_max_s=ev["open_wait_max_s"],
                   listen_queue_drops=ev["listen"],
                   ready_s=ev["ready_s"],
                   eor_received=ev["eor"],
                   sessions=ev["sessions"], connect_attempts=ev["connect_attempts"])
        if ev["routes_before"]:
            rec["routes_before_feed"] = ev["routes_before"]
        rec["setup_cpu_s"] = round(sum(proc_cpu(p) for p in pids), 2)
        rec["rss_before_feed_mb"] = round(sum(proc_kb(p, "VmRSS") for p in pids) / 1024, 1)
        if profiling:
            if a.profile in ("cprofile", "stages"):
                os.kill(pids[0], signal.SIGUSR1)
            else:
                perf = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "1999", "-p",
                                         ",".join(map(str, pids)), "-o", str(work / "perf.data")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        worker.stdin.write("go\n")
        worker.stdin.flush()
        ev = ev_stream.wait({"done", "timeout"}, a.timeout + 60)
        if profiling:
            if a.profile in ("cprofile", "stages"):
                os.kill(pids[0], signal.SIGUSR2)
            elif perf is not None:
                perf.send_signal(signal.SIGINT)
                perf.wait(timeout=60)
        if ev is None:
            raise RuntimeError(f"the simulator gave no result within {a.timeout + 60:g} s")
        if ev["event"] not in ("done", "timeout", "failed"):
            raise RuntimeError(f"simulator: {ev} {(work / 'worker.err').read_text()[-1500:]}")
        end = ev
        res = ev_stream.wait({"result"}, 600)
        per = {f"{proc_name(p)}[{p}]": {"hwm_mb": round(proc_kb(p, "VmHWM") / 1024, 1),
                                        "cpu_s": end.get("cpu_by_pid", {}).get(str(p))}
               for p in pids}
        rec["processes"] = per
        rec["peak_rss_mb"] = round(sum(v["hwm_mb"] for v in per.values()), 1)
        rec["cpu_s"] = end.get("cpu_s")
        rec["simulator_cpu_s"] = end.get("simulator_cpu_s")
        if res and res["event"] == "result":
            for k in ("last_s", "p50_s", "p90_s", "first_done_s", "first_update_s", "complete",
                      "verified_ok", "verify_failures", "updates_received", "bytes_received",
                      "updates_with_wrong_attributes", "feeder_payload_bytes"):
                if k in res:
                    rec[k] = res[k]
        progress = [[e["s"], e["done"], e["min_count"]] for e in ev_stream.seen
                    if e["event"] == "progress"]
        rec["progress"] = progress[-120:]
        if end["event"] == "done" and res and res.get("verified_ok") == a.clients:
            rec["status"] = "ok"
            rec["seconds"] = rec["last_s"]
        elif end["event"] == "timeout":
            rec["status"] = (f"did not finish in {a.timeout:g} s: {end['done']} of {a.clients} "
                             f"clients complete, lowest count {end['min_count']}")
            rec["seconds"] = None
        elif end["event"] == "failed":
            rec["status"] = f"failed: {end.get('why')} {end.get('errors')}"[:1500]
            rec["seconds"] = None
        else:
            rec["status"] = (f"failed verification: {res.get('verified_ok') if res else '?'} of "
                             f"{a.clients} clients hold exactly the routes with the right "
                             f"ORIGINATOR_ID/CLUSTER_LIST")
            rec["seconds"] = None
        if profiling and a.profile == "perf" and (work / "perf.data").exists():
            Path(f"{stem}.perf.txt").write_text(perf_summary(work / "perf.data"))
        return rec
    except Exception as exc:  # noqa: BLE001 - one target's failure is its row
        rec["status"] = f"error: {exc}"[:2000]
        return rec
    finally:
        if d is not None and a.keep_logs:
            d.stop(timeout=20)      # graceful: the logs are complete
            for f in sorted(d.dir.glob("*.log")) + sorted(work.glob("*.err")):
                shutil.copy(f, RESULTS / f"fanout-{a.clients}x{a.routes}-{target}-{f.name}")
        if perf is not None and perf.poll() is None:
            perf.kill()
            perf.wait()
        if ns is not None:
            ns.delete()        # kills the target and the simulator, removes the namespace
        shutil.rmtree(work, ignore_errors=True)


def ratios(recs: list[dict]) -> None:
    bird = next((r for r in recs if r["target"] == "bird" and r.get("status") == "ok"), None)
    for r in recs:
        if bird and r.get("status") == "ok":
            r["ratio_to_bird"] = {k: (round(r[k] / bird[k], 2) if bird.get(k) else None)
                                  for k in ("seconds", "p50_s", "peak_rss_mb", "cpu_s")}


def table(recs: list[dict]) -> str:
    head = (f"{'target':7} {'last s':>8} {'p50 s':>7} {'first s':>8} {'peak RSS MB':>11} "
            f"{'CPU s':>7} {'sim CPU s':>9} {'x BIRD time':>11} {'x BIRD RSS':>10} "
            f"{'x BIRD CPU':>10}")
    lines = [head]
    def num(d: dict, key: str, fmt: str = "{:.3f}") -> str:
        v = d.get(key)
        return fmt.format(v) if isinstance(v, (int, float)) else "-"

    for r in recs:
        ok = r.get("status") == "ok"
        rt = r.get("ratio_to_bird") or {}

        def f(key: str, fmt: str = "{:.3f}", r: dict = r) -> str:
            return num(r, key, fmt)

        def q(key: str, rt: dict = rt) -> str:
            return num(rt, key, "{:.2f}")
        last = f("last_s") if ok else str(r.get("status", "?"))[:40]
        lines.append(f"{r['target']:7} {last:>8} {f('p50_s'):>7} {f('first_update_s'):>8} "
                     f"{f('peak_rss_mb', '{:.1f}'):>11} {f('cpu_s', '{:.2f}'):>7} "
                     f"{f('simulator_cpu_s', '{:.2f}'):>9} {q('seconds'):>11} "
                     f"{q('peak_rss_mb'):>10} {q('cpu_s'):>10}")
    return "\n".join(lines)


def machine() -> dict:
    import platform
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "python": platform.python_version(),
            "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3]}


def versions() -> dict:
    out = {}
    for name, cmd in (("bird", ["bird", "--version"]), ("gobgp", ["gobgpd", "--version"]),
                      ("frr", ["/usr/lib/frr/bgpd", "--version"])):
        try:
            p = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=10)
            text = (p.stdout + p.stderr).strip().splitlines()
            out[name] = text[0] if text else "?"
        except Exception as exc:  # noqa: BLE001
            out[name] = f"? ({exc})"
    try:
        git = ["git", "-C", str(ROOT)]
        out["kbgp_commit"] = subprocess.run([*git, "rev-parse", "--short", "HEAD"], check=False,
                                            capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run([*git, "status", "--porcelain", "kbgp"], check=False,
                               capture_output=True, text=True).stdout.strip()
        out["kbgp_tree"] = "modified" if dirty else "clean"
    except OSError:
        pass
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=1000, help="route-reflector clients (default 1000)")
    ap.add_argument("--routes", type=int, default=10000, help="routes the feeder sends (default 10000)")
    ap.add_argument("--targets", default="kbgp,bird",
                    help=f"comma-separated, from {','.join(TARGET_NAMES)} (default kbgp,bird)")
    ap.add_argument("--timeout", type=float, default=300.0,
                    help="seconds from the feeder's first UPDATE until a target counts as not "
                         "finished (default 300)")
    ap.add_argument("--establish-timeout", type=float, default=180.0,
                    help="seconds for every session to reach Established (default 180)")
    ap.add_argument("--eor-wait", type=float, default=12.0,
                    help="the feed starts once every session has the target's End-of-RIB, or "
                         "this many seconds after the last session came up (default 12)")
    ap.add_argument("--connect-burst", type=int, default=64,
                    help="connections the simulator opens at once (default 64)")
    ap.add_argument("--profile", choices=("stages", "cprofile", "perf"),
                    help="profile kbgp over the fan-out window (its figures are then not "
                         "comparable, nor saved): stages writes wall-clock times per export "
                         "stage to bench/results/fanout-CxR-kbgp.stages.json, cprofile "
                         "fanout-CxR-kbgp.prof, perf a flat profile to fanout-CxR-kbgp.perf.txt")
    ap.add_argument("--no-save", action="store_true", help="do not write the results file")
    ap.add_argument("--keep-logs", action="store_true",
                    help="copy the target's logs (and the simulator's stderr) to "
                         "bench/results/fanout-CxR-TARGET-*.log")
    ap.add_argument("-v", "--verbose", action="store_true", help="progress on stderr")
    # Worker mode (internal).
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--pids", default="", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    a.pids = [int(p) for p in a.pids.split(",") if p]
    if not 1 <= a.clients <= 200 * 250:
        ap.error(f"--clients must be 1..{200 * 250}, got {a.clients}")
    if not 1 <= a.routes <= 1 << 20:
        ap.error(f"--routes must be 1..{1 << 20}, got {a.routes}")
    return a


def main() -> int:
    a = parse_args()
    if a.worker:
        return worker_main(a)
    from tests.integration.kbgp_driver import kbgp_compiled
    from tests.integration.netns import cleanup_stale, netns_available

    targets = [t.strip() for t in a.targets.split(",") if t.strip()]
    for t in targets:
        if t not in TARGET_NAMES:
            print(f"--targets: unknown target {t!r} (choose from {', '.join(TARGET_NAMES)})",
                  file=sys.stderr)
            return 2
    ok, why = netns_available()
    if not ok:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    good, text = kbgp_compiled()
    if not good and "kbgp" in targets:
        print(text, file=sys.stderr)
        return 2
    cleanup_stale()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = a.clients + 200
    if soft < need:    # the targets inherit it: every client is a socket
        if hard < need:
            print(f"cannot run: the open-file limit is {hard}, {need} are needed", file=sys.stderr)
            return 2
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    RESULTS.mkdir(parents=True, exist_ok=True)
    workroot = Path(tempfile.mkdtemp(prefix="kbgp-fanout-"))
    os.chmod(workroot, 0o755)
    info = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": machine(), "versions": versions(), "clients": a.clients,
            "routes": a.routes, "timeout_s": a.timeout,
            "command": "python3 bench/fanout.py " + " ".join(sys.argv[1:])}

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)     # also when started with SIGINT ignored
    recs: list[dict] = []
    try:
        for t in targets:
            print(f"# {t}: {a.clients} clients x {a.routes} routes ...", file=sys.stderr,
                  flush=True)
            r = run_one(t, a, workroot)
            recs.append(r)
            slim = {k: v for k, v in r.items() if k not in ("processes", "progress")}
            print(json.dumps(slim), flush=True)
    except KeyboardInterrupt:
        print("interrupted: the namespaces and processes of the run are removed",
              file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(workroot, ignore_errors=True)
    ratios(recs)
    if not a.no_save and not a.profile:
        out = RESULTS / f"fanout-{a.clients}x{a.routes}.json"
        history: list = []
        if out.exists():
            try:
                old = json.loads(out.read_text())
                history = old.get("history", [])
                history.append({k: old.get(k) for k in ("date", "command", "machine", "versions")}
                               | {"results": [{k: v for k, v in r.items()
                                               if k not in ("processes", "progress")}
                                              for r in old.get("results", [])]})
            except ValueError:
                pass
        out.write_text(json.dumps({**info, "results": recs, "history": history[-10:]},
                                  indent=1) + "\n")
        print(f"wrote {out.relative_to(ROOT)}", file=sys.stderr)
    m = info["machine"]
    print(f"\nmachine: {m['nproc']} CPUs, {m['cpu']}, kernel {m['kernel']}, python {m['python']}, "
          f"load {' '.join(m['loadavg_at_start'])}")
    print(f"{a.clients} clients x {a.routes} routes; seconds from the feeder's first UPDATE byte")
    print(table(recs))
    return 0 if all(r.get("status") == "ok" for r in recs) else 1


if __name__ == "__main__":
    sys.exit(main())
